"""Data-parallel training on CPU: two processes, each training on its half of every epoch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA, run_train_cli
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


def test_readme_ddp_command_on_two_cpu_processes(tmp_path: Path) -> None:
    """`hybridrec-train trainer=ddp trainer.devices=2` (the README's command) on CPU: Lightning
    relaunches the script for rank 1; exactly one MLflow run, written by rank 0, ends FINISHED
    with the best checkpoint and best/val/... as in a single-process run."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_train_cli(
        tmp_path,
        "trainer=ddp",
        "trainer.devices=2",
        *TINY_DATA,
        "trainer.max_epochs=2",
        f"paths.root_dir={tmp_path}",
        uri=uri,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in proc.stdout + proc.stderr  # really two processes
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer/strategy"] == "ddp"
    assert "best/val/ndcg10" in run.data.metrics
    assert "test/ndcg10" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val/ndcg10")) == 2
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert artifacts == [f"checkpoints/{run.data.tags['best_checkpoint']}"]
    assert f"MLflow run {run.info.run_id}" in proc.stdout
    assert proc.stdout.count("MLflow run ") == 1  # one summary: rank 0's
