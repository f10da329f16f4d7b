"""What a training job leaves in MLflow: one run per job that ends FINISHED, FAILED or KILLED,
named from what defines it, timed over the whole job, with its dataset as an input and the
metrics the summary prints."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.cli import train_app
from hybridrec.data.spec import DataSpec
from hybridrec.lit import RecLitModule
from hybridrec.run.train import train
from hybridrec.tracking import TrackingError
from hybridrec.tracking.runs import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG


def _runs(uri: str, experiment: str = "synthetic") -> dict[str, object]:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    return {r.info.run_id: r for r in client.search_runs([found.experiment_id])}


def test_finished_run_is_named_timed_and_has_its_dataset(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str, tmp_path: Path
) -> None:
    cfg = compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=3")
    result = train(cfg)
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert result.run_id is not None
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    # named from model, data and protocol (the class name outside a Hydra app)
    assert run.info.run_name == "mf-synthetic-loo_sampled"
    # the run's duration covers the whole fit (and more: data, test)
    assert run.info.end_time - run.info.start_time >= result.fit_seconds * 1000
    # the experiment opens on the runs table in the MLflow UI
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    # the prepared dataset is the run's input: digest = fingerprint prefix, schema, row counts
    (dataset_input,) = run.inputs.dataset_inputs
    spec = DataSpec.load(Path(cfg.datamodule.data_dir))
    assert dataset_input.dataset.name == "synthetic-loo_sampled"
    assert dataset_input.dataset.digest == spec.fingerprint[:16]
    assert '"name": "user"' in dataset_input.dataset.schema
    assert f'"num_rows": {spec.n_train}' in dataset_input.dataset.profile
    # one mean training loss per epoch next to the every-50-steps values
    epochs = client.get_metric_history(result.run_id, "train/loss_epoch")
    assert len(epochs) == 3
    # the test metrics train() returns are the ones stored
    assert run.data.metrics["test/ndcg10"] == pytest.approx(result.metrics["test/ndcg@10"])


def test_fast_dev_run_ends_finished_with_the_printed_metrics(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """fast_dev_run swaps Lightning's logger for a dummy: the run must still end FINISHED and
    hold the test metrics the summary prints."""
    result = train(compose_cfg(*TINY_DATA, "debug=fast_dev_run"))
    assert result.run_id is not None
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["debug"].startswith("fast_dev_run")
    printed = capsys.readouterr().out
    assert f"MLflow run {result.run_id}" in printed
    for key in ("test/hr10", "test/ndcg10", "test/mrr10", "test/recall10"):
        stored = run.data.metrics[key]
        assert f"  {key:<22} {stored:.4f}" in printed


class _Boom(RuntimeError):
    pass


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(
    ("fault", "status"),
    [("error", "FAILED"), ("ctrl-c", "KILLED"), ("sigterm", "KILLED")],
)
def test_a_crash_mid_fit_ends_the_run_failed_or_killed(
    compose_cfg: Callable[..., DictConfig],
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    status: str,
) -> None:
    original = RecLitModule.training_step

    def crashing_step(self: RecLitModule, batch: object, batch_idx: int) -> torch.Tensor:
        if self.current_epoch == 1 and batch_idx == 3:
            if fault == "error":
                raise _Boom("step 3")
            if fault == "ctrl-c":
                raise KeyboardInterrupt
            _sigterm_self()  # the CLI's handler turns it into Ctrl-C
        return original(self, batch, batch_idx)  # type: ignore[arg-type]

    monkeypatch.setattr(RecLitModule, "training_step", crashing_step)
    previous = signal.signal(signal.SIGTERM, train_app._raise_keyboard_interrupt)
    before = set(_runs(mlflow_uri))
    # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1)
    try:
        with pytest.raises(_Boom if fault == "error" else SystemExit):
            train(compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=3"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    new = [run for run_id, run in _runs(mlflow_uri).items() if run_id not in before]
    assert len(new) == 1
    run = new[0]
    assert run.info.status == status  # type: ignore[attr-defined]
    # the first epoch's validation reached the store before the crash
    assert "val/ndcg10" in run.data.metrics  # type: ignore[attr-defined]


def test_short_negative_rows_are_tagged_on_the_run(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    """60 items cannot give 99 distinct negatives: the run says so in a tag."""
    cfg = compose_cfg(*TINY_DATA, "debug=fast_dev_run")
    result = train(cfg)
    spec = DataSpec.load(Path(cfg.datamodule.data_dir))
    short = spec.counts["eval_rows_short_of_negatives"]
    assert short == 2 * spec.n_users  # every validation and test row
    assert result.run_id is not None
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(result.run_id)
    assert run.data.tags["eval_rows_short_of_negatives"] == str(short)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_tracking_server_fails_in_seconds_before_any_data(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    cfg = compose_cfg(*TINY_DATA, f"logger.tracking_uri={uri}")
    start = time.perf_counter()
    with pytest.raises(TrackingError, match=rf"MLflow tracking server {uri} does not answer"):
        train(cfg)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "data" / "prepared").exists()  # failed before reading any data


def test_refit_on_val_is_refused_before_training_with_pairs(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str, tmp_path: Path
) -> None:
    """The pair datamodule cannot add validation items to training: refused up front, not
    after a whole fit; no run is left behind."""
    from hybridrec.cli.checks import ConfigError

    before = set(_runs(mlflow_uri))
    with pytest.raises(ConfigError, match="refit_on_val=true: the datamodule RecDataModule"):
        train(compose_cfg(*TINY_DATA, "refit_on_val=true"))
    assert set(_runs(mlflow_uri)) == before
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))
