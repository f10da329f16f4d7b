"""GRU4Rec's listwise losses: sampled softmax cross-entropy and BPR-max.

Both read (B, C) scores of any training batch of :mod:`hybridrec.data.batch`, chosen by its
class: a :class:`PairBatch` (B, 1 + K) with the positive in column 0, or a
:class:`SessionBatch` (B, B + S) with row i's positive in column i and every other column a
negative for row i (the other rows' positives, then the shared samples). The positive's column
comes from the batch's ``positive_columns()``. A :class:`WindowBatch` (next-item training) gives
one row per position: (R, N + 1) against the whole catalogue (cross-entropy only), or (R, 1 + S)
with sampled negatives shared by the batch (``sequence_negatives``: the target in column 0, as
per row).

Reference: Hidasi & Karatzoglou, "Recurrent Neural Networks with Top-k Gains for Session-based
Recommendations" (CIKM 2018), and the official PyTorch GRU4Rec code, whose behaviour these
match (except that they average over rows where the official code sums).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.data.batch import (
    TRAIN_BATCHES,
    PairBatch,
    SessionBatch,
    TrainBatch,
    WindowBatch,
    layout_error,
)


def _training(batch: object, name: str) -> TrainBatch:
    """``batch`` itself when it is a training batch, else a clear error."""
    if not isinstance(batch, TRAIN_BATCHES):
        raise layout_error(f"loss={name}", batch, TRAIN_BATCHES, "a training batch")
    return batch


def _full_catalogue(batch: TrainBatch) -> bool:
    """True for next-item windows scored against the whole catalogue: (R, N + 1)."""
    return isinstance(batch, WindowBatch) and not batch.sampled


def _column_items(scores: Tensor, batch: TrainBatch) -> Tensor:
    """The item held by each score column: (B + S,) for a SessionBatch, (B, C) for a
    PairBatch, (R, 1 + S) for a sampled WindowBatch, (N + 1,) for a full one."""
    match batch:
        case WindowBatch(sequence_negatives=Tensor() as shared):  # target, shared negatives
            positives = batch.positive_items()  # (R, 1)
            negatives = shared.unsqueeze(0).expand(positives.shape[0], -1)
            columns = torch.cat([positives, negatives], 1)  # (R, 1 + S)
            if columns.shape[1] != scores.shape[1]:
                raise ValueError(
                    f"scores have {scores.shape[1]} columns but the batch holds 1 target + "
                    f"{negatives.shape[1]} sampled negatives per position"
                )
            return columns
        case WindowBatch():  # every column is the item of that index
            return torch.arange(scores.shape[1], device=scores.device)  # (N + 1,)
        case SessionBatch():
            columns = batch.column_items()  # (B + S,)
        case PairBatch():
            columns = batch.items  # (B, C)
    if columns.shape[-1] != scores.shape[1]:
        raise ValueError(
            f"scores have {scores.shape[1]} columns but the batch holds {columns.shape[-1]} "
            "candidate items"
        )
    return columns


def _check_sampled_width(scores: Tensor, batch: TrainBatch) -> None:
    """A window batch with sampled negatives must come with (R, 1 + S) scores: full-catalogue
    scores would read column 0 (padding) as every row's positive."""
    if isinstance(batch, WindowBatch) and batch.sequence_negatives is not None:
        width = 1 + batch.sequence_negatives.numel()
        if scores.shape[1] != width:
            raise ValueError(
                f"the batch has {width - 1} sampled negatives, so the scores should have "
                f"1 + {width - 1} columns, but they have {scores.shape[1]}: the model must "
                "score the batch's sequence_negatives (score_positions(..., candidates=...))"
            )


def _positive_mask(scores: Tensor, batch: TrainBatch) -> Tensor:
    """(B, C) bool: True at each row's positive column."""
    positives = batch.positive_columns().to(scores.device)  # (B,)
    column_ids = torch.arange(scores.shape[1], device=scores.device)  # (C,)
    return column_ids.unsqueeze(0) == positives.unsqueeze(1)


def _accidental_hits(scores: Tensor, batch: TrainBatch) -> Tensor:
    """(B, C) bool: True at a negative column that holds the row's positive item (the item
    sampled again, or another row's identical positive in a SessionBatch)."""
    columns = _column_items(scores, batch).to(scores.device)  # (C,) or (B, C)
    if _full_catalogue(batch):  # one column per item: no hits
        return torch.zeros_like(scores, dtype=torch.bool)
    target = batch.positive_items().to(scores.device)  # (B, 1)
    return (columns == target) & ~_positive_mask(scores, batch)  # (C,) broadcasts over rows


class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy of each row's positive against every score column.

    ``loss = mean_i [ -log softmax(scores_i - logq * column_logq)[positive_i] ]``.

    Args:
        logq: weight of the logQ correction for sampled softmax (Yi et al. 2019), 0 to turn it
            off. The data module fills ``batch.column_logq`` (C,) with the log sampling weight
            of each column (the official GRU4Rec's ``log(pop)`` for in-batch positives and
            ``log(pop ** alpha)`` for shared samples), and it is subtracted from every row's
            scores. Every SessionBatch carries it; a PairBatch has none: its negatives are
            taken as uniformly sampled, where the correction is a constant shift (a no-op).
            A sampled WindowBatch carries (R, 1 + S) when sampled by popularity and none when
            uniform.
        remove_accidental_hits: drop negative columns that hold the row's positive item.

    For a WindowBatch the loss is averaged over the positions: against the whole
    catalogue (padding and ``train_columns``-excluded items never count), or sampled softmax
    over each position's target and the shared negatives (eSASRec's ``sampled_softmax``).
    """

    def __init__(self, logq: float = 0.0, remove_accidental_hits: bool = False) -> None:
        super().__init__()
        if logq < 0:
            raise ValueError(f"logq: expected >= 0, got {logq}")
        self.logq = float(logq)
        self.remove_accidental_hits = remove_accidental_hits

    def forward(self, scores: Tensor, batch: TrainBatch) -> dict[str, Tensor]:
        batch = _training(batch, "xe")
        _check_sampled_width(scores, batch)
        logits = scores  # (B, C)
        # a PairBatch's negatives are uniform: no correction (a constant shift)
        column_logq = None if isinstance(batch, PairBatch) else batch.column_logq
        if self.logq > 0 and column_logq is not None:
            if column_logq.shape[-1] != scores.shape[1]:
                raise ValueError(
                    f"column_logq has {column_logq.shape[-1]} columns, scores have "
                    f"{scores.shape[1]}"
                )
            logits = logits - self.logq * column_logq.to(logits)  # (C,) over the rows
        if self.remove_accidental_hits:
            logits = logits.masked_fill(_accidental_hits(scores, batch), float("-inf"))
        if isinstance(batch, WindowBatch) and not batch.sampled:
            # never a candidate: padding (0), items kept out (cold); sampled negatives are
            # drawn among the allowed items already
            if batch.train_columns is None:
                allowed = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
            else:
                allowed = batch.train_columns.to(logits.device).clone()  # (N + 1,)
            allowed[0] = False
            logits = logits.masked_fill(~allowed, -torch.inf)
        targets = batch.positive_columns().to(scores.device)  # (B,)
        return {"loss": F.cross_entropy(logits, targets)}


class BPRMaxLoss(nn.Module):
    """BPR-max (Hidasi & Karatzoglou 2018): BPR against a softmax-weighted mix of negatives.

    For row i with positive score r_i and negatives j (every other column), with
    ``s_j = softmax_j(r_j)`` taken over the negatives only::

        loss_i = -log(sum_j s_j * sigmoid(r_i - r_j) + 1e-24) + score_reg * sum_j s_j * r_j**2

    averaged over the rows. The second term pulls the hard negatives' scores towards 0.

    Args:
        score_reg: weight of the score regularisation (the official code's ``bpreg``).
        elu: when > 0, scores first go through ``elu(x, alpha=elu)`` (the official final
            activation ``elu-<alpha>``, e.g. 0.5).
        remove_accidental_hits: drop negative columns that hold the row's positive item; a row
            left without negatives then contributes 0.

    Returns ``{"loss": total, "score_reg": the regularisation part (detached)}``.
    """

    def __init__(
        self, score_reg: float = 1.0, elu: float = 0.0, remove_accidental_hits: bool = False
    ) -> None:
        super().__init__()
        if score_reg < 0:
            raise ValueError(f"score_reg: expected >= 0, got {score_reg}")
        if elu < 0:
            raise ValueError(f"elu: expected >= 0, got {elu}")
        self.score_reg = float(score_reg)
        self.elu = float(elu)
        self.remove_accidental_hits = remove_accidental_hits

    def forward(self, scores: Tensor, batch: TrainBatch) -> dict[str, Tensor]:
        batch = _training(batch, "bprmax")
        if _full_catalogue(batch):
            raise ValueError(
                "loss=bprmax is not implemented for next-item training over the whole "
                "catalogue (a WindowBatch without negatives): sample negatives "
                "(datamodule.negatives > 0) or use loss=xe"
            )
        _check_sampled_width(scores, batch)
        if scores.shape[1] < 2:
            raise ValueError(
                "BPR-max needs at least one negative column: sample negatives "
                "(per-row num_negatives >= 1, or shared negatives / batch size > 1)"
            )
        scores = scores.float()  # the 1e-24 floor underflows in half precision
        if self.elu > 0:
            scores = F.elu(scores, alpha=self.elu)
        if not self.remove_accidental_hits:  # every other column is a negative: fused path
            return self._all_other_columns(scores, batch)
        negative = ~_positive_mask(scores, batch)  # (B, C) bool
        if self.remove_accidental_hits:
            negative = negative & ~_accidental_hits(scores, batch)
        positives = batch.positive_columns().to(scores.device)  # (B,)
        target = scores.gather(1, positives.unsqueeze(1))  # (B, 1)

        # softmax over each row's negatives; rows without any get all-zero weights (no NaN)
        masked = scores.masked_fill(~negative, torch.finfo(scores.dtype).min)  # (B, C)
        shifted = masked - masked.max(dim=1, keepdim=True).values.detach()
        weights = torch.exp(shifted) * negative  # (B, C)
        total = weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
        weights = weights / total

        ranking = -torch.log((weights * torch.sigmoid(target - scores)).sum(dim=1) + 1e-24)  # (B,)
        reg = self.score_reg * (weights * scores.pow(2)).sum(dim=1)  # (B,)
        has_negative = negative.any(dim=1)  # (B,)
        ranking = torch.where(has_negative, ranking, torch.zeros_like(ranking))
        reg_mean = reg.mean()
        return {"loss": ranking.mean() + reg_mean, "score_reg": reg_mean.detach()}

    def _all_other_columns(self, scores: Tensor, batch: TrainBatch) -> dict[str, Tensor]:
        """The same loss when every column but the positive is a negative, with fewer passes
        over the (B, C) scores (it is most of a GRU4Rec step): the positive is set to -inf
        and one fused softmax gives the negatives' weights (exactly 0 at the positive)."""
        positives = batch.positive_columns().to(scores.device).unsqueeze(1)  # (B, 1)
        target = scores.gather(1, positives)  # (B, 1)
        weights = torch.softmax(scores.scatter(1, positives, -torch.inf), dim=1)  # (B, C)
        hit = (weights * torch.sigmoid(target - scores)).sum(dim=1)  # (B,)
        reg = self.score_reg * (weights * scores * scores).sum(dim=1)  # (B,)
        reg_mean = reg.mean()
        ranking = -torch.log(hit + 1e-24).mean()
        return {"loss": ranking + reg_mean, "score_reg": reg_mean.detach()}
