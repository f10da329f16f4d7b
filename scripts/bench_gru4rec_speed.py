"""Per-epoch training time (and accuracy) of three GRU4Rec implementations on Amazon Beauty.

    bash scripts/setup_recbole.sh                                    # once: RecBole venv
    git clone https://github.com/hidasib/GRU4Rec_PyTorch_Official /path/to/GRU4Rec_official
    .venv/bin/python scripts/bench_gru4rec_speed.py --official-dir /path/to/GRU4Rec_official

Sides (``--sides``, run one after another in that order, never two at once, all with
``--threads`` intra-op threads and ``OMP_NUM_THREADS`` set to the same; default 1):

- ``official``: the official GRU4Rec PyTorch code from a clone outside the repo, through
  scripts/official_gru4rec.py in a subprocess (our venv), on CPU, one run per loss of
  ``--losses``, with OUR experiment's hyper-parameters (layers, batch, dropout, Adagrad lr and
  momentum, negatives and alpha, bpreg / logq / ELU: ``official_params``; ``--official-params``
  replaces them), so both sides train the same model. Training data: each user's history minus
  its last item as one session. Epoch seconds: the official code's own per-epoch figure (one
  pass over the minibatches, negative sample store refreshes included: with 2,048 negatives
  its 10M-sample store runs out every few epochs, making those epochs some 8-15 s slower; the
  median mostly skips them). Accuracy after ``--epochs`` epochs.
- ``recbole``: RecBole 1.2.1 ``GRU4Rec`` (CE over all items, batch 256, max 50 items of
  history, embedding 64 / hidden 64; its yaml's hidden default is 128) through
  scripts/recbole_gru4rec.py in the RecBole venv; leave-one-out (history minus the last two
  items trains). Epoch seconds: ``trainer._train_epoch``. Only ``--recbole-epochs`` epochs
  (default 2: enough for timing), so its accuracy is after that many epochs, not converged.
  One run (CE) whatever ``--losses``.
- ``ours``: hybridrec in-process, ``hybridrec.run.train.train`` on
  ``experiment=gru4rec_beauty_bprmax`` / ``gru4rec_beauty_xe`` (one per loss), ``--epochs``
  epochs, early stopping off. Epoch seconds: the EpochTimer callback (training only, validation
  excluded). Training: history minus the last two items; accuracy from the checkpoint with the
  best validation NDCG@10.

Every side ranks the last item of each user against all items with the whole prefix as input
(HR@10 / NDCG@10; the official and RecBole figures here use the conservative tie rule, ours its
configured ``ties``). The table gives, per run, the first epoch and the median over epochs 2..
(first-epoch warm-up excluded), then the ratios official/ours and recbole/ours of those
medians (> 1: ours is faster), raw and per training target, because an epoch is not the same
work on every side: official 153,776 next-item targets (history minus the last item);
RecBole and our timed fit 131,413 (history minus the last two). Ours' epoch times are those of
the fit on the training split, before any ``refit_on_val`` refit on train + validation.
RecBole is compared with ours-XE when that ran (same loss family), else with the first ours
run. Times on a shared host are provisional. Writes ``--out`` (default
bench/gru4rec_speed.json) with every side's rows and raw per-epoch times.
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
DEFAULT_DATA = "../shared/datasets/s3rec_amazon_yelp/Beauty.txt"
OURS_EXPERIMENT = {"bpr-max": "gru4rec_beauty_bprmax", "cross-entropy": "gru4rec_beauty_xe"}
SIDES = ("official", "recbole", "ours")


def _summary(per_epoch: list[float]) -> dict:
    later = per_epoch[1:] or per_epoch
    return {
        "per_epoch": per_epoch,
        "first_epoch_s": per_epoch[0],
        "median_epoch_s": statistics.median(later),
    }


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _compose(experiment: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from hybridrec.cli.common import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=[f"experiment={experiment}", *overrides])


def official_params(loss: str, overrides: list[str]) -> str:
    """Our experiment's hyper-parameters in the official ``set_params`` names (k=v,k=v), so the
    official side trains the same model as ours (same layers, batch, dropout, optimiser,
    negatives, loss settings)."""
    cfg = _compose(OURS_EXPERIMENT[loss], overrides)
    term = cfg.loss.terms.ranking
    if cfg.model.embedding != "constrained":
        raise SystemExit("official side: only model.embedding=constrained is mapped")
    params = {
        "layers": "/".join(str(x) for x in cfg.model.layers),
        "batch_size": cfg.datamodule.batch_size,
        "dropout_p_embed": cfg.model.dropout_embed,
        "dropout_p_hidden": cfg.model.dropout_hidden,
        "learning_rate": cfg.optimizer.lr,
        "momentum": cfg.optimizer.momentum,
        "n_sample": cfg.datamodule.n_negatives,
        "sample_alpha": cfg.datamodule.sample_alpha,
        "bpreg": term.get("score_reg", 0.0),
        "logq": term.get("logq", 0.0),
        "elu_param": term.get("elu", 0.0),
    }
    return ",".join(f"{k}={v}" for k, v in params.items())


def run_official(args, loss: str) -> dict:
    out = ROOT / "bench" / f"gru4rec_speed_official_{loss}.json"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "official_gru4rec.py"),
        "--official-dir",
        args.official_dir,
        "--data",
        args.data,
        "--loss",
        loss,
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
        "--out",
        str(out),
    ]
    params = args.official_params or official_params(loss, args.ours_override)
    cmd += ["--params", params]
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(args.threads))
    data = json.loads(out.read_text())
    return {
        "side": "official",
        "loss": loss,
        **_summary([e["train_seconds"] for e in data["per_epoch"]]),
        "targets_per_epoch": data["data"]["train_targets"],
        "hr10": data["hr10"],
        "ndcg10": data["ndcg10"],
        "metrics": f"after {args.epochs} epochs (conservative ties)",
        "params": params,
        "json": str(out),
    }


def run_recbole(args) -> dict:
    if not RECBOLE_PY.is_file():
        raise SystemExit(f"{RECBOLE_PY} missing: run `bash scripts/setup_recbole.sh` first")
    out = ROOT / "bench" / "gru4rec_speed_recbole.json"
    cmd = [
        str(RECBOLE_PY),
        str(ROOT / "scripts" / "recbole_gru4rec.py"),
        "--data",
        args.data,
        "--epochs",
        str(args.recbole_epochs),
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
        "loss": "cross-entropy",
        **_summary([e["train_seconds"] for e in data["per_epoch"]]),
        "targets_per_epoch": data["shape"]["train_samples"],
        "hr10": data["hr10"],
        "ndcg10": data["ndcg10"],
        "metrics": f"after {args.recbole_epochs} epochs (conservative ties)",
        "setup_s": data["setup_seconds"],
        "json": str(out),
    }


def run_ours(args, loss: str) -> dict:
    from hybridrec.run.train import train

    cfg = _compose(
        OURS_EXPERIMENT[loss],
        [
            f"threads={args.threads}",
            f"trainer.max_epochs={args.epochs}",
            "callbacks.early_stopping=null",
            "callbacks.progress_bar.refresh_rate=500",
            f"paths.output_dir=outputs/bench/gru4rec_speed/{time.strftime('%Y%m%d-%H%M%S')}",
            "logger.tags.benchmark=gru4rec_speed",
            *args.ours_override,
        ],
    )
    result = train(cfg)
    if cfg.get("refit_on_val"):
        how = "refit on train+val for the epochs chosen on validation"
    else:
        how = "best validation epoch"
    return {
        "side": "ours",
        "loss": loss,
        **_summary(list(result.train_epoch_seconds)),
        "targets_per_epoch": ours_targets(args.data),
        "hr10": result.metrics["test/hr@10"],
        "ndcg10": result.metrics["test/ndcg@10"],
        "metrics": f"{how} (ties: {cfg.ties})",
        "run_id": result.run_id,
    }


def ours_targets(data: str) -> int:
    """Next-item targets in one epoch of our timed fit: each history minus its last two items."""
    path = Path(data) if Path(data).is_absolute() else ROOT / data
    with open(path) as f:
        return sum(max(len(line.split()) - 1 - 3, 0) for line in f)


def ratios(rows: list[dict]) -> list[dict]:
    ours = [r for r in rows if r["side"] == "ours"]
    if not ours:
        return []
    out = []
    for row in rows:
        if row["side"] == "official":
            ref = next((o for o in ours if o["loss"] == row["loss"]), None)
        elif row["side"] == "recbole":
            ref = next((o for o in ours if o["loss"] == "cross-entropy"), ours[0])
        else:
            continue
        if ref is not None:
            per_epoch = row["median_epoch_s"] / ref["median_epoch_s"]
            work = row["targets_per_epoch"] / ref["targets_per_epoch"]
            out.append(
                {
                    "ratio": f"{row['side']}/ours",
                    "peer_loss": row["loss"],
                    "ours_loss": ref["loss"],
                    "value": per_epoch,
                    "per_target": per_epoch / work,
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sides", default="official,recbole,ours", help="comma list, in order")
    parser.add_argument(
        "--losses", default="bpr-max,cross-entropy", help="official and ours: bpr-max and/or XE"
    )
    parser.add_argument("--official-dir", default=os.environ.get("GRU4REC_OFFICIAL_DIR"))
    parser.add_argument(
        "--official-params",
        default="",
        help="k=v,k=v for the official side; default: our experiment's hyper-parameters",
    )
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=10, help="official and ours")
    parser.add_argument("--recbole-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--ours-override", action="append", default=[], help="extra Hydra override (repeatable)"
    )
    parser.add_argument("--out", default="bench/gru4rec_speed.json")
    args = parser.parse_args()

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    if bad := [s for s in sides if s not in SIDES]:
        raise SystemExit(f"unknown sides {bad}; choose from {SIDES}")
    if bad := [s for s in losses if s not in OURS_EXPERIMENT]:
        raise SystemExit(f"unknown losses {bad}; choose from {sorted(OURS_EXPERIMENT)}")
    if "official" in sides and not args.official_dir:
        raise SystemExit("--official-dir (or GRU4REC_OFFICIAL_DIR) is needed for 'official'")
    # before anything imports torch in this process (ours runs in-process)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MKL_NUM_THREADS"] = str(args.threads)

    rows: list[dict] = []
    for side in sides:
        if side == "official":
            rows += [run_official(args, loss) for loss in losses]
        elif side == "recbole":
            rows.append(run_recbole(args))
        else:
            rows += [run_ours(args, loss) for loss in losses]

    print(
        f"\nGRU4Rec on Amazon Beauty, threads={args.threads}, {os.cpu_count()} CPU cores, "
        f"python {sys.version.split()[0]}, load avg {os.getloadavg()[0]:.2f}"
    )
    print(
        "| side | loss | epochs | targets/epoch | 1st epoch s | median s/epoch (2..) "
        "| HR@10 | NDCG@10 | metrics |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['side']} | {r['loss']} | {len(r['per_epoch'])} | {r['targets_per_epoch']:,} | "
            f"{r['first_epoch_s']:.1f} | {r['median_epoch_s']:.1f} | {r['hr10']:.4f} | "
            f"{r['ndcg10']:.4f} | {r['metrics']} |"
        )
    found = ratios(rows)
    for q in found:
        print(
            f"{q['ratio']} ({q['peer_loss']} vs ours {q['ours_loss']}): {q['value']:.2f}x "
            f"per epoch, {q['per_target']:.2f}x per training target (> 1: ours is faster)"
        )
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
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
