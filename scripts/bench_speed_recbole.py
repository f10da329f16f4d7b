"""Per-epoch training time of our NeuMF vs RecBole 1.2.1's, same split, batch and model, one run.

    bash scripts/setup_recbole.sh                      # once: RecBole in .recbole-venv
    .venv/bin/python scripts/bench_speed_recbole.py    # both sides, then the table

Both sides train NeuMF with 64 predictive factors (GMF 64; MLP embeddings 128 per side,
256 -> 128 -> 64), BCE with 4 uniform negatives per positive, Adam lr 1e-3, on the NCF ML-1M
training pairs (../shared/datasets/ncf_ml1m). Batch: RecBole's ``train_batch_size=4096`` counts
rows including negatives (819 positives x 5 = 4095 rows), so our side uses 819 positives per
batch, the same 4095 rows. Per-epoch time is training only (negative sampling included,
evaluation excluded) on both sides. Accuracy: HR@10 / NDCG@10 on the official test negatives;
ours from the checkpoint chosen on our validation split, RecBole's best epoch chosen on the test
figures themselves (what its side reports, which flatters it).

Our side runs several setups (``--ours``): the same batch in fp32 and in bf16 autocast
(``trainer.precision=bf16-mixed``), and our own batch choice (4,096 positives, bf16, lr 3e-3).
Only the ratios from one run are comparable: run it on an idle machine.
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

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from hybridrec.cli.common import config_dir
from hybridrec.run.train import train

ROOT = Path(__file__).resolve().parents[1]
RECBOLE_PY = ROOT / ".recbole-venv" / "bin" / "python"


#: our setups: label -> (positives per batch or None = RecBole's rows / 5, extra overrides)
OURS: dict[str, tuple[int | None, list[str]]] = {
    "same batch, fp32": (None, []),
    "same batch, bf16": (None, ["trainer.precision=bf16-mixed"]),
    "batch 4096, bf16, lr 3e-3": (
        4096,
        ["trainer.precision=bf16-mixed", "optimizer.lr=0.003"],
    ),
}


def run_ours(
    epochs: int,
    threads: int,
    batch_rows: int,
    negatives: int,
    label: str = "same batch, fp32",
    positives: int | None = None,
    extra: list[str] | None = None,
) -> dict:
    GlobalHydra.instance().clear()
    positives = positives or batch_rows // (1 + negatives)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "experiment=ncf_neumf_ml1m",
                f"threads={threads}",
                f"datamodule.batch_size={positives}",
                f"datamodule.num_negatives={negatives}",
                f"trainer.max_epochs={epochs}",
                "callbacks.early_stopping=null",
                "callbacks.progress_bar.refresh_rate=500",
                f"paths.output_dir=outputs/bench/speed/{time.strftime('%Y%m%d-%H%M%S')}",
                "logger.tags.benchmark=speed_vs_recbole",
                *(extra or []),
            ],
        )
    result = train(cfg)
    seconds = result.train_epoch_seconds
    return {
        "side": f"hybridrec {label} (threads={threads})",
        "per_epoch": seconds,
        "first_epoch_s": seconds[0],
        "mean_epoch_s": statistics.mean(seconds[1:] or seconds),
        "hr10": result.metrics["test/hr@10"],
        "ndcg10": result.metrics["test/ndcg@10"],
        "selection": "best validation epoch",
        "run_id": result.run_id,
        "batch": f"{positives} positives x {1 + negatives} = {positives * (1 + negatives)} rows",
    }


def run_recbole(epochs: int, threads: int | None, batch_rows: int, negatives: int) -> dict:
    if not RECBOLE_PY.is_file():
        raise SystemExit(f"{RECBOLE_PY} missing: run `bash scripts/setup_recbole.sh` first")
    out = ROOT / "bench" / f"recbole_neumf_threads{threads or 0}.json"
    cmd = [
        str(RECBOLE_PY),
        str(ROOT / "scripts" / "recbole_ncf.py"),
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_rows),
        "--neg",
        str(negatives),
        "--out",
        str(out),
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    per_epoch = [e["train_seconds"] for e in data["per_epoch"]]
    return {
        "side": f"RecBole 1.2.1 (threads={threads or 'torch default'})",
        "per_epoch": per_epoch,
        "first_epoch_s": per_epoch[0],
        "mean_epoch_s": statistics.mean(per_epoch[1:] or per_epoch),
        "hr10": data["best_hr10"],
        "ndcg10": data["best_ndcg10"],
        "selection": f"best test epoch ({data['best_epoch']})",
        "batch": f"train_batch_size={batch_rows} rows",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-rows", type=int, default=4096)
    parser.add_argument("--neg", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ours")
    parser.add_argument(
        "--recbole-threads", type=int, nargs="+", default=[1, 2], help="0 = torch default"
    )
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument(
        "--ours", nargs="+", choices=sorted(OURS), default=list(OURS), help="our setups to run"
    )
    parser.add_argument("--out", default="bench/speed_vs_recbole.json")
    args = parser.parse_args()

    rows = []
    if not args.skip_recbole:
        for threads in args.recbole_threads:
            rows.append(run_recbole(args.epochs, threads or None, args.batch_rows, args.neg))
    for threads in args.threads:
        for label in args.ours:
            positives, extra = OURS[label]
            rows.append(
                run_ours(args.epochs, threads, args.batch_rows, args.neg, label, positives, extra)
            )

    # the ratio is against RecBole's fastest setting in this run
    recbole = [r["mean_epoch_s"] for r in rows if r["side"].startswith("RecBole")]
    reference = min(recbole) if recbole else None
    print(
        f"\nNeuMF-64 on NCF ML-1M, {args.epochs} epochs, {args.neg} negatives, "
        f"{os.cpu_count()} CPU cores, python {sys.version.split()[0]}"
    )
    print(
        "| side | batch | 1st epoch s | mean epoch s (2..) | speed-up vs RecBole "
        "| HR@10 | NDCG@10 | selection |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = f"{reference / row['mean_epoch_s']:.2f}x" if reference else "-"
        print(
            f"| {row['side']} | {row['batch']} | {row['first_epoch_s']:.1f} | "
            f"{row['mean_epoch_s']:.1f} | {ratio} | {row['hr10']:.4f} | {row['ndcg10']:.4f} | "
            f"{row['selection']} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
