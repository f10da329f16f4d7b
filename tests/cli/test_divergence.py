"""Divergence: a NaN or infinite loss stops the run with one message that names the epoch, the
step and the last good checkpoint (kept, and free of the bad weights), the MLflow run FAILED."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA, run_train_cli
from hybridrec.lit.callbacks import DivergenceError
from hybridrec.lit.checkpoint import safe_load
from hybridrec.run.train import train
from hybridrec.tracking.tags import FAILURE_TAG

#: a real cause: a scheduler that multiplies the learning rate by 1e30 after the first epoch
#: (epoch 0 trains well and is checkpointed, epoch 1 blows up)
EXPLODING_LR = [
    "+scheduler._target_=torch.optim.lr_scheduler.StepLR",
    "+scheduler._partial_=true",
    "+scheduler.step_size=1",
    "+scheduler.gamma=1e30",
]


def _failed_run(uri: str) -> object:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    return runs[0]


def test_nan_loss_stops_the_run_failed_and_keeps_the_last_good_checkpoint(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    cfg = compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=5", *EXPLODING_LR)
    with pytest.raises(DivergenceError) as caught:
        train(cfg)
    message = str(caught.value)
    found = re.search(r"the loss became (\S+) at epoch (\d+), step (\d+)", message)
    assert found, message
    assert found[1] in ("nan", "inf", "-inf") and found[2] == "1"
    assert "optimizer.lr=" in message and "gradient_clip_val" in message
    # the last good checkpoint: named, on disk, from epoch 0, its weights finite
    kept = re.search(r"The last good checkpoint is kept: (\S+\.ckpt)\.", message)
    assert kept, message
    checkpoint = safe_load(kept[1])
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())
    assert Path(kept[1]).name == "last.ckpt"
    # nothing written after the divergence: every checkpoint in the folder is from epoch 0
    for path in Path(kept[1]).parent.glob("*.ckpt"):
        assert safe_load(path)["epoch"] == 0, path
    run = _failed_run(mlflow_uri)
    assert run.info.status == "FAILED"  # type: ignore[attr-defined]
    assert run.data.tags[FAILURE_TAG] == message  # type: ignore[attr-defined]


def test_divergence_in_the_first_epoch_from_the_command_line(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """An absurd learning rate: one message, exit status 1, no traceback, the run FAILED."""
    done = run_train_cli(
        tmp_path,
        *TINY_DATA,
        "model=mf",
        "optimizer.lr=1e30",
        "trainer.max_epochs=3",
        uri=mlflow_uri,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    assert "training diverged: the loss became" in output
    assert "at epoch 0, step" in output
    assert "No checkpoint was saved before it" in output
    assert "optimizer.lr=1e+30 now" in output
    assert _failed_run(mlflow_uri).info.status == "FAILED"  # type: ignore[attr-defined]
