"""NeuMF-64 training step and batch making, before / after: two revisions, interleaved runs.

    .venv/bin/python scripts/bench_step_ab.py --old c79995c --repeats 3

Each timing is its own process (``scripts/profile_step.py`` for one step in isolation, one
thread; a loop over one epoch of ``TrainBatches`` on the prepared NCF ML-1M folder for batch
making) with PYTHONPATH pointing at the revision's ``src/`` (a git worktree under
``bench/worktrees/``), alternating old, new. Printed: the median ms per step of each side and
precision, the implied seconds per epoch (994,169 training pairs) and new/old ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = 994_169

BATCHES = """
import sys, time, torch
from hybridrec.data import RecDataModule
torch.set_num_threads(1)
dm = RecDataModule(sys.argv[1], batch_size=int(sys.argv[2]), num_negatives=4)
dm.setup()
start = time.perf_counter()
for batch in dm._train:
    pass
print(f"batches {time.perf_counter() - start:.3f} s")
"""


def worktree(rev: str) -> Path:
    path = ROOT / "bench" / "worktrees" / rev
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "-f", str(path), rev], cwd=ROOT, check=True)
    return path


def run(src: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"([\d.]+) ms/step", out) or re.search(r"batches ([\d.]+) s", out)
    assert found is not None, out
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="git revision to compare with")
    parser.add_argument("--batch", type=int, nargs="+", default=[819, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--data", default=None, help="prepared NCF ML-1M folder (default: data/prepared/ncf_ml1m-*)"
    )
    args = parser.parse_args()
    sides = {"old": worktree(args.old) / "src", "new": ROOT / "src"}
    data = args.data or str(next((ROOT / "data" / "prepared").glob("ncf_ml1m-loo_sampled-*")))
    profile = str(ROOT / "scripts" / "profile_step.py")
    times: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.repeats):
        for batch in args.batch:
            for precision in ("fp32", "bf16"):
                for side, src in sides.items():
                    flags = ["--bf16"] if precision == "bf16" else []
                    step = [profile, "--batch", str(batch), "--steps", str(args.steps), *flags]
                    times.setdefault((side, precision, batch), []).append(run(src, step))
            for side, src in sides.items():
                seconds = run(src, ["-c", BATCHES, data, str(batch)])
                times.setdefault((side, "batches", batch), []).append(seconds)
    print(f"NeuMF-64, one thread, old = {args.old}, new = working tree; medians of {args.repeats}")
    print("| batch | what | old | new | new / old |")
    print("|---|---|---|---|---|")
    for batch in args.batch:
        for what in ("fp32", "bf16", "batches"):
            old = statistics.median(times[("old", what, batch)])
            new = statistics.median(times[("new", what, batch)])
            if what == "batches":
                label, o, n = "batch making, one epoch (s)", f"{old:.2f}", f"{new:.2f}"
            else:
                label = f"step {what}: ms (epoch s)"
                o = f"{old:.1f} ({old * PAIRS / batch / 1000:.1f})"
                n = f"{new:.1f} ({new * PAIRS / batch / 1000:.1f})"
            print(f"| {batch} | {label} | {o} | {n} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
