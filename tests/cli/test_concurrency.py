"""Four parallel jobs (hydra/launcher=parallel, joblib processes) against one tracking store:
no run, metric, param or artifact lost — on a fresh SQLite file (the schema-migration race,
"database is locked") and on an ``mlflow server`` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY_DATA, run_train_cli

JOBS = 4
EPOCHS = 2


def _parallel_sweep(tmp_path: Path, uri: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = run_train_cli(
        tmp_path,
        "--multirun",
        "hydra/launcher=parallel",
        f"hydra.launcher.n_jobs={JOBS}",
        "seed=1,2,3,4",
        "model=mf",
        "model.embedding_dim=8",
        *TINY_DATA,
        f"trainer.max_epochs={EPOCHS}",
        "callbacks.early_stopping=null",
        f"paths.root_dir={tmp_path}",
        uri=uri,
        timeout=300,
    )
    return proc, time.perf_counter() - start


def _assert_nothing_lost(uri: str, output: str) -> None:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None, output[-3000:]
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    # runs lost: jobs without a FINISHED run holding everything (reported in the failure)
    assert len(runs) == JOBS, output[-3000:]
    assert sorted(r.data.params["seed"] for r in runs) == ["1", "2", "3", "4"]
    for run in runs:
        assert run.info.status == "FINISHED", run.info
        history = client.get_metric_history(run.info.run_id, "val/ndcg10")
        assert len({m.step for m in history}) == EPOCHS, history  # one per epoch
        assert len(client.get_metric_history(run.info.run_id, "train/loss_epoch")) == EPOCHS
        assert "test/ndcg10" in run.data.metrics
        assert "model/_target_" in run.data.params
        checkpoints = client.list_artifacts(run.info.run_id, "checkpoints")
        assert [Path(a.path).suffix for a in checkpoints] == [".ckpt"]
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml"}


@pytest.mark.slow  # ~80 s on 2 cores: four processes import torch and Lightning
def test_four_parallel_jobs_on_a_fresh_sqlite_store_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "fresh" / "mlflow.db"
    assert not store.exists()  # never created: the jobs race to create and migrate it
    uri = f"sqlite:///{store}"
    proc, seconds = _parallel_sweep(tmp_path, uri)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "database is locked" not in output
    _assert_nothing_lost(uri, output)
    print(f"4 parallel jobs on a fresh SQLite store: 0 runs lost, {seconds:.1f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(folder: Path, port: int, backend: str) -> subprocess.Popen[bytes]:
    """``mlflow server`` on 127.0.0.1:``port`` (artifacts served from ``folder``), answering
    ``/health`` (waits up to 60 s)."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            backend,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers are killed with it (os.killpg)
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("mlflow server exited") from None
            time.sleep(0.5)
    stop_server(server)
    raise RuntimeError("mlflow server did not answer within 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "server"
    folder.mkdir()
    port = _free_port()
    server = start_mlflow_server(folder, port, f"sqlite:///{folder / 'mlflow.db'}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(server)


@pytest.mark.slow
def test_four_parallel_jobs_on_an_mlflow_server_lose_nothing(
    tmp_path: Path, mlflow_server: str
) -> None:
    proc, seconds = _parallel_sweep(tmp_path, mlflow_server)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    _assert_nothing_lost(mlflow_server, output)
    print(f"4 parallel jobs on an mlflow server: 0 runs lost, {seconds:.1f} s")


_WRITER = """
import sys
import time
from mlflow.entities import Dataset, DatasetInput, InputTag
from hybridrec.tracking.fallback import FallbackClient
from hybridrec.tracking.runs import check_tracking_uri, end_run, start_run
from pathlib import Path
uri, job, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
check_tracking_uri(uri)  # creates and migrates the fresh store once, under the file lock
client = FallbackClient(uri, ".")
run_id = start_run(client, "race", f"job{job}", 0, tags={"job": str(job)})
# the same dataset as every job's input, all at one instant: the dataset-row race of the
# 4-job sweep (each job looks the row up, then inserts it)
dataset = Dataset(name="race-loo", digest="0123456789abcdef", source_type="local", source="{}")
context = InputTag(key="mlflow.data.context", value="train")
Path(f"ready-{job}").touch()  # a barrier: go when all the jobs have their runs
while len(list(Path(".").glob("ready-*"))) < jobs:
    time.sleep(0.01)
client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=[context])])
client.log_param(run_id, "job", str(job))
for step in range(50):
    client.log_metric(run_id, "val/x", float(step), step=step)
client.log_text(run_id, "done", "done.txt")
end_run(client, run_id, None)
"""


#: a race may not show in one round: the default suite runs one (each is four processes
#: importing MLflow on 2 cores), the slow suite two more
ROUNDS = [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]


@pytest.mark.parametrize("round_", ROUNDS)
def test_four_processes_create_and_write_a_fresh_sqlite_store(tmp_path: Path, round_: int) -> None:
    """The fast form of the sweep above, without training: four processes start at once on a
    store that does not exist yet, each creates a run, logs the same dataset input at the same
    instant, 50 metric steps and a file."""
    failed = _writers(tmp_path, _WRITER)
    assert not failed, "\n".join(failed)[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'race' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("race")
    assert experiment is not None
    assert len(client.search_experiments()) == 2  # Default + race: created once
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["job"] for r in runs) == ["0", "1", "2", "3"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val/x")) == 50
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["done.txt"]
        (given,) = run.inputs.dataset_inputs  # every job's input is the one shared dataset
        assert (given.dataset.name, given.dataset.digest) == ("race-loo", "0123456789abcdef")


def _writers(tmp_path: Path, script: str) -> list[str]:
    """Run ``script`` as four processes on a fresh store in ``tmp_path``; their outputs, or
    an empty list when all four succeeded."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{tmp_path / 'race' / 'mlflow.db'}"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, uri, str(job), str(JOBS)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for job in range(JOBS)
    ]
    outputs = [writer.communicate(timeout=120)[0] for writer in writers]
    return [] if all(w.returncode == 0 for w in writers) else outputs


@pytest.mark.slow  # up to three rounds of four processes
def test_without_the_repeat_the_race_test_fails(tmp_path: Path) -> None:
    """The fast race test can see the race it guards against: with the client's repeat of a
    write another job got in the way of switched off, four writers fail on MLflow's dataset
    row (measured on 2 loaded cores: 10 of 10 rounds failed without the repeat, 0 of 10
    with it)."""
    without = _WRITER.replace(
        'client = FallbackClient(uri, ".")',
        "FallbackClient._retry_locked = staticmethod(lambda m, a, k: m(*a, **k))\n"
        'client = FallbackClient(uri, ".")',
    )
    assert without != _WRITER
    for round_ in range(3):
        outputs = _writers(tmp_path / f"round{round_}", without)
        if outputs:
            break
    assert outputs, "no round failed without the repeat: the race test cannot see the race"
    assert "UNIQUE constraint failed: datasets" in "\n".join(outputs)


def test_a_write_another_job_got_in_the_way_of_is_repeated() -> None:
    """SQLite's lock and MLflow's dataset-row race (two jobs insert the same dataset at once;
    seen in the 4-job test) are repeated until the call completes; other errors are not."""
    from mlflow.exceptions import MlflowException

    from hybridrec.tracking.fallback import FallbackClient

    calls = []

    def flaky(message: str) -> str:
        calls.append(message)
        if len(calls) < 3:
            raise MlflowException(message)
        return "done"

    for message in (
        "(sqlite3.OperationalError) database is locked",
        "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
        "datasets.name, datasets.digest",
    ):
        calls.clear()
        assert FallbackClient._retry_locked(flaky, (message,), {}) == "done"
        assert len(calls) == 3
    calls.clear()
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        FallbackClient._retry_locked(flaky, ("RESOURCE_DOES_NOT_EXIST",), {})
    assert len(calls) == 1
