"""Batch types: one small dataclass per batch layout, told apart by their class.

Shapes use B = batch rows, C = candidates per row, T = history length, P = positives per row,
S = negatives shared by every row, R = positions with a target, N = n_items. Item indices start
at 1; index 0 is padding everywhere (candidates, history, targets).

Training layouts (each read by the losses in :mod:`hybridrec.losses`):
  :class:`PairBatch`      ``items`` (B, 1 + K): column 0 the positive, then the row's own
                          negatives (the NCF models); scores (B, 1 + K), the positive in column 0.
  :class:`SessionBatch`   ``items`` (B, 1) the positives and ``negatives`` (S,) scored by every
                          row (session-parallel GRU4Rec); scores (B, B + S): every row scores
                          every row's positive, then the shared negatives, so row i's positive
                          is in column i.
  :class:`WindowBatch`    ``history`` (B, T) inputs and ``sequence_targets`` (B, T) the item
                          after each input (0 = no target there), next-item training of
                          SASRec-style models; scores (R, N + 1) for the R positions with a
                          target (row-major order) against the whole catalogue, so a row's
                          positive column is its target item itself. With
                          ``sequence_negatives`` (S,) -- negatives shared by every position --
                          the scores are (R, 1 + S) instead: each position's target in column 0,
                          then the S shared negatives (sampled softmax; ``column_logq``
                          (R, 1 + S) when the sampling was not uniform).

Evaluation layouts (:class:`EvalBatch`; full ranking with ``targets`` and ``exclude``, or
sampled ranking with ``items``, column 0 the held-out item):
  :class:`RowEvalBatch`     ``history`` (B, T): each row's own prefix, left-padded.
  :class:`PrefixEvalBatch`  ``prefix_sequences`` (S, T) holds each sequence once, left-padded,
                            and row b's history is the first ``prefix_lengths[b]`` items of
                            sequence ``prefix_rows[b]`` (the session protocol: every position of
                            a session is a row). A recurrent model runs each sequence once and
                            reads every row's state on the way (``GRU4Rec.user_state``);
                            :meth:`PrefixEvalBatch.with_row_histories` gives any other model the
                            row layout of the same rows.

A model or loss dispatches on the class (``isinstance`` / ``match``) and refuses a layout it
does not read with :class:`BatchLayoutError`, naming the type it expected
(:func:`layout_error`). Every type moves with :meth:`Batch.to` and pins with
:meth:`Batch.pin_memory`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Self

import torch
from torch import Tensor

from hybridrec.errors import HybridrecError


class BatchLayoutError(HybridrecError, TypeError):
    """A model or loss was given a batch of a layout it does not read (see the module doc)."""


def layout_error(
    reader: str, batch: object, expected: type | tuple[type, ...], hint: str = ""
) -> BatchLayoutError:
    """The error for ``reader`` (a model or loss name) given ``batch`` instead of ``expected``."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    names = " or ".join(kind.__name__ for kind in kinds)
    message = f"{reader} reads a batch of type {names}, but was given a {type(batch).__name__}"
    return BatchLayoutError(f"{message}: {hint}" if hint else message)


@dataclass(kw_only=True)
class Batch:
    """What every batch has: user rows, ``to(device)``, ``pin_memory()``, ``len``, ``require``."""

    users: Tensor  # (B,) long, user indices in [0, n_users) (the sequence index for sequences)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Self:
        """Move every tensor field to ``device`` (the batch itself when nothing moves).

        ``non_blocking`` host-to-GPU copies go through pinned memory, so the copy overlaps
        with the work already queued on the GPU (``data_on_device=false``: batches made on
        the host)."""
        target = torch.device(device)
        moved = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor) and value.device != target:
                if non_blocking and target.type == "cuda" and value.device.type == "cpu":
                    moved[f.name] = _pinned(value, target)
                else:
                    moved[f.name] = value.to(target, non_blocking=non_blocking)
        return dataclasses.replace(self, **moved) if moved else self

    def pin_memory(self) -> Self:
        """The batch with every tensor field in page-locked host memory (see :func:`_pinned`)."""
        pinned = {
            f.name: _pinned(v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
            if isinstance(v, Tensor)
        }
        return dataclasses.replace(self, **pinned)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def require(self, *names: str) -> None:
        """Raise a clear error when a model or loss needs an optional field this batch lacks."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} is missing field(s) {missing} needed here")


# -- training ---------------------------------------------------------------------------------
@dataclass(kw_only=True)
class PairBatch(Batch):
    """Per-row candidates: each row's positive and its own sampled negatives.

    Yielded by ``RecDataModule``'s training loader (``TrainBatches``); scored by the
    factorised models and the pair heads (MF, GMF, MLP, NeuMF, TextRec) through
    :mod:`hybridrec.lit.adapter`; read by ``loss=bce``, ``bpr``, ``xe`` and ``bprmax``."""

    items: Tensor  # (B, 1 + K) long, column 0 the positive, then the row's negatives
    labels: Tensor  # (B, 1 + K) float, 1 for the positive, 0 for the negatives
    history: Tensor | None = None  # (B, T) long, recent items, left-padded with 0
    history_lengths: Tensor | None = None  # (B,) long

    def positive_items(self) -> Tensor:
        """(B, 1): the positive item of each row."""
        return self.items[:, :1]

    def positive_columns(self) -> Tensor:
        """(B,): column 0, each row's positive in its (B, 1 + K) scores."""
        return torch.zeros(len(self), dtype=torch.long, device=self.users.device)


@dataclass(kw_only=True)
class SessionBatch(Batch):
    """One step of session-parallel training (Hidasi et al. 2016): each row continues a
    session, feeds the item it has just seen and asks for the next; negatives shared by every
    row.

    Yielded by ``SequenceDataModule(training="session_parallel")`` (``SessionParallelBatches``);
    scored by :class:`hybridrec.nn.GRU4Rec` (which carries each slot's hidden state); read by
    ``loss=xe`` (with logQ) and ``loss=bprmax``."""

    users: Tensor  # (B,) long, the sequence each row follows
    items: Tensor  # (B, 1) long, each row's next item (its positive)
    negatives: Tensor  # (S,) long, negatives shared by every row
    column_logq: Tensor  # (B + S,) float, log sampling weight of each score column
    session_inputs: Tensor  # (B,) long, the item each session row has just seen
    session_slots: Tensor  # (B,) long, the hidden-state slot each row continues
    session_starts: Tensor  # (B,) bool, the row starts a session: reset its state

    def column_items(self) -> Tensor:
        """(B + S,): the item of each score column, the rows' positives then the negatives."""
        return torch.cat([self.items[:, 0], self.negatives])

    def positive_items(self) -> Tensor:
        """(B, 1): the positive item of each row."""
        return self.items[:, :1]

    def positive_columns(self) -> Tensor:
        """(B,): row i's positive is column i of its (B, B + S) scores."""
        return torch.arange(len(self), device=self.users.device)


@dataclass(kw_only=True)
class WindowBatch(Batch):
    """Next-item windows (SASRec, Kang & McAuley 2018): every position of a window asks for the
    item after it, against the whole catalogue or against negatives shared by the batch.

    Yielded by ``SequenceDataModule(training="next_item")`` (``NextItemBatches``); scored by the
    factorised sequence models (SeqRec, the hybrid) through ``score_positions``; read by
    ``loss=xe`` (and ``loss=bprmax`` with sampled negatives)."""

    users: Tensor  # (B,) long, the sequence each window is cut from
    history: Tensor  # (B, T) long, the window's inputs, left-padded with 0
    history_lengths: Tensor  # (B,) long, items in each window
    sequence_targets: Tensor  # (B, T) long, the item after history[:, t]; 0 = none
    train_columns: Tensor | None = None  # (N + 1,) bool, items the loss may score (None = all)
    sequence_negatives: Tensor | None = None  # (S,) long, negatives shared by every position
    # (R, 1 + S) float, log sampling weight of each column (with popularity-sampled negatives)
    column_logq: Tensor | None = None

    @property
    def sampled(self) -> bool:
        """True when the scores are (R, 1 + S): each target, then the shared negatives."""
        return self.sequence_negatives is not None

    def positive_items(self) -> Tensor:
        """(R, 1): the target of each scoring position, row-major."""
        return self.sequence_targets[self.sequence_targets > 0].unsqueeze(1)

    def positive_columns(self) -> Tensor:
        """(R,): the target items (full catalogue: column = item), or 0 (sampled: the target
        first)."""
        targets = self.sequence_targets[self.sequence_targets > 0]  # (R,)
        return torch.zeros_like(targets) if self.sampled else targets


#: the layouts a training step reads (a type, and the same as a tuple for ``isinstance``)
TrainBatch = PairBatch | SessionBatch | WindowBatch
TRAIN_BATCHES = (PairBatch, SessionBatch, WindowBatch)


# -- evaluation -------------------------------------------------------------------------------
@dataclass(kw_only=True)
class EvalBatch(Batch):
    """Evaluation rows: the fields both evaluation layouts share (never yielded itself).

    Sampled ranking sets ``items`` (and ``labels``); full ranking sets ``targets`` and
    ``exclude`` (with ``cold`` / ``restrict_to`` under the cold_items protocol)."""

    items: Tensor | None = None  # (B, C) long, sampled ranking: column 0 the held-out item
    labels: Tensor | None = None  # (B, C) float, 1 for the held-out item, 0 for the negatives
    targets: Tensor | None = None  # (B, P) long, held-out items for full ranking, 0-padded
    exclude: Tensor | None = None  # (2, E) long, (row, item) pairs masked in full ranking
    cold: Tensor | None = None  # (B,) bool, the row's targets are cold items (cold_items)
    # (N + 1,) bool, the only items a cold row ranks among (``candidates: cold``); or
    # (2, N + 1): row 0 what a warm row ranks among, row 1 a cold row (``candidates: slice``)
    restrict_to: Tensor | None = None

    @property
    def sampled(self) -> bool:
        """True for sampled ranking (``items``), False for full ranking (``targets``)."""
        return self.items is not None

    def non_candidates(self) -> Tensor | None:
        """(B, N + 1) True where a cold_items row does not rank an item (``restrict_to``);
        None when every row ranks every item."""
        if self.cold is None or self.restrict_to is None:
            return None
        if self.restrict_to.dim() == 1:  # candidates: cold -> cold rows among the cold items
            return self.cold.unsqueeze(1) & ~self.restrict_to.unsqueeze(0)
        return ~self.restrict_to[self.cold.long()]  # slice: each row among its own kind

    def with_row_histories(self) -> RowEvalBatch:
        """The same rows in the row layout (:class:`RowEvalBatch`)."""
        raise NotImplementedError


@dataclass(kw_only=True)
class RowEvalBatch(EvalBatch):
    """Evaluation rows, each with its own history (or none: user-ID models).

    Yielded by ``RecDataModule``'s validation and test loaders (``EvalBatches``) and by
    ``SequenceDataModule``'s (``PrefixBatches`` without ``prefix_cache``); scored by every model
    (:mod:`hybridrec.lit.adapter`: ``scores`` for sampled ranking, ``scores_all`` for full) and
    read by ``RecLitModule``'s metrics and the combiner."""

    history: Tensor | None = None  # (B, T) long, recent items, left-padded with 0
    history_lengths: Tensor | None = None  # (B,) long

    def with_row_histories(self) -> RowEvalBatch:
        """The batch itself: already in the row layout."""
        return self


@dataclass(kw_only=True)
class PrefixEvalBatch(EvalBatch):
    """Evaluation rows that are prefixes of a few sequences, each sequence held once.

    Yielded by ``SequenceDataModule``'s validation and test loaders with ``prefix_cache``
    (``PrefixBatches``, the session protocol); read as is by GRU4Rec (``reads_prefix_layout``),
    converted by :meth:`with_row_histories` for every other model (:mod:`hybridrec.lit.adapter`).
    """

    prefix_sequences: Tensor  # (S, T) long, each sequence once, left-padded with 0
    prefix_rows: Tensor  # (B,) long, the sequence whose prefix is row b's history
    prefix_lengths: Tensor  # (B,) long, items of that sequence in row b's history

    def with_row_histories(self) -> RowEvalBatch:
        """The row layout of these rows: ``history`` (B, W), W = the longest prefix (at least
        1), each row's prefix left-padded with 0, and ``history_lengths`` (B,) -- the batch the
        prefix rows would have had as their own."""
        sequences, rows, lengths = self.prefix_sequences, self.prefix_rows, self.prefix_lengths
        width = max(int(lengths.max().item()) if lengths.numel() else 1, 1)
        column = torch.arange(width, device=lengths.device)  # (W,)
        # row b's column c holds item i = lengths[b] - W + c of its prefix (none where i < 0);
        # sequence s keeps its items in the last (sequences[s] > 0).sum() columns
        item = lengths.unsqueeze(1) - width + column  # (B, W)
        first = sequences.shape[1] - (sequences > 0).sum(1)  # (S,) column of each first item
        source = (first[rows].unsqueeze(1) + item).clamp(min=0)  # (B, W)
        history = torch.where(item >= 0, sequences[rows.unsqueeze(1), source], 0)
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(EvalBatch)}
        return RowEvalBatch(**shared, history=history, history_lengths=lengths)


def _pinned(value: Tensor, device: torch.device | None = None) -> Tensor:
    """``value`` copied to pinned (page-locked) host memory -- then, given ``device``, on to it
    without blocking -- its broadcast dimensions kept broadcast.

    ``Tensor.pin_memory`` allocates the pinned copy with the source's sizes *and strides*, then
    copies into it. For an ``expand``ed field -- the training ``labels``, one (1, 1 + K) row
    broadcast to (B, 1 + K) with stride 0 -- every row of that copy would be the same memory,
    a copy torch refuses ("more than one element of the written-to tensor refers to a single
    memory location"). So only the stored elements are pinned (one contiguous block, which
    the host-to-GPU copy moves in one piece) and cross to the device, and the result is
    broadcast again: the layout batches made on the device have (``data_on_device``)."""
    stored = _stored(value)
    copy = stored.contiguous().pin_memory()
    if device is not None:
        copy = copy.to(device, non_blocking=True)
    return copy if stored is value else copy.expand(value.shape)


def _stored(value: Tensor) -> Tensor:
    """``value`` with each broadcast (stride-0, size > 1) dimension cut to size 1: the elements
    it actually holds; ``value`` itself when it has none."""
    broadcast = [d for d in range(value.dim()) if value.stride(d) == 0 and value.shape[d] > 1]
    if not broadcast:
        return value
    return value[tuple(slice(0, 1) if d in broadcast else slice(None) for d in range(value.dim()))]
