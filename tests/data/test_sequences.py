"""Session-parallel batching and prefix evaluation rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import random_sequences
from hybridrec.data.batching.sequences import (
    AliasSampler,
    PrefixBatches,
    SessionParallelBatches,
    sequences_from_frame,
    session_parallel_schedule,
)

_sequences = random_sequences


def _batches(lengths: list[int], batch_size: int, **kwargs: object) -> SessionParallelBatches:
    items, offsets = _sequences(lengths)
    return SessionParallelBatches(
        items, offsets, batch_size, n_negatives=5, sample_alpha=0.5, seed=0, n_items=30, **kwargs
    )


def _official_schedule(lengths: list[int], batch_size: int) -> set[tuple[int, int, int, int]]:
    """The official GRU4Rec iterator's loop, written out step by step:
    {(step, row, sequence, position in the sequence)}."""
    queue = [s for s in range(len(lengths)) if lengths[s] >= 2]
    rows: list[list[int] | None] = [None] * batch_size  # [sequence, next position]
    out: set[tuple[int, int, int, int]] = set()
    step = 0
    while True:
        for r in range(batch_size):
            if rows[r] is None and queue:
                rows[r] = [queue.pop(0), 0]
        if all(r is None for r in rows):
            return out
        for r, state in enumerate(rows):
            if state is None:
                continue
            seq, pos = state
            out.add((step, r, seq, pos))
            state[1] += 1
            if state[1] == lengths[seq] - 1:
                rows[r] = None
        step += 1


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7])
def test_schedule_matches_the_official_iterator(batch_size: int) -> None:
    lengths = [3, 2, 5, 1, 4, 2, 6, 2, 3, 0, 2]
    batches = _batches(lengths, batch_size, order="random")
    batches.order = "time"  # sequences enter in index order (no first times given)
    position, row, seq, _, bounds = batches._schedule()
    offsets = batches.offsets
    ours = set()
    for t in range(bounds.numel() - 1):
        for i in range(int(bounds[t]), int(bounds[t + 1])):
            s = int(seq[i])
            ours.add((t, int(row[i]), s, int(position[i] - offsets[s])))
    assert ours == _official_schedule(lengths, batch_size)


def test_every_pair_used_once_and_states_reset_where_sequences_start() -> None:
    lengths = [4, 2, 7, 3, 1, 5, 2, 2, 9, 3]
    batches = _batches(lengths, batch_size=3)
    items, offsets = batches.items, batches.offsets
    seen: list[tuple[int, int]] = []
    current: dict[int, tuple[int, int]] = {}  # slot -> (sequence, last position)
    n_steps = 0
    for batch in batches:
        n_steps += 1
        assert batch.session_slots is not None and batch.session_starts is not None
        assert batch.session_inputs is not None and batch.items is not None
        assert batch.session_slots.unique().numel() == len(batch)  # a slot once per step
        assert batch.negatives is not None and batch.negatives.shape == (5,)
        assert batch.column_logq is not None and batch.column_logq.shape == (len(batch) + 5,)
        for i in range(len(batch)):
            slot, seq = int(batch.session_slots[i]), int(batch.users[i])
            start = int(offsets[seq])
            matches = (items[start:-1] == batch.session_inputs[i]).nonzero()
            assert matches.numel() > 0
            if bool(batch.session_starts[i]):
                pos = 0
                assert batch.session_inputs[i] == items[start]
            else:  # the slot continues its sequence at the next position
                prev_seq, prev_pos = current[slot]
                assert prev_seq == seq
                pos = prev_pos + 1
            assert batch.session_inputs[i] == items[start + pos]
            assert batch.items[i, 0] == items[start + pos + 1]
            current[slot] = (seq, pos)
            seen.append((seq, pos))
    expected = [(s, p) for s, n in enumerate(lengths) for p in range(n - 1)]
    assert sorted(seen) == expected  # no (input, next) pair lost or repeated
    assert len(batches) == n_steps


def test_no_padding_and_the_tail_shrinks() -> None:
    sizes = [len(b) for b in _batches([2, 2, 2, 10], batch_size=3)]
    assert sizes[0] == 3 and sizes[-1] == 1 and min(sizes) >= 1
    assert sum(sizes) == 1 + 1 + 1 + 9


def test_time_order_is_fixed_random_order_reshuffles() -> None:
    lengths = [3] * 12
    fixed = _batches(lengths, 4, first_times=torch.arange(12.0).flip(0))
    first = [b.users.tolist() for b in fixed][0]
    assert first == [11, 10, 9, 8]  # earliest sessions first
    shuffled = _batches(lengths, 4, order="random")
    epoch0 = [b.users.tolist() for b in shuffled][0]
    epoch1 = [b.users.tolist() for b in shuffled][0]
    assert epoch0 != epoch1


def test_alias_sampler_follows_the_weights() -> None:
    weights = np.array([0.0, 1.0, 2.0, 7.0])
    sampler = AliasSampler(weights)
    draws = sampler.sample(200_000, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).double() / draws.numel()
    assert freq[0] == 0
    assert torch.allclose(freq, torch.as_tensor(weights / weights.sum()), atol=0.005)


def test_negatives_are_never_padding_and_logq_matches_counts() -> None:
    batches = _batches([5, 6, 7], batch_size=2)
    counts = torch.bincount(batches.items, minlength=31).double()
    for batch in batches:
        assert batch.negatives is not None and batch.column_logq is not None
        assert batch.items is not None
        assert (batch.negatives > 0).all() and (counts[batch.negatives] > 0).all()
        expected = torch.cat(
            [counts[batch.items[:, 0]].log(), 0.5 * counts[batch.negatives].log()]
        ).float()
        assert torch.allclose(batch.column_logq, expected)


def test_schedule_skips_sequences_that_teach_nothing() -> None:
    seqs, rows, first = session_parallel_schedule(np.array([1, 0, 3]), np.arange(3), 2)
    assert seqs.tolist() == [2] and rows.tolist() == [0] and first.tolist() == [0]


def test_prefix_rows_left_pad_and_mask() -> None:
    flat = torch.tensor([5, 6, 7, 8, 9])
    batches = PrefixBatches(
        flat,
        starts=torch.tensor([0, 3]),
        ends=torch.tensor([3, 5]),
        targets=torch.tensor([1, 2]),
        users=torch.tensor([0, 1]),
        batch_size=8,
        mask_known=True,
    )
    (batch,) = list(batches)
    # rows come sorted by history length: user 1 (2 items) first
    assert batch.users.tolist() == [1, 0]
    assert batch.history is not None and batch.history.tolist() == [[0, 8, 9], [5, 6, 7]]
    assert batch.targets is not None and batch.targets.tolist() == [[2], [1]]
    assert batch.exclude is not None
    assert sorted(map(tuple, batch.exclude.T.tolist())) == [
        (0, 8), (0, 9), (1, 5), (1, 6), (1, 7)
    ]  # fmt: skip


def test_prefix_rows_max_history_and_candidates() -> None:
    flat = torch.tensor([5, 6, 7])
    batches = PrefixBatches(
        flat,
        starts=torch.tensor([0]),
        ends=torch.tensor([3]),
        targets=torch.tensor([4]),
        users=torch.tensor([0]),
        batch_size=8,
        candidates=torch.tensor([[4, 1, 2]]),
        max_history=2,
    )
    (batch,) = list(batches)
    assert batch.history is not None and batch.history.tolist() == [[6, 7]]
    assert batch.items is not None and batch.items.tolist() == [[4, 1, 2]]
    assert batch.labels is not None and batch.labels.tolist() == [[1.0, 0.0, 0.0]]


def test_sequences_from_frame_orders_by_time() -> None:
    frame = pd.DataFrame(
        {"user": [1, 0, 1, 0], "item": [3, 4, 5, 6], "timestamp": [2.0, 1.0, 1.0, 0.0]}
    )
    items, offsets = sequences_from_frame(frame, n_users=3)
    assert items.tolist() == [6, 4, 5, 3] and offsets.tolist() == [0, 2, 4, 4]
