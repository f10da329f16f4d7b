"""Sequence data for sequence models: session-parallel or next-item training, prefix evaluation.

Training (Hidasi et al. 2016, section 3.1.1): the B rows of a mini-batch each follow one
sequence (a session, or a user's history); every step feeds each row's current item and asks
for its next one. When a row's sequence ends, the next sequence takes that row over and the
model resets the row's hidden state. There is no padding: a step holds only the rows that still
have a sequence, so the last steps of an epoch shrink as the longest sequences finish. Every
(item, next item) pair of every training sequence is used exactly once per epoch.

Next-item training (SASRec, Kang & McAuley 2018; :class:`~hybridrec.data.batch.WindowBatch`): each
training sequence is cut, from its end, into windows of at most ``max_length`` inputs; a window
feeds its items and asks for the item after each one, so again every (item, next item) pair is
used once per epoch. Windows are shuffled every epoch and left-padded to the batch's longest.
Every position is scored against the whole catalogue, or (``n_negatives`` > 0: the sampled
softmax of eSASRec, RecSys 2025) against its target and S negatives drawn once per batch and
shared by all its positions, uniformly or by popularity^alpha with a logQ correction.

Evaluation rows are (history, target) pairs: the whole prefix before the target is fed through
the model (left-padded to the batch's longest), the target is ranked.
    session protocol   every click after the first of every held-out session
    loo_full/sampled   validation: the user's training sequence -> the held-out val item;
                       test: the training sequence + the val item -> the test item
With ``prefix_cache`` the rows of one sequence (a session's L - 1 prefixes) travel together and
the batch holds the sequence once (:class:`~hybridrec.data.batch.PrefixEvalBatch`): a recurrent
model encodes it in one pass and reads each prefix's state on the way, L steps instead of
L (L - 1) / 2.

This module holds the batch iterables; :mod:`hybridrec.data.batching.sequence_datamodule` builds
them from a prepared folder (SequenceDataModule).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hybridrec.data.batch import EvalBatch, PrefixEvalBatch, RowEvalBatch, SessionBatch, WindowBatch

ORDERS = ("time", "random")
TRAININGS = ("session_parallel", "next_item")
NEGATIVE_SAMPLINGS = ("uniform", "popularity")


def sequences_from_frame(frame: pd.DataFrame, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, item, timestamp) rows -> (items (E,), offsets (n_users + 1,)) with each user's
    items in time order (ties kept in file order)."""
    ordered = frame.sort_values(["user", "timestamp"], kind="stable")
    counts = np.bincount(ordered["user"].to_numpy(np.int64), minlength=n_users)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    return ordered["item"].to_numpy(np.int64, copy=True), offsets


class AliasSampler:
    """Draws from a discrete distribution in O(1) per draw (Walker/Vose alias tables): two
    uniform numbers and two gathers, ~20x faster than a binary search over the CDF here."""

    def __init__(self, weights: np.ndarray) -> None:
        n = weights.size
        prob = weights.astype(np.float64) * n / weights.sum()
        alias = np.arange(n)
        small = [i for i in range(n) if prob[i] < 1.0]
        large = [i for i in range(n) if prob[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            alias[s] = g
            prob[g] -= 1.0 - prob[s]
            (small if prob[g] < 1.0 else large).append(g)
        for i in small + large:  # numerical leftovers are certain picks of themselves
            prob[i] = 1.0
        self.prob = torch.as_tensor(prob, dtype=torch.float32)  # (n,)
        self.alias = torch.as_tensor(alias, dtype=torch.long)  # (n,)

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        device = self.prob.device
        column = torch.randint(
            self.prob.numel(), (count,), generator=generator, device=device
        )  # (count,)
        keep = torch.rand(count, generator=generator, device=device) < self.prob[column]
        return torch.where(keep, column, self.alias[column])

    def to(self, device: torch.device) -> AliasSampler:
        self.prob, self.alias = self.prob.to(device), self.alias.to(device)
        return self


def session_parallel_schedule(lengths: np.ndarray, order: np.ndarray, batch_size: int) -> Any:
    """Which row each sequence runs in and from which step.

    lengths: (n,) sequence lengths; ``order``: the sequence indices in the order they enter.
    A sequence of length L occupies one row for L - 1 steps. Rows are filled greedily: the
    next sequence takes the row that frees first (the lowest row on ties), which is the
    official GRU4Rec iterator's behaviour. Sequences shorter than 2 are skipped.
    Returns (sequence, row, first_step) arrays, one entry per scheduled sequence.
    """
    order = order[lengths[order] >= 2]
    rows = np.empty(order.size, dtype=np.int64)
    first = np.empty(order.size, dtype=np.int64)
    free: list[tuple[int, int]] = [(0, row) for row in range(batch_size)]  # (free at, row)
    for k, seq in enumerate(order.tolist()):
        at, row = heapq.heappop(free)
        rows[k], first[k] = row, at
        heapq.heappush(free, (at + int(lengths[seq]) - 1, row))
    return order, rows, first


class SessionParallelBatches:
    """One epoch of session-parallel training batches (see the module doc).

    Each batch: ``session_inputs`` (B,) current items, ``items`` (B, 1) next items,
    ``session_slots`` (B,) rows, ``session_starts`` (B,) True where a sequence begins,
    ``users`` (B,) sequence indices, ``negatives`` (S,) shared negatives drawn from
    popularity^``sample_alpha`` (training counts), ``column_logq`` (B + S,) the log sampling
    weights of the score columns for logQ correction: log(count) for the in-batch positives,
    alpha * log(count) for the sampled ones (the official GRU4Rec code's correction).
    """

    def __init__(
        self,
        items: Tensor,
        offsets: Tensor,
        batch_size: int,
        n_negatives: int,
        sample_alpha: float,
        seed: int,
        n_items: int,
        order: str = "time",
        first_times: Tensor | None = None,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"datamodule.order={order!r}: expected one of {ORDERS}")
        self.items, self.offsets = items, offsets  # (E,), (n + 1,)
        self.batch_size, self.n_negatives = batch_size, n_negatives
        self.sample_alpha, self.seed, self.order = sample_alpha, seed, order
        self.first_times = first_times  # (n,) start time of each sequence, for order="time"
        counts = torch.bincount(items, minlength=n_items + 1).double()
        counts[0] = 0.0
        self.log_counts = torch.log(counts.clamp(min=1.0)).float()  # (N + 1,)
        weights = counts.pow(sample_alpha) * (counts > 0)  # padding and unseen items: 0
        self.sampler = AliasSampler(weights.numpy())
        self.epoch = 0
        self.epoch_source: Callable[[], int] | None = None
        self._fixed: tuple[Tensor, ...] | None = None  # the "time" schedule, built once

    # -- the schedule ----------------------------------------------------------------------
    def _entry_order(self, epoch: int) -> np.ndarray:
        n = self.offsets.numel() - 1
        if self.order == "random":
            rng = np.random.default_rng(self.seed + epoch)
            return rng.permutation(n)
        if self.first_times is None:
            return np.arange(n)
        return np.lexsort((np.arange(n), self.first_times.cpu().numpy()))

    def _build(self, epoch: int) -> tuple[Tensor, ...]:
        """Flat event arrays sorted by (step, row) plus each step's slice boundaries."""
        offsets = self.offsets.cpu().numpy()
        lengths = np.diff(offsets)
        seqs, rows, first = session_parallel_schedule(
            lengths, self._entry_order(epoch), self.batch_size
        )
        steps_per = lengths[seqs] - 1  # (k,)
        seq_of = np.repeat(seqs, steps_per)  # (P,) one per (input, next) pair
        within = np.arange(seq_of.size) - np.repeat(np.cumsum(steps_per) - steps_per, steps_per)
        step = np.repeat(first, steps_per) + within
        row = np.repeat(rows, steps_per)
        order = np.lexsort((row, step))
        position = (offsets[seq_of] + within)[order]  # index of the input item in ``items``
        step, row, seq_of, within = step[order], row[order], seq_of[order], within[order]
        n_steps = int(step[-1]) + 1 if step.size else 0
        bounds = np.searchsorted(step, np.arange(n_steps + 1))
        device = self.items.device
        return tuple(
            torch.as_tensor(a).to(device) for a in (position, row, seq_of, within == 0, bounds)
        )

    def _schedule(self) -> tuple[Tensor, ...]:
        if self.order == "time":
            if self._fixed is None:
                self._fixed = self._build(0)
            return self._fixed
        return self._build(self.epoch)

    def __len__(self) -> int:
        return int(self._schedule()[-1].numel() - 1)

    def __iter__(self) -> Iterator[SessionBatch]:
        if self.epoch_source is not None:
            self.epoch = self.epoch_source()
        position, row, seq_of, starts, bounds = self._schedule()
        device = self.items.device
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed * 1_000_003 + self.epoch * 101)
        self.epoch += 1
        cuts = bounds.tolist()
        for t in range(len(cuts) - 1):
            part = slice(cuts[t], cuts[t + 1])
            where = position[part]
            targets = self.items[where + 1]  # (B,)
            negatives = self.sampler.sample(self.n_negatives, generator)  # (S,)
            logq = torch.cat(
                [self.log_counts[targets], self.sample_alpha * self.log_counts[negatives]]
            )
            yield SessionBatch(
                users=seq_of[part],
                items=targets.unsqueeze(1),
                negatives=negatives,
                column_logq=logq,
                session_inputs=self.items[where],
                session_slots=row[part],
                session_starts=starts[part],
            )

    def to(self, device: torch.device) -> None:
        self.items, self.offsets = self.items.to(device), self.offsets.to(device)
        self.log_counts = self.log_counts.to(device)
        self.sampler.to(device)
        self._fixed = None


def _ranges(starts: Tensor, ends: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(row, column-from-the-right, flat index) of every item of the ranges [start, end)."""
    counts = ends - starts
    row = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    before = torch.cumsum(counts, 0) - counts
    within = torch.arange(row.numel(), device=counts.device) - before[row]
    from_right = counts[row] - 1 - within  # 0 = the latest item
    return row, from_right, starts[row] + within


def next_item_windows(
    offsets: np.ndarray, max_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input windows [start, end) of flat positions, cut from each sequence's end.

    A sequence at [s, e) has inputs s .. e - 2 (each followed by its target); its windows are
    [max(s, e - 1 - (k + 1) * max_length), e - 1 - k * max_length) for k = 0, 1, ...
    Returns (starts, ends, sequence of each window), one entry per window; sequences shorter
    than 2 give none.
    """
    inputs = np.diff(offsets) - 1  # (n,) inputs per sequence
    n_windows = np.where(inputs > 0, -(-inputs // max_length), 0)  # ceil
    sequence = np.repeat(np.arange(inputs.size), n_windows)
    k = np.arange(sequence.size) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    ends = offsets[sequence + 1] - 1 - k * max_length
    starts = np.maximum(offsets[sequence], ends - max_length)
    return starts, ends, sequence


class NextItemBatches:
    """One epoch of next-item training batches (see the module doc).

    Each batch: ``users`` (B,) the window's sequence, ``history`` (B, T) the inputs
    left-padded with 0, ``history_lengths`` (B,), ``sequence_targets`` (B, T) the item after
    each input (0 under padding).

    ``bucket``: the shuffled windows are sorted by length within groups of ``bucket_batches``
    batches before being cut into batches, and the batches are then shuffled. Sequence lengths
    are skewed (Amazon Scientific: mean 5.6, a few at 50), so without it most of a batch's
    (B, T) positions are padding; with it a batch holds windows of similar length and an epoch
    encodes several times fewer positions (the same windows, in a less random mix).

    ``train_columns`` (N + 1,) bool, when given, rides on every batch: the only items the
    loss scores (the cold_items protocol keeps cold items out of training as negatives too).

    ``n_negatives`` > 0: every batch also holds ``sequence_negatives`` (S,), drawn afresh for
    each batch and scored by every position, so the scores are (R, 1 + S) instead of
    (R, N + 1) (see :mod:`hybridrec.data.batch`). They are drawn among the items of the
    training sequences (and ``train_columns``), with replacement: ``uniform``, or by
    ``popularity``: count^``sample_alpha``; then ``column_logq`` (R, 1 + S) holds
    ``sample_alpha * log(count)`` of each column's item, the target's included (the log of
    its sampling probability up to a constant, for the loss's logQ correction). Uniform
    sampling needs no correction (a constant shift): ``column_logq`` stays None. The draws
    come from their own generator, seeded by the seed and the epoch, so the windows and
    batches are those of ``n_negatives=0`` and an epoch's negatives are reproducible.
    """

    bucket_batches = 64

    def __init__(
        self,
        items: Tensor,
        offsets: Tensor,
        batch_size: int,
        max_length: int,
        seed: int,
        bucket: bool = True,
        train_columns: Tensor | None = None,
        n_negatives: int = 0,
        sampling: str = "uniform",
        sample_alpha: float = 1.0,
        n_items: int | None = None,
    ) -> None:
        if max_length < 1:
            raise ValueError(f"datamodule.max_length={max_length}: expected >= 1")
        if n_negatives < 0:
            raise ValueError(f"datamodule.negatives={n_negatives}: expected >= 0")
        if sampling not in NEGATIVE_SAMPLINGS:
            raise ValueError(
                f"datamodule.negative_sampling={sampling!r}: expected one of {NEGATIVE_SAMPLINGS}"
            )
        self.items, self.offsets = items, offsets  # (E,), (n + 1,)
        self.batch_size, self.max_length, self.seed = batch_size, max_length, seed
        self.bucket, self.train_columns = bucket, train_columns
        starts, ends, sequence = next_item_windows(offsets.cpu().numpy(), max_length)
        self.starts, self.ends = torch.as_tensor(starts), torch.as_tensor(ends)  # (W,)
        self.sequence = torch.as_tensor(sequence)  # (W,)
        self.epoch = 0
        self.epoch_source: Callable[[], int] | None = None
        self.n_negatives, self.sampling, self.sample_alpha = n_negatives, sampling, sample_alpha
        self.sampler: AliasSampler | None = None
        self.item_logq: Tensor | None = None  # (N + 1,) popularity: alpha * log(count)
        if n_negatives > 0:
            size = int(items.max().item()) + 1 if n_items is None else n_items + 1
            counts = torch.bincount(items.cpu(), minlength=size).double()  # (N + 1,)
            counts[0] = 0.0  # padding
            if train_columns is not None:
                counts = counts * train_columns.cpu()
            if not (counts > 0).any():
                raise ValueError("datamodule.negatives > 0 but no training item to sample")
            if sampling == "popularity":
                weights = counts.pow(sample_alpha) * (counts > 0)
                self.item_logq = (sample_alpha * torch.log(counts.clamp(min=1.0))).float()
            else:
                weights = (counts > 0).double()
            self.sampler = AliasSampler(weights.numpy())

    def __len__(self) -> int:
        return -(-self.starts.numel() // self.batch_size)

    def __iter__(self) -> Iterator[WindowBatch]:
        if self.epoch_source is not None:
            self.epoch = self.epoch_source()
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch * 101)
        self.epoch += 1
        order = torch.randperm(self.starts.numel(), generator=generator)  # (W,)
        if self.bucket:
            lengths = (self.ends - self.starts).cpu()[order]
            group = self.batch_size * self.bucket_batches
            order = torch.cat(
                [
                    part[torch.argsort(length, stable=True)]
                    for part, length in zip(order.split(group), lengths.split(group), strict=True)
                ]
            )
        batches = order.to(self.starts.device).split(self.batch_size)
        sampling = None  # the negatives' own stream: the windows never depend on them
        if self.sampler is not None:
            sampling = torch.Generator(device=self.sampler.prob.device)
            sampling.manual_seed(self.seed * 1_000_003 + self.epoch * 101 + 7_919)
        for b in torch.randperm(len(batches), generator=generator).tolist():
            pick = batches[b]
            starts, ends = self.starts[pick], self.ends[pick]  # (B,)
            row, from_right, index = _ranges(starts, ends)
            lengths = ends - starts
            width = int(lengths.max().item())
            shape = (pick.numel(), width)
            history = torch.zeros(shape, dtype=torch.long, device=starts.device)
            targets = torch.zeros(shape, dtype=torch.long, device=starts.device)
            column = width - 1 - from_right
            history[row, column] = self.items[index]
            targets[row, column] = self.items[index + 1]
            negatives, logq = None, None
            if self.sampler is not None and sampling is not None:
                negatives = self.sampler.sample(self.n_negatives, sampling)  # (S,)
                if self.item_logq is not None:  # (R, 1 + S): the target, then the negatives
                    positive = self.item_logq[targets[targets > 0]].unsqueeze(1)  # (R, 1)
                    shared = self.item_logq[negatives].unsqueeze(0)  # (1, S)
                    logq = torch.cat([positive, shared.expand(positive.shape[0], -1)], 1)
            yield WindowBatch(
                users=self.sequence[pick],
                history=history,
                history_lengths=lengths,
                sequence_targets=targets,
                train_columns=self.train_columns,
                sequence_negatives=negatives,
                column_logq=logq,
            )

    def to(self, device: torch.device) -> None:
        names = ("items", "offsets", "starts", "ends", "sequence", "train_columns", "item_logq")
        for name in names:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        if self.sampler is not None:
            self.sampler.to(device)


def _by_sequence(starts: Tensor, ends: Tensor) -> tuple[Tensor, int]:
    """Row order of the prefix layout: rows that share a start are prefixes of one sequence
    (``flat[start:longest end]``); sequences by length (short ones together), then start; a
    sequence's rows by end. Returns the (R,) permutation and the items of all sequences."""
    first, group = torch.unique(starts, return_inverse=True)  # (G,), (R,)
    longest = first.clone().scatter_reduce_(0, group, ends, "amax")  # (G,)
    span = (longest - first)[group]  # (R,) length of each row's sequence
    order = torch.argsort(ends, stable=True)
    order = order[torch.argsort(starts[order], stable=True)]
    return order[torch.argsort(span[order], stable=True)], int((longest - first).sum())


class PrefixBatches:
    """Evaluation rows (history = ``flat[start:end]``, target), batched by history length.

    ``candidates`` (R, 1 + K): sampled evaluation (column 0 the target), else full ranking
    with ``targets`` (R,) one per row, or (R, P) several, 0-padded; ``mask_known`` puts every
    history item into ``exclude``. ``max_history`` keeps the most recent items only (0 = the
    whole prefix). ``cold`` (R,) and ``restrict_to`` (N + 1,): the cold_items protocol's row
    flags and cold-only candidates (see :class:`hybridrec.data.batching.pairs.EvalBatches`);
    ``also_exclude`` (R, Q), 0-padded: more items to leave out of each row's ranking.

    ``prefix_cache``: :class:`~hybridrec.data.batch.PrefixEvalBatch` batches (see the module
    doc), else :class:`~hybridrec.data.batch.RowEvalBatch`: rows are
    ordered by sequence instead of by history length, and each batch holds its sequences once.
    Only where that is the same function: with ``max_history`` > 0 a truncated prefix no longer
    starts where its sequence does, so when any row's history is longer than ``max_history``
    the batches keep the per-row layout. And only where it saves work: when the sequences hold
    as many items as the rows' histories (leave-one-out: one row per sequence) the per-row
    layout is kept too. ``self.prefix_cache`` says which layout is used.
    """

    def __init__(
        self,
        flat: Tensor,
        starts: Tensor,
        ends: Tensor,
        targets: Tensor,
        users: Tensor,
        batch_size: int,
        candidates: Tensor | None = None,
        mask_known: bool = False,
        max_history: int = 0,
        cold: Tensor | None = None,
        restrict_to: Tensor | None = None,
        prefix_cache: bool = False,
        also_exclude: Tensor | None = None,
    ) -> None:
        lengths = ends - starts  # (R,)
        longest = int(lengths.max().item()) if lengths.numel() else 0
        by_length = torch.argsort(lengths, stable=True)  # short histories together
        self.prefix_cache = False
        if prefix_cache and (max_history == 0 or longest <= max_history):
            by_sequence, encoded = _by_sequence(starts, ends)  # a sequence's rows together
            if encoded < int(lengths.sum()):
                by_length, self.prefix_cache = by_sequence, True
        self.flat = flat
        self.starts, self.ends = starts[by_length], ends[by_length]
        self.targets, self.users = targets[by_length], users[by_length]
        self.candidates = None if candidates is None else candidates[by_length]
        self.cold = None if cold is None else cold[by_length]
        self.also_exclude = None if also_exclude is None else also_exclude[by_length]
        self.restrict_to = restrict_to
        self.batch_size, self.mask_known, self.max_history = batch_size, mask_known, max_history

    def __len__(self) -> int:
        return -(-self.targets.shape[0] // self.batch_size)

    def __iter__(self) -> Iterator[EvalBatch]:
        for lo in range(0, self.targets.shape[0], self.batch_size):
            part = slice(lo, lo + self.batch_size)
            starts, ends = self.starts[part], self.ends[part]
            ranges = None  # (row, from_right, flat index) of every history item
            if self.mask_known or not self.prefix_cache:
                ranges = _ranges(starts, ends)
            batch: EvalBatch
            if self.prefix_cache:
                batch = self._prefix_layout(starts, ends, self.users[part])
            else:
                assert ranges is not None
                batch = self._row_layout(starts, ends, self.users[part], ranges)
            if ranges is not None and self.mask_known:
                row, _, index = ranges
                exclude = torch.stack([row, self.flat[index]])
            else:
                exclude = torch.zeros(2, 0, dtype=torch.long, device=starts.device)
            if self.also_exclude is not None:  # (row, item) of the rows' extra exclusions
                more = self.also_exclude[part]
                rows, columns = torch.nonzero(more, as_tuple=True)
                exclude = torch.cat([exclude, torch.stack([rows, more[rows, columns]])], 1)
            if self.candidates is not None:
                items = self.candidates[part]
                batch.items = items
                batch.labels = (torch.arange(items.shape[1], device=items.device) == 0).float()
                batch.labels = batch.labels.expand(items.shape[0], -1)
            else:
                targets = self.targets[part]
                batch.targets = targets if targets.dim() == 2 else targets.unsqueeze(1)
                batch.exclude = exclude
                batch.cold = None if self.cold is None else self.cold[part]
                batch.restrict_to = self.restrict_to
            yield batch

    def _row_layout(
        self, starts: Tensor, ends: Tensor, users: Tensor, ranges: tuple[Tensor, Tensor, Tensor]
    ) -> RowEvalBatch:
        """history (B, T): each row's (latest ``max_history``) items, left-padded."""
        row, from_right, index = ranges
        lengths = ends - starts
        if self.max_history > 0:
            lengths = lengths.clamp(max=self.max_history)
        width = max(int(lengths.max().item()) if lengths.numel() else 1, 1)
        history = torch.zeros(starts.numel(), width, dtype=torch.long, device=starts.device)
        keep = from_right < width
        history[row[keep], width - 1 - from_right[keep]] = self.flat[index[keep]]
        return RowEvalBatch(users=users, history=history, history_lengths=lengths)

    def _prefix_layout(self, starts: Tensor, ends: Tensor, users: Tensor) -> PrefixEvalBatch:
        """prefix_sequences (S, T): each start's longest row once, left-padded; a sequence's
        rows are contiguous here (see :func:`_by_sequence`), also when a batch cuts one."""
        first, rows = torch.unique_consecutive(starts, return_inverse=True)  # (S,), (B,)
        last = first.clone().scatter_reduce_(0, rows, ends, "amax")  # (S,)
        row, from_right, index = _ranges(first, last)
        width = max(int((last - first).max().item()) if first.numel() else 1, 1)
        sequences = torch.zeros(first.numel(), width, dtype=torch.long, device=starts.device)
        sequences[row, width - 1 - from_right] = self.flat[index]
        return PrefixEvalBatch(
            users=users, prefix_sequences=sequences, prefix_rows=rows, prefix_lengths=ends - starts
        )

    def to(self, device: torch.device) -> None:
        names = (
            "flat",
            "starts",
            "ends",
            "targets",
            "users",
            "candidates",
            "cold",
            "restrict_to",
            "also_exclude",
        )
        for name in names:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
