"""Seconds per training epoch of several setups, run one after the other by this checkout.

    .venv/bin/python scripts/bench_epoch_times.py --epochs 3 --reference seqtext \\
        --setup "seqtext=experiment=seqtext_scientific" \\
        --setup "sasrec=experiment=sasrec_scientific" \\
        --setup "hybrid=experiment=hybrid_scientific model.combine=joint \\
            model.history=attention model.init=sasrec"

Each ``--setup LABEL=OVERRIDES`` is one ``hybridrec-train`` run (space-separated overrides)
for ``--epochs`` epochs without the test, 1 thread, in ``bench/epoch_times/`` (its own
prepared data and MLflow store). Printed per setup: the median of ``time/train_epoch_s``
over the epochs after the first, and its ratio to the ``--reference`` setup. Run it on an
idle machine, one timing job at a time: the numbers are only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from bench_revisions import train_and_find  # scripts/ is on the path when run as a script

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "epoch_times"
URI = f"sqlite:///{BENCH / 'mlflow.db'}"


def run(label: str, overrides: list[str], epochs: int) -> str:
    """Train one setup; its MLflow run id."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": URI}
    env.pop("HYBRIDREC_ROOT", None)
    args = [
        sys.executable,
        "-m",
        "hybridrec.cli.train",
        *overrides,
        f"trainer.max_epochs={epochs}",
        "test_after_fit=false",
        "refit_on_val=false",
        "threads=1",
        f"paths.root_dir={BENCH}",
        f"paths.shared_dir={ROOT.parent / 'shared'}",
        f"logger.run_name=epoch-times-{label}",
        "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
        "callbacks.early_stopping=null",
    ]
    return train_and_find(args, cwd=BENCH, env=env, uri=URI, name=f"epoch-times-{label}")


def seconds_per_epoch(run_id: str) -> float:
    """Median training seconds per epoch, the first (warm-up) epoch left out."""
    history = MlflowClient(tracking_uri=URI).get_metric_history(run_id, "time/train_epoch_s")
    times = [m.value for m in sorted(history, key=lambda m: int(m.step))]
    return statistics.median(times[1:] or times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--setup", action="append", required=True, help="LABEL=OVERRIDES")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reference", help="the label the ratios are to (default: the first)")
    args = parser.parse_args()
    setups = dict(s.split("=", 1) for s in args.setup)
    reference = args.reference or next(iter(setups))
    if reference not in setups:
        raise SystemExit(f"--reference {reference}: not one of the labels {sorted(setups)}")
    BENCH.mkdir(parents=True, exist_ok=True)
    times = {}
    for label, overrides in setups.items():
        run_id = run(label, overrides.split(), args.epochs)
        times[label] = seconds_per_epoch(run_id)
        print(f"{label:<16} {times[label]:7.2f} s/epoch  (run {run_id[:8]})", flush=True)
    print(f"\n| setup | overrides | s/epoch | / {reference} |\n|---|---|---|---|")
    for label, overrides in setups.items():
        ratio = times[label] / times[reference]
        print(f"| {label} | `{overrides}` | {times[label]:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
