"""Top-K ranking metrics (HR, Recall, NDCG, MRR) from ranks, vectorised on the device.

Every metric is computed from the 0-based *rank* of each positive among all scored candidates
(rank 0 = first place). Ranks come from sorting each row once and binary-searching the
positives' scores, so there is no (B, P, N) comparison tensor (rows with at most 4 positives
compare directly: (B, P, N) booleans, cheaper than a sort).

Ties. A constant-score model must not look good, so ties are counted explicitly:
  - ``pessimistic`` (default; GRU4Rec's "conservative"): the positive is placed below every
    candidate with an equal score.
  - ``optimistic``: above every candidate with an equal score.
  - ``average``: halfway (expected rank under a random tie break).
Candidates masked with ``-inf`` (training items in full ranking, padding) never rank above a
finite positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

TIE_MODES = ("pessimistic", "optimistic", "average")
_TIE_WEIGHT = {"pessimistic": 1.0, "optimistic": 0.0, "average": 0.5}


def positive_ranks(
    scores: Tensor, positives: Tensor, valid: Tensor | None = None, ties: str = "pessimistic"
) -> Tensor:
    """Rank of each positive among all candidates of its row.

    scores: (B, N) candidate scores; masked candidates hold ``-inf``.
    positives: (B, P) column indices into ``scores`` of the positives.
    valid: (B, P) bool, False for padding in ``positives``; None = all valid.
    Returns (B, P) float ranks, 0-based; padded entries are ``inf``.
    """
    if ties not in _TIE_WEIGHT:
        raise ValueError(f"ties={ties!r}: expected one of {TIE_MODES}")
    num_candidates = scores.shape[1]
    pos_scores = torch.gather(scores, 1, positives)  # (B, P)
    # count of candidates strictly greater / greater-or-equal than each positive's score
    if positives.shape[1] <= 4:  # a few positives per row: comparing is cheaper than sorting
        above = scores.unsqueeze(1)  # (B, 1, N)
        n_greater = (above > pos_scores.unsqueeze(2)).sum(2)  # (B, P)
        n_greater_eq = (above >= pos_scores.unsqueeze(2)).sum(2)
    else:
        sorted_scores, _ = torch.sort(scores, dim=1)  # (B, N) ascending
        n_greater = num_candidates - torch.searchsorted(sorted_scores, pos_scores, right=True)
        n_greater_eq = num_candidates - torch.searchsorted(sorted_scores, pos_scores, right=False)
    n_tied_others = (n_greater_eq - n_greater - 1).clamp(min=0)  # minus the positive itself
    ranks = n_greater.to(scores.dtype) + _TIE_WEIGHT[ties] * n_tied_others.to(scores.dtype)
    if valid is not None:
        ranks = ranks.masked_fill(~valid, math.inf)
    return ranks


@dataclass
class RankingMetrics:
    """Per-row metric values, (B,) each, so callers can average over any set of rows."""

    hr: Tensor
    recall: Tensor
    ndcg: Tensor
    mrr: Tensor

    def as_dict(self, k: int) -> dict[str, Tensor]:
        return {
            f"hr@{k}": self.hr,
            f"recall@{k}": self.recall,
            f"ndcg@{k}": self.ndcg,
            f"mrr@{k}": self.mrr,
        }


def ranking_metrics(ranks: Tensor, k: int, n_positives: Tensor | None = None) -> RankingMetrics:
    """HR@K, Recall@K, NDCG@K and MRR@K per row from positive ranks.

    ranks: (B, P) ranks from :func:`positive_ranks` (``inf`` for padding).
    n_positives: (B,) number of real positives per row; default = finite entries per row.
    HR@K: 1 if any positive is in the top K. Recall@K: hits / n_positives (RecBole's
    definition). NDCG@K: sum over hits of 1/log2(rank+2), divided by the ideal DCG of
    min(n_positives, K) hits. MRR@K: 1/(best rank + 1) when that is in the top K, else 0.
    With one positive per row HR == Recall.
    """
    finite = torch.isfinite(ranks)
    if n_positives is None:
        n_positives = finite.sum(dim=1)
    n_pos = n_positives.to(ranks.dtype).clamp(min=1)  # (B,)
    hits = ranks < k  # (B, P) bool; inf never hits
    hit_count = hits.sum(dim=1).to(ranks.dtype)
    gains = torch.where(hits, 1.0 / torch.log2(ranks.clamp(max=1e9) + 2.0), 0.0)  # (B, P)
    discounts = 1.0 / torch.log2(torch.arange(k, device=ranks.device, dtype=ranks.dtype) + 2.0)
    ideal_cum = torch.cumsum(discounts, dim=0)  # (K,)
    ideal = ideal_cum[(n_pos.long().clamp(max=k) - 1)]  # (B,)
    best = ranks.min(dim=1).values  # (B,)
    return RankingMetrics(
        hr=(hit_count > 0).to(ranks.dtype),
        recall=hit_count / n_pos,
        ndcg=gains.sum(dim=1) / ideal,
        mrr=torch.where(best < k, 1.0 / (best + 1.0), torch.zeros_like(best)),
    )
