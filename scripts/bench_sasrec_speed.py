"""Per-epoch training time of RecBole 1.2.1's SASRec and ours on Amazon Scientific, one run.

    bash scripts/setup_recbole.sh                                    # once: RecBole venv
    .venv/bin/python scripts/bench_sasrec_speed.py --epochs 5        # both sides, then the ratio

Sides (``--sides``, run one after another in that order, never two at once, each in its own
process with ``--threads`` intra-op threads and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set to
the same; default 1):

- ``recbole``: RecBole 1.2.1 ``SASRec`` with the config of UniSRec's SASRec baseline (hidden
  300, 2 layers x 2 heads, inner 256, dropout 0.5, CE over all items, Adam lr 1e-3, batch 2048
  prefixes, 50 items of history) through scripts/recbole_sasrec.py in the RecBole venv, on the
  UniSRec benchmark files (train: every prefix of each history minus its last two items, 34,101
  rows). ``--epochs`` epochs exactly (its early stopping is pushed past them). Epoch seconds:
  ``trainer._train_epoch``, validation excluded. RecBole feeds every prefix as its own row padded
  to 50 positions, so one epoch runs the Transformer over 34,101 x 50 positions.
- ``ours``: ``hybridrec-train experiment=sasrec_scientific trainer.max_epochs=N
  callbacks.early_stopping=null test_after_fit=false paths.shared_dir=<--shared-dir>`` in a
  subprocess (our venv), same model and hyper-parameters (the experiment's own), 512 windows
  per batch (about as many steps per epoch). Same 34,101 training targets, but each user's
  training sequence is read once, every position scored (windows of 50, bucketed by length).
  Epoch seconds: the MLflow metric ``time/train_epoch_s`` of that run (EpochTimer: training
  only, validation excluded), found by a unique ``bench_id`` tag.

The table gives, per side, the first epoch and the median over epochs 2.. (first-epoch warm-up
excluded), the validation NDCG@10 after each epoch (same 8,442 validation targets on both
sides; RecBole's evaluator breaks ties with ``torch.topk``, ours with its configured ``ties``),
then the ratio RecBole/ours of the medians (> 1: ours is faster). Accuracy here is after
``--epochs`` epochs, not converged: converged test figures come from the full runs
(scripts/recbole_sasrec.py with early stopping; ``hybridrec-train experiment=sasrec_scientific``).
Times on a shared host are provisional. Writes ``--out`` (default bench/sasrec_speed.json) with
both rows and raw per-epoch times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECBOLE_PY = ROOT / ".recbole-venv" / "bin" / "python"
OURS_TRAIN = Path(sys.executable).parent / "hybridrec-train"
DEFAULT_DATA = "../shared/datasets/amazon_scientific_unisrec"
DEFAULT_SHARED = "../shared"
EXPERIMENT = "sasrec_scientific"
SIDES = ("recbole", "ours")


def _resolve(path: str) -> Path:
    pth = Path(path)
    return pth if pth.is_absolute() else (ROOT / pth).resolve()


def _summary(per_epoch: list[float]) -> dict:
    later = per_epoch[1:] or per_epoch
    return {
        "per_epoch": per_epoch,
        "first_epoch_s": per_epoch[0],
        "median_epoch_s": statistics.median(later),
    }


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else our default SQLite store at the repo root (made
    absolute, so this process and the training subprocess read the same file)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlflow.db'}"


def run_recbole(args) -> dict:
    if not RECBOLE_PY.is_file():
        raise SystemExit(f"{RECBOLE_PY} missing: run `bash scripts/setup_recbole.sh` first")
    out = ROOT / "bench" / "sasrec_speed_recbole.json"
    cmd = [
        str(RECBOLE_PY),
        str(ROOT / "scripts" / "recbole_sasrec.py"),
        "--data-dir",
        str(_resolve(args.data_dir)),
        "--epochs",
        str(args.epochs),
        "--patience",
        str(args.epochs + 1),  # never stops early: exactly --epochs epochs
        "--threads",
        str(args.threads),
        "--out",
        str(out),
    ]
    env = {**_env(args.threads), "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    return {
        "side": "recbole",
        **_summary([e["train_seconds"] for e in data["per_epoch"]]),
        "targets_per_epoch": data["shape"]["train_samples"],
        "batches_per_epoch": data["shape"]["batches_per_epoch"],
        "val_ndcg10": data["valid_curve"],
        "val_ties": "torch.topk (RecBole evaluator)",
        "median_val_s": data["median_valid_seconds"],
        "setup_s": data["setup_seconds"],
        "versions": data["versions"],
        "json": str(out),
    }


def run_ours(args) -> dict:
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking import mlflow_key

    if not OURS_TRAIN.is_file():
        raise SystemExit(f"{OURS_TRAIN} missing: install hybridrec in this venv")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    bench_id = f"sasrec_speed-{stamp}-{os.getpid()}"
    uri = tracking_uri()
    cmd = [
        str(OURS_TRAIN),
        f"experiment={EXPERIMENT}",
        f"trainer.max_epochs={args.epochs}",
        "callbacks.early_stopping=null",
        "test_after_fit=false",
        f"paths.shared_dir={_resolve(args.shared_dir)}",
        f"threads={args.threads}",
        "callbacks.progress_bar.refresh_rate=1000",
        f"hydra.run.dir=outputs/bench/sasrec_speed/{stamp}",
        "logger.tags.benchmark=sasrec_speed",
        f"++logger.tags.bench_id={bench_id}",
        *args.ours_override,
    ]
    env = {**_env(args.threads), "MLFLOW_TRACKING_URI": uri}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.bench_id = '{bench_id}'")
    if len(runs) != 1:
        raise SystemExit(f"expected one MLflow run tagged bench_id={bench_id}, found {len(runs)}")
    run_id = runs[0].info.run_id

    def series(key: str) -> list[float]:
        return [m.value for m in sorted(client.get_metric_history(run_id, key), key=_step)]

    seconds = series("time/train_epoch_s")
    if not seconds:
        raise SystemExit(f"MLflow run {run_id} has no time/train_epoch_s")
    return {
        "side": "ours",
        **_summary(seconds),
        # next-item targets: every training interaction but each user's first (all Scientific
        # users have training items); fewer than RecBole's rows: repeats are kept once here
        "targets_per_epoch": int(runs[0].data.params["spec/n_train"])
        - int(runs[0].data.params["spec/n_users"]),
        "val_ndcg10": series(mlflow_key("val/ndcg@10")),
        "val_ties": runs[0].data.params.get("ties", "see the run's config"),
        "run_id": run_id,
        "bench_id": bench_id,
        "tracking_uri": uri,
    }


def _step(metric) -> tuple[int, int]:
    return (metric.step, metric.timestamp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sides", default="recbole,ours", help="comma list, in order")
    parser.add_argument("--epochs", type=int, default=5, help="epochs on both sides")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="UniSRec files (RecBole side)")
    parser.add_argument(
        "--shared-dir", default=DEFAULT_SHARED, help="paths.shared_dir for our side"
    )
    parser.add_argument(
        "--ours-override", action="append", default=[], help="extra Hydra override (repeatable)"
    )
    parser.add_argument("--out", default="bench/sasrec_speed.json")
    args = parser.parse_args()

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if bad := [s for s in sides if s not in SIDES]:
        raise SystemExit(f"unknown sides {bad}; choose from {SIDES}")

    rows: list[dict] = []
    for side in sides:
        rows.append(run_recbole(args) if side == "recbole" else run_ours(args))

    print(
        f"\nSASRec on Amazon Scientific, threads={args.threads}, {os.cpu_count()} CPU cores, "
        f"python {sys.version.split()[0]}, load avg {os.getloadavg()[0]:.2f}"
    )
    print(
        "| side | epochs | targets/epoch | 1st epoch s | median s/epoch (2..) "
        "| val NDCG@10 per epoch |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        curve = " ".join(f"{v:.4f}" for v in r["val_ndcg10"])
        print(
            f"| {r['side']} | {len(r['per_epoch'])} | {r['targets_per_epoch']:,} | "
            f"{r['first_epoch_s']:.1f} | {r['median_epoch_s']:.1f} | {curve} |"
        )
    by_side = {r["side"]: r for r in rows}
    found = []
    if "recbole" in by_side and "ours" in by_side:
        value = by_side["recbole"]["median_epoch_s"] / by_side["ours"]["median_epoch_s"]
        found.append({"ratio": "recbole/ours", "value": value})
        print(f"recbole/ours: {value:.2f}x per epoch (median, epochs 2..; > 1: ours is faster)")
    out = _resolve(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "rows": rows,
        "ratios": found,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "loadavg_end": list(os.getloadavg()),
        "args": vars(args),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
