"""Data-parallel training on CPU: two processes, each training on its half of every epoch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.cli.train import train


@pytest.mark.slow
def test_ddp_spawn_two_cpu_processes(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(
        *TINY_DATA,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp_spawn",
        "trainer.max_epochs=2",
        "datamodule.batch_size=64",
    )
    result = train(cfg)
    # ddp_spawn fits in child processes, so the parent's epoch counter stays 0; the
    # checkpoint names the epoch it came from (0-based)
    assert result.best_checkpoint.endswith(".ckpt")
    assert Path(result.best_checkpoint).name in {"epoch_000.ckpt", "epoch_001.ckpt"}
    assert 0.0 <= result.metrics["test/hr@10"] <= 1.0
