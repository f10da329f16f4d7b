"""A checkpoint someone was sent can hold a pickle that runs code when loaded. Every command that
reads a checkpoint loads it with weights_only=True: such a file is refused with one sentence,
and its code never runs. Truncated files are refused the same way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hybridrec.cli.evaluate import main as eval_main
from hybridrec.cli.export import main as export_main
from hybridrec.lit.checkpoint import load_model, safe_load


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
