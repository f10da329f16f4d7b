"""Crash and resume: a job killed with SIGKILL mid-epoch continues with ``resume=RUN_ID`` from
its last checkpoint, into the same MLflow run, and ends with the metrics of a job that was never
interrupted (same seed, CPU); a FAILED or KILLED run resumes too, and ``ckpt_path=`` continues
the run that wrote the checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA, run_train_cli
from hybridrec.cli.checks import ConfigError
from hybridrec.lit.checkpoint import safe_load
from hybridrec.run.resume import RESUMED_TAG
from hybridrec.run.tags import OUTPUT_DIR_TAG
from hybridrec.run.train import train

#: NeuMF with dropout (the global RNG matters), small batches (~100 steps an epoch, ~1 s on a
#: CPU core), every step's loss logged (the steps must continue where the killed job stopped)
ARGS = [
    *TINY_DATA,
    "model.dropout=0.2",
    "datamodule.batch_size=16",
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=1",
    "callbacks.early_stopping.patience=10",
]
COMPARED = ("val/ndcg10", "val/hr10", "train/loss_epoch")


def _run_id(stdout: str) -> str:
    found = re.search(r"MLflow run ([0-9a-f]{32})", stdout)
    assert found, stdout[-3000:]
    return found[1]


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """step -> value (a step logged twice must hold the same value both times)."""
    out: dict[int, float] = {}
    for metric in client.get_metric_history(run_id, key):
        assert out.setdefault(metric.step, metric.value) == metric.value, (key, metric.step)
    return out


def _kill_during_second_epoch(cwd: Path, output_dir: Path, uri: str) -> float:
    """Start the job, SIGKILL it once the first epoch's last.ckpt exists (~0.3 s into the
    second epoch); returns the seconds it ran."""
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDREC_ROOT"}
    env["MLFLOW_TRACKING_URI"] = uri
    script = Path(sys.executable).parent / "hybridrec-train"
    last = output_dir / "checkpoints" / "last.ckpt"
    start = time.perf_counter()
    job = subprocess.Popen(
        [str(script), *ARGS, f"hydra.run.dir={output_dir}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not last.exists():
            assert job.poll() is None, "the job ended before its first checkpoint"
            assert time.perf_counter() - start < 120, "no checkpoint after 120 s"
            time.sleep(0.02)
        time.sleep(0.3)
        job.send_signal(signal.SIGKILL)  # nothing can mark the MLflow run
    finally:
        job.kill() if job.poll() is None else None
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL
    return time.perf_counter() - start


def test_sigkill_mid_epoch_resumes_into_the_same_run_with_the_same_metrics(
    tmp_path: Path,
) -> None:
    # a store of its own: the run count below must not see other tests' runs
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=mlflow_uri)
    # a job that is never interrupted
    straight = run_train_cli(
        tmp_path, *ARGS, f"hydra.run.dir={tmp_path / 'straight'}", uri=mlflow_uri
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    reference = _run_id(straight.stdout)

    # the same job killed during its second epoch
    killed_dir = tmp_path / "killed"
    _kill_during_second_epoch(tmp_path, killed_dir, mlflow_uri)
    experiment = client.get_run(reference).info.experiment_id
    (killed,) = [
        r
        for r in client.search_runs([experiment])
        if r.data.tags.get(OUTPUT_DIR_TAG) == str(killed_dir.resolve())
    ]
    run_id = killed.info.run_id
    assert killed.info.status == "RUNNING"
    assert int(safe_load(killed_dir / "checkpoints" / "last.ckpt")["epoch"]) == 0
    steps_per_epoch = min(_history(client, reference, "val/ndcg10"))
    logged = _history(client, run_id, "train/loss")
    assert max(logged) >= steps_per_epoch, "killed before the second epoch had started"
    assert set(_history(client, run_id, "val/ndcg10")) == {steps_per_epoch}  # mid-epoch 2

    # resume it (the run's overrides come back by themselves): same run, ends FINISHED
    start = time.perf_counter()
    resumed = run_train_cli(
        tmp_path, f"resume={run_id}", f"hydra.run.dir={tmp_path / 'resumed'}", uri=mlflow_uri
    )
    seconds = time.perf_counter() - start
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _run_id(resumed.stdout) == run_id
    assert "model.dropout=0.2" in resumed.stderr  # said which overrides it applied again
    print(f"resume took {seconds:.1f} s")
    runs = client.search_runs([experiment])
    assert len(runs) == 2  # no new run: the resumed job wrote into the killed one
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[RESUMED_TAG].startswith("1 ")
    # checkpoints stayed in the first job's folder
    assert (killed_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "resumed" / "checkpoints").exists()

    # every epoch's validation metrics and the test metrics: exactly the uninterrupted run's
    expected = client.get_run(reference).data.metrics
    for key in COMPARED:
        assert _history(client, run_id, key) == _history(client, reference, key), key
    tests = {k: v for k, v in expected.items() if k.startswith(("test/", "best/"))}
    assert tests and {k: run.data.metrics[k] for k in tests} == tests
    print(f"resumed run {run_id}: {tests} (identical to the uninterrupted run)")
    # the step-level losses continue at the right steps, with the uninterrupted run's values
    assert _history(client, run_id, "train/loss") == _history(client, reference, "train/loss")


def test_failed_or_killed_run_resumes_and_may_train_longer(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    first = train(compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=2"))
    assert first.run_id is not None
    for status in ("FAILED", "KILLED"):
        client.set_terminated(first.run_id, status=status)
        more = train(
            compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=3", f"resume={first.run_id}")
        )
        assert more.run_id == first.run_id
        assert client.get_run(first.run_id).info.status == "FINISHED"
    # epochs 1 and 2 trained once each, the third not again: one val value per epoch
    assert len(_history(client, first.run_id, "val/ndcg10")) == 3
    assert client.get_run(first.run_id).data.tags[RESUMED_TAG].startswith("2 ")


def test_ckpt_path_continues_the_run_that_wrote_it(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    first = train(compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=1"))
    assert first.run_id is not None
    last = Path(first.best_checkpoint).with_name("last.ckpt")
    more = train(compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=2", f"ckpt_path={last}"))
    assert more.run_id == first.run_id and more.epochs == 2


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (("resume=0123456789abcdef0123456789abcdef",), "no such MLflow run"),
        (("ckpt_path=nowhere.ckpt",), "no such file"),
    ],
)
def test_bad_resume_target_is_one_sentence(
    compose_cfg: Callable[..., DictConfig], overrides: tuple[str, ...], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        train(compose_cfg(*TINY_DATA, "model=mf", *overrides))


def test_resume_with_another_config_is_refused(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    first = train(compose_cfg(*TINY_DATA, "model=mf", "trainer.max_epochs=1"))
    with pytest.raises(ConfigError, match=r"optimizer\.lr: 0\.005 then, 0\.01 now"):
        train(compose_cfg(*TINY_DATA, "model=mf", "optimizer.lr=0.01", f"resume={first.run_id}"))
