"""Time one combiner trial's ranking step: the full ranks (a sort of every row) against the
k + 1 best scores (lit/combiner.py: top_k_ranks), one thread, random scores of ML-1M's size.

    .venv/bin/python scripts/bench_combiner_ranks.py [--rows 5000] [--items 3707] [--positives 60]
"""

from __future__ import annotations

import argparse
import time

import torch

from hybridrec.lit.ranking import top_k_ranks
from hybridrec.metrics import positive_ranks, ranking_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--items", type=int, default=3707)
    parser.add_argument("--positives", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(args.rows, args.items, generator=generator)
    positives = torch.randint(0, args.items, (args.rows, args.positives), generator=generator)
    valid = torch.rand(args.rows, args.positives, generator=generator) > 0.5
    timings = {}
    for name, ranks in (
        ("full sort", lambda: positive_ranks(scores, positives, valid, "pessimistic")),
        ("k + 1 best", lambda: top_k_ranks(scores, positives, valid, 10, "pessimistic")),
    ):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ranking_metrics(ranks(), 10).ndcg.mean()
            runs.append(time.perf_counter() - start)
        timings[name] = sorted(runs)[len(runs) // 2]
        print(f"{name}: {timings[name]:.3f} s per trial (median of {args.repeats})")
    print(f"ratio: {timings['full sort'] / timings['k + 1 best']:.1f}x")


if __name__ == "__main__":
    main()
