"""Ranking a combination of the parts' validation scores, as the combiner's trials need it:
per-row NDCG@k of weights per part and item bucket, bucket offsets, user-bucket multipliers and
the repeat offset; a trial that changes one item bucket or one user bucket is ranked by what it
changes (exactly: the tests hold it against the whole ranking), each row from its k + 1 best
scores rather than a sort.

Shapes: K parts, R rows, N = n_items + 1, P positives per row, G item buckets, H user buckets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hybridrec.lit.validation_rows import ValidationScores
from hybridrec.metrics import positive_ranks, ranking_metrics


class _Ranker:
    """Per-row validation NDCG@k (R,) of a combination: weights (K, G) per part and item
    bucket, offsets (G,) per bucket, multipliers (K, H) per user bucket.

    Trials that change one item bucket's weights or offset, or one user bucket's multipliers,
    are ranked by what they change (exactly; a test holds it against the whole ranking):
    :meth:`bucket_trials` keeps the k + 1 best scores of the other buckets' columns once and
    scores only bucket g's columns per trial; :meth:`user_rows` ranks only bucket h's rows.
    ``rankings`` counts whole-ranking equivalents (what the search cost)."""

    def __init__(self, data: ValidationScores, columns: Tensor, k: int, ties: str) -> None:
        self.data, self.columns, self.k, self.ties = data, columns, k, ties
        self.rankings = 0.0
        self.repeat = 0.0  # r, added where ``data.seen``
        # the (row, column) of every known item ranked, found once: a trial adds r there
        self.seen_at = None if data.seen is None else torch.nonzero(data.seen, as_tuple=True)
        # one bucket's columns apart: full ranking, pessimistic ties, more than k + 1 columns
        n_columns = int(data.scores.shape[2])
        self.by_bucket = data.items is None and ties == "pessimistic" and n_columns > k + 1

    def combined(
        self, weights: Tensor, offsets: Tensor, factors: Tensor | None, rows: Tensor | None = None
    ) -> Tensor:
        """(R', N) the combined scores of ``rows`` (all: None), masked entries -inf."""
        data = self.data
        column_weights = weights[:, self.columns]  # (K, N) or (K, R, C)
        column_offsets = offsets[self.columns]  # (N,) or (R, C)
        masked = data.masked
        if rows is not None:
            masked = masked[rows]
            if column_weights.dim() == 3:  # sampled: per-row columns
                column_weights, column_offsets = column_weights[:, rows], column_offsets[rows]
        per_row = self._per_row(factors, rows)  # (K, R') or None
        scores = data.scores if rows is None else data.scores[:, rows]  # (K, R', N)
        combined = weighted_sum(scores, column_weights, per_row) + column_offsets
        if self.repeat != 0.0 and data.seen is not None and self.seen_at is not None:
            if rows is None:
                combined[self.seen_at] += self.repeat
            else:  # one user bucket's rows
                combined.add_(data.seen[rows].to(combined.dtype), alpha=self.repeat)
        self.rankings += 1.0 if rows is None else len(rows) / data.rows
        return combined.masked_fill_(masked, -torch.inf)

    def _per_row(self, factors: Tensor | None, rows: Tensor | None) -> Tensor | None:
        """(K, R') each row's user-bucket multipliers; None where they are all 1."""
        bucket = self.data.user_bucket
        if factors is None or bucket is None or not bool((factors != 1).any()):
            return None
        return factors[:, bucket if rows is None else bucket[rows]]

    def ndcg_rows(
        self,
        weights: Tensor,
        offsets: Tensor,
        factors: Tensor | None = None,
        rows: Tensor | None = None,
    ) -> Tensor:
        data = self.data
        positives, valid = data.positives, data.valid
        if rows is not None:
            positives, valid = positives[rows], valid[rows]
        combined = self.combined(weights, offsets, factors, rows)
        return ranking_metrics(
            top_k_ranks(combined, positives, valid, self.k, self.ties), self.k
        ).ndcg

    def user_rows(self, h: int) -> Tensor:
        """(R_h,) the rows of user bucket h."""
        assert self.data.user_bucket is not None
        return torch.nonzero(self.data.user_bucket == h).flatten()

    def bucket_trials(
        self, g: int, weights: Tensor, offsets: Tensor, factors: Tensor | None
    ) -> _BucketTrials:
        """Trials of bucket g's weights and offset with everything else held (full ranking)."""
        data, k = self.data, self.k
        columns = torch.nonzero(self.columns == g).flatten()  # (n_g,)
        base = self.combined(weights, offsets, factors)  # (R, N)
        mine = torch.gather(base, 1, data.positives)  # (R, P)
        where = torch.full((len(self.columns),), -1, dtype=torch.long)
        where[columns] = torch.arange(len(columns))
        position = where[data.positives]  # (R, P) the positive's column among bucket g's; -1
        base[:, columns] = -torch.inf
        others = base.topk(k + 1, dim=1).values  # (R, k + 1) the best of the other columns
        return _BucketTrials(self, columns, others, mine, position, self._per_row(factors, None))


class _BucketTrials:
    """One item bucket's trials: its columns re-scored, the other columns' k + 1 best kept."""

    def __init__(
        self,
        ranker: _Ranker,
        columns: Tensor,
        others: Tensor,
        mine: Tensor,
        position: Tensor,
        per_row: Tensor | None,
    ) -> None:
        self.ranker, self.columns, self.others, self.mine = ranker, columns, others, mine
        self.position, self.per_row = position, per_row
        self.scores = ranker.data.scores[:, :, columns]  # (K, R, n_g)
        self.masked = ranker.data.masked[:, columns]  # (R, n_g)
        seen = ranker.data.seen
        self.repeat = (
            None
            if seen is None or ranker.repeat == 0.0
            else ranker.repeat * seen[:, columns].float()
        )  # (R, n_g) the repeat term of the bucket's columns, fixed during its trials

    def ndcg_rows(self, weights: Tensor, offset: float) -> Tensor:
        """(R,) per-row NDCG@k with bucket g's weights (K,) and offset."""
        ranker, k = self.ranker, self.ranker.k
        # (K, 1): every column of the bucket alike
        combined = weighted_sum(self.scores, weights.unsqueeze(1), self.per_row) + offset
        if self.repeat is not None:
            combined.add_(self.repeat)
        combined = combined.masked_fill_(self.masked, -torch.inf)  # (R, n_g)
        ranker.rankings += len(self.columns) / max(len(ranker.columns), 1)
        width = min(k + 1, combined.shape[1])
        best = torch.cat([self.others, combined.topk(width, dim=1).values], 1)
        best = best.topk(k + 1, dim=1).values  # (R, k + 1) the row's k + 1 best
        inside = self.position >= 0
        mine = torch.where(
            inside, torch.gather(combined, 1, self.position.clamp(min=0)), self.mine
        )  # (R, P)
        ranks = ranks_from_best(best, mine, ranker.data.valid, k)
        return ranking_metrics(ranks, k).ndcg


def weighted_sum(scores: Tensor, coefficients: Tensor, per_row: Tensor | None = None) -> Tensor:
    """Σ_j coefficients[j] · per_row[j] · scores[j]: scores (K, R, M), coefficients (K, ...)
    broadcasting to (R, M), per_row (K, R) multipliers or None; summed part by part in place
    (no (K, R, M) temporary), a part whose coefficients are all 0 skipped. The one sum every
    trial ranks, whole or one bucket apart (the same arithmetic)."""
    combined: Tensor | None = None
    for j, part in enumerate(scores):
        coefficient = coefficients[j]
        if per_row is not None:
            coefficient = coefficient * per_row[j].unsqueeze(1)  # (R, M) or (R, 1)
        if not bool(coefficient.any()):
            continue  # weight 0: adds nothing
        combined = part * coefficient if combined is None else combined.addcmul_(part, coefficient)
    return combined if combined is not None else torch.zeros_like(scores[0])


def top_k_ranks(scores: Tensor, positives: Tensor, valid: Tensor, k: int, ties: str) -> Tensor:
    """:func:`positive_ranks` where it matters for a metric @k, from each row's k + 1 best
    scores instead of a sort of the row: a positive whose pessimistic rank is below k gets it
    exactly, any other gets k (no metric @k counts it); padding stays inf. (R, N) -> (R, P).
    Other tie rules fall back to the full ranks."""
    width = min(k + 1, scores.shape[1])
    if ties != "pessimistic" or width < k + 1:
        return positive_ranks(scores, positives, valid, ties=ties)
    best = scores.topk(width, dim=1).values  # (R, k + 1)
    mine = torch.gather(scores, 1, positives)  # (R, P)
    return ranks_from_best(best, mine, valid, k)


def ranks_from_best(best: Tensor, mine: Tensor, valid: Tensor, k: int) -> Tensor:
    """Pessimistic ranks (R, P) of the positives' scores ``mine`` (R, P) from the row's
    k + 1 best scores ``best`` (R, k + 1): exact below k, k otherwise; padding inf."""
    width = best.shape[1]
    at_least = (best.unsqueeze(1) >= mine.unsqueeze(2)).sum(2)  # (R, P): of the best, >= mine
    exact = at_least < width  # every score >= the positive's is among them: counts are exact
    # pessimistic: every other candidate scoring >= the positive ranks above it
    ranks = torch.where(exact, (at_least - 1).clamp(min=0), torch.full_like(at_least, k))
    return ranks.to(best.dtype).masked_fill(~valid, torch.inf)
