"""Time the composed hybrid's whole combiner fit (lit/combiner.py: fit_combiner) on validation
scores of a real job's size, one thread: the global search (the grid over the simplex against
greedy forward selection) crossed with the trials' ranking (every row and column against the
shortcuts that re-rank only one bucket's columns or rows). The first row is the combiner as it
was until 2026-12-05 (the grid, whole rankings, each combination one (K, R, N) product summed
over the parts); each row's ratio is to it, in the same process.

    .venv/bin/python scripts/bench_combiner.py [--rows 2000] [--items 12101] [--parts 4]

The scores are random with a planted signal (each part scores the held-out item up by a
random amount, one part by more for the rarer items), the items in four popularity buckets
(cold empty, as in ``loo_full``; the warm ones of 1/2, 1/3 and 1/6 of the catalogue, as
popularity quantiles are). Prints seconds, whole-ranking equivalents ("rankings"), and the
validation NDCG@10 each fit reached (the shortcuts must reach the same value as whole
rankings; greedy is compared with the grid).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import torch

from hybridrec.lit.combiner import fit_combiner
from hybridrec.lit.ranking import _Ranker
from hybridrec.lit.validation_rows import ValidationScores


class _Composed:
    """What fit_combiner reads and sets on a composed hybrid (no parts needed)."""

    def __init__(self, n_parts: int, bucket: torch.Tensor) -> None:
        self.names = [f"part{j}" for j in range(n_parts)]
        self.item_bucket = bucket
        self.allowed = torch.ones(n_parts, 4, dtype=torch.bool)
        self.weights = torch.full((n_parts, 4), 1.0 / n_parts)
        self.n_user_buckets = 1

    def set_weights(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def set_offsets(self, offsets: torch.Tensor) -> None:
        self.offsets = offsets

    def set_repeat(self, repeat: float) -> None:
        self.repeat = repeat


def _legacy_combined(
    self: _Ranker,
    weights: torch.Tensor,
    offsets: torch.Tensor,
    factors: torch.Tensor | None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """The combination as computed until 2026-12-05 (every row, no user buckets): one
    (K, R, N) product of the scores and the weights, then its sum over the parts."""
    assert rows is None
    combined = (self.data.scores * weights[:, self.columns].unsqueeze(1)).sum(0)
    self.rankings += 1.0
    return (combined + offsets[self.columns]).masked_fill(self.data.masked, -torch.inf)


def scores(
    rows: int, items: int, parts: int, seed: int = 0
) -> tuple[ValidationScores, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    n = items + 1
    z = torch.randn(parts, rows, n, generator=generator)  # (K, R, N)
    positives = torch.randint(1, n, (rows, 1), generator=generator)
    bucket = torch.ones(n, dtype=torch.long)  # rarest half: bucket 1
    order = torch.randperm(items, generator=generator) + 1
    bucket[order[items // 2 : items * 5 // 6]] = 2
    bucket[order[items * 5 // 6 :]] = 3
    bucket[0] = 0
    lift = torch.rand(parts, rows, generator=generator) * 3.0  # (K, R)
    lift[0] += (bucket[positives[:, 0]] == 1).float()  # part 0 knows the rare items better
    z[:, torch.arange(rows), positives[:, 0]] += lift
    masked = torch.zeros(rows, n, dtype=torch.bool)
    masked[:, 0] = True
    data = ValidationScores(z, masked, positives, torch.ones(rows, 1, dtype=torch.bool))
    return data, bucket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--items", type=int, default=12101)
    parser.add_argument("--parts", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data, bucket = scores(args.rows, args.items, args.parts)
    print(f"{args.parts} parts, {args.rows} rows x {args.items} items, 4 buckets, 1 thread")
    print("| global search | trials rank | seconds | rankings | val NDCG@10 | time ratio |")
    print("|---|---|---|---|---|---|")
    reference = None
    rows = (
        ("grid", False, "every row and column, one (K, R, N) product (until 2026-12-05)"),
        ("grid", False, "every row and column"),
        ("grid", True, "one bucket apart"),
        ("greedy", False, "every row and column"),
        ("greedy", True, "one bucket apart"),
    )
    for number, (search, shortcuts, label) in enumerate(rows):
        legacy = mock.patch.object(_Ranker, "combined", _legacy_combined)
        start = time.perf_counter()
        with legacy if number == 0 else contextlib.nullcontext():
            fit = fit_combiner(
                _Composed(args.parts, bucket),  # type: ignore[arg-type]
                data,
                k=10,
                search=search,
                shortcuts=shortcuts,
            )
        seconds = time.perf_counter() - start
        reference = reference or seconds
        print(
            f"| {search} | {label} | {seconds:.1f} | {fit.rankings:.1f} | {fit.ndcg:.5f} "
            f"| {reference / seconds:.1f}x |"
        )


if __name__ == "__main__":
    main()
