"""Next-item training windows (SASRec-style): window cuts, every pair once per epoch, padding,
bucketing, seeding, and the data module's next_item mode on a prepared folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import random_sequences
from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
from hybridrec.data.batching.sequences import NextItemBatches, next_item_windows
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.readers import read_synthetic

_sequences = random_sequences


def test_windows_are_cut_from_the_end() -> None:
    # sequences at [0, 7), [7, 8) (one item: no window), [8, 11)
    starts, ends, sequence = next_item_windows(np.array([0, 7, 8, 11]), max_length=3)
    # 6 inputs (0..5) -> [3, 6) then [0, 3); 2 inputs (8, 9) -> [8, 10)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == [(3, 6), (0, 3), (8, 10)]
    assert sequence.tolist() == [0, 0, 2]
    starts, ends, _ = next_item_windows(np.array([0, 7]), max_length=4)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == [(2, 6), (0, 2)]


@pytest.mark.parametrize("bucket", [True, False])
def test_every_pair_once_per_epoch_with_left_padding(bucket: bool) -> None:
    lengths = [7, 1, 3, 12, 2, 5, 9]
    items, offsets = _sequences(lengths)
    batches = NextItemBatches(items, offsets, batch_size=3, max_length=4, seed=0, bucket=bucket)
    expected: Counter[tuple[int, int, int]] = Counter()  # (sequence start, input, next)
    for s, e in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        for j in range(s, e - 1):
            expected[(s, int(items[j]), int(items[j + 1]))] += 1
    seen: Counter[tuple[int, int, int]] = Counter()
    n_batches = 0
    for batch in batches:
        n_batches += 1
        assert batch.history is not None and batch.sequence_targets is not None
        assert batch.history_lengths is not None
        assert batch.history.shape == batch.sequence_targets.shape
        assert batch.history.shape[1] <= 4 and len(batch) <= 3
        for row in range(len(batch)):
            length = int(batch.history_lengths[row])
            hist, targets = batch.history[row], batch.sequence_targets[row]
            width = hist.numel()
            # left padding: zeros first, then the window; targets only under real inputs
            assert not hist[: width - length].any() and not targets[: width - length].any()
            assert (hist[width - length :] > 0).all() and (targets[width - length :] > 0).all()
            # the target after each input is the next input (within the window)
            assert torch.equal(targets[width - length : -1], hist[width - length + 1 :])
            start = int(offsets[batch.users[row]])
            for a, b in zip(hist[width - length :], targets[width - length :], strict=True):
                seen[(start, int(a), int(b))] += 1
    assert n_batches == len(batches)
    assert seen == expected  # every (input, next) pair of every sequence exactly once
    assert batch.positive_columns().numel() == int((batch.sequence_targets > 0).sum())


def test_seeded_shuffle_and_bucketing_cuts_padding() -> None:
    lengths = [2] * 60 + [30] * 6
    items, offsets = _sequences(lengths)

    def epoch(bucket: bool, seed: int = 0) -> list[torch.Tensor]:
        batches = NextItemBatches(items, offsets, 8, max_length=20, seed=seed, bucket=bucket)
        return [b.history for b in batches if b.history is not None]

    first, again = epoch(True), epoch(True)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(
        a.shape == b.shape and torch.equal(a, b)
        for a, b in zip(first, epoch(True, seed=1), strict=True)
    )
    padded = sum(h.numel() for h in epoch(False))
    bucketed = sum(h.numel() for h in first)
    assert bucketed < padded / 3  # short windows are no longer padded to the long ones


def test_epochs_reshuffle() -> None:
    items, offsets = _sequences([5] * 20)
    batches = NextItemBatches(items, offsets, 4, max_length=10, seed=0)
    one = [b.users.tolist() for b in batches]
    two = [b.users.tolist() for b in batches]
    assert one != two and sorted(sum(one, [])) == sorted(sum(two, []))


def test_bad_max_length() -> None:
    items, offsets = _sequences([3])
    with pytest.raises(ValueError, match="max_length"):
        NextItemBatches(items, offsets, 4, max_length=0, seed=0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_synthetic(n_users=50, n_items=40, seed=2, ratings_per_rater=20)
    folder = tmp_path_factory.mktemp("next_item") / "prep"
    prepare(raw, LeaveOneOut(eval_mode="full"), folder)
    return folder


def test_datamodule_next_item_mode(prepared: Path) -> None:
    dm = SequenceDataModule(prepared, training="next_item", batch_size=16, max_length=5)
    dm.setup()
    targets = sum(
        int((b.sequence_targets > 0).sum())
        for b in dm.train_dataloader()
        if b.sequence_targets is not None
    )
    items, offsets = dm.train_sequences()
    lengths = torch.diff(offsets)
    assert targets == int((lengths - 1).clamp(min=0).sum())  # one per (input, next) pair
    batch = next(iter(dm.val_dataloader()))
    assert batch.history is not None and batch.targets is not None  # prefix rows, as before
    with pytest.raises(ValueError, match="datamodule.training"):
        SequenceDataModule(prepared, training="windows")


# -- sampled negatives (eSASRec's sampled softmax) --------------------------------------------
def _epoch_fields(batches: NextItemBatches) -> list[tuple[torch.Tensor, ...]]:
    out = []
    for b in batches:
        assert b.history is not None and b.sequence_targets is not None
        out.append((b.users, b.history, b.sequence_targets))
    return out


def test_negatives_zero_is_the_full_catalogue_batches() -> None:
    """negatives=0: no sampled fields, and the windows of every batch are those of a sampled
    epoch (the negatives draw from their own generator)."""
    items, offsets = _sequences([7, 1, 3, 12, 2, 5, 9, 4] * 3)
    plain = NextItemBatches(items, offsets, 4, max_length=5, seed=3)
    sampled = NextItemBatches(items, offsets, 4, max_length=5, seed=3, n_negatives=6)
    for batch in NextItemBatches(items, offsets, 4, max_length=5, seed=3):
        assert batch.sequence_negatives is None and batch.column_logq is None
        assert not batch.sampled
    for one, two in zip(_epoch_fields(plain), _epoch_fields(sampled), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_negatives_are_shared_by_the_batch_and_reproducible_per_epoch() -> None:
    items, offsets = _sequences([7, 3, 12, 2, 5, 9] * 4)
    seen = set(items.tolist())

    def epochs(n: int) -> list[list[torch.Tensor]]:
        batches = NextItemBatches(items, offsets, 4, max_length=5, seed=1, n_negatives=8)
        out = []
        for _ in range(n):
            drawn = []
            for b in batches:
                assert b.sequence_negatives is not None and b.sampled
                assert b.sequence_negatives.shape == (8,)  # (S,): one set for every position
                assert set(b.sequence_negatives.tolist()) <= seen  # training items only
                assert b.column_logq is None  # uniform: no correction needed
                assert torch.equal(b.positive_columns(), torch.zeros_like(b.positive_columns()))
                drawn.append(b.sequence_negatives)
            out.append(drawn)
        return out

    first, again = epochs(2), epochs(2)
    for a, b in zip(first, again, strict=True):  # the same seed: the same draws, epoch by epoch
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(first[0], first[1], strict=True))
    assert len({tuple(n.tolist()) for n in first[0]}) == len(first[0])  # fresh per batch
    # an epoch set by the trainer (epoch_source) draws that epoch's negatives
    batches = NextItemBatches(items, offsets, 4, max_length=5, seed=1, n_negatives=8)
    batches.epoch_source = lambda: 1
    drawn = [b.sequence_negatives for b in batches]
    assert all(torch.equal(x, y) for x, y in zip(drawn, first[1], strict=True))


def test_uniform_and_popularity_sampling_distributions() -> None:
    """uniform: every training item about equally often; popularity^alpha: in proportion to
    count^alpha; column_logq = alpha * log(count) of the target and of each negative."""
    rng = np.random.default_rng(0)
    # item k (1..20) appears about k^2 times: strongly skewed counts
    pool = np.repeat(np.arange(1, 21), np.arange(1, 21) ** 2)
    flat = torch.as_tensor(rng.permutation(pool))
    offsets = torch.arange(0, flat.numel() + 1, 10)
    flat = flat[: int(offsets[-1])]
    counts = torch.bincount(flat, minlength=21).double()
    draws = 200

    def frequencies(sampling: str, alpha: float = 1.0) -> torch.Tensor:
        total = torch.zeros(21, dtype=torch.float64)
        batches = NextItemBatches(
            flat, offsets, 16, 5, seed=0, n_negatives=draws, sampling=sampling, sample_alpha=alpha
        )
        for b in batches:
            assert b.sequence_negatives is not None and b.sequence_targets is not None
            total += torch.bincount(b.sequence_negatives, minlength=21)
            if sampling == "popularity":
                assert b.column_logq is not None
                targets = b.sequence_targets[b.sequence_targets > 0]
                columns = torch.cat(
                    [targets.unsqueeze(1), b.sequence_negatives.expand(targets.numel(), -1)], 1
                )
                expected = (alpha * torch.log(counts[columns])).float()
                torch.testing.assert_close(b.column_logq, expected)  # (R, 1 + S)
        return total / total.sum()

    present = counts > 0
    uniform = frequencies("uniform")
    assert uniform[0] == 0 and (uniform[present] - 1 / int(present.sum())).abs().max() < 0.01
    for alpha in (1.0, 0.5):
        weights = counts.pow(alpha) * present
        expected = weights / weights.sum()
        assert (frequencies("popularity", alpha) - expected).abs().max() < 0.01


def test_sampled_negatives_respect_train_columns_and_errors() -> None:
    items, offsets = _sequences([6] * 30)
    allowed = torch.ones(30, dtype=torch.bool)
    allowed[[3, 4, 5]] = False  # cold items: never negatives
    batches = NextItemBatches(
        items, offsets, 8, max_length=5, seed=0, train_columns=allowed, n_negatives=64
    )
    drawn = torch.cat([b.sequence_negatives for b in batches if b.sequence_negatives is not None])
    assert not set(drawn.tolist()) & {0, 3, 4, 5}
    with pytest.raises(ValueError, match="negative_sampling"):
        NextItemBatches(items, offsets, 8, max_length=5, seed=0, n_negatives=4, sampling="pop")
    with pytest.raises(ValueError, match="negatives"):
        NextItemBatches(items, offsets, 8, max_length=5, seed=0, n_negatives=-1)


def test_datamodule_next_item_negatives(prepared: Path) -> None:
    plain = SequenceDataModule(prepared, training="next_item", batch_size=16, max_length=5)
    dm = SequenceDataModule(
        prepared,
        training="next_item",
        batch_size=16,
        max_length=5,
        negatives=12,
        negative_sampling="popularity",
        sample_alpha=0.75,
    )
    for module in (plain, dm):
        module.setup()
    for a, b in zip(plain.train_dataloader(), dm.train_dataloader(), strict=True):
        assert a.sequence_negatives is None and torch.equal(a.history, b.history)
        assert b.sequence_negatives is not None and b.sequence_negatives.shape == (12,)
        assert b.column_logq is not None and b.sequence_targets is not None
        assert b.column_logq.shape == (int((b.sequence_targets > 0).sum()), 13)
    with pytest.raises(ValueError, match="datamodule.negative_sampling"):
        SequenceDataModule(prepared, training="next_item", negative_sampling="inbatch")
    with pytest.raises(ValueError, match="datamodule.negatives"):
        SequenceDataModule(prepared, training="next_item", negatives=-2)
