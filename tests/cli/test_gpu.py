"""The CUDA path: batches made on the GPU (data_on_device), bf16-mixed training, full ranking.
Skipped without CUDA (CI has none); run on a GPU machine with `pytest -m gpu`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.cli.train import train


@pytest.mark.gpu
@pytest.mark.parametrize("protocol", ["loo_sampled", "loo_full"])
def test_gpu_training_bf16(compose_cfg: Callable[..., DictConfig], protocol: str) -> None:
    result = train(
        compose_cfg(*TINY_DATA, "trainer=gpu", f"protocol={protocol}", "trainer.max_epochs=2")
    )
    assert 0.0 <= result.metrics["test/hr@10"] <= 1.0
    assert len(result.train_epoch_seconds) == 2
