"""RecDataModule over a prepared synthetic folder: training epochs, DDP shards, eval batches."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import prepare_tiny
from hybridrec.data.batching.pairs import CSR, RecDataModule, TrainBatches
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.preparation.staging import read_negatives

N_USERS, N_ITEMS = 60, 40


@pytest.fixture(scope="module")
def sampled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_tiny(tmp_path_factory.mktemp("dm") / "sampled", LeaveOneOut(n_negatives=20))


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    protocol = LeaveOneOut(eval_mode="full", name="loo_full")
    return prepare_tiny(tmp_path_factory.mktemp("dm") / "full", protocol)


def _pairs(frame: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(frame["user"].tolist(), frame["item"].tolist()))


def _items_by_user(*frames: pd.DataFrame) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for frame in frames:
        for user, item in _pairs(frame):
            out.setdefault(user, set()).add(item)
    return out


def _datamodule(folder: Path, **kwargs: int) -> RecDataModule:
    settings = {"batch_size": 64, "num_negatives": 4, "eval_batch_size": 16, "seed": 0}
    settings.update(kwargs)
    dm = RecDataModule(folder, **settings)
    dm.setup("fit")
    return dm


# --- training batches ---------------------------------------------------------------------------


def test_one_epoch_covers_every_training_pair_once(sampled_dir: Path) -> None:
    dm = _datamodule(sampled_dir)
    train = pd.read_parquet(sampled_dir / "train.parquet")
    positives_of = _items_by_user(train)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == -(-len(train) // 64)

    seen: Counter[tuple[int, int]] = Counter()
    for batch in batches:
        assert batch.items is not None and batch.labels is not None
        assert batch.items.shape == (len(batch), 5)
        assert batch.labels.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]] * len(batch)
        seen.update(zip(batch.users.tolist(), batch.items[:, 0].tolist()))
        for user, negatives in zip(batch.users.tolist(), batch.items[:, 1:].tolist()):
            assert all(1 <= n <= N_ITEMS for n in negatives)
            assert not set(negatives) & positives_of[user], user
    assert seen == Counter(_pairs(train))
    assert dm._train is not None and dm._train.sampler.n_unresolved == 0


def test_epochs_shuffle_differently_and_seeds_repeat(sampled_dir: Path) -> None:
    def order(dm: RecDataModule) -> list[list[int]]:
        loader = dm.train_dataloader()
        return [
            torch.cat([b.items[:, 0] for b in loader]).tolist()  # type: ignore[index]
            for _ in range(2)
        ]

    first, second = order(_datamodule(sampled_dir))
    assert first != second
    assert sorted(first) == sorted(second)
    assert order(_datamodule(sampled_dir)) == [first, second]  # same seed, same epochs
    assert order(_datamodule(sampled_dir, seed=1))[0] != first


def test_ddp_shards_are_disjoint_and_equal(sampled_dir: Path) -> None:
    dm = _datamodule(sampled_dir)
    assert dm._train is not None
    users, items = dm._train.users, dm._train.items
    if users.numel() % 2 == 0:  # make the row count odd: one row must be left out
        users, items = users[:-1], items[:-1]
    n = users.numel()

    def shard(rank: int) -> list[tuple[int, int]]:
        batches = TrainBatches(users, items, dm._train.sampler, 32, 2, seed=3)  # type: ignore[union-attr]
        batches.rank, batches.world_size = rank, 2
        assert len(batches) == -(-(n // 2) // 32)
        rows = []
        for batch in batches:
            assert batch.items is not None
            rows += list(zip(batch.users.tolist(), batch.items[:, 0].tolist()))
        return rows

    zero, one = shard(0), shard(1)
    assert len(zero) == len(one) == n // 2
    assert not set(zero) & set(one)
    assert len(set(zero) | set(one)) == n // 2 * 2
    assert set(zero) | set(one) <= set(zip(users.tolist(), items.tolist()))


def test_drop_last_and_zero_negatives(sampled_dir: Path) -> None:
    dm = _datamodule(sampled_dir, num_negatives=0)
    assert dm._train is not None
    dm._train.drop_last = True
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm._train) == dm.spec.n_train // 64
    assert all(b.items is not None and b.items.shape == (64, 1) for b in batches)


def test_bad_settings_raise(sampled_dir: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RecDataModule(sampled_dir, batch_size=0)
    with pytest.raises(ValueError, match="num_negatives"):
        RecDataModule(sampled_dir, num_negatives=-1)


# --- sampled evaluation -------------------------------------------------------------------------


def test_sampled_eval_puts_the_held_out_item_first(sampled_dir: Path) -> None:
    dm = _datamodule(sampled_dir)
    for role, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        frame = pd.read_parquet(sampled_dir / f"{role}.parquet")
        negatives = read_negatives(sampled_dir / f"{role}_negatives.parquet")
        batches = list(loader)
        assert [len(b) for b in batches] == [16, 16, 16, 12]
        users = torch.cat([b.users for b in batches])
        items = torch.cat([b.items for b in batches])  # type: ignore[misc]
        assert users.tolist() == frame["user"].tolist()
        assert items[:, 0].tolist() == frame["item"].tolist()
        np.testing.assert_array_equal(items[:, 1:].numpy(), negatives)
        for batch in batches:
            assert batch.labels is not None
            assert batch.labels[:, 0].eq(1).all() and batch.labels[:, 1:].eq(0).all()
            assert batch.targets is None and batch.exclude is None


def test_a_negative_equal_to_the_positive_becomes_padding(
    sampled_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(sampled_dir, folder)
    val = pd.read_parquet(folder / "val.parquet")
    negatives = read_negatives(folder / "val_negatives.parquet")
    negatives[0, 3] = val["item"].iloc[0]  # as in the NCF files, a negative repeats the positive
    negatives[5, 0] = val["item"].iloc[5]
    flat = pa.array(negatives.reshape(-1))
    table = pa.table(
        {
            "user": val["user"].to_numpy(np.int64),
            "item": val["item"].to_numpy(np.int64),
            "negatives": pa.FixedSizeListArray.from_arrays(flat, negatives.shape[1]),
        }
    )
    pq.write_table(table, folder / "val_negatives.parquet")

    batch = next(iter(_datamodule(folder).val_dataloader()))
    assert batch.items is not None
    assert batch.items[0, 0].item() == val["item"].iloc[0]
    assert batch.items[0, 4].item() == 0
    assert batch.items[5, 1].item() == 0
    zeros = (batch.items == 0).nonzero().tolist()
    assert zeros == [[0, 4], [5, 1]]


# --- full evaluation ----------------------------------------------------------------------------


def test_full_eval_targets_and_exclusions(full_dir: Path) -> None:
    dm = _datamodule(full_dir)
    assert dm.spec.eval_mode == "full"
    train = pd.read_parquet(full_dir / "train.parquet")
    val = pd.read_parquet(full_dir / "val.parquet")
    test = pd.read_parquet(full_dir / "test.parquet")
    known_for = {
        "val": _items_by_user(train),
        "test": _items_by_user(train, val),
    }
    for role, loader, held in (
        ("val", dm.val_dataloader(), val),
        ("test", dm.test_dataloader(), test),
    ):
        held_by_user = _items_by_user(held)
        seen_users: list[int] = []
        for batch in loader:
            assert batch.items is None and batch.targets is not None
            assert batch.exclude is not None and batch.exclude.shape[0] == 2
            for row, user in enumerate(batch.users.tolist()):
                targets = [t for t in batch.targets[row].tolist() if t != 0]
                assert sorted(targets) == sorted(held_by_user[user])
                excluded = batch.exclude[1, batch.exclude[0] == row].tolist()
                assert len(excluded) == len(set(excluded))
                assert set(excluded) == known_for[role][user], (role, user)
                assert not set(excluded) & set(targets)
            seen_users += batch.users.tolist()
        assert seen_users == sorted(held_by_user)


# --- CSR ----------------------------------------------------------------------------------------


def test_csr_gather_and_padded_hand_example() -> None:
    users = torch.tensor([2, 0, 2, 1, 2])
    items = torch.tensor([5, 3, 7, 4, 9])
    csr = CSR(users, items, n_users=4)
    assert csr.indptr.tolist() == [0, 1, 2, 5, 5]
    assert csr.items.tolist() == [3, 4, 5, 7, 9]

    rows, gathered = csr.gather(torch.tensor([2, 3, 0]))
    assert rows.tolist() == [0, 0, 0, 2]
    assert gathered.tolist() == [5, 7, 9, 3]

    assert csr.padded(torch.tensor([2, 3, 0])).tolist() == [[5, 7, 9], [0, 0, 0], [3, 0, 0]]
    assert csr.padded(torch.tensor([1, 1])).tolist() == [[4], [4]]
    assert csr.padded(torch.tensor([3])).tolist() == [[0]]  # a user with nothing: one pad column
    rows, gathered = csr.gather(torch.tensor([3]))
    assert rows.numel() == 0 and gathered.numel() == 0
