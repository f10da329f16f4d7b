"""A checkpoint someone was sent can hold a pickle that runs code when loaded. Every command that
reads a checkpoint loads it with weights_only=True: such a file is refused with one sentence,
and its code never runs. Truncated files are refused the same way.

The controls prove the payload is live: loaded the unsafe way (``pickle.load``,
``torch.load(weights_only=False)``, ``np.load(allow_pickle=True)``) it does create its marker
file. The paths fed a hostile file: ``load_model``, ``hybridrec-export``, ``hybridrec-eval``,
``hybridrec-train ckpt_path=`` and ``resume=``, and the served pyfunc model loading each of its
artifacts (checkpoint, popularity, seen items, added products), directly and through
``mlflow.pyfunc.load_model``."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hybridrec.cli.checks import ConfigError
from hybridrec.cli.evaluate import main as eval_main
from hybridrec.cli.export import main as export_main
from hybridrec.export.pyfunc_model import HybridrecRecommender
from hybridrec.lit.checkpoint import load_model, safe_load
from hybridrec.run.tags import OUTPUT_DIR_TAG
from hybridrec.run.train import train


class _Payload:
    """Unpickling this calls os.system: it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {}, "hybridrec_model": _Payload(marker)}, path)
    return path, marker


def test_control_the_payload_runs_when_loaded_unsafely(hostile: tuple[Path, Path]) -> None:
    """Without this, "the marker is absent" could mean a payload that never worked."""
    path, marker = hostile
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(path) as archive:  # the pickle inside torch's zip archive
        data = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        pickle.loads(archive.read(data))
    assert marker.exists()


def _hostile_npy(tmp_path: Path, marker: Path, name: str) -> Path:
    """An .npy (object array) whose element runs code when np.load unpickles it."""
    path = tmp_path / name
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    return path


def test_control_a_numpy_file_runs_code_when_loaded_unsafely(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    np.load(_hostile_npy(tmp_path, marker, "popularity.npy"), allow_pickle=True)
    assert marker.exists()


def test_load_model_refuses_a_pickle_and_runs_nothing(hostile: tuple[Path, Path]) -> None:
    path, marker = hostile
    with pytest.raises(ValueError, match="refused, it holds Python objects") as error:
        load_model(path)
    assert str(path) in str(error.value) and "weights_only=True" in str(error.value)
    assert not marker.exists()


def test_commands_refuse_it_with_one_sentence(
    hostile: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, marker = hostile
    assert export_main([str(path), "--out", str(tmp_path / "out"), "--no-log"]) == 2
    assert eval_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(path)) == 2 and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_truncated_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="not a checkpoint written by hybridrec-train"):
        safe_load(path)


@pytest.mark.parametrize(
    "text", ["sku,title\nB,x\n", "sku\n", "item,title\n12,shoe\n", "hello", ""]
)
def test_a_file_that_is_no_checkpoint_is_named_with_what_was_expected(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An item table given where the checkpoint goes: whatever its bytes make the unpickler
    raise ("pop from empty list", a KeyError), the answer is one sentence, exit 2."""
    path = tmp_path / "items.csv"
    path.write_text(text)
    assert export_main([str(path), "--out", str(tmp_path / "out"), "--no-log"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"hybridrec-export: error: {path} is not a checkpoint: expected an MLflow run id or a "
        ".ckpt file written by hybridrec-train (a torch zip archive); an item table of new "
        "products goes after --add-items, next to one"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["sku,title\nB,x\n", "sku\n", "item,title\n12,shoe\n", "hello"])
def test_safe_load_names_a_file_of_another_kind(text: str, tmp_path: Path) -> None:
    """Every loader goes through safe_load (hybridrec-eval, load_model): bytes that make the
    unpickler raise IndexError / KeyError / ValueError come out as one ValueError naming the
    file, never the unpickler's own message."""
    path = tmp_path / "items.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="not a checkpoint written by hybridrec-train") as info:
        safe_load(path)
    assert str(path) in str(info.value)


def test_train_ckpt_path_refuses_it(
    hostile: tuple[Path, Path], compose_cfg: Callable[..., DictConfig]
) -> None:
    path, marker = hostile
    with pytest.raises(ConfigError, match="refused, it holds Python objects") as info:
        train(compose_cfg(f"ckpt_path={path}"))
    assert str(path) in str(info.value) and not marker.exists()


def test_train_resume_refuses_the_runs_checkpoint(
    tmp_path: Path, compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    """resume=RUN_ID reads the run's last.ckpt from its output folder: a file put there by
    someone else is refused the same way."""
    marker = tmp_path / "code-ran"
    output = tmp_path / "job"
    (output / "checkpoints").mkdir(parents=True)
    last = output / "checkpoints" / "last.ckpt"
    torch.save({"loops": {}, "hybridrec_model": _Payload(marker)}, last)
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("hostile") or client.get_experiment(
        client.create_experiment("hostile")
    )
    run = client.create_run(experiment.experiment_id, tags={OUTPUT_DIR_TAG: str(output)})
    client.set_terminated(run.info.run_id, "FAILED")
    with pytest.raises(ConfigError, match="refused, it holds Python objects") as info:
        train(compose_cfg(f"resume={run.info.run_id}"))
    assert "last.ckpt" in str(info.value) and not marker.exists()


def _plain_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of plain data only: enough for the served model to reach its other
    artifacts (it loads them before it builds the model)."""
    path = tmp_path / "plain.ckpt"
    torch.save({"hybridrec_model": {"id_maps": {"users": [], "items": []}}}, path)
    return path


@pytest.mark.parametrize("artifact", ["checkpoint", "new_items", "popularity", "seen"])
def test_the_served_model_refuses_a_hostile_artifact(artifact: str, tmp_path: Path) -> None:
    """Each artifact the pyfunc model loads, replaced by one that runs code: refused, never
    run. The checkpoint and the added products go through safe_load; the .npy / .npz files
    through np.load, whose allow_pickle is false."""
    marker = tmp_path / "code-ran"
    artifacts = {"checkpoint": str(_plain_checkpoint(tmp_path))}
    if artifact in ("checkpoint", "new_items"):
        path = tmp_path / f"{artifact}.pt"
        torch.save({"hybridrec_model": _Payload(marker), "items": _Payload(marker)}, path)
        expected = "refused, it holds Python objects"
    elif artifact == "popularity":
        path = _hostile_npy(tmp_path, marker, "popularity.npy")
        expected = "allow_pickle=False"
    else:
        path = tmp_path / "seen.npz"
        evil = np.array([_Payload(marker)], dtype=object)
        np.savez(path, indptr=evil, items=evil)
        expected = "allow_pickle=False"
    artifacts[artifact] = str(path)
    with pytest.raises(ValueError, match=expected):
        HybridrecRecommender().load_context(SimpleNamespace(artifacts=artifacts))
    assert not marker.exists()


@pytest.mark.slow  # MLflow saves and loads a model folder (~25 s on two cores)
def test_mlflow_load_model_refuses_a_hostile_checkpoint(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    """The path ``mlflow models serve`` takes: a model folder whose checkpoint artifact is
    hostile fails to load, and the payload does not run."""
    import mlflow

    from hybridrec.export import pyfunc_model

    path, marker = hostile
    folder = tmp_path / "served"
    mlflow.pyfunc.save_model(
        str(folder), python_model=pyfunc_model.__file__, artifacts={"checkpoint": str(path)}
    )
    with pytest.raises(Exception, match="refused, it holds Python objects"):
        mlflow.pyfunc.load_model(str(folder))
    assert not marker.exists()


def test_forget_refuses_a_hostile_model_checkpoint(
    hostile: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hybridrec-data forget --model reads the served model's checkpoint: refused the same way."""
    from hybridrec.cli.data import main as data_main

    path, marker = hostile
    folder = tmp_path / "served"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "artifacts" / "best.ckpt").write_bytes(path.read_bytes())
    assert data_main(["forget", "7", "--model", str(folder), "--no-tag"]) == 2
    err = capsys.readouterr().err
    assert "refused, it holds Python objects" in err and "Traceback" not in err
    assert not marker.exists()
