"""The README's first run, run as written: what `make train` prints must be the block the README
shows (run ids, times and folders aside), and its claims about the data must hold."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_train_cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUN_ID = re.compile(r"[0-9a-f]{32}")
STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")
METRIC = re.compile(r"^  (\S+)\s+(\d\.\d{4})$")
#: the printed metrics may differ from the README's by this much (other CPUs' kernels); on this
#: project's machines the run is deterministic and they match to the 4 digits printed
TOLERANCE = 0.002


def _first_run_block() -> list[str]:
    """The fenced block after "ends with:" in the README's first-run section."""
    match = re.search(r"ends with:\n\n```\n(.*?)```", README.read_text(), re.S)
    assert match, "README: the first-run output block is missing"
    return match.group(1).rstrip("\n").split("\n")


def _make_train_args() -> list[str]:
    """What `make train` passes to hybridrec-train before the user's ARGS (the Makefile's)."""
    match = re.search(r"hybridrec-train (.*?)\s*\$\(ARGS\)", (ROOT / "Makefile").read_text())
    assert match, "Makefile: the train recipe is missing"
    return match.group(1).split()


def _pattern(line: str) -> re.Pattern[str]:
    """A README line as a regex: run ids and time stamps vary, the rest is literal."""
    parts = re.split(f"({RUN_ID.pattern}|{STAMP.pattern})", line)
    out = ""
    for part in parts:
        if RUN_ID.fullmatch(part):
            out += RUN_ID.pattern
        elif STAMP.fullmatch(part):
            out += STAMP.pattern
        else:
            out += re.escape(part)
    return re.compile(out)


def test_readme_first_run_prints_the_readme_block(tmp_path: Path) -> None:
    # `make train` runs `.venv/bin/hybridrec-train` in the checkout: same here, in a fresh
    # folder with the Makefile (the summary points at `make ui` there), no store yet
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    proc = run_train_cli(tmp_path, *_make_train_args())
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = _first_run_block()
    printed = proc.stdout.rstrip("\n").split("\n")[-len(expected) :]
    for want, got in zip(expected, printed, strict=True):
        metric = METRIC.match(want)
        if metric:
            name, value = metric.groups()
            got_match = METRIC.match(got)
            assert got_match and got_match.group(1) == name, (want, got)
            assert float(got_match.group(2)) == pytest.approx(float(value), abs=TOLERANCE), (
                f"README shows {want.strip()!r}, the run printed {got.strip()!r}"
            )
        else:
            assert _pattern(want).fullmatch(got), (want, got)
    # nothing that is not the user's business before the result
    output = proc.stdout + proc.stderr
    for noise in ("💡 Tip", "LeafSpec", "logging interval", "Creating initial MLflow database"):
        assert noise not in output
    # the README's description of the data: users and items the run reports
    users, items = re.search(
        r"hybrid on ([\d,]+) synthetic users × ([\d,]+) items", README.read_text()
    ).groups()  # type: ignore[union-attr]
    assert f"({users} users, {items} items, protocol loo_full)" in output


def test_readme_popularity_figure(tmp_path: Path) -> None:
    """The README's popularity baseline on the first-run data, by its own command."""
    args = re.search(r'make train ARGS="(model=pop[^"]*)"', README.read_text())
    figure = re.search(r"scores HR@10 (0\.\d+) on this data", README.read_text())
    assert args and figure
    proc = run_train_cli(tmp_path, *_make_train_args(), *args.group(1).split())
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = re.search(r"^  test/hr10\s+(\d\.\d{4})$", proc.stdout, re.M)
    assert printed, proc.stdout[-2000:]
    assert float(printed.group(1)) == pytest.approx(float(figure.group(1)), abs=TOLERANCE)


def _own_data_section() -> str:
    match = re.search(r"\n## Your own data\n(.*?)\n## ", README.read_text(), re.S)
    assert match, "README: the 'Your own data' section is missing"
    return match.group(1)


def _write_own_files(folder: Path, headers: list[list[str]]) -> None:
    """Files of the README's layout (its header lines): 80 customers who click mostly within
    one of four categories, 60 items with text, 2 new products."""
    clicks, items, new = headers
    rng = random.Random(0)
    categories = ["shoes", "bags", "hats", "socks"]
    skus = [f"SKU-{i:03d}" for i in range(60)]
    rows = [",".join(items)]
    rows += [f"{s},{categories[i % 4]} model {i},{categories[i % 4]}" for i, s in enumerate(skus)]
    (folder / "items.csv").write_text("\n".join(rows) + "\n")
    rows = [",".join(clicks)]
    for user in range(80):
        own = [s for i, s in enumerate(skus) if i % 4 == user % 4]
        chosen = list(dict.fromkeys(rng.sample(own, 8) + rng.sample(skus, 2)))
        rows += [f"C{user},{s},{1000 + 60 * t + user}" for t, s in enumerate(chosen)]
    (folder / "clicks.csv").write_text("\n".join(rows) + "\n")
    rows = [",".join(new), "SKU-900,shoes model new,shoes", "SKU-901,hats model new,hats"]
    (folder / "newprods.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_readme_own_data_commands(tmp_path: Path) -> None:
    """The 'Your own data' commands as typed, on files of the layout the README shows: the
    run trains on the renamed columns with the item table's text, and --add-items appends the
    new products to the exported catalogue."""
    section = _own_data_section()
    layout = re.search(r"```text\n(.*?)```", section, re.S)
    commands = re.search(r"```bash\n(.*?)```", section, re.S)
    assert layout and commands
    header_line = layout.group(1).split("\n")[1]
    headers = [h.split(",") for h in re.split(r"\s{2,}", header_line.strip())]
    assert [h[0] for h in headers] == ["customer_id", "sku", "sku"], headers
    _write_own_files(tmp_path, headers)
    lines = commands.group(1).replace("\\\n", " ").strip().split("\n")
    assert len(lines) == 2, lines
    train_args = shlex.split(lines[0], comments=True)
    assert train_args[0] == ".venv/bin/hybridrec-train"
    proc = run_train_cli(tmp_path, *train_args[1:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(80 users, 60 items, protocol loo_full)" in proc.stdout + proc.stderr
    run_id = re.findall(r"MLflow run ([0-9a-f]{32}) \(hybrid-", proc.stdout)[-1]
    export_args = shlex.split(lines[1].replace("<run id>", run_id), comments=True)
    assert export_args[0] == ".venv/bin/hybridrec-export"
    script = Path(sys.executable).parent / "hybridrec-export"
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI"}}
    done = subprocess.run(
        [str(script), *export_args[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "exports" / run_id
    items = json.loads((folder / "items.json").read_text())
    assert items[-2:] == ["SKU-900", "SKU-901"] and len(items) == 1 + 60 + 2
    meta = json.loads((folder / "export.json").read_text())
    assert meta["n_new_items"] == 2 and meta["model"].endswith("ComposedHybrid")
