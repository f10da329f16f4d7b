"""The console scripts catch only our errors: a user's mistake exits 2 with its one sentence;
a bug (a plain ValueError or LookupError from deep inside) keeps its traceback and does not
exit 2, so it cannot pass for the user's fault."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hybridrec.cli.evaluate import main as eval_main
from hybridrec.cli.export import main as export_main
from hybridrec.cli.review import main as review_main
from hybridrec.cli.runs import main as runs_main
from hybridrec.errors import CheckpointError, HybridrecError, NotFoundError, QueryError


def _bug(*args: object, **kwargs: object) -> None:
    raise ValueError("a bug: an internal ValueError")


def _lookup_bug(*args: object, **kwargs: object) -> None:
    raise KeyError("a bug: an internal KeyError")


def _said(capsys: pytest.CaptureFixture[str]) -> str:
    """The script's last line on stderr, checked to be its only one of its own: one sentence,
    no traceback (MLflow may log a line before it, creating a store)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert sum(line.startswith("hybridrec-") for line in lines) == 1, err
    return lines[-1]


# -- hybridrec-export ------------------------------------------------------------------------
def test_export_user_error_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item,title\n1,a\n")
    assert export_main([str(path), "--out", str(tmp_path / "out"), "--no-log"]) == 2
    assert _said(capsys).startswith(f"hybridrec-export: error: {path} is not a checkpoint")


@pytest.mark.parametrize("bug", [_bug, _lookup_bug], ids=["ValueError", "KeyError"])
def test_export_bug_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bug: object
) -> None:
    monkeypatch.setattr("hybridrec.export.source.resolve_checkpoint", bug)
    with pytest.raises((ValueError, KeyError), match="a bug") as caught:
        export_main(["model.ckpt", "--out", str(tmp_path / "out"), "--no-log"])
    assert not isinstance(caught.value, HybridrecError)


def test_a_bug_exits_non_2_with_a_traceback(tmp_path: Path) -> None:
    """Through the interpreter, as a user runs it: exit 1 and the traceback, not one line."""
    code = textwrap.dedent(
        """
        import sys
        import hybridrec.export.source as source

        def resolve_checkpoint(*args, **kwargs):
            raise ValueError("a bug deep inside")

        source.resolve_checkpoint = resolve_checkpoint
        from hybridrec.cli.export import main
        sys.exit(main(["model.ckpt", "--no-log", "--out", "out"]))
        """
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode not in (0, 2), done.stderr
    assert "Traceback" in done.stderr and "ValueError: a bug deep inside" in done.stderr
    assert "hybridrec-export: error" not in done.stderr


# -- hybridrec-eval --------------------------------------------------------------------------
def test_eval_lambdas_user_error_is_one_sentence(
    mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert eval_main(["model.ckpt", "--lambdas", "0,x", "--tracking-uri", mlflow_uri]) == 2
    assert _said(capsys) == (
        "hybridrec-eval: error: --lambdas '0,x': expected numbers >= 0 separated by commas "
        "(e.g. 0,0.3,1)"
    )


def test_eval_not_a_checkpoint_is_one_sentence(
    tmp_path: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not a torch file")
    assert eval_main([str(path), "--tracking-uri", mlflow_uri]) == 2
    assert _said(capsys).startswith(f"hybridrec-eval: error: {path}: not a checkpoint written by")


@pytest.mark.parametrize("bug", [_bug, _lookup_bug], ids=["ValueError", "KeyError"])
def test_eval_bug_keeps_its_traceback(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch, bug: object
) -> None:
    monkeypatch.setattr("hybridrec.cli.evaluate.evaluate", bug)
    with pytest.raises((ValueError, KeyError), match="a bug"):
        eval_main(["model.ckpt", "--tracking-uri", mlflow_uri])


# -- hybridrec-runs --------------------------------------------------------------------------
def test_runs_user_error_is_one_sentence(
    mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        runs_main(["compare", "--tracking-uri", mlflow_uri, "-e", "no_such_experiment"])
    assert caught.value.code == 2
    assert _said(capsys).startswith("hybridrec-runs: no experiment named 'no_such_experiment'")


@pytest.mark.parametrize("bug", [_bug, _lookup_bug], ids=["ValueError", "KeyError"])
def test_runs_bug_keeps_its_traceback(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch, bug: object
) -> None:
    monkeypatch.setattr("hybridrec.tracking.listing.select_runs", bug)
    with pytest.raises((ValueError, KeyError), match="a bug"):
        runs_main(["compare", "--tracking-uri", mlflow_uri])


# -- hybridrec-review ------------------------------------------------------------------------
def test_review_user_error_is_one_sentence(
    mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert review_main(["0123abcd", "--tracking-uri", mlflow_uri, "--no-log"]) == 2
    err = _said(capsys)
    assert err.startswith("hybridrec-review: error: run id 0123abcd: no run id starts with")


def test_review_bug_keeps_its_traceback(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hybridrec.tracking.run_ids.resolve_run_id", _bug)
    with pytest.raises(ValueError, match="a bug"):
        review_main(["0123abcd", "--tracking-uri", mlflow_uri, "--no-log"])


# -- the errors the scripts now catch, raised at their source ---------------------------------
def test_the_new_errors_keep_their_standard_bases() -> None:
    assert issubclass(CheckpointError, ValueError) and issubclass(QueryError, ValueError)
    assert issubclass(NotFoundError, LookupError)
    for error in (CheckpointError, QueryError, NotFoundError):
        assert issubclass(error, HybridrecError)


# -- the override parser (hybridrec-train, hybridrec-data) ------------------------------------
def test_hydras_own_value_error_is_a_usage_error() -> None:
    from hybridrec.overrides import UsageError, compose_checked

    with pytest.raises(UsageError, match=r"^~protocol=0: Config group override deletion"):
        compose_checked("hybridrec-data prepare", ["~protocol=0"])


def test_a_value_error_outside_hydra_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybridrec.overrides import UsageError, compose_checked

    monkeypatch.setattr("hybridrec.overrides._compose_raw", _bug)
    with pytest.raises(ValueError, match="a bug") as caught:
        compose_checked("hybridrec-data prepare", ["seed=1"])
    assert not isinstance(caught.value, UsageError)
