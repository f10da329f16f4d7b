"""The composed hybrid's validation rows, as the combiner reads them: every part's standardised
scores of (a seeded draw of) the validation rows, with what evaluation masks, each row's
positives, its user-history bucket and the known items it ranks (:mod:`hybridrec.lit.combiner`
fits on them).

Shapes: K parts, R rows, N = n_items + 1, P positives per row, C candidates (sampled rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hybridrec.data.batch import PrefixEvalBatch, RowEvalBatch
from hybridrec.nn.composed import ComposedHybrid, repeat_mask


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
