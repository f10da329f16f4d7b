"""Beyond-accuracy metrics of full-ranking top-K lists: what marketers ask after "how accurate".

For the top-K items ``R_u`` recommended to each evaluated row u, with ``c_i`` the training
interactions of item i (items 1..N; 0 is padding and never recommended):

    coverage@K               |union_u R_u| / N                      share of the catalogue shown
    popularity_percentile@K  mean over u, i in R_u of pct(i)       pct(i) = share of items with
                             fewer training interactions, plus half of those with as many
                             (the mid-rank percentile: 1 = the most popular, ~0.5 = typical)
    novelty@K                mean over u, i in R_u of -log2((c_i + 1) / (sum_j c_j + N))
                             (self-information of a recommendation; +1 smoothing so an item
                             nobody interacted with has a finite, large value)
    cold_share@K             mean over u, i in R_u of [c_i = 0]     share of never-trained items

Coverage needs the union over every evaluated row: :class:`BeyondAccuracy` accumulates a
(N + 1,) "seen" vector over the evaluation and reads it at the end (in DDP the ranks' vectors
are combined with a max before reading). The per-row means are plain averages.

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

    def rows(self, top: Tensor) -> dict[str, Tensor]:
        """top (B, K) recommended items of each row -> per-row values (B,) of the mean metrics;
        also marks the items as seen for coverage@K."""
        k = top.shape[1]
        seen = self.seen.setdefault(k, torch.zeros_like(self.cold))
        seen[top.reshape(-1)] = True
        return {
            f"popularity_percentile@{k}": self.percentile[top].mean(1),
            f"novelty@{k}": self.self_information[top].mean(1),
            f"cold_share@{k}": self.cold[top].double().mean(1),
        }

    def coverage(self, k: int, seen: Tensor | None = None) -> float:
        """Share of items 1..N in any top-``k`` list so far (``seen``: a combined vector)."""
        marks = self.seen.get(k) if seen is None else seen
        if marks is None:
            return float("nan")
        return float(marks[1:].double().mean())

    def reset(self) -> None:
        self.seen = {}
