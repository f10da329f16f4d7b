"""Before / after a change: the same experiments trained by two git revisions, side by side.

    .venv/bin/python scripts/bench_revisions.py --old df490a1 --new HEAD \\
        --experiment sasrec_scientific --experiment ncf_neumf_ml1m --epochs 2

Each revision is checked out as a git worktree under ``bench/worktrees/`` and run with this
virtualenv's Python, its own ``src/`` first on PYTHONPATH (so its code and its configs/ are the
ones that run). Both sides share one prepared-data folder (``bench/revisions/``) and one MLflow
store (``bench/revisions/mlflow.db``); the runs alternate old, new per experiment. Printed per
experiment and side: validation NDCG@10 of each epoch, the test metrics, the median training
seconds per epoch (``time/train_epoch_s``, epochs after the first) and the new/old time ratio.
Same seed and same code path give the same validation curve: identical curves mean the change
did not alter what is trained. Run it on an idle machine, one timing job at a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "revisions"


def worktree(revision: str) -> Path:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = ROOT / "bench" / "worktrees" / sha
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def run(tree: Path, experiment: str, epochs: int, overrides: list[str], name: str) -> str:
    uri = f"sqlite:///{BENCH / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "MLFLOW_TRACKING_URI": uri}
    env.pop("HYBRIDREC_ROOT", None)
    args = [
        sys.executable,
        "-m",
        "hybridrec.cli.train",
        f"experiment={experiment}",
        f"trainer.max_epochs={epochs}",
        f"paths.root_dir={BENCH}",
        f"paths.shared_dir={ROOT.parent / 'shared'}",
        f"logger.run_name={name}",
        "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
        *overrides,
    ]
    return train_and_find(args, cwd=BENCH, env=env, uri=uri, name=name)


def train_and_find(args: list[str], *, cwd: Path, env: dict[str, str], uri: str, name: str) -> str:
    """Run one training command (its ``logger.run_name`` is ``name``); its MLflow run id."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"attributes.run_name = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return str(runs[0].info.run_id)


def summary(run_id: str) -> dict[str, object]:
    client = MlflowClient(tracking_uri=f"sqlite:///{BENCH / 'mlflow.db'}")
    metrics = client.get_run(run_id).data.metrics
    val = [m.value for m in sorted(client.get_metric_history(run_id, "val/ndcg10"), key=_step)]
    times = [
        m.value for m in sorted(client.get_metric_history(run_id, "time/train_epoch_s"), key=_step)
    ]
    return {
        "val_ndcg10": [round(v, 4) for v in val],
        "test": {k: round(v, 4) for k, v in metrics.items() if k in ("test/hr10", "test/ndcg10")},
        "s_per_epoch": statistics.median(times[1:] or times) if times else float("nan"),
    }


def _step(metric: object) -> int:
    return int(metric.step)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--old", required=True, help="git revision before the change")
    parser.add_argument("--new", default="HEAD", help="git revision after the change")
    parser.add_argument("--experiment", action="append", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE, both sides")
    args = parser.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    trees = {"old": worktree(args.old), "new": worktree(args.new)}
    for experiment in args.experiment:
        results = {}
        for side, tree in trees.items():
            name = f"{experiment}-{side}-{tree.name}"
            results[side] = summary(run(tree, experiment, args.epochs, args.override, name))
            print(f"{experiment:<24} {side} {tree.name}: {results[side]}", flush=True)
        old_s, new_s = results["old"]["s_per_epoch"], results["new"]["s_per_epoch"]
        same = results["old"]["val_ndcg10"] == results["new"]["val_ndcg10"]
        print(
            f"{experiment:<24} new/old s/epoch {float(new_s) / float(old_s):.3f}; "  # type: ignore[arg-type]
            f"validation curves {'identical' if same else 'DIFFER'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
