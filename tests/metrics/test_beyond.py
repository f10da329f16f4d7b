"""Coverage, popularity percentile, novelty and cold share on hand-counted lists."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from conftest import TINY_DATA, prepare_tiny
from hybridrec.data.batching.pairs import RecDataModule
from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.metrics import BeyondAccuracy, popularity_percentiles
from hybridrec.run.train import train

# items 1..5 with 4, 2, 2, 0, 1 training interactions (index 0 padding)
COUNTS = torch.tensor([0, 4, 2, 2, 0, 1])


def test_mid_rank_percentiles() -> None:
    # item 4 (0) is below all four others: 0/4; item 5 (1): 1/4; items 2 and 3 (2): one
    # below... two below (0 and 1), one tie -> (2 + 0.5) / 4; item 1 (4): 4/4
    expected = [0.0, 1.0, 0.625, 0.625, 0.0, 0.25]
    assert popularity_percentiles(COUNTS).tolist() == pytest.approx(expected)


def test_rows_and_coverage_by_hand() -> None:
    beyond = BeyondAccuracy(COUNTS)
    top = torch.tensor([[1, 4], [1, 2]])  # (B=2, K=2)
    rows = beyond.rows(top)
    assert rows["cold_share@2"].tolist() == [0.5, 0.0]  # item 4 never trained
    assert rows["popularity_percentile@2"].tolist() == pytest.approx([0.5, 0.8125])
    total = 9 + 5  # interactions + N (smoothing)
    info = {i: -math.log2((int(COUNTS[i]) + 1) / total) for i in (1, 2, 4)}
    assert rows["novelty@2"].tolist() == pytest.approx(
        [(info[1] + info[4]) / 2, (info[1] + info[2]) / 2]
    )
    assert beyond.coverage(2) == pytest.approx(3 / 5)  # items 1, 2, 4 of 5
    beyond.rows(torch.tensor([[3, 5]]))
    assert beyond.coverage(2) == 1.0  # the union over batches


def test_three_users_six_items() -> None:
    """3 users, 6 items with 5, 3, 3, 1, 0, 0 training interactions; top-2 lists by hand."""
    counts = torch.tensor([0, 5, 3, 3, 1, 0, 0])
    # percentiles (mid-rank among the 5 other items): item 1: 5/5; items 2, 3: (3 + 0.5)/5;
    # item 4: 2/5; items 5, 6: (0 + 0.5)/5
    pct = {1: 1.0, 2: 0.7, 3: 0.7, 4: 0.4, 5: 0.1, 6: 0.1}
    assert popularity_percentiles(counts).tolist() == pytest.approx([0.0, *pct.values()])
    beyond = BeyondAccuracy(counts)
    top = torch.tensor([[1, 2], [1, 5], [2, 3]])  # (B=3, K=2)
    rows = beyond.rows(top)
    info = {i: -math.log2((int(counts[i]) + 1) / (12 + 6)) for i in range(1, 7)}
    assert rows["popularity_percentile@2"].tolist() == pytest.approx(
        [(pct[1] + pct[2]) / 2, (pct[1] + pct[5]) / 2, (pct[2] + pct[3]) / 2]
    )
    assert rows["novelty@2"].tolist() == pytest.approx(
        [(info[1] + info[2]) / 2, (info[1] + info[5]) / 2, (info[2] + info[3]) / 2]
    )
    assert info[5] == pytest.approx(math.log2(18))  # never trained: count + 1 smoothing
    assert rows["cold_share@2"].tolist() == [0.0, 0.5, 0.0]
    assert beyond.coverage(2) == pytest.approx(4 / 6)  # items 1, 2, 3, 5
    assert math.isnan(beyond.coverage(10))  # nothing evaluated at K=10


def test_masked_slots_are_not_recommendations() -> None:
    """A row with fewer rankable items than K: its -inf slots (padding, known items) are out
    of the means and of coverage; a row with none at all counts 0."""
    beyond = BeyondAccuracy(COUNTS)
    top = torch.tensor([[4, 0, 1], [0, 2, 3]])
    valid = torch.tensor([[True, False, False], [False, False, False]])
    rows = beyond.rows(top, valid, k=10)
    assert rows["cold_share@10"].tolist() == [1.0, 0.0]
    assert rows["popularity_percentile@10"].tolist() == [0.0, 0.0]
    assert beyond.coverage(10) == pytest.approx(1 / 5)  # item 4 only


def test_datamodules_count_training_interactions(tmp_path: Path) -> None:
    """item_counts() is the training split's interactions per item, for both layouts."""
    folder = prepare_tiny(tmp_path / "full", LeaveOneOut(eval_mode="full", name="loo_full"))
    train_items = pd.read_parquet(folder / "train.parquet")["item"]
    for datamodule in (RecDataModule(folder), SequenceDataModule(folder)):
        counts = datamodule.item_counts()
        assert counts.shape == (datamodule.spec.n_items + 1,) and counts[0] == 0
        expected = train_items.value_counts()
        assert {i: int(c) for i, c in enumerate(counts.tolist()) if c} == expected.to_dict()


def test_a_full_ranking_run_logs_them(compose_cfg: Callable[..., DictConfig]) -> None:
    result = train(compose_cfg(*TINY_DATA, "model=mf", "protocol=loo_full", "trainer.max_epochs=1"))
    metrics = result.metrics
    assert 0 < metrics["test/coverage@10"] <= 1
    assert 0 <= metrics["test/popularity_percentile@10"] <= 1
    assert metrics["test/novelty@10"] > 0
    assert 0 <= metrics["test/cold_share@10"] <= 1
