"""Start-up cost of the console scripts, held without timing: ``--help`` (and a mistyped
override) must not import torch, Lightning, MLflow or the data layer, which take ~8 s to load
and which those answers never need (docs/benchmarks.md, "Start-up time"). Checked through
``python -X importtime``, which lists every module the process imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: what a help text never needs (each costs seconds to import)
HEAVY = ("torch", "lightning", "mlflow", "pandas", "pyarrow", "transformers", "onnx")


def _imported(*args: str, cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The top-level packages a ``python -X importtime`` run of ``args`` imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    # lines: "import time: self [us] | cumulative | imported package"
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, done


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("hybridrec-train", "config groups (group=option"),
        ("hybridrec-runs", "usage: hybridrec-runs"),
        ("hybridrec-export", "usage: hybridrec-export"),
        ("hybridrec-review", "usage: hybridrec-review"),
    ],
)
def test_help_loads_no_heavy_package(script: str, says: str, tmp_path: Path) -> None:
    names, done = _imported(str(BIN / script), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert says in done.stdout
    assert "argparse" in names or script == "hybridrec-train"  # the listing is read right
    assert "hybridrec" in names
    assert not [h for h in HEAVY if h in names], f"{script} --help imports {names & set(HEAVY)}"


def test_train_help_lists_every_config_group_and_option(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "hybridrec-train"), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    listed = " ".join(done.stdout.split())  # options wrap over lines
    for folder in (ROOT / "configs").rglob("*"):
        group = folder.relative_to(ROOT / "configs").as_posix()
        if folder.is_dir() and not group.startswith("hydra"):
            assert f" {group} " in listed, group
            for option in sorted(folder.glob("*.yaml")):
                assert option.stem in listed, f"{group}={option.stem}"


def test_a_mistyped_override_is_answered_before_torch(tmp_path: Path) -> None:
    names, done = _imported(str(BIN / "hybridrec-train"), "trainer.max_epoch=3", cwd=tmp_path)
    assert done.returncode == 2
    assert "did you mean trainer.max_epochs=3" in done.stderr
    assert not [h for h in HEAVY if h in names]


def test_the_console_scripts_are_the_light_modules() -> None:
    """pyproject's entry points name the modules checked above (a reinstall is needed when
    they change: `make install`)."""
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+)
    assert 'hybridrec-train = "hybridrec.cli.train_app:main"' in pyproject
    assert 'hybridrec-runs = "hybridrec.cli.runs:main"' in pyproject
    assert 'hybridrec-review = "hybridrec.cli.review:main"' in pyproject
    assert 'hybridrec-export = "hybridrec.cli.export:main"' in pyproject
    installed = (BIN / "hybridrec-train").read_text()
    assert "from hybridrec.cli.train_app import main" in installed, "run `make install`"
