"""hybridrec-data: prepare, validate, synthesize and describe datasets.

    hybridrec-data synthesize --out data/synthetic --format csv
    hybridrec-data validate data=ml100k
    hybridrec-data prepare data=ncf_ml1m protocol=loo_sampled
    hybridrec-data describe data/prepared/ncf_ml1m-loo_sampled-<hash>
    hybridrec-data forget USER... --folder data/prepared/<folder> --model exports/<run id>

``prepare`` / ``validate`` take the same Hydra overrides as hybridrec-train (data=…,
protocol=…, data.source.path=…), so a dataset is prepared exactly as training will use it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
from hydra.errors import (
    InstantiationException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hybridrec.cli.checks import check_config
from hybridrec.cli.overrides import UsageError, compose_checked
from hybridrec.config_errors import config_error
from hybridrec.data.errors import DataError
from hybridrec.data.raw import RawData
from hybridrec.data.spec import DataSpec
from hybridrec.errors import HybridrecError


def cmd_synthesize(args: argparse.Namespace) -> int:
    from hybridrec.data import synthetic

    data = synthetic.generate(n_users=args.users, n_items=args.items, seed=args.seed)
    paths = synthetic.write(data, args.out, fmt=args.format)
    for path in paths:
        print(path)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hybridrec.cli.common import read_source

    cfg = compose_checked(f"hybridrec-data {args.command}", args.overrides)
    check_config(cfg)  # types, ranges, unknown keys: before any data is read
    start = time.perf_counter()
    raw = read_source(cfg)
    frame = raw.interactions
    print(
        f"{raw.name}: {len(frame):,} interactions, {frame['user'].nunique():,} users, "
        f"{frame['item'].nunique():,} items, read and validated in "
        f"{time.perf_counter() - start:.2f}s from {', '.join(map(str, raw.files))}"
    )
    if raw.ratings is not None and cfg.data.get("judgments") is not None:
        print(f"  judgments: {_check_judgments(cfg, raw)}")
    if raw.test is not None:
        print(f"  given test rows: {len(raw.test):,}")
    if raw.test_negatives is not None:
        width = len(raw.test_negatives["negatives"].iloc[0])
        print(f"  given negatives: {len(raw.test_negatives):,} rows x {width}")
    return 0


def _check_judgments(cfg: DictConfig, raw: RawData) -> str:
    """The judgments checked as prepare will check them (unknown items and users, NaN scores:
    a DataError naming the row), against every id the source holds; a summary line."""
    from hybridrec.data.preparation.judgments import JudgmentConfig, check_judgments

    assert raw.ratings is not None
    settings = OmegaConf.to_container(cfg.data.judgments, resolve=True)
    assert isinstance(settings, dict)
    judgment_cfg = JudgmentConfig.from_mapping({str(k): v for k, v in settings.items()})
    items = [raw.interactions["item"]]
    if raw.items is not None and cfg.data.get("catalogue_items", "judged") != "interacted":
        items.append(raw.items["item"])
    if raw.test is not None:
        items.append(raw.test["item"])
    item_ids = pd.Index(pd.unique(pd.concat(items, ignore_index=True)))
    user_ids = pd.Index(pd.unique(raw.interactions["user"]))
    rows, dropped = check_judgments(
        raw.ratings, f"{raw.name} judgments", user_ids, item_ids, judgment_cfg
    )
    left_out = ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)
    return f"{len(rows):,} rows" + (f" ({left_out} left out)" if left_out else "")


def cmd_prepare(args: argparse.Namespace) -> int:
    from hybridrec.cli.common import prepare_from_config

    cfg = compose_checked(f"hybridrec-data {args.command}", args.overrides)
    check_config(cfg)  # types, ranges, unknown keys: before any data is read
    start = time.perf_counter()
    spec, folder = prepare_from_config(cfg)
    print(f"prepared in {time.perf_counter() - start:.2f}s: {folder}")
    print(json.dumps(spec.summary(), indent=2))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    spec = DataSpec.load(folder)
    print(json.dumps(spec.summary() | {"counts": spec.counts, "files": spec.files}, indent=2))
    train_path = folder / spec.files["train"]
    try:
        train = pd.read_parquet(train_path)
    except (OSError, ValueError) as exc:  # pyarrow's errors are both
        raise DataError(
            f"cannot read Parquet ({' '.join(str(exc).split())}); expected the training pairs "
            "that `hybridrec-data prepare` writes: delete the folder and prepare again",
            path=train_path,
        ) from exc
    per_user = train.groupby("user").size()
    per_item = train.groupby("item").size()
    density = len(train) / (spec.n_users * spec.n_items)
    print(
        f"train: {len(train):,} pairs, density {density:.4%}; per user min/median/max "
        f"{per_user.min()}/{int(per_user.median())}/{per_user.max()}; per item "
        f"{per_item.min()}/{int(per_item.median())}/{per_item.max()}; items never trained on: "
        f"{spec.n_items - per_item.size}"
    )
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase users (raw ids or pseudonyms) from prepared folders and exported models, record
    it in each one's erasures.json, tag the MLflow runs trained on those folders."""
    from hybridrec.data.catalogue import read_id_maps
    from hybridrec.data.erasure import forget_in_folder, missing_users_message, user_rows
    from hybridrec.export.forget import forget_in_model, model_kind, user_ids

    if not args.folder and not args.model:
        raise UsageError("forget: give at least one --folder (prepared) or --model (exported)")
    # every target resolved before anything changes: a user found nowhere stops it all
    plans: list[tuple[Path, list[int]]] = []
    found_somewhere: set[str] = set()
    pseudonymised = False
    for folder in map(Path, args.folder):
        spec = DataSpec.load(folder)
        pseudonymised |= bool(spec.pseudonyms)
        found, _ = user_rows(
            args.users, read_id_maps(folder)["users"], spec.pseudonyms, str(folder)
        )
        found_somewhere |= set(found)
        plans.append((folder, sorted(set(found.values()))))
    for model in map(Path, args.model):
        if model_kind(model) is None:
            raise FileNotFoundError(
                f"{model}: neither an export folder (export.json) nor a served model folder "
                "(MLmodel); give --model the folder hybridrec-export wrote or a saved pyfunc model"
            )
        # its checkpoint is read with weights_only: a file holding code is refused
        # (CheckpointError, one of ours: main prints its sentence)
        ids, pseudonyms = user_ids(model)
        pseudonymised |= bool(pseudonyms)
        found_somewhere |= set(user_rows(args.users, ids, pseudonyms, str(model))[0])
    missing = [u for u in args.users if u not in found_somewhere]
    if missing:
        where = ", ".join(map(str, [*args.folder, *args.model]))
        raise DataError(missing_users_message(missing, where, pseudonymised) + "; nothing erased")
    fingerprints: list[str] = []
    when = ""
    for folder, rows in plans:
        if not rows:
            print(f"{folder}: none of these users")
            continue
        record = forget_in_folder(folder, rows)
        fingerprints.append(record.fingerprint_before)
        when = record.when
        print(
            f"{folder}: {len(rows)} user(s) erased, rows removed {record.removed}; fingerprint "
            f"{record.fingerprint_before[:12]} -> {record.fingerprint_after[:12]} (erasures.json)"
        )
    for model in map(Path, args.model):
        record, _ = forget_in_model(model, args.users)
        print(f"{model}: {len(record.users)} user(s) erased, changed {record.removed}")
    if fingerprints and not args.no_tag:
        from mlflow.tracking import MlflowClient

        from hybridrec.tracking import default_tracking_uri
        from hybridrec.tracking.erasure import ERASED_TAG, tag_runs_with_erased_users

        client = MlflowClient(tracking_uri=args.tracking_uri or default_tracking_uri())
        runs = tag_runs_with_erased_users(client, fingerprints, when)
        print(f"{len(runs)} MLflow run(s) trained on the data before tagged {ERASED_TAG}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthesize", help="write the synthetic dataset as files")
    syn.add_argument("--out", required=True, help="output folder")
    syn.add_argument("--format", choices=("csv", "parquet"), default="csv")
    syn.add_argument("--users", type=int, default=500)
    syn.add_argument("--items", type=int, default=300)
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=cmd_synthesize)
    for name, func, text in (
        ("validate", cmd_validate, "read and check a source (Hydra overrides: data=...)"),
        ("prepare", cmd_prepare, "map ids, split by protocol, write parquet + spec.json"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ml100k")
        cmd.set_defaults(func=func)
    desc = sub.add_parser("describe", help="summarise a prepared folder")
    desc.add_argument("folder")
    desc.set_defaults(func=cmd_describe)
    forget = sub.add_parser(
        "forget", help="erase users from prepared folders and exported models (docs/privacy.md)"
    )
    forget.add_argument("users", nargs="+", metavar="USER", help="raw ids or pseudonyms")
    forget.add_argument("--folder", action="append", default=[], help="a prepared folder")
    forget.add_argument(
        "--model", action="append", default=[], help="an export folder or a served model folder"
    )
    forget.add_argument("--tracking-uri", default=None, help="where to tag the runs")
    forget.add_argument("--no-tag", action="store_true", help="tag no MLflow run")
    forget.set_defaults(func=cmd_forget)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (HybridrecError, FileNotFoundError) as exc:
        print(f"hybridrec-data: error: {exc}", file=sys.stderr)
        return 2
    except (InstantiationException, OmegaConfBaseException) as exc:
        print(f"hybridrec-data: error: {config_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
