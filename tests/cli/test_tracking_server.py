"""A tracking server that is not there, that dies mid-run, and credentials in its URI.

- unreachable at start: ``hybridrec-train`` exits 2 within seconds, naming the URI;
- killed after epoch 1: training finishes (exit 0), the checkpoint stays on disk, the rest of
  the run goes to ``<output_dir>/mlflow-fallback.db``, and the printed ``hybridrec-runs upload``
  command brings the whole run into the restarted server;
- ``http://user:secret@host``: the password reaches no param, tag, printed line or log file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient
from test_concurrency import _free_port, start_mlflow_server, stop_server

from conftest import TINY_DATA, run_train_cli
from hybridrec.tracking.fallback import SERVER_RUN_TAG, FallbackClient
from hybridrec.tracking.runs import end_run, now_ms, start_run
from hybridrec.tracking.store import redact_uri
from hybridrec.tracking.upload import upload

EPOCHS = 12
TRAIN = [
    "model=mf",
    "model.embedding_dim=8",
    *TINY_DATA,
    "callbacks.early_stopping=null",
]


def _env(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI"}}
    env["MLFLOW_TRACKING_URI"] = uri
    return env


def test_unreachable_server_fails_in_seconds_naming_it(tmp_path: Path) -> None:
    uri = f"http://someone:hunter2@127.0.0.1:{_free_port()}"  # nobody listens there
    start = time.perf_counter()
    proc = run_train_cli(tmp_path, *TRAIN, f"paths.root_dir={tmp_path}", uri=uri, timeout=120)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-2000:]
    assert re.search(
        r"MLflow tracking server http://someone:\*\*\*@127\.0\.0\.1:\d+ does not", output
    )
    assert "hunter2" not in output
    assert "Traceback" not in output
    assert seconds < 60  # the imports; the check itself takes well under a second
    print(f"unreachable server: exit 2 after {seconds:.1f} s (imports included)")


def _wait_for_epoch(uri: str, train: subprocess.Popen[str], timeout: float = 120) -> str:
    """The id of the first run on the server once it holds one epoch's validation metric."""
    client = MlflowClient(tracking_uri=uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and train.poll() is None:
        experiment = client.get_experiment_by_name("synthetic")
        if experiment is not None:
            runs = client.search_runs([experiment.experiment_id])
            if runs and client.get_metric_history(runs[0].info.run_id, "val/ndcg10"):
                return str(runs[0].info.run_id)
        time.sleep(0.2)
    raise AssertionError("training logged no epoch to the server in time")


@pytest.mark.slow
def test_server_killed_mid_run_training_finishes_and_upload_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the test's own polling
    folder = tmp_path / "server"
    folder.mkdir()
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    uri = f"http://127.0.0.1:{_free_port()}"
    server = start_mlflow_server(folder, int(uri.rsplit(":", 1)[1]), backend)
    script = Path(sys.executable).parent / "hybridrec-train"
    args = [*TRAIN, f"trainer.max_epochs={EPOCHS}", f"paths.root_dir={tmp_path}"]
    env = {k: v for k, v in _env(uri).items() if k != "MLFLOW_HTTP_REQUEST_MAX_RETRIES"}
    train = subprocess.Popen(
        [str(script), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = _wait_for_epoch(uri, train)
        stop_server(server)  # SIGKILL: the server dies after epoch 1, mid-training
        killed = time.perf_counter()
        stdout, stderr = train.communicate(timeout=300)  # never hangs
        after_kill = time.perf_counter() - killed
    finally:
        if train.poll() is None:
            train.kill()
        stop_server(server)
    output = stdout + stderr
    assert train.returncode == 0, output[-3000:]  # training finished
    found = re.search(r"hybridrec-runs upload --from (\S+) --to (\S+)", output)
    assert found, output[-3000:]
    fallback_uri, target = found.groups()
    assert target == uri
    assert list(tmp_path.glob("outputs/train/*/checkpoints/*.ckpt"))  # kept on disk
    local = MlflowClient(tracking_uri=fallback_uri)
    (local_run,) = local.search_runs([e.experiment_id for e in local.search_experiments()])
    assert local_run.info.status == "FINISHED"
    assert len(local.get_metric_history(local_run.info.run_id, "val/ndcg10")) == EPOCHS
    assert "test/ndcg10" in local_run.data.metrics
    assert local.list_artifacts(local_run.info.run_id, "checkpoints")
    print(f"server killed after epoch 1: training finished {after_kill:.1f} s later, exit 0")

    # the server back (same store, another port): the printed command uploads the run
    uri2 = f"http://127.0.0.1:{_free_port()}"
    server = start_mlflow_server(folder, int(uri2.rsplit(":", 1)[1]), backend)
    try:
        runs_cli = Path(sys.executable).parent / "hybridrec-runs"
        upload = subprocess.run(
            [str(runs_cli), "upload", "--from", fallback_uri, "--to", uri2],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert upload.returncode == 0, upload.stderr[-3000:]
        assert f"into its run {run_id}" in upload.stdout
        client = MlflowClient(tracking_uri=uri2)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run_id, "val/ndcg10")
        assert len({m.step for m in history}) == EPOCHS == len(history)  # none twice
        assert set(local_run.data.metrics) <= set(run.data.metrics)
        assert local_run.data.params.items() <= run.data.params.items()
        assert [a.path for a in client.list_artifacts(run_id, "checkpoints")]
        again = subprocess.run(
            [str(runs_cli), "upload", "--from", fallback_uri, "--to", uri2],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "uploaded before" in again.stdout, again.stderr[-2000:]
    finally:
        stop_server(server)


def test_credentials_in_the_uri_reach_no_param_tag_or_log(tmp_path: Path) -> None:
    folder = tmp_path / "server"
    folder.mkdir()
    port = _free_port()
    server = start_mlflow_server(folder, port, f"sqlite:///{folder / 'mlflow.db'}")
    uri = f"http://analyst:s3cretpw@127.0.0.1:{port}"  # a server without auth ignores them
    try:
        proc = run_train_cli(
            tmp_path, *TRAIN, "trainer.max_epochs=1", f"paths.root_dir={tmp_path}", uri=uri
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-3000:]
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("synthetic")
        assert experiment is not None
        (run,) = client.search_runs([experiment.experiment_id])
        stored = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert "analyst:***@" in run.data.params["logger/tracking_uri"]
        config = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
        logs = [Path(p).read_text() for p in tmp_path.glob("outputs/train/*/*.log")]
        assert logs
        for text in (stored, output, Path(config).read_text(), *logs):
            assert "s3cretpw" not in text
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://analyst:pw@host:5000", "http://analyst:***@host:5000"),
        ("https://token@host", "https://***@host"),
        ("http://host:5000/?token=abc", "http://host:5000/?token=***"),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_fallback_keeps_the_whole_run_and_upload_merges_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast form of the kill test: a "server" (an SQLite store the client treats as
    remote) that refuses every call after epoch 1; the fallback store holds the whole run, and
    the upload completes the server's own run without logging anything twice."""
    monkeypatch.chdir(tmp_path)  # the stores' artifacts under ./mlruns
    server_uri = f"sqlite:///{tmp_path / 'server.db'}"
    client = FallbackClient(server_uri, tmp_path / "out")
    client._remote = True  # what an http(s) URI sets
    run_id = start_run(client, "exp", "run", now_ms(), tags={"task": "train"})
    client.log_param(run_id, "lr", "0.1")
    client.log_metric(run_id, "val/x", 1.0, step=0)
    logged = tmp_path / "config.yaml"  # a temporary file: gone before the server dies
    logged.write_text("lr: 0.1\n")
    client.log_artifact(run_id, str(logged))
    logged.unlink()

    def refused(*args: object, **kwargs: object) -> None:
        raise requests.exceptions.ConnectionError("Connection refused")

    for name in ("log_metric", "log_batch", "log_artifact", "set_terminated", "get_run"):
        monkeypatch.setattr(client._server, name, refused)
    client.log_metric(run_id, "val/x", 2.0, step=1)
    assert end_run(client, run_id, None) == "FINISHED"
    assert client.fell_back
    notice = client.notice(run_id)
    assert notice is not None
    assert f"hybridrec-runs upload --from {client.fallback_uri} --to {server_uri}" in notice

    local = MlflowClient(tracking_uri=client.fallback_uri)
    kept = local.get_run(client.run_id(run_id))
    assert kept.info.status == "FINISHED"
    assert kept.data.params == {"lr": "0.1"}
    assert kept.data.tags[SERVER_RUN_TAG] == run_id
    history = local.get_metric_history(kept.info.run_id, "val/x")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 2.0)]
    assert [a.path for a in local.list_artifacts(kept.info.run_id)] == ["config.yaml"]

    (done,) = upload(client.fallback_uri, server_uri)
    assert (done.target_run_id, done.merged, done.metrics) == (run_id, True, 1)
    server = MlflowClient(tracking_uri=server_uri)
    run = server.get_run(run_id)
    assert run.info.status == "FINISHED"
    history = server.get_metric_history(run_id, "val/x")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 2.0)]
    assert [a.path for a in server.list_artifacts(run_id)] == ["config.yaml"]
    assert upload(client.fallback_uri, server_uri)[0].skipped  # a second upload: nothing
