"""Beyond-accuracy metrics of full-ranking top-K lists: what marketers ask after "how accurate".

For the top-K items ``R_u`` recommended to each evaluated row u, with ``c_i`` the training
interactions of item i (items 1..N; 0 is padding and never recommended), ``C = sum_j c_j``:

    coverage@K               |union_u R_u| / N                      share of the catalogue shown
    popularity_percentile@K  mean over u of mean over i in R_u of pct(i), with
                             pct(i) = (#{j != i: c_j < c_i} + 0.5 #{j != i: c_j = c_i}) / (N - 1)
                             (mid-rank percentile among the other items; ties share the average
                             rank: 1 = the single most popular item, 0 = the single least)
    novelty@K                mean over u of mean over i in R_u of -log2((c_i + 1) / (C + N))
                             (self-information of a recommendation in bits; +1 smoothing, so an
                             item nobody interacted with has a finite, large value)
    cold_share@K             mean over u of the share of i in R_u with c_i = 0 (never trained)

``R_u`` holds only rankable items: a top-K slot whose score is -inf (padding, a masked known item,
an item outside the row's candidates) is dropped, so a row with fewer than K candidates averages
over the ones it has, and a row with none counts as 0.

Coverage needs the union over every evaluated row: :class:`BeyondAccuracy` accumulates a
(N + 1,) "seen" vector per K over the evaluation and reads it at the end (in DDP the ranks'
vectors are combined with a sum > 0, i.e. a logical or, before reading). The per-row values are
plain averages, weighted by rows like the ranking metrics.

Shapes: B = rows, K = cut-off, N = n_items.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def popularity_percentiles(counts: Tensor) -> Tensor:
    """counts (N + 1,) training interactions (index 0 padding) -> (N + 1,) mid-rank percentile
    of each item among items 1..N (index 0 gets 0)."""
    items = counts[1:].double()
    n = items.numel()
    ordered = torch.sort(items).values
    below = torch.searchsorted(ordered, items, right=False).double()  # (N,) fewer than item
    same = torch.searchsorted(ordered, items, right=True).double() - below - 1  # ties, not self
    out = torch.zeros_like(counts, dtype=torch.double)
    out[1:] = (below + 0.5 * same) / max(n - 1, 1)
    return out


@dataclass
class BeyondAccuracy:
    """Per-item tables and the accumulated state for one evaluation.

    counts: (N + 1,) training interactions per item.
    """

    counts: Tensor

    def __post_init__(self) -> None:
        counts = self.counts.double()
        total = counts[1:].sum() + (counts.numel() - 1)
        self.percentile = popularity_percentiles(counts)
        self.self_information = -torch.log2((counts + 1) / total)
        self.cold = counts == 0
        self.seen: dict[int, Tensor] = {}

    def to(self, device: torch.device) -> BeyondAccuracy:
        for name in ("counts", "percentile", "self_information", "cold"):
            setattr(self, name, getattr(self, name).to(device))
        self.seen = {k: v.to(device) for k, v in self.seen.items()}
        return self

    def rows(
        self, top: Tensor, valid: Tensor | None = None, k: int | None = None
    ) -> dict[str, Tensor]:
        """top (B, K) recommended items of each row, valid (B, K) which slots hold a real
        recommendation (None: all) -> per-row values (B,) of the mean metrics over the valid
        slots; also marks those items as seen for coverage@``k`` (default: K)."""
        k = top.shape[1] if k is None else k
        if valid is None:
            valid = torch.ones_like(top, dtype=torch.bool)
        weight = valid.double()  # (B, K)
        n_valid = weight.sum(1).clamp(min=1)  # (B,)
        seen = self.seen.setdefault(k, torch.zeros_like(self.cold))
        seen[top[valid]] = True

        def mean(table: Tensor) -> Tensor:  # (N + 1,) per item -> (B,) mean over valid slots
            return (table[top].double() * weight).sum(1) / n_valid

        return {
            f"popularity_percentile@{k}": mean(self.percentile),
            f"novelty@{k}": mean(self.self_information),
            f"cold_share@{k}": mean(self.cold),
        }

    def coverage(self, k: int, seen: Tensor | None = None) -> float:
        """Share of items 1..N in any top-``k`` list so far (``seen``: a combined vector)."""
        marks = self.seen.get(k) if seen is None else seen
        if marks is None:
            return float("nan")
        return float(marks[1:].double().mean())

    def reset(self) -> None:
        self.seen = {}
