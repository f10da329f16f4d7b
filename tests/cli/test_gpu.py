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


@pytest.mark.gpu
def test_gpu_judgment_term(compose_cfg: Callable[..., DictConfig]) -> None:
    """The human-rating term on CUDA: judgment batches and held-out sets on the device, bf16."""
    from conftest import TINY_JUDGMENTS

    result = train(
        compose_cfg(
            "experiment=judgment_synthetic",
            *TINY_DATA,
            *TINY_JUDGMENTS,
            "trainer=gpu",
            "trainer.max_epochs=2",
        )
    )
    assert 0.0 <= result.metrics["test/marketer_agreement"] <= 1.0
    assert 0.0 <= result.metrics["test/hr@10"] <= 1.0
