"""The cold / warm trade-off of a composed hybrid on the cold_items protocol, offset by offset.

A composed hybrid ranks a user's cold row and warm row against the same scores; its cold
bucket's offset c(0) (in standard deviations) decides how every cold item competes with warm
ones. This script keeps the fitted weights and offsets, sweeps c(0), and prints HR@K / NDCG@K
of the cold rows and of the warm rows for each value — the frontier the combiner chose a point
on (docs/benchmarks.md, the ML-1M / ML-100K cold_items sections). ``--slots`` traces the other
rule a shelf can follow: a quota of m of the K places for the m best cold items (by the composed
score), the K - m best warm items in the rest, for m = 0..K.

    HYBRIDREC_SHARED_DIR=../shared .venv/bin/python scripts/cold_frontier.py \\
        <run folder>/checkpoints/composed.ckpt [--split val|test] [--k 10] [--slots]

Run it from the folder the run was trained in (the prepared data is found, or made, from the
checkpoint's own config, as hybridrec-eval does).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from hybridrec.lit.checkpoint import load_model, safe_load
from hybridrec.lit.combiner import OFFSETS
from hybridrec.lit.ranking import top_k_ranks
from hybridrec.lit.validation_rows import drawn_rows, full_ranking_mask
from hybridrec.metrics import ranking_metrics
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.run.eval_config import split_batches


def _means(sums: torch.Tensor, rows: torch.Tensor) -> dict[str, float]:
    """(cold, warm) x (hr, ndcg) sums over (cold, warm) row counts -> the four means."""
    means = sums / rows.unsqueeze(1)
    return {
        f"{kind}_{metric}": float(means[i, j])
        for i, kind in enumerate(("cold", "warm"))
        for j, metric in enumerate(("hr", "ndcg"))
    }


@torch.no_grad()
def frontier(
    model: ComposedHybrid, batches: Any, offsets: list[float], k: int, ties: str
) -> list[dict[str, float]]:
    """For each cold-bucket offset: mean HR@k / NDCG@k of the cold rows and the warm rows."""
    model.eval()
    weights = model.item_weights()  # (K, N)
    base = model.offsets[model.item_bucket].clone()  # (N,)
    cold_items = model.item_bucket == 0
    sums = {c: torch.zeros(2, 2) for c in offsets}  # (cold, warm) x (hr, ndcg)
    rows = torch.zeros(2)
    for batch in drawn_rows(batches, max_rows=10**9):
        assert batch.targets is not None and batch.exclude is not None and batch.cold is not None
        z = model.standardised_scores(batch.users, batch.history, batch.history_lengths)
        combined = (z * weights.unsqueeze(1)).sum(0)  # (B, N)
        masked = full_ranking_mask(batch, int(combined.shape[1]))
        valid = batch.targets > 0
        kind = (~batch.cold).long()  # 0: cold row, 1: warm row
        rows += torch.bincount(kind, minlength=2).float()
        for c in offsets:
            shift = torch.where(cold_items, torch.tensor(c), base)
            scores = (combined + shift).masked_fill(masked, -torch.inf)
            metrics = ranking_metrics(top_k_ranks(scores, batch.targets, valid, k, ties), k)
            for j, value in enumerate((metrics.hr, metrics.ndcg)):
                sums[c][:, j] += torch.zeros(2).index_add_(0, kind, value)
    return [{"offset": c, **_means(sums[c], rows)} for c in offsets]


@torch.no_grad()
def slot_frontier(
    model: ComposedHybrid, batches: Any, slots: list[int], k: int, ties: str
) -> list[dict[str, float]]:
    """For each quota m: mean HR@k / NDCG@k of the cold rows and the warm rows when each row's
    top k is its m best cold items and its k - m best warm ones (in the order of their
    composed scores)."""
    model.eval()
    cold_items = model.item_bucket == 0
    sums = {m: torch.zeros(2, 2) for m in slots}  # (cold, warm) x (hr, ndcg)
    rows = torch.zeros(2)
    for batch in drawn_rows(batches, max_rows=10**9):
        assert batch.targets is not None and batch.exclude is not None and batch.cold is not None
        scores = model.score_all(batch.users, batch.history, batch.history_lengths)  # (B, N)
        scores = scores.masked_fill(full_ranking_mask(batch, int(scores.shape[1])), -torch.inf)
        valid = batch.targets > 0
        kind = (~batch.cold).long()  # 0: cold row, 1: warm row
        rows += torch.bincount(kind, minlength=2).float()
        for m in slots:
            cold = scores.masked_fill(~cold_items, -torch.inf).topk(m, 1).indices  # (B, m)
            warm = scores.masked_fill(cold_items, -torch.inf).topk(k - m, 1).indices
            chosen = torch.cat([cold, warm], 1)  # (B, k): lifted above every other item
            lifted = scores.scatter(1, chosen, torch.gather(scores, 1, chosen) + 1e4)
            metrics = ranking_metrics(top_k_ranks(lifted, batch.targets, valid, k, ties), k)
            for j, value in enumerate((metrics.hr, metrics.ndcg)):
                sums[m][:, j] += torch.zeros(2).index_add_(0, kind, value)
    return [{"slots": m, **_means(sums[m], rows)} for m in slots]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--slots", action="store_true", help="a quota of cold places, m = 0..k")
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    if not isinstance(model, ComposedHybrid):
        raise SystemExit(f"{args.checkpoint}: not a composed hybrid")
    saved = safe_load(args.checkpoint)["hybridrec_config"]
    if saved["protocol"]["name"] != "cold_items":
        raise SystemExit(f"{args.checkpoint}: protocol {saved['protocol']['name']}, not cold_items")
    cfg, _, loader = split_batches(Path(args.checkpoint), args.split)
    k = args.k
    if args.slots:
        print(f"| cold places m | cold HR@{k} | cold NDCG@{k} | warm HR@{k} | warm NDCG@{k} |")
        print("|---|---|---|---|---|")
        for row in slot_frontier(model, loader, list(range(k + 1)), k, str(cfg.ties)):
            print(
                f"| {row['slots']} | {row['cold_hr']:.4f} | {row['cold_ndcg']:.4f} | "
                f"{row['warm_hr']:.4f} | {row['warm_ndcg']:.4f} |"
            )
        return
    chosen = float(model.offsets[0])
    offsets = sorted({*OFFSETS, chosen, 2.0, 3.0})
    print(f"| c(0) | cold HR@{k} | cold NDCG@{k} | warm HR@{k} | warm NDCG@{k} |")
    print("|---|---|---|---|---|")
    for row in frontier(model, loader, offsets, args.k, str(cfg.ties)):
        mark = " (fitted)" if row["offset"] == chosen else ""
        print(
            f"| {row['offset']:+.2f}{mark} | {row['cold_hr']:.4f} | {row['cold_ndcg']:.4f} | "
            f"{row['warm_hr']:.4f} | {row['warm_ndcg']:.4f} |"
        )


if __name__ == "__main__":
    main()
