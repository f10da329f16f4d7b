"""Fitting the composed hybrid's weights on the validation split.

The parts' standardised scores of the validation rows (masked as evaluation masks them) are
collected once; the weights (K parts × G popularity buckets) are then chosen to maximise
validation NDCG@K:

1. one weight vector for every bucket (``search``): up to three parts from a grid over the
   simplex (step ``step``: 66 points for K = 3), whose corners are the parts alone; with more
   parts by greedy forward selection with replacement (Caruana et al. 2004: from the best part
   alone, 2/step times add the part whose addition ranks best; the weights are the counts), as
   the grid grows as C(1/step + K - 1, K - 1) (286 points for K = 4, 1,001 for K = 5) and
   greedy costs 2/step · K. Either way on validation the combination is never below its best
   part;
2. coordinate ascent over the buckets: each bucket's weights from the same grid (with three
   parts or more a grid of step 0.25 at the finest: 15 points instead of 66 for K = 3), then
   its offset from ``OFFSETS`` (in standard deviations); the cold bucket's weights and offset
   are searched together (its weights rank the cold items among themselves, its offset decides
   how they compete with warm ones, and neither pays alone). The others are held; a change is
   kept only when validation NDCG rises by more than ``min_gain`` AND by more than one standard
   error of the per-row differences (paired over the same rows): a bucket's own weights are
   fitted on that bucket's rows only, and on a few hundred rows a gain below the noise is
   noise (the one-sigma rule). A trial re-scores only the bucket's columns against the k + 1
   best scores of the others, kept once per bucket (exactly the whole ranking's metric);
3. with user-history buckets (``user_buckets`` > 1), in the same rounds: each user bucket's
   multipliers a(h) = K · p, p from the same grid (the mix of the parts for the rows of that
   bucket; 1 for every part: as without buckets), kept by the same rule; a trial ranks only
   that bucket's rows. Two rounds.

Where evaluation ranks the items a row has already had (``protocol.mask_known=false``,
sessions), the repeat offset r (:class:`~hybridrec.nn.composed.ComposedHybrid`) is chosen from
``REPEATS`` by the same rule, on the even mix before the global search (so that the search
weighs the parts on the ranking the model will make: a part that ranks the user's own items
high is not penalised for what r takes care of) and again after it: how much a known item
should rise or fall. Where known items are masked (or rows read no history) there is nothing
to fit: r = 0.

Greedy selection on held-out scores is the ensemble practice for top-N (Vente et al. 2024;
Collins et al. 2025 for ID + text ensembles).

Shapes: K parts, R validation rows, N = n_items + 1, P positives per row, G buckets, H user
buckets.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hybridrec.data.batch import PrefixEvalBatch, RowEvalBatch
from hybridrec.metrics import positive_ranks, ranking_metrics
from hybridrec.nn.composed import ComposedHybrid, repeat_mask

log = logging.getLogger("hybridrec.combiner")

#: the bucket offsets tried, in standard deviations of the standardised scores
OFFSETS = (-3.0, -2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
#: the repeat offsets tried (standard deviations): -100 never again, +100 the history first
#: (finite: exported scores stay finite)
REPEATS = (-100.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 100.0)
#: ``search: auto``: the whole grid up to this many parts, greedy selection above
GRID_PARTS = 3


@dataclass
class ValidationScores:
    """The parts' standardised scores of the validation rows, masked candidates apart."""

    scores: Tensor  # (K, R, N) finite; masked entries 0
    masked: Tensor  # (R, N) bool: padding, known items, non-candidates
    positives: Tensor  # (R, P) column of each held-out item
    valid: Tensor  # (R, P) bool
    items: Tensor | None = None  # (R, C) the item of each column (sampled rows); None: catalogue
    user_bucket: Tensor | None = None  # (R,) each row's user-history bucket; None: one bucket
    seen: Tensor | None = None  # (R, N) bool: the row's history items it ranks; None: none

    @property
    def rows(self) -> int:
        return int(self.scores.shape[1])


@dataclass
class CombinerFit:
    """What the fit chose and what it measured on validation."""

    weights: Tensor  # (K, G)
    offsets: Tensor  # (G,)
    ndcg: float  # validation NDCG@k of the chosen weights
    part_ndcg: dict[str, float]  # each part alone
    rows: int
    k: int
    history: list[dict[str, Any]] = field(default_factory=list)  # accepted steps
    user_weights: Tensor | None = None  # (K, H) multipliers per user-history bucket
    rankings: float = 0.0  # whole-ranking equivalents the search cost
    repeat: float = 0.0  # r: the offset of the row's history items (0: not fitted)

    def as_dict(self, names: list[str]) -> dict[str, Any]:
        out = {
            "weights": {
                name: [round(float(w), 4) for w in self.weights[k]] for k, name in enumerate(names)
            },
            "offsets": [round(float(c), 4) for c in self.offsets],
            f"val_ndcg@{self.k}": self.ndcg,
            f"part_val_ndcg@{self.k}": self.part_ndcg,
            "rows": self.rows,
            "steps": self.history,
            "rankings": round(self.rankings, 1),
            "repeat": self.repeat,
        }
        if self.user_weights is not None and self.user_weights.shape[1] > 1:
            out["user_weights"] = {
                name: [round(float(a), 4) for a in self.user_weights[k]]
                for k, name in enumerate(names)
            }
        return out


def _row_layout(batch: RowEvalBatch | PrefixEvalBatch) -> RowEvalBatch:
    return batch.with_row_histories()  # a PrefixEvalBatch's rows; a RowEvalBatch itself


def _rows(batch: RowEvalBatch, rows: Tensor) -> RowEvalBatch:
    """The batch's rows ``rows`` (B',) only, every per-row field cut alike."""
    if len(rows) == len(batch):
        return batch
    fields: dict[str, Any] = {}
    for name in ("users", "items", "labels", "history", "history_lengths", "targets", "cold"):
        value = getattr(batch, name, None)
        fields[name] = None if value is None else value[rows]
    if batch.exclude is not None:  # (row, item) pairs: keep those of the kept rows, renumbered
        new_index = torch.full((len(batch),), -1, dtype=torch.long, device=rows.device)
        new_index[rows] = torch.arange(len(rows), device=rows.device)
        kept = new_index[batch.exclude[0]] >= 0
        fields["exclude"] = torch.stack([new_index[batch.exclude[0][kept]], batch.exclude[1][kept]])
    return dataclasses.replace(batch, **fields)


def drawn_rows(
    batches: Any, max_rows: int, device: str = "cpu", seed: int = 0
) -> Iterator[RowEvalBatch]:
    """The batches cut to ``max_rows`` rows drawn at random (seeded) from all of them (all rows
    when there are fewer), one row per held-out row, on ``device``."""
    sizes = [len(_row_layout(raw)) for raw in batches]  # rows per batch (nothing scored yet)
    total = sum(sizes)
    chosen = torch.arange(total)
    if total > max_rows:
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(total, generator=generator)[:max_rows].sort().values
    start = 0
    for raw, size in zip(batches, sizes, strict=True):
        rows = chosen[(chosen >= start) & (chosen < start + size)] - start
        start += size
        if len(rows) == 0:
            continue
        yield _rows(_row_layout(raw).to(device), rows.to(device))


def full_ranking_mask(batch: RowEvalBatch, n_columns: int) -> Tensor:
    """(B, N) True where a full-ranking row does not rank an item: the padding item, the
    row's ``exclude`` pairs, and a row's non-candidates (``candidates: cold`` or ``slice``)."""
    assert batch.exclude is not None
    mask = torch.zeros(len(batch), n_columns, dtype=torch.bool, device=batch.exclude.device)
    mask[:, 0] = True
    mask[batch.exclude[0], batch.exclude[1]] = True
    outside = batch.non_candidates()
    if outside is not None:
        mask |= outside
    return mask


@torch.no_grad()
def collect_validation(
    model: ComposedHybrid, batches: Any, max_rows: int = 5000, device: str = "cpu", seed: int = 0
) -> ValidationScores:
    """Every part's standardised scores of the validation rows (full ranking: the batches
    carry ``targets`` and ``exclude``; sampled: ``items``): all of them, or ``max_rows`` drawn
    at random (seeded) from all of them, so that every kind of row (cold, warm, short and
    long histories) is represented as in the whole split."""
    model.eval().to(device)
    scores, masks, positives, valids, items, buckets, seen = [], [], [], [], [], [], []
    for batch in drawn_rows(batches, max_rows, device, seed):
        z = model.standardised_scores(batch.users, batch.history, batch.history_lengths)
        lengths = batch.history_lengths if batch.history is not None else None
        buckets.append(model.user_bucket(batch.users, lengths).cpu())  # (B,)
        if batch.items is not None:  # sampled: the row's candidates, column 0 the positive
            z = torch.gather(z, 2, batch.items.unsqueeze(0).expand(z.shape[0], -1, -1))
            mask = batch.items == 0
            mask[:, 0] = False
            pos = torch.zeros(len(batch), 1, dtype=torch.long, device=z.device)
            valid = torch.ones_like(pos, dtype=torch.bool)
            items.append(batch.items.cpu())
        else:
            batch.require("targets", "exclude")
            assert batch.targets is not None
            mask = full_ranking_mask(batch, int(z.shape[2]))
            pos, valid = batch.targets, batch.targets > 0
        scores.append(z.masked_fill(mask.unsqueeze(0), 0.0).cpu())  # (K, B, N)
        if batch.items is None and batch.history is not None:  # the known items it ranks
            seen.append((repeat_mask(batch.history, z[0]) > 0).logical_and_(~mask).cpu())
        masks.append(mask.cpu())
        positives.append(pos.cpu())
        valids.append(valid.cpu())
    width = max(p.shape[1] for p in positives)
    positives = [torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in positives]
    valids = [torch.nn.functional.pad(v, (0, width - v.shape[1])) for v in valids]
    return ValidationScores(
        torch.cat(scores, 1),
        torch.cat(masks),
        torch.cat(positives),
        torch.cat(valids),
        torch.cat(items) if items else None,
        torch.cat(buckets) if model.n_user_buckets > 1 else None,
        torch.cat(seen) if len(seen) == len(scores) and any(bool(s.any()) for s in seen) else None,
    )


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
        if self.repeat != 0.0 and data.seen is not None:
            seen = data.seen if rows is None else data.seen[rows]
            combined.add_(seen.to(combined.dtype), alpha=self.repeat)
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


def simplex_grid(allowed: Tensor, step: float) -> list[Tensor]:
    """Weight vectors (K,) on the simplex over the allowed parts, in steps of ``step``."""
    index = torch.nonzero(allowed).flatten().tolist()
    n = round(1 / step)
    points = []
    for combo in itertools.product(range(n + 1), repeat=len(index)):
        if sum(combo) != n:
            continue
        w = torch.zeros(len(allowed))
        w[index] = torch.tensor(combo, dtype=torch.float32) / n
        points.append(w)
    return points


def greedy_selection(
    evaluate: Callable[[Tensor], float], n_parts: int, start: int, additions: int
) -> tuple[Tensor, float, int]:
    """Forward selection with replacement (Caruana et al. 2004): from part ``start`` alone,
    ``additions`` times add the part whose addition ranks best (any part, again and again);
    the weights are the parts' counts over the total. Returns the best weights (K,) met on
    the way, their value, and the number of distinct points evaluated. Never below ``start``
    alone; a part's weight can reach 1/(additions + 1)."""
    counts = torch.zeros(n_parts)
    counts[start] = 1.0
    seen: dict[tuple[float, ...], float] = {}

    def value_of(c: Tensor) -> float:
        key = tuple(round(float(x), 6) for x in c / c.sum())
        if key not in seen:
            seen[key] = evaluate(c / c.sum())
        return seen[key]

    best_counts, best = counts.clone(), value_of(counts)
    for _ in range(additions):
        trials = []
        for j in range(n_parts):
            trial = counts.clone()
            trial[j] += 1
            trials.append((value_of(trial), -j, trial))  # ties: the first part
        value, _, counts = max(trials, key=lambda t: (t[0], t[1]))
        if value > best + 1e-12:
            best_counts, best = counts.clone(), value
    return best_counts / best_counts.sum(), best, len(seen)


def _better(trial_rows: Tensor, rows: Tensor, min_gain: float) -> tuple[bool, float]:
    """Whether ``trial_rows`` (R,) beat ``rows`` by more than ``min_gain`` and one standard
    error of the paired differences (the one-sigma rule); that standard error."""
    diff = trial_rows - rows
    noise = float(diff.std()) / max(len(diff), 1) ** 0.5 if len(diff) > 1 else 0.0
    return float(diff.mean()) > max(min_gain, noise), noise


def _fit_repeat(
    ranker: _Ranker,
    weights: Tensor,
    offsets: Tensor,
    factors: Tensor,
    rows: Tensor,
    min_gain: float,
) -> tuple[Tensor, list[dict[str, Any]]]:
    """``ranker.repeat`` set to the value of ``REPEATS`` that ranks best with everything else
    held, each change kept by the one-sigma rule over ``rows`` (R,), the current per-row NDCG;
    the per-row NDCG it ends on and its accepted steps."""
    steps = []
    for value in REPEATS:
        if value == ranker.repeat:
            continue
        current, ranker.repeat = ranker.repeat, value
        trial_rows = ranker.ndcg_rows(weights, offsets, factors)
        better, noise = _better(trial_rows, rows, min_gain)
        if better:
            rows = trial_rows
            steps.append(
                {"stage": "repeat", "repeat": value, "ndcg": float(rows.mean()), "gain_se": noise}
            )
        else:
            ranker.repeat = current
    return rows, steps


def fit_combiner(
    model: ComposedHybrid,
    data: ValidationScores,
    k: int = 10,
    step: float = 0.1,
    min_gain: float = 1e-4,
    rounds: int = 2,
    ties: str = "pessimistic",
    search: str = "auto",
    shortcuts: bool = True,
) -> CombinerFit:
    """Choose ``model``'s weights (K, G), offsets (G,) and user-history multipliers (K, H)
    on ``data`` (see the module docstring); the model's are set to them. ``shortcuts=False``:
    every trial ranks every row and column (the same choice, slower: the reference that
    scripts/bench_combiner.py and the tests compare with)."""
    n_parts, n_buckets = model.weights.shape
    if search not in ("auto", "grid", "greedy"):
        raise ValueError(f"model.combiner.search={search!r}: expected auto, grid or greedy")
    greedy = search == "greedy" or (search == "auto" and n_parts > GRID_PARTS)
    n_user_buckets = model.n_user_buckets if data.user_bucket is not None else 1
    allowed = model.allowed.cpu()
    bucket = model.item_bucket.cpu()  # (N,)
    columns = bucket if data.items is None else bucket[data.items]  # (N,) or (R, C)
    ranker = _Ranker(data, columns, k, ties)
    ranker.by_bucket = ranker.by_bucket and shortcuts
    users = torch.ones(n_parts, n_user_buckets)  # a(h): 1 = as without user buckets

    def evaluate(weights: Tensor, offsets: Tensor) -> float:
        return float(ranker.ndcg_rows(weights, offsets, users).mean())

    def spread(vector: Tensor) -> Tensor:
        """One weight vector for every bucket; where it puts weight only on parts a bucket
        does not allow (cold: ID parts), that bucket's allowed parts share it equally."""
        weights = vector.unsqueeze(1).expand(-1, n_buckets).clone() * allowed
        empty = weights.sum(0) == 0
        weights[:, empty] = allowed[:, empty].float() / allowed[:, empty].float().sum(0)
        return weights / weights.sum(0, keepdim=True)

    zero = torch.zeros(n_buckets)
    part_ndcg = {}
    for j, name in enumerate(model.names):
        corner = torch.zeros(n_parts)
        corner[j] = 1.0
        part_ndcg[name] = evaluate(spread(corner), zero)
    history: list[dict[str, Any]] = []
    repeats = data.seen is not None and data.items is None  # known items ranked: r to fit
    if repeats:  # first on the even mix, so that the global search ranks as the model will
        even = spread(torch.full((n_parts,), 1.0 / n_parts))
        _fit_repeat(ranker, even, zero, users, ranker.ndcg_rows(even, zero, users), min_gain)
    if greedy:
        start = part_ndcg
        if ranker.repeat != 0.0:  # each part alone, with r
            start = {
                name: evaluate(spread(torch.eye(n_parts)[j]), zero)
                for j, name in enumerate(model.names)
            }
        first = max(range(n_parts), key=lambda j: (start[model.names[j]], -j))
        vector, best, points = greedy_selection(
            lambda v: evaluate(spread(v), zero), n_parts, first, 2 * round(1 / step)
        )
        best_weights = spread(vector)
    else:
        best_weights, best = spread(torch.full((n_parts,), 1.0 / n_parts)), -1.0
        grid = simplex_grid(torch.ones(n_parts, dtype=torch.bool), step)
        for vector in grid:
            weights = spread(vector)
            value = evaluate(weights, zero)
            if value > best + 1e-12:
                best_weights, best = weights, value
        points = len(grid)
    stage = "greedy" if greedy else "grid"
    history.append(
        {
            "stage": "global",
            "search": stage,
            "points": points,
            "ndcg": best,
            "weights": best_weights[:, -1].tolist(),
            "repeat": ranker.repeat,
        }  # fmt: skip
    )
    log.info(
        "combiner: global weights %s (%s, %d points), val ndcg@%d %.4f",
        [round(w, 4) for w in best_weights[:, -1].tolist()], stage, points, k, best,
    )  # fmt: skip
    bucket_step = step if n_parts < 3 else max(step, 0.25)
    best_offsets = zero.clone()
    best_rows = ranker.ndcg_rows(best_weights, best_offsets, users)

    def accept(trial_rows: Tensor) -> tuple[bool, float]:
        return _better(trial_rows, best_rows, min_gain)

    if repeats:  # again, on the chosen weights
        best_rows, steps = _fit_repeat(
            ranker, best_weights, best_offsets, users, best_rows, min_gain
        )
        history += steps
        best = float(best_rows.mean())
        log.info("combiner: repeat offset %s, val ndcg@%d %.4f", ranker.repeat, k, best)

    if n_buckets > 1 or n_user_buckets > 1:
        for _ in range(rounds):
            changed = False
            for g in range(n_buckets):
                if not bool((bucket[1:] == g).any()):  # no item there (no cold items: loo)
                    continue
                # the cold bucket: weights and offset together; a warm one: weights, then offset
                trials: list[tuple[Tensor | None, float | None]] = (
                    [(v, c) for v in simplex_grid(allowed[:, g], bucket_step) for c in OFFSETS]
                    if g == 0
                    else [(v, None) for v in simplex_grid(allowed[:, g], bucket_step)]
                    + [(None, c) for c in OFFSETS]
                )
                apart = (
                    ranker.bucket_trials(g, best_weights, best_offsets, users)
                    if ranker.by_bucket
                    else None
                )
                for direction, offset in trials:
                    trial, trial_offsets = best_weights.clone(), best_offsets.clone()
                    if direction is not None:
                        trial[:, g] = direction
                    if offset is not None:
                        trial_offsets[g] = offset
                    trial_rows = (
                        apart.ndcg_rows(trial[:, g], float(trial_offsets[g]))
                        if apart is not None
                        else ranker.ndcg_rows(trial, trial_offsets, users)
                    )
                    better, noise = accept(trial_rows)
                    if better:
                        best_weights, best_offsets, best_rows, changed = (
                            trial,
                            trial_offsets,
                            trial_rows,
                            True,
                        )
                        best = float(trial_rows.mean())
                        history.append({"stage": f"bucket {g}", "ndcg": best, "gain_se": noise})
                        # ``apart`` stays true: only bucket g's columns changed
            assert data.user_bucket is not None or n_user_buckets == 1
            for h in range(n_user_buckets):
                if data.user_bucket is None or not bool((data.user_bucket == h).any()):
                    continue
                rows = ranker.user_rows(h)
                for point in simplex_grid(torch.ones(n_parts, dtype=torch.bool), bucket_step):
                    factors = users.clone()
                    factors[:, h] = point * n_parts
                    if shortcuts:  # only bucket h's rows change
                        trial_rows = best_rows.clone()
                        trial_rows[rows] = ranker.ndcg_rows(
                            best_weights, best_offsets, factors, rows
                        )
                    else:
                        trial_rows = ranker.ndcg_rows(best_weights, best_offsets, factors)
                    better, noise = accept(trial_rows)
                    if better:
                        users, best_rows, changed = factors, trial_rows, True
                        best = float(trial_rows.mean())
                        history.append({"stage": f"users {h}", "ndcg": best, "gain_se": noise})
            log.info("combiner: per-bucket round, val ndcg@%d %.4f", k, best)
            if not changed:
                break
    log.info("combiner: %.1f rankings of the %d validation rows", ranker.rankings, data.rows)
    model.set_weights(best_weights)
    model.set_offsets(best_offsets)
    model.set_repeat(ranker.repeat)
    if model.n_user_buckets > 1:
        model.set_user_weights(
            users if n_user_buckets > 1 else torch.ones(n_parts, model.n_user_buckets)
        )
    return CombinerFit(
        best_weights,
        best_offsets,
        best,
        part_ndcg,
        data.rows,
        k,
        history,
        users,
        ranker.rankings,
        ranker.repeat,
    )
