"""hybridrec-export: a trained model as files a server can load, logged to its run.

    hybridrec-export RUN_ID|CHECKPOINT [--out DIR] [--add-items ITEMS] [--tracking-uri URI]
                     [--no-log] [--no-user-table]

Rebuilds the model from its checkpoint alone (``weights_only``) and writes into ``--out``
(default ``exports/<run id or checkpoint name>``):

    scorer.pt          TorchScript of the full-ranking scorer (torch.jit.load)
    scorer.onnx        the same as ONNX (dynamic batch; dynamic history width unless fixed)
    item_vectors.npy   (N, D) item matrix of a factorised model, row 0 padding (retrieval)
    items.json         raw item id of each score column (column 0: padding, null)
    users.json         raw user id of each user index
    export.json        inputs, history width, sizes, the model class, the files
    new_items.pt       with --add-items: the new products' raw ids and text vectors

``--add-items items.csv`` (an item table like the training one) encodes new products' text with
the trained text tower and appends them to the catalogue as columns N, N + 1, ... of every file
above and of the served model: no retraining (:mod:`hybridrec.export.new_items`). The files are
written by :func:`hybridrec.export.files.export_model`; this module is the console script.

With a run id the folder is also logged to the run's artifacts under ``export/``, and an MLflow
pyfunc model is logged to the run (``models:/…``, served by ``mlflow models serve``);
``--register NAME`` adds it to the model registry as a new version with an alias
(``--alias``, default ``champion``): serve ``models:/NAME@champion``.

``--no-user-table`` exports no per-user state: no ``users.json``, no ``seen.npz``, every per-user
weight row zero (in ``served.ckpt``, the checkpoint the files and the served model are made
from); a known user is then served from the request's recent items (history models) or by
popularity, and what to leave out comes from the request (``exclude``, ``recent_items``).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

from hybridrec.errors import CheckpointError, HybridrecError


def _is_checkpoint(path: Path) -> Path:
    """``path`` if it can be a checkpoint: hybridrec-train writes torch zip archives. Anything
    else (an item table given by mistake) is refused here with one sentence: the unpickler it
    would reach raises whatever the bytes happen to trigger ("pop from empty list")."""
    if not zipfile.is_zipfile(path):
        table = path.suffix.lower() in {".csv", ".tsv", ".txt", ".parquet", ".json"}
        hint = "; an item table of new products goes after --add-items, next to one"
        raise CheckpointError(
            f"{path} is not a checkpoint: expected an MLflow run id or a .ckpt file written by "
            f"hybridrec-train (a torch zip archive){hint if table else ''}"
        )
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-export", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("source", help="an MLflow run id (or a unique prefix) or a checkpoint file")
    parser.add_argument("--out", type=Path, help="output folder (default exports/<name>)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument(
        "--add-items", type=Path, help="item table of new products to add (no retraining)"
    )
    parser.add_argument("--no-log", action="store_true", help="do not log to the run")
    parser.add_argument(
        "--no-user-table",
        action="store_true",
        help="no per-user state (ids, known items, user vectors): users served by their "
        "recent items or popularity",
    )
    parser.add_argument(
        "--register",
        metavar="NAME",
        help="register the pyfunc model under NAME in the model registry (a new version)",
    )
    parser.add_argument(
        "--alias", default="champion", help="alias of the registered version (default champion)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mlflow.tracking import MlflowClient

    from hybridrec.export.files import export_model
    from hybridrec.export.forget import without_user_state
    from hybridrec.export.source import resolve_checkpoint
    from hybridrec.tracking.mlflow_run import default_tracking_uri
    from hybridrec.tracking.run_ids import run_or_path

    client = MlflowClient(tracking_uri=args.tracking_uri or default_tracking_uri())
    try:
        checkpoint, run_id = resolve_checkpoint(run_or_path(client, args.source), client)
        out = args.out or Path("exports") / (run_id or checkpoint.stem)
        if args.no_user_table:  # everything below is made from a copy without user state
            checkpoint = without_user_state(_is_checkpoint(checkpoint), out / "served.ckpt")
        meta = export_model(_is_checkpoint(checkpoint), out, args.add_items)
        if args.no_user_table:
            meta["user_table"] = False
            (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
    except (HybridrecError, FileNotFoundError) as exc:  # ours: one sentence; a bug: traceback
        print(f"hybridrec-export: error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {meta['model']} to {out}: {', '.join(meta['files'].values())}")
    if args.register and (run_id is None or args.no_log):
        print(
            "hybridrec-export: error: --register needs a run id (and no --no-log)", file=sys.stderr
        )
        return 2
    if run_id is not None and not args.no_log:
        from hybridrec.export.pyfunc import log_recommender

        client.log_artifacts(run_id, str(out), artifact_path="export")
        import mlflow

        mlflow.set_tracking_uri(client.tracking_uri)
        new_items = out / "new_items.pt" if "new_items" in meta["files"] else None
        info = log_recommender(checkpoint, out, run_id, new_items, not args.no_user_table)
        meta["pyfunc_model_uri"] = info.model_uri
        if args.register:
            version = mlflow.register_model(info.model_uri, args.register)
            client.set_registered_model_alias(args.register, args.alias, version.version)
            meta["registered"] = f"models:/{args.register}@{args.alias}"
            print(f"registered {args.register} version {version.version} as @{args.alias}")
        (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"logged to MLflow run {run_id}: export/ and the pyfunc model {info.model_uri}")
        print(
            "serve it (with .venv/bin on PATH: MLflow starts `uvicorn` by name):\n"
            f"  MLFLOW_TRACKING_URI={client.tracking_uri} PATH=.venv/bin:$PATH "
            f".venv/bin/mlflow models serve -m {info.model_uri} --env-manager local "
            "-h 127.0.0.1 -p 5001"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
