"""Run ids as a user types them: a unique prefix (4 digits or more) works wherever a run id is
taken (hybridrec-export, hybridrec-eval, hybridrec-train resume=, hybridrec-runs --run and
upload --run-id); a short, unknown or ambiguous one is one sentence and exit 2."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hybridrec.cli import evaluate, export, runs
from hybridrec.cli.checks import ConfigError
from hybridrec.run.resume import get_run
from hybridrec.tracking.run_ids import RunIdError, resolve_run_id, run_or_path, short_ids

#: two runs whose ids share their first 8 digits (MLflow draws ids with uuid4)
TWINS = ("abcd1234" + "0" * 23 + "1", "abcd1234" + "0" * 23 + "2")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str], str]:
    """(uri, run ids, a prefix two runs share): five runs with drawn ids, two twins."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('ids') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ids")
    ids = []
    for k in range(5):
        run = client.create_run(experiment, run_name=f"run{k}", tags={"protocol": "loo_full"})
        ids.append(run.info.run_id)
    with pytest.MonkeyPatch.context() as patch:
        drawn = iter(TWINS)
        patch.setattr(uuid, "uuid4", lambda: uuid.UUID(hex=next(drawn)))
        ids += [client.create_run(experiment, run_name=f"twin{k}").info.run_id for k in range(2)]
    assert ids[-2:] == list(TWINS)
    for run_id in ids:
        client.set_terminated(run_id, "FINISHED")
    return uri, ids, TWINS[0][:8]


def _unknown_prefix(ids: list[str]) -> str:
    pairs = (f"{c}{d}" for c in "0123456789abcdef" for d in "0123456789abcdef")
    return next(p for p in pairs if not any(i.startswith(p) for i in ids)) + "00"


def _unique_prefix(ids: list[str]) -> tuple[str, str]:
    """A run whose shortest unique prefix is under 8 digits, and that prefix (4 at least)."""
    short = short_ids(ids, minimum=4)
    run_id = next(i for i in ids[:5] if len(short[i]) < 8)
    return run_id, short[run_id]


def test_a_unique_prefix_is_the_run(store: tuple[str, list[str], str]) -> None:
    uri, ids, shared = store
    client = MlflowClient(tracking_uri=uri)
    run_id, prefix = _unique_prefix(ids)
    assert resolve_run_id(client, prefix) == run_id
    assert resolve_run_id(client, prefix.upper()) == run_id
    assert resolve_run_id(client, run_id[:8]) == run_id
    assert resolve_run_id(client, "f" * 32) == "f" * 32  # a full id: the command's own lookup
    with pytest.raises(RunIdError, match=rf"run id {shared} is ambiguous: .* give more") as exc:
        resolve_run_id(client, shared)
    assert exc.value.ambiguous
    unknown = _unknown_prefix(ids)
    with pytest.raises(RunIdError, match=f"no run id starts with {unknown} in tracking store"):
        resolve_run_id(client, unknown)
    with pytest.raises(RunIdError, match="'mf-run': not a run id"):
        resolve_run_id(client, "mf-run")
    with pytest.raises(RunIdError, match="too short for a run id prefix; give at least 4"):
        resolve_run_id(client, run_id[:3])  # `hybridrec-export 1` must not pick a run


def test_short_ids_are_unique_and_at_least_eight_digits() -> None:
    ids = ["abcdef0123" + "0" * 22, "abcdef0124" + "0" * 22, "1234567890" + "0" * 22]
    assert short_ids(ids) == {ids[0]: "abcdef0123", ids[1]: "abcdef0124", ids[2]: "12345678"}


def test_a_checkpoint_path_is_left_alone(store: tuple[str, list[str], str], tmp_path: Path) -> None:
    uri, _, _ = store
    client = MlflowClient(tracking_uri=uri)
    checkpoint = tmp_path / "abc"  # a file whose name looks like a prefix
    checkpoint.write_text("")
    assert run_or_path(client, str(checkpoint)) == str(checkpoint)
    assert run_or_path(client, "model.ckpt") == "model.ckpt"


def test_export_and_eval_take_a_prefix(
    store: tuple[str, list[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The run was found from its prefix: the error is about its missing checkpoint."""
    uri, ids, shared = store
    run_id, prefix = _unique_prefix(ids)
    assert export.main([prefix, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} logged no checkpoint" in err and err.count("\n") == 1
    assert evaluate.main([prefix, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} logged no checkpoint" in err and err.count("\n") == 1
    for main in (export.main, evaluate.main):
        assert main([shared, "--tracking-uri", uri]) == 2
        err = capsys.readouterr().err
        assert f"{shared} is ambiguous" in err and err.count("\n") == 1


def test_resume_takes_a_prefix(store: tuple[str, list[str], str]) -> None:
    uri, ids, shared = store
    client = MlflowClient(tracking_uri=uri)
    run_id, prefix = _unique_prefix(ids)
    assert get_run(client, prefix, "resume").info.run_id == run_id
    assert get_run(client, _unknown_prefix(ids), "resume") is None  # train says what to do
    with pytest.raises(ConfigError, match=f"resume {shared} is ambiguous"):
        get_run(client, shared, "resume")


def test_runs_verbs_take_a_prefix(
    store: tuple[str, list[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids, shared = store
    run_id, prefix = _unique_prefix(ids)
    runs.main(["list", "--tracking-uri", uri, "--run", prefix])
    out = capsys.readouterr().out
    assert "1 runs" in out and run_id in out
    with pytest.raises(SystemExit) as exit_code:
        runs.main(["compare", "--tracking-uri", uri, "--run", shared])
    assert exit_code.value.code == 2
    err = capsys.readouterr().err
    assert f"--run {shared} is ambiguous" in err and err.count("\n") == 1
    target = f"sqlite:///{tmp_path / 'target.db'}"
    runs.main(["upload", "--from", uri, "--to", target, "--run-id", prefix])
    assert f"run {run_id} -> {target} as new run" in capsys.readouterr().out
