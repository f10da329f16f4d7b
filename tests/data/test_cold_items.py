"""The cold_items protocol: cold items never train, held-out rows are flagged, seeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from hybridrec.data.batch import RowEvalBatch
from hybridrec.data.batching.pairs import RecDataModule, candidate_rows
from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.protocols import ColdItems
from hybridrec.data.readers import read_synthetic
from hybridrec.run.parts import own_shelf, part_config


@pytest.fixture(scope="module")
def mapped() -> pd.DataFrame:
    inter = read_synthetic(n_users=80, n_items=50, seed=3, ratings_per_rater=20).interactions
    return pd.DataFrame(
        {
            "user": inter["user"].to_numpy(np.int64),
            "item": inter["item"].to_numpy(np.int64) + 1,
            "timestamp": inter["timestamp"].to_numpy(np.int64),
        }
    )


def test_cold_items_never_train_and_every_cold_interaction_is_held_out(
    mapped: pd.DataFrame,
) -> None:
    protocol = ColdItems(cold_share=0.2, val_share=0.5, seed=1)
    split = protocol.split(mapped, n_items=50)
    cold_val, cold_test = protocol.cold_item_sets(mapped["item"].to_numpy())
    cold = np.concatenate([cold_val, cold_test])
    assert len(cold) == round(0.2 * mapped["item"].nunique())
    assert not np.isin(split.train["item"], cold).any()
    # held-out rows: flagged cold exactly when the item is cold, val-cold in val, test-cold in test
    assert (split.val["cold"] == split.val["item"].isin(cold_val)).all()
    assert (split.test["cold"] == split.test["item"].isin(cold_test)).all()
    assert not split.val["item"].isin(cold_test).any()
    assert not split.test["item"].isin(cold_val).any()
    # no pair is in two parts; every cold interaction of a trained user is held out
    parts = [set(zip(f["user"], f["item"])) for f in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    trained = set(split.train["user"])
    cold_rows = mapped[mapped["item"].isin(cold) & mapped["user"].isin(trained)]
    assert len(cold_rows) == int(split.val["cold"].sum() + split.test["cold"].sum())
    # warm rows: at most one per user per part, and only for users who still train
    for frame in (split.val, split.test):
        warm = frame[~frame["cold"]]
        assert warm["user"].is_unique and warm["user"].isin(trained).all()
    assert split.counts["test_cold_rows"] > 0 and split.counts["test_warm_rows"] > 0


def test_cold_split_is_seeded(mapped: pd.DataFrame) -> None:
    a = ColdItems(seed=4).cold_item_sets(mapped["item"].to_numpy())
    b = ColdItems(seed=4).cold_item_sets(mapped["item"].to_numpy())
    c = ColdItems(seed=5).cold_item_sets(mapped["item"].to_numpy())
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_bad_cold_settings_name_the_key(mapped: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="protocol.cold_share"):
        ColdItems(cold_share=1.0)
    with pytest.raises(ValueError, match="protocol.val_share"):
        ColdItems(val_share=1.0)
    with pytest.raises(ValueError, match="protocol.candidates"):
        ColdItems(candidates="new")
    with pytest.raises(ValueError, match="cold_share=0.001"):
        ColdItems(cold_share=0.001).split(mapped, n_items=50)


def test_prepared_files_keep_the_cold_flag(tmp_path: Path) -> None:
    raw = read_synthetic(n_users=60, n_items=40, seed=2, ratings_per_rater=20)
    spec = prepare(raw, ColdItems(cold_share=0.25, seed=0), tmp_path / "prepared")
    folder = tmp_path / "prepared"
    train = pd.read_parquet(folder / spec.files["train"])
    test = pd.read_parquet(folder / spec.files["test"])
    assert "cold" not in train.columns and test["cold"].dtype == bool
    assert test["cold"].any() and not test.loc[test["cold"], "item"].isin(train["item"]).any()
    assert spec.protocol == "cold_items" and spec.counts["cold_items_test"] > 0
    # cold items keep their index (they are rankable) although no training row has them
    assert spec.n_items == raw.interactions["item"].nunique()


@pytest.fixture(scope="module")
def cold_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_synthetic(n_users=60, n_items=40, seed=2, ratings_per_rater=20)
    folder = tmp_path_factory.mktemp("cold") / "prepared"
    prepare(raw, ColdItems(cold_share=0.25, seed=0, candidates="cold"), folder)
    return folder


def _cold_set(folder: Path) -> set[int]:
    return set(pd.read_parquet(folder / "cold_items.parquet")["item"].tolist())


def test_cold_items_never_appear_in_training_batches(cold_folder: Path) -> None:
    """Neither as positives nor as sampled negatives, over several epochs."""
    datamodule = RecDataModule(cold_folder, batch_size=32, num_negatives=8, data_on_device=False)
    datamodule.setup()
    cold = torch.tensor(sorted(_cold_set(cold_folder)))
    loader = datamodule.train_dataloader()
    seen = 0
    for epoch in range(3):
        loader.epoch_source = lambda epoch=epoch: epoch
        for batch in loader:
            assert batch.items is not None
            assert not torch.isin(batch.items, cold).any()
            seen += batch.items.numel()
    assert seen > 0


def test_eval_rows_are_split_by_slice(cold_folder: Path) -> None:
    datamodule = RecDataModule(cold_folder, eval_batch_size=16, data_on_device=False)
    datamodule.setup()
    cold = _cold_set(cold_folder)
    test = pd.read_parquet(cold_folder / "test.parquet")
    rows = 0
    for batch in datamodule.test_dataloader():
        assert batch.cold is not None and batch.targets is not None
        assert (
            batch.restrict_to is not None
            and set(torch.nonzero(batch.restrict_to).squeeze(1).tolist()) == cold
        )
        for user, is_cold, targets in zip(batch.users, batch.cold, batch.targets, strict=True):
            items = {int(i) for i in targets if i > 0}
            expected = test[(test["user"] == int(user)) & (test["cold"] == bool(is_cold))]
            assert items == set(expected["item"].tolist())
            assert all((i in cold) == bool(is_cold) for i in items)
            rows += 1
    assert rows == test.groupby(["user", "cold"]).ngroups


def test_next_item_training_never_sees_cold_items(cold_folder: Path) -> None:
    """Sequence models: no cold item in any history or target, and none among the loss's
    columns (the full-catalogue softmax leaves them out as negatives too)."""
    datamodule = SequenceDataModule(
        cold_folder, training="next_item", batch_size=8, max_length=6, data_on_device=False
    )
    datamodule.setup()
    cold = torch.tensor(sorted(_cold_set(cold_folder)))
    seen = 0
    for batch in datamodule.train_dataloader():
        assert batch.history is not None and batch.sequence_targets is not None
        assert not torch.isin(batch.history, cold).any()
        assert not torch.isin(batch.sequence_targets, cold).any()
        assert batch.train_columns is not None and not batch.train_columns[cold].any()
        seen += int((batch.sequence_targets > 0).sum())
    assert seen > 0
    with pytest.raises(ValueError, match="refit_on_val"):
        SequenceDataModule(cold_folder, training="next_item", train_on_val=True).setup()


def test_sequence_eval_rows_are_split_by_slice(cold_folder: Path) -> None:
    datamodule = SequenceDataModule(
        cold_folder, training="next_item", eval_batch_size=4, data_on_device=False
    )
    datamodule.setup()
    cold = _cold_set(cold_folder)
    train = pd.read_parquet(cold_folder / "train.parquet")
    test = pd.read_parquet(cold_folder / "test.parquet")
    rows = 0
    loader = datamodule.test_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) and all(len(b) > 0 for b in batches)  # no empty batch
    for batch in batches:
        assert batch.cold is not None and batch.targets is not None and batch.history is not None
        assert batch.restrict_to is not None and batch.exclude is not None
        assert set(torch.nonzero(batch.restrict_to).squeeze(1).tolist()) == cold
        for row, (user, is_cold) in enumerate(zip(batch.users, batch.cold, strict=True)):
            items = {int(i) for i in batch.targets[row] if i > 0}
            expected = test[(test["user"] == int(user)) & (test["cold"] == bool(is_cold))]
            assert items == set(expected["item"].tolist())
            # the history is the user's whole training sequence
            history = {int(i) for i in batch.history[row] if i > 0}
            assert history == set(train.loc[train["user"] == int(user), "item"].tolist())
            rows += 1
    assert rows == test.groupby(["user", "cold"]).ngroups


@pytest.mark.parametrize("other_slice", ["keep", "mask"])
@pytest.mark.parametrize("layout", ["pairs", "sequence"])
def test_other_slice_targets_are_left_out_of_a_row_when_masked(
    tmp_path: Path, layout: str, other_slice: str
) -> None:
    """``other_slice: mask``: a user's held-out items of the other slice are in the row's
    ``exclude`` (neither target nor negative); ``keep``: they are ranked (not excluded); the
    user's own training items are excluded either way."""
    raw = read_synthetic(n_users=60, n_items=40, seed=2, ratings_per_rater=20)
    folder = tmp_path / "prepared"
    spec = prepare(raw, ColdItems(cold_share=0.25, seed=0, other_slice=other_slice), folder)
    assert spec.other_slice == other_slice
    datamodule: RecDataModule | SequenceDataModule = (
        RecDataModule(folder, eval_batch_size=16, data_on_device=False)
        if layout == "pairs"
        else SequenceDataModule(
            folder, training="next_item", eval_batch_size=8, data_on_device=False
        )
    )
    datamodule.setup()
    test = pd.read_parquet(folder / "test.parquet")
    train = pd.read_parquet(folder / "train.parquet")
    both = 0
    for batch in datamodule.test_dataloader():
        assert batch.exclude is not None and batch.cold is not None
        for row, (user, is_cold) in enumerate(zip(batch.users, batch.cold, strict=True)):
            excluded = set(batch.exclude[1][batch.exclude[0] == row].tolist())
            mine = test[test["user"] == int(user)]
            other = set(mine.loc[mine["cold"] != bool(is_cold), "item"].tolist())
            assert set(train.loc[train["user"] == int(user), "item"]) <= excluded
            if other:
                both += 1
                assert (other <= excluded) == (other_slice == "mask")
                assert other_slice == "mask" or not (other & excluded)
            targets = {int(i) for i in batch.targets[row] if i > 0}  # type: ignore[index]
            assert not (targets & excluded)
    assert both > 0  # users with a cold and a warm row exist here


def test_each_shelf_ranks_its_own_rows_among_its_own_items() -> None:
    """candidates: cold -> a cold row ranks the cold items only, a warm row every item;
    slice -> a warm row ranks the warm items only, too (ALDI's cold and warm evaluation)."""
    cold_items = torch.tensor([4, 5, 6])
    rows = torch.tensor([True, False])  # a cold row, a warm row
    users = torch.tensor([0, 1])
    cold = RowEvalBatch(users=users, cold=rows, restrict_to=candidate_rows("cold", cold_items, 6))
    slice_ = RowEvalBatch(
        users=users, cold=rows, restrict_to=candidate_rows("slice", cold_items, 6)
    )
    outside = cold.non_candidates()
    assert outside is not None
    assert outside.tolist() == [[True, True, True, True, False, False, False], [False] * 7]
    outside = slice_.non_candidates()
    assert outside is not None
    assert outside.tolist() == [
        [True, True, True, True, False, False, False],
        [True, False, False, False, True, True, True],
    ]
    assert RowEvalBatch(users=users).non_candidates() is None


def test_parts_of_a_composed_run_train_on_the_whole_catalogue(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """The shelf (candidates, other_slice) is the composed run's evaluation: its parts train
    and choose their epochs on the default one, so parts trained before are reused."""
    cfg = compose_cfg(
        "experiment=hybrid_synthetic",
        "protocol=cold_items",
        "protocol.candidates=slice",
        "protocol.other_slice=mask",
    )
    part = part_config(cfg, "ids", ["model=mf"], [])
    assert part.protocol.candidates == "all" and part.protocol.other_slice == "keep"
    assert own_shelf(cfg) and not own_shelf(part)
