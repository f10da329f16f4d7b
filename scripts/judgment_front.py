"""Redraw the accuracy-vs-marketer-agreement front of a lambda sweep (the multirun's own end
writes it too, into <sweep folder>/front):

    .venv/bin/hybridrec-train -m experiment=judgment_synthetic judgment.weight=0,0.3,1,3 seed=1,2,3
    .venv/bin/python scripts/judgment_front.py                      # the newest sweep
    .venv/bin/python scripts/judgment_front.py --sweep multirun/2026-11-26_18-00-00

Reads the sweep's runs through the MLflow client (``--tracking-uri`` or MLFLOW_TRACKING_URI,
default the local SQLite store), writes front.md / front.csv / front.png and logs them to a
summary run (hybridrec.tracking.front).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlflow.tracking import MlflowClient

from hybridrec.tracking import sweep_id
from hybridrec.tracking.front import write_front


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", type=Path, help="the sweep folder (default: the newest)")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
    )
    parser.add_argument("--accuracy", default="test/ndcg10", help="the y axis (MLflow key)")
    parser.add_argument("--out", type=Path, help="output folder (default: <sweep>/front)")
    args = parser.parse_args()
    folder = args.sweep
    if folder is None:
        sweeps = sorted(p for p in (Path.cwd() / "multirun").glob("*") if p.is_dir())
        if not sweeps:
            raise SystemExit("no sweep folder under multirun/: run the multirun first")
        folder = sweeps[-1]
    client = MlflowClient(tracking_uri=args.tracking_uri)
    files, run_id = write_front(
        client, sweep_id(folder), args.out or Path(folder) / "front", args.accuracy
    )
    if not files:
        raise SystemExit(f"no FINISHED run of sweep {folder} measured marketer agreement")
    print(files[0].read_text())
    print(f"wrote {', '.join(map(str, files))}; logged to MLflow run {run_id}")


if __name__ == "__main__":
    main()
