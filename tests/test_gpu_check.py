"""scripts/gpu_check.sh: the GPU checks, ready for a lent machine and tried here with --cpu."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STEPS = [
    "environment",
    "gpu-tests",
    "neumf-ml1m",
    "neumf-20m",
    "gru4rec-rsc15",
    "hybrid-rsc15",
    "scaling-interactions",
    "scaling-items",
]


def _limits(text: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" (limit ")
        if rest:
            found[name] = int(rest.split("s)", 1)[0])
    return found


@pytest.mark.parametrize("mode", [[], ["--cpu"]])
def test_dry_run_lists_every_step_within_eight_minutes(tmp_path: Path, mode: list[str]) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", *mode],
        capture_output=True,
        text=True,
        env={**os.environ, "OUT": str(tmp_path)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    limits = _limits(done.stdout)
    assert list(limits) == STEPS
    assert sum(limits.values()) <= 8 * 60
    gpu = "--cpu" not in mode
    assert ("trainer=gpu" in done.stdout) == gpu
    assert ("data.source.n_interactions=20000000" in done.stdout) == gpu


def test_unknown_flag_is_refused() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown argument --gpu" in done.stderr


@pytest.mark.slow
def test_cpu_run_in_a_checkout_without_the_shared_data(tmp_path: Path) -> None:
    """What the GPU machine gets: a checkout, the prepared folders carried, no ../shared."""
    prepared = sorted((ROOT / "data" / "prepared").glob("ncf_ml1m-loo_sampled-*")) + sorted(
        (ROOT / "data" / "prepared").glob("rsc15_100k-session-*")
    )
    if len(prepared) < 2:
        pytest.skip("prepare NCF ML-1M and RSC15 first (see the script's header)")
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    shutil.copy(SCRIPT, repo / "scripts" / "gpu_check.sh")  # the working copy under test
    for folder in prepared:
        shutil.copytree(folder, repo / "data" / "prepared" / folder.name)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("HYBRIDREC_SHARED_DIR",)}
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--cpu"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**env, "OUT": str(out)},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    for step in STEPS:
        assert f"- {step}: exit 0" in summary, summary
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back
    assert "NeuMF 20M:" in summary
