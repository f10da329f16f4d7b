"""Coverage, popularity percentile, novelty and cold share on hand-counted lists."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.cli.train import train
from hybridrec.metrics import BeyondAccuracy, popularity_percentiles

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


def test_a_full_ranking_run_logs_them(compose_cfg: Callable[..., DictConfig]) -> None:
    result = train(compose_cfg(*TINY_DATA, "model=mf", "protocol=loo_full", "trainer.max_epochs=1"))
    metrics = result.metrics
    assert 0 < metrics["test/coverage@10"] <= 1
    assert 0 <= metrics["test/popularity_percentile@10"] <= 1
    assert metrics["test/novelty@10"] > 0
    assert 0 <= metrics["test/cold_share@10"] <= 1
