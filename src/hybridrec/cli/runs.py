"""hybridrec-runs: list, compare and plot MLflow runs, protocol-aware.

    hybridrec-runs list [-e EXPERIMENT] [--param KEY=VALUE] [--tag KEY=VALUE] [--filter MLFLOW]
                        [--run ID] [--fast-dev-runs] [--evals]
    hybridrec-runs compare [filters] [--metrics test/ndcg@10,...] [--sort METRIC] [--mix]
                           [--format table|markdown|csv] [--out FILE]
    hybridrec-runs plot curves|param|front [filters] [--metrics ...] [--x KEY] [--mix]
                        [--out DIR]
    hybridrec-runs compare --study mf_optuna   # an hparams_search study's trials, best first
    hybridrec-runs plot importance --study mf_optuna   # what moved its objective
    hybridrec-runs upload --from sqlite:///outputs/…/mlflow-fallback.db --to http://host:5000

Reads any tracking store through the MLflow client (``--tracking-uri``, else
MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db``). What "compare" adds to MLflow's UI is in
:mod:`hybridrec.tracking.compare`; the plots in :mod:`hybridrec.tracking.run_plots`. A run id
is printed in full by ``list`` and as its shortest unique prefix (8 digits or more) elsewhere;
every command takes any unique prefix back (:mod:`hybridrec.tracking.run_ids`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridrec.errors import HybridrecError
from hybridrec.tracking.listing import MAX_TABLE_PARAMS


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", "--experiment", action="append", help="experiment name (repeat)")
    parser.add_argument("--param", action="append", help="KEY=VALUE, e.g. model/dim=64 (repeat)")
    parser.add_argument("--tag", action="append", help="KEY=VALUE, e.g. sweep_job=3 (repeat)")
    parser.add_argument(
        "--study",
        default=None,
        metavar="NAME",
        help="the trials of one hparams_search study (tag hybridrec.study); compare: best first",
    )
    parser.add_argument("--filter", default="", help="an MLflow search filter, for the rest")
    parser.add_argument(
        "--status", default="FINISHED", help="FINISHED (default), FAILED, KILLED or all"
    )
    parser.add_argument("--limit", type=int, default=1000, help="runs read at most")
    parser.add_argument(
        "--all-experiments",
        action="store_true",
        help="compare / plot: every experiment (default: -e, else the newest run's)",
    )
    parser.add_argument(
        "--run",
        action="append",
        metavar="ID",
        help="only this run: its id or any unique prefix of it (repeat)",
    )
    parser.add_argument(
        "--evals", action="store_true", help="also the hybridrec-eval runs (left out by default)"
    )
    parser.add_argument(
        "--fast-dev-runs",
        action="store_true",
        help="also the trainer.fast_dev_run smoke runs (left out by default)",
    )
    parser.add_argument("--tracking-uri", default=None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-runs",
        description="List, compare and plot hybridrec's MLflow runs (protocol-aware).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="one line per run, newest first")
    _common(listing)
    compare = sub.add_parser("compare", help="settings side by side; seeds as mean ± std")
    _common(compare)
    compare.add_argument(
        "--metrics",
        default=None,
        help="comma-separated (default: best/<monitor>, test HR/NDCG@10, agreement, coverage)",
    )
    compare.add_argument("--sort", default=None, help="metric to sort each group by")
    compare.add_argument("--ascending", action="store_true")
    compare.add_argument(
        "--mix", action="store_true", help="rank runs of different protocols / data together"
    )
    compare.add_argument(
        "--params",
        default=None,
        help="comma-separated params to show (default: those that differ; the terminal "
        f"table shows at most {MAX_TABLE_PARAMS}, model, loss and data params first)",
    )
    compare.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    compare.add_argument("--out", type=Path, help="also write the markdown / csv here")
    plot = sub.add_parser("plot", help="PNG plots, written to a folder and logged to MLflow")
    plot.add_argument("kind", choices=("curves", "param", "front", "importance"))
    _common(plot)
    plot.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metrics (curves: val/ndcg@10; front: the accuracy axis, "
        "test/ndcg@10)",
    )
    plot.add_argument("--x", dest="x_param", help="param on the x axis (kind=param)")
    plot.add_argument(
        "--mix",
        action="store_true",
        help="draw runs of different protocols / data on one plot (default: one plot each)",
    )
    plot.add_argument("--out", type=Path, default=Path("bench/plots"))
    plot.add_argument("--no-log", action="store_true", help="do not log the plot to MLflow")
    upload = sub.add_parser(
        "upload",
        help="copy runs (params, metrics with steps, tags, artifacts) into another store, "
        "e.g. a job's fallback store into the server that stopped answering",
    )
    upload.add_argument("--from", dest="source", required=True, help="store to copy from")
    upload.add_argument("--to", dest="target", required=True, help="store (server) to copy into")
    upload.add_argument(
        "--run-id", action="append", help="only this run: its id or a unique prefix (repeat)"
    )
    upload.add_argument("--force", action="store_true", help="copy runs uploaded before too")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking.listing import compare_runs, list_runs
    from hybridrec.tracking.mlflow_run import default_tracking_uri
    from hybridrec.tracking.plot_runs import plot_runs
    from hybridrec.tracking.upload import upload_and_report

    try:
        if args.command == "upload":
            upload_and_report(args.source, args.target, args.run_id, force=args.force)
            return
        client = MlflowClient(tracking_uri=args.tracking_uri or default_tracking_uri())
        verbs = {"list": list_runs, "compare": compare_runs, "plot": plot_runs}
        verbs[args.command](args, client)
    except HybridrecError as exc:  # ours (TrackingError included): one sentence; a bug: traceback
        print(f"hybridrec-runs: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
