"""hybridrec-review: one HTML page for marketers on a run trained with their judgments.

    hybridrec-review RUN_ID [--lambda L] [-k K] [--out FILE] [--data-dir DIR]
                     [--tracking-uri URI] [--no-log]

For everyone and each segment: the top-K at λ = 0 next to the top-K at the chosen λ (default:
the run's serving λ, ``judgment.head.serving_lambda``; 1 when that is 0), each item with its
title, whether it is new (no training interaction), the judgments' share of its score and, for
the hybrid, its ID vs text share; then each rater's held-out agreement next to the reliability
weight training gave them. A run trained with the joint judgment term has no serving λ: the
page shows each audience's ranking and says so (docs/judgments.md, "The review page").

The page is self-contained (inline CSS, no script, no external URL), written to ``--out``
(default ``reviews/<run id>.html``) and logged to the run as ``review/review.html``. Run it from
the folder the run was trained in (its prepared data folder is read for titles, histories and
judgments), or give ``--data-dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-review", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run_id", help="an MLflow run id (or a unique prefix of at least 4 digits)")
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=None,
        help="the λ of the right-hand lists (default: the run's serving λ; 1 when that is 0)",
    )
    parser.add_argument("-k", type=int, default=10, help="items per list (default 10)")
    parser.add_argument("--out", type=Path, help="the page (default reviews/<run id>.html)")
    parser.add_argument("--data-dir", type=Path, help="the run's prepared data folder")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--no-log", action="store_true", help="do not log the page to the run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # torch, MLflow and pandas load here, not on import: `hybridrec-review --help` stays fast
    import os
    import tempfile

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from mlflow.tracking import MlflowClient

    from hybridrec.errors import HybridrecError
    from hybridrec.export.review import build_review
    from hybridrec.export.review_html import render
    from hybridrec.export.source import resolve_checkpoint
    from hybridrec.tracking.mlflow_run import default_tracking_uri
    from hybridrec.tracking.run_ids import resolve_run_id

    client = MlflowClient(tracking_uri=args.tracking_uri or default_tracking_uri())
    try:
        run_id = resolve_run_id(client, args.run_id)
        checkpoint, _ = resolve_checkpoint(run_id, client)
        run = client.get_run(run_id)
        with tempfile.TemporaryDirectory() as folder:
            try:
                raters = Path(client.download_artifacts(run_id, "judgments/raters.csv", folder))
            except Exception:  # a run without the table: spec.json's weights are read instead
                raters = None
            review = build_review(
                checkpoint,
                run_id=run_id,
                run_name=run.info.run_name or "",
                lam=args.lam,
                k=args.k,
                data_dir=args.data_dir,
                raters_csv=raters,
                logged=dict(run.data.metrics),
            )
    except (HybridrecError, FileNotFoundError) as exc:  # ours: one sentence; a bug: traceback
        print(f"hybridrec-review: error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("reviews") / f"{run_id}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(review), encoding="utf-8")
    if not args.no_log:
        with tempfile.TemporaryDirectory() as folder:
            logged = Path(folder) / "review.html"
            logged.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
            client.log_artifact(run_id, str(logged), artifact_path="review")
        print(f"logged to MLflow run {run_id} as review/review.html")
    print(out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
