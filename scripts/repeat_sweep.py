"""A composed hybrid's repeat offset r, value by value: its test (or validation) metrics with r set
to each value and everything else as fitted — the learned r beside the two fixed rules it
replaces, r = 0 (rank the user's own items as the parts do) and r = -100 (never again: the
masked protocol's ranking).

    HYBRIDREC_SHARED_DIR=../shared .venv/bin/python scripts/repeat_sweep.py RUN_OR_CHECKPOINT \\
        [--split test|val] [--k 20] [--tracking-uri sqlite:///mlflow.db]

Run it from the folder the run was trained in (its data is prepared from the checkpoint's own
config, as hybridrec-eval prepares it). Known items must be ranked for r to matter: a run with
``protocol.mask_known=false`` or session data.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch
from mlflow.tracking import MlflowClient

from hybridrec.export.source import resolve_checkpoint
from hybridrec.lit.checkpoint import load_model
from hybridrec.lit.combiner import REPEATS
from hybridrec.lit.ranking import top_k_ranks
from hybridrec.lit.validation_rows import drawn_rows, full_ranking_mask
from hybridrec.metrics import ranking_metrics
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.run.eval_config import split_batches

METRICS = ("hr", "ndcg", "mrr")


@torch.no_grad()
def sweep(
    model: ComposedHybrid, batches: Any, values: list[float], k: int, ties: str
) -> list[dict[str, float]]:
    """For each r in ``values``: mean HR@k, NDCG@k and MRR@k over the rows (r restored after)."""
    model.eval()
    fitted = model.repeat_value
    sums = {r: torch.zeros(len(METRICS)) for r in values}
    rows = 0
    try:
        for batch in drawn_rows(batches, max_rows=10**9):
            assert batch.targets is not None and batch.exclude is not None
            valid = batch.targets > 0
            rows += len(batch)
            for r in values:
                model.set_repeat(r)
                scores = model.score_all(batch.users, batch.history, batch.history_lengths)
                masked = full_ranking_mask(batch, int(scores.shape[1]))
                scores = scores.masked_fill(masked, -torch.inf)
                metrics = ranking_metrics(top_k_ranks(scores, batch.targets, valid, k, ties), k)
                sums[r] += torch.stack([getattr(metrics, m).sum() for m in METRICS])
    finally:
        model.set_repeat(fitted)
    return [
        {"repeat": r, **{m: float(sums[r][j]) / max(rows, 1) for j, m in enumerate(METRICS)}}
        for r in values
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a run id (its best checkpoint) or a checkpoint file")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--k", type=int, default=0, help="0: the run's first ks")
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    args = parser.parse_args()
    path, _ = resolve_checkpoint(args.source, MlflowClient(args.tracking_uri))
    model = load_model(path)
    if not isinstance(model, ComposedHybrid):
        raise SystemExit(f"{args.source}: not a composed hybrid")
    cfg, _, loader = split_batches(path, args.split)
    k = args.k or int(cfg.ks[0])
    fitted = model.repeat_value
    values = sorted({*REPEATS, fitted})
    print(f"| r | HR@{k} | NDCG@{k} | MRR@{k} |")
    print("|---|---|---|---|")
    for row in sweep(model, loader, values, k, str(cfg.ties)):
        mark = " (fitted)" if row["repeat"] == fitted else ""
        print(
            f"| {row['repeat']:+g}{mark} | {row['hr']:.4f} | {row['ndcg']:.4f} | {row['mrr']:.4f} |"
        )


if __name__ == "__main__":
    main()
