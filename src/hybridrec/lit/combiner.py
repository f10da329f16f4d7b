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

The validation rows come from :mod:`hybridrec.lit.validation_rows`; each trial is ranked by
:mod:`hybridrec.lit.ranking` (one bucket's columns or one user bucket's rows apart).

Shapes: K parts, R validation rows, N = n_items + 1, P positives per row, G buckets, H user
buckets.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hybridrec.lit.ranking import _Ranker
from hybridrec.lit.validation_rows import ValidationScores
from hybridrec.nn.composed import ComposedHybrid

log = logging.getLogger("hybridrec.combiner")

#: the bucket offsets tried, in standard deviations of the standardised scores
OFFSETS = (-3.0, -2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
#: the repeat offsets tried (standard deviations): -100 never again, +100 the history first
#: (finite: exported scores stay finite)
REPEATS = (-100.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 100.0)
#: ``search: auto``: the whole grid up to this many parts, greedy selection above
GRID_PARTS = 3


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
    """The values of ``REPEATS`` tried in turn as ``ranker.repeat`` with everything else held,
    each kept when it beats the current one by the one-sigma rule over ``rows`` (R,), the
    current per-row NDCG; returns the per-row NDCG it ends on and its accepted steps."""
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
