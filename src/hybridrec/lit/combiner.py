"""Fitting the composed hybrid's weights on the validation split.

The parts' standardised scores of the validation rows (masked as evaluation masks them) are
collected once; the weights (K parts × G popularity buckets) are then chosen to maximise
validation NDCG@K:

1. one weight vector for every bucket, from a grid over the simplex (step ``step``) — its
   corners are the parts alone, so on validation the combination is never below its best part;
2. coordinate ascent over the buckets: each bucket's weights from the same grid (with three
   parts or more a grid of step 0.25 at the finest: 15 points instead of 66 for K = 3), then
   its offset from ``OFFSETS`` (in standard deviations); the cold bucket's weights and offset
   are searched together (its weights rank the cold items among themselves, its offset decides
   how they compete with warm ones, and neither pays alone). The others are held; a change is
   kept only when validation NDCG rises by more than ``min_gain`` AND by more than one standard
   error of the per-row differences (paired over the same rows): a bucket's own weights are
   fitted on that bucket's rows only, and on a few hundred rows a gain below the noise is
   noise (the one-sigma rule);
3. with user-history buckets (``user_buckets`` > 1), in the same rounds: each user bucket's
   multipliers a(h) = K · p, p from the same grid (the mix of the parts for the rows of that
   bucket; 1 for every part: as without buckets), kept by the same rule. Two rounds.

Greedy selection on held-out scores is the ensemble practice for top-N (Vente et al. 2024;
Collins et al. 2025 for ID + text ensembles); a grid over a K ≤ 4 simplex is exhaustive enough
and never beaten by its own corners.

Shapes: K parts, R validation rows, N = n_items + 1, P positives per row, G buckets, H user
buckets.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hybridrec.data.batch import RecBatch
from hybridrec.metrics import positive_ranks, ranking_metrics
from hybridrec.nn.composed import ComposedHybrid

log = logging.getLogger("hybridrec.combiner")

#: the bucket offsets tried, in standard deviations of the standardised scores
OFFSETS = (-3.0, -2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)


@dataclass
class ValidationScores:
    """The parts' standardised scores of the validation rows, masked candidates apart."""

    scores: Tensor  # (K, R, N) finite; masked entries 0
    masked: Tensor  # (R, N) bool: padding, known items, non-candidates
    positives: Tensor  # (R, P) column of each held-out item
    valid: Tensor  # (R, P) bool
    items: Tensor | None = None  # (R, C) the item of each column (sampled rows); None: catalogue
    user_bucket: Tensor | None = None  # (R,) each row's user-history bucket; None: one bucket

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
        }
        if self.user_weights is not None and self.user_weights.shape[1] > 1:
            out["user_weights"] = {
                name: [round(float(a), 4) for a in self.user_weights[k]]
                for k, name in enumerate(names)
            }
        return out


def _row_layout(batch: RecBatch) -> RecBatch:
    return batch.with_row_histories() if batch.prefix_sequences is not None else batch


def _rows(batch: RecBatch, rows: Tensor) -> RecBatch:
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
) -> Iterator[RecBatch]:
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


def full_ranking_mask(batch: RecBatch, n_columns: int) -> Tensor:
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
    scores, masks, positives, valids, items, buckets = [], [], [], [], [], []
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
    )


def _ndcg(
    data: ValidationScores, column_weights: Tensor, column_offsets: Tensor, k: int, ties: str
) -> Tensor:
    """Per-row validation NDCG@k (R,) of weights per part and candidate column, (K, N) or
    (K, R, N) or (K, R, C), plus an offset per column, (N,) or (R, C)."""
    if column_weights.dim() == 2:
        column_weights = column_weights.unsqueeze(1)
    combined = (data.scores * column_weights).sum(0) + column_offsets
    combined = combined.masked_fill(data.masked, -torch.inf)
    return ranking_metrics(top_k_ranks(combined, data.positives, data.valid, k, ties), k).ndcg


def top_k_ranks(scores: Tensor, positives: Tensor, valid: Tensor, k: int, ties: str) -> Tensor:
    """:func:`positive_ranks` where it matters for a metric @k, from each row's k + 1 best
    scores instead of a sort of the row: a positive whose pessimistic rank is below k gets it
    exactly, any other gets k (no metric @k counts it); padding stays inf. (R, N) -> (R, P).
    Other tie rules fall back to the full ranks."""
    width = min(k + 1, scores.shape[1])
    if ties != "pessimistic" or width < k + 1:
        return positive_ranks(scores, positives, valid, ties=ties)
    best = scores.topk(width, dim=1).values.unsqueeze(1)  # (R, 1, k + 1)
    mine = torch.gather(scores, 1, positives).unsqueeze(2)  # (R, P, 1)
    at_least = (best >= mine).sum(2)  # (R, P): of the k + 1 best, those >= the positive
    exact = at_least < width  # every score >= the positive's is among them: counts are exact
    # pessimistic: every other candidate scoring >= the positive ranks above it
    ranks = torch.where(exact, (at_least - 1).clamp(min=0), torch.full_like(at_least, k))
    return ranks.to(scores.dtype).masked_fill(~valid, torch.inf)


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


def fit_combiner(
    model: ComposedHybrid,
    data: ValidationScores,
    k: int = 10,
    step: float = 0.1,
    min_gain: float = 1e-4,
    rounds: int = 2,
    ties: str = "pessimistic",
    search: str = "auto",
) -> CombinerFit:
    """Choose ``model``'s weights (K, G), offsets (G,) and user-history multipliers (K, H)
    on ``data`` (see the module docstring); the model's are set to them."""
    n_parts, n_buckets = model.weights.shape
    n_user_buckets = model.n_user_buckets if data.user_bucket is not None else 1
    allowed = model.allowed.cpu()
    bucket = model.item_bucket.cpu()  # (N,)
    columns = bucket if data.items is None else bucket[data.items]  # (N,) or (R, C)
    row_bucket = data.user_bucket  # (R,) or None
    users = torch.ones(n_parts, n_user_buckets)  # a(h): 1 = as without user buckets

    def evaluate(weights: Tensor, offsets: Tensor) -> float:
        return float(rows_of(weights, offsets).mean())

    def rows_of(weights: Tensor, offsets: Tensor, factors: Tensor | None = None) -> Tensor:
        column_weights = weights[:, columns]  # (K, N) or (K, R, C)
        factors = users if factors is None else factors
        if row_bucket is not None and bool((factors != 1).any()):
            per_row = factors[:, row_bucket]  # (K, R)
            if column_weights.dim() == 2:
                column_weights = column_weights.unsqueeze(1)
            column_weights = column_weights * per_row.unsqueeze(2)  # (K, R, N) or (K, R, C)
        return _ndcg(data, column_weights, offsets[columns], k, ties)

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
    best_weights, best = spread(torch.full((n_parts,), 1.0 / n_parts)), -1.0
    best_offsets = zero.clone()
    history: list[dict[str, Any]] = []
    for vector in simplex_grid(torch.ones(n_parts, dtype=torch.bool), step):
        weights = spread(vector)
        value = evaluate(weights, zero)
        if value > best + 1e-12:
            best_weights, best = weights, value
    history.append({"stage": "global", "ndcg": best, "weights": best_weights[:, -1].tolist()})
    log.info("combiner: global weights %s, val ndcg@%d %.4f", best_weights[:, -1].tolist(), k, best)
    bucket_step = step if n_parts < 3 else max(step, 0.25)
    best_rows = rows_of(best_weights, best_offsets)

    def accept(trial_rows: Tensor) -> tuple[bool, float]:
        """Whether a trial beats the current rows by more than ``min_gain`` and one standard
        error of the paired differences; that standard error."""
        diff = trial_rows - best_rows
        noise = float(diff.std()) / max(len(diff), 1) ** 0.5 if len(diff) > 1 else 0.0
        return float(diff.mean()) > max(min_gain, noise), noise

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
                for direction, offset in trials:
                    trial, trial_offsets = best_weights.clone(), best_offsets.clone()
                    if direction is not None:
                        trial[:, g] = direction
                    if offset is not None:
                        trial_offsets[g] = offset
                    trial_rows = rows_of(trial, trial_offsets)
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
            assert row_bucket is not None or n_user_buckets == 1
            for h in range(n_user_buckets):
                if row_bucket is None or not bool((row_bucket == h).any()):
                    continue
                for point in simplex_grid(torch.ones(n_parts, dtype=torch.bool), bucket_step):
                    factors = users.clone()
                    factors[:, h] = point * n_parts
                    trial_rows = rows_of(best_weights, best_offsets, factors)
                    better, noise = accept(trial_rows)
                    if better:
                        users, best_rows, changed = factors, trial_rows, True
                        best = float(trial_rows.mean())
                        history.append({"stage": f"users {h}", "ndcg": best, "gain_se": noise})
            log.info("combiner: per-bucket round, val ndcg@%d %.4f", k, best)
            if not changed:
                break
    model.set_weights(best_weights)
    model.set_offsets(best_offsets)
    if model.n_user_buckets > 1:
        model.set_user_weights(
            users if n_user_buckets > 1 else torch.ones(n_parts, model.n_user_buckets)
        )
    return CombinerFit(best_weights, best_offsets, best, part_ndcg, data.rows, k, history, users)
