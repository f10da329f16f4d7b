"""NCF ML-1M accuracy benchmark: train experiments, print HR@10 / NDCG@10, epochs, wall time.

    .venv/bin/python scripts/bench_ncf_ml1m.py                    # MF and NeuMF
    .venv/bin/python scripts/bench_ncf_ml1m.py --experiments ncf_neumf_ml1m \
        --set trainer.max_epochs=30
    .venv/bin/python scripts/bench_ncf_ml1m.py --pretrain         # GMF + MLP, then NeuMF

Data: ../shared/datasets/ncf_ml1m (official test items and 99 negatives per user). Every run is
also recorded in MLflow (experiment "ncf_ml1m"); the figures printed here come from the runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from mlflow.tracking import MlflowClient

from hybridrec.cli.common import config_dir
from hybridrec.run.result import TrainResult
from hybridrec.run.train import train
from hybridrec.tracking import default_tracking_uri

PAPER = {
    "ncf_neumf_ml1m": "NCF paper NeuMF (no pre-training): 0.705 / 0.426",
    "ncf_neumf_pretrain_ml1m": "NCF paper NeuMF (pre-trained): 0.730 / 0.447",
    "ncf_gmf_ml1m": "NCF paper GMF (64 factors): ~0.70 / ~0.42 (Fig. 4)",
    "ncf_mlp_ml1m": "NCF paper MLP (64 factors): ~0.69 / ~0.42 (Fig. 4)",
    "ncf_mf_ml1m": "Rendle et al. 2020 MF: 0.729 / 0.452",
}


def run(experiment: str, overrides: list[str]) -> tuple[TrainResult, float, int]:
    GlobalHydra.instance().clear()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"experiment={experiment}",
                f"paths.output_dir=outputs/bench/{experiment}/{stamp}",
                "callbacks.progress_bar.refresh_rate=200",
                *overrides,
            ],
        )
    start = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - start
    best_epoch = -1
    if result.run_id:
        history = MlflowClient(cfg.logger.tracking_uri).get_metric_history(
            result.run_id, "val/ndcg10"
        )
        if history:
            best_epoch = max(history, key=lambda m: m.value).step
            best_epoch = sorted(m.step for m in history).index(best_epoch)
    return result, wall, best_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", nargs="+", default=["ncf_mf_ml1m", "ncf_neumf_ml1m"])
    parser.add_argument("--pretrain", action="store_true", help="GMF + MLP, then pre-trained NeuMF")
    parser.add_argument("--set", nargs="*", default=[], help="Hydra overrides for every run")
    parser.add_argument("--out", default="bench/ncf_ml1m.json")
    args = parser.parse_args()

    rows = []
    plan = [(name, list(args.set)) for name in args.experiments]
    if args.pretrain:
        plan = [("ncf_gmf_ml1m", list(args.set)), ("ncf_mlp_ml1m", list(args.set))]
    checkpoints: dict[str, str] = {}
    for name, overrides in plan:
        result, wall, best_epoch = run(name, overrides)
        checkpoints[name] = result.best_checkpoint
        rows.append((name, result, wall, best_epoch, overrides))
    if args.pretrain:
        overrides = [
            *args.set,
            f"model.pretrained_gmf={checkpoints['ncf_gmf_ml1m']}",
            f"model.pretrained_mlp={checkpoints['ncf_mlp_ml1m']}",
        ]
        result, wall, best_epoch = run("ncf_neumf_pretrain_ml1m", overrides)
        rows.append(("ncf_neumf_pretrain_ml1m", result, wall, best_epoch, overrides))

    print(f"\nMLflow store: {default_tracking_uri()}")
    print(
        "| experiment | test HR@10 | test NDCG@10 | epochs (best) | fit s | s/epoch | reference |"
    )
    print("|---|---|---|---|---|---|---|")
    records = []
    for name, result, wall, best_epoch, overrides in rows:
        hr, ndcg = (
            result.metrics.get("test/hr@10", float("nan")),
            result.metrics.get("test/ndcg@10", float("nan")),
        )
        per_epoch = result.fit_seconds / max(result.epochs, 1)
        print(
            f"| {name} | {hr:.4f} | {ndcg:.4f} | {result.epochs} ({best_epoch + 1}) | "
            f"{result.fit_seconds:.0f} | {per_epoch:.1f} | {PAPER.get(name, '')} |"
        )
        records.append(
            {
                "experiment": name,
                "overrides": overrides,
                "run_id": result.run_id,
                "metrics": result.metrics,
                "epochs": result.epochs,
                "best_epoch": best_epoch + 1,
                "fit_seconds": result.fit_seconds,
                "wall_seconds": wall,
            }
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(records, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
