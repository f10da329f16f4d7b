"""RecBatch: the one batch type every model, loss and metric reads.

Shapes use B = batch rows, C = candidates per row, T = history length, P = positives per row,
S = negatives shared by every row. Item indices start at 1; index 0 is padding everywhere
(candidates, history, targets).

Three training layouts:
  per-row     ``items`` (B, 1 + K): column 0 the positive, then the row's own negatives
              (the NCF models); scores are (B, 1 + K), the positive in column 0.
  shared      ``items`` (B, 1) the positives and ``negatives`` (S,) scored by every row
              (session-parallel GRU4Rec); scores are (B, B + S): every row scores every row's
              positive, then the shared negatives, so row i's positive is in column i.
  sequence    ``history`` (B, T) inputs and ``sequence_targets`` (B, T) the item after each
              input (0 = no target there), next-item training of SASRec-style models; scores
              are (R, N + 1) for the R positions with a target (row-major order) against the
              whole catalogue, so a row's positive column is its target item itself. With
              ``sequence_negatives`` (S,) -- negatives shared by every position of the batch --
              the scores are (R, 1 + S) instead: each position's target in column 0, then the
              S shared negatives (sampled softmax; ``column_logq`` (R, 1 + S) when the
              sampling was not uniform).

Two evaluation layouts (full ranking with ``targets``, or sampled with ``items``):
  per-row     ``history`` (B, T): each row's own prefix, left-padded.
  prefix      ``prefix_sequences`` (S, T) holds each sequence once, left-padded, and row b's
              history is the first ``prefix_lengths[b]`` items of sequence ``prefix_rows[b]``
              (the session protocol: every position of a session is a row). A recurrent model
              runs each sequence once and reads every row's state on the way
              (``GRU4Rec.user_state``); :meth:`RecBatch.with_row_histories` gives any other
              model the per-row layout of the same rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RecBatch:
    users: Tensor  # (B,) long, user indices in [0, n_users)
    items: Tensor | None = None  # (B, C) long, candidates; column 0 is the positive where one is
    labels: Tensor | None = None  # (B, C) float, 1 for positives, 0 for sampled negatives
    history: Tensor | None = None  # (B, T) long, recent items, left-padded with 0
    history_lengths: Tensor | None = None  # (B,) long
    targets: Tensor | None = None  # (B, P) long, held-out items for full ranking, 0-padded
    exclude: Tensor | None = None  # (2, E) long, (row, item) pairs masked in full ranking
    cold: Tensor | None = None  # (B,) bool, the row's targets are cold items (cold_items)
    # (N + 1,) bool, the only items a cold row ranks among (``candidates: cold``); or
    # (2, N + 1): row 0 what a warm row ranks among, row 1 a cold row (``candidates: slice``)
    restrict_to: Tensor | None = None
    # -- session-parallel training (see hybridrec.data.batching.sequences) ----------------
    negatives: Tensor | None = None  # (S,) long, negatives shared by every row (shared layout)
    # (B + S,) float, log sampling weight of each score column; (R, 1 + S) in the sampled
    # sequence layout (each position's own target in column 0)
    column_logq: Tensor | None = None
    session_inputs: Tensor | None = None  # (B,) long, the item each session row has just seen
    session_slots: Tensor | None = None  # (B,) long, the hidden-state slot each row continues
    session_starts: Tensor | None = None  # (B,) bool, the row starts a session: reset its state
    # -- next-item training over whole sequences (sequence layout) -------------------------
    sequence_targets: Tensor | None = None  # (B, T) long, the item after history[:, t]; 0 = none
    train_columns: Tensor | None = None  # (N + 1,) bool, items the loss may score (None = all)
    sequence_negatives: Tensor | None = None  # (S,) long, negatives shared by every position
    # -- evaluation with shared prefixes (prefix layout) ------------------------------------
    prefix_sequences: Tensor | None = None  # (S, T) long, each sequence once, left-padded with 0
    prefix_rows: Tensor | None = None  # (B,) long, the sequence whose prefix is row b's history
    prefix_lengths: Tensor | None = None  # (B,) long, items of that sequence in row b's history

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RecBatch:
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

    def pin_memory(self) -> RecBatch:
        """The batch with every tensor field in page-locked host memory (see :func:`_pinned`)."""
        pinned = {
            f.name: (_pinned(v) if isinstance(v, Tensor) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }
        return RecBatch(**pinned)

    @property
    def shared_layout(self) -> bool:
        """True when the scores are (B, B + S) with row i's positive in column i."""
        return self.negatives is not None

    @property
    def sequence_layout(self) -> bool:
        """True when the scores have one row per target of ``sequence_targets``: (R, N + 1),
        or (R, 1 + S) with ``sequence_negatives`` (:attr:`sampled_sequence`)."""
        return self.sequence_targets is not None

    @property
    def sampled_sequence(self) -> bool:
        """True when the sequence layout's scores are (R, 1 + S): target, shared negatives."""
        return self.sequence_targets is not None and self.sequence_negatives is not None

    def non_candidates(self) -> Tensor | None:
        """(B, N + 1) True where a cold_items row does not rank an item (``restrict_to``);
        None when every row ranks every item."""
        if self.cold is None or self.restrict_to is None:
            return None
        if self.restrict_to.dim() == 1:  # candidates: cold -> cold rows among the cold items
            return self.cold.unsqueeze(1) & ~self.restrict_to.unsqueeze(0)
        return ~self.restrict_to[self.cold.long()]  # slice: each row among its own kind

    def positive_items(self) -> Tensor:
        """(B, 1) or (R, 1): the positive item of each scoring row."""
        if self.sequence_targets is not None:
            return self.sequence_targets[self.sequence_targets > 0].unsqueeze(1)  # (R, 1)
        self.require("items")
        assert self.items is not None
        return self.items[:, :1]  # (B, 1)

    def positive_columns(self) -> Tensor:
        """Column of each scoring row's positive in its training scores (see the module doc):
        (B,) in the per-row and shared layouts, (R,) in the sequence one: the target items
        (full catalogue), or 0 (sampled: the target first)."""
        if self.sequence_targets is not None:
            targets = self.sequence_targets[self.sequence_targets > 0]  # (R,)
            return torch.zeros_like(targets) if self.sequence_negatives is not None else targets
        if self.shared_layout:
            return torch.arange(len(self), device=self.users.device)
        return torch.zeros(len(self), dtype=torch.long, device=self.users.device)

    def with_row_histories(self) -> RecBatch:
        """The per-row layout of a prefix-layout batch (itself otherwise): ``history`` (B, W),
        W = the longest prefix (at least 1), each row's prefix left-padded with 0, and
        ``history_lengths`` (B,) -- the batch the prefix rows would have had as their own."""
        sequences, rows, lengths = self.prefix_sequences, self.prefix_rows, self.prefix_lengths
        if sequences is None:
            return self
        assert rows is not None and lengths is not None
        width = max(int(lengths.max().item()) if lengths.numel() else 1, 1)
        column = torch.arange(width, device=lengths.device)  # (W,)
        # row b's column c holds item i = lengths[b] - W + c of its prefix (none where i < 0);
        # sequence s keeps its items in the last (sequences[s] > 0).sum() columns
        item = lengths.unsqueeze(1) - width + column  # (B, W)
        first = sequences.shape[1] - (sequences > 0).sum(1)  # (S,) column of each first item
        source = (first[rows].unsqueeze(1) + item).clamp(min=0)  # (B, W)
        history = torch.where(item >= 0, sequences[rows.unsqueeze(1), source], 0)
        return dataclasses.replace(
            self,
            history=history,
            history_lengths=lengths,
            prefix_sequences=None,
            prefix_rows=None,
            prefix_lengths=None,
        )

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def require(self, *names: str) -> None:
        """Raise a clear error when a model or loss needs a field this batch lacks."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"RecBatch is missing field(s) {missing} needed here")


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
