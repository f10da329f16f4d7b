"""The SeqRec training step of an older revision against today's, interleaved in one process.

    .venv/bin/python scripts/bench_seqrec_step_revisions.py --old df490a1

Separate runs on a shared machine differ by ±15% from run to run; interleaving the two steps
on the same batch, with the same weights (same seed), removes that noise. Sizes: SASRec on
Scientific (dim 300, 2 layers, 2 heads, ffn 256, batch 512 windows of 50, 5,327 items); one
step = forward, full-catalogue cross-entropy, backward, Adam. Prints the median ms per step of
each side (after 2 warm-up steps) and new/old. 1 thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import time
from pathlib import Path

import torch

from hybridrec.data.batch import WindowBatch
from hybridrec.lit import adapter
from hybridrec.nn import SeqRec

ROOT = Path(__file__).resolve().parents[1]


def old_seqrec(revision: str) -> type:
    source = subprocess.run(
        ["git", "show", f"{revision}:src/hybridrec/nn/seqrec.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = ROOT / "bench" / f"seqrec_{revision}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"seqrec_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SeqRec  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", required=True, help="git revision of the old SeqRec")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_items, rows, width = 5327, 512, 50
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, width + 1, (rows,), generator=generator)
    history = torch.randint(1, n_items + 1, (rows, width), generator=generator)
    history[torch.arange(width)[None, :] < (width - lengths)[:, None]] = 0  # left padding
    targets = torch.roll(history, -1, 1)
    targets[:, -1] = 0
    targets[history == 0] = 0
    batch = WindowBatch(
        users=torch.arange(rows), history=history, history_lengths=lengths, sequence_targets=targets
    )
    sizes = dict(n_users=rows, n_items=n_items, dim=300, layers=2, heads=2, ffn_dim=256)
    torch.manual_seed(0)
    old = old_seqrec(args.old)(**sizes)
    torch.manual_seed(0)
    new = SeqRec(**sizes)  # type: ignore[arg-type]
    labels = targets[targets > 0]
    sides = {
        "old": (old, torch.optim.Adam(old.parameters(), 1e-3), lambda m, b: m(b)),
        "new": (new, torch.optim.Adam(new.parameters(), 1e-3), adapter.scores),
    }
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.steps):
        for name, (model, optimizer, scores) in sides.items():
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(scores(model, batch), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values[2:]) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name}: median {median * 1000:.1f} ms/step")
    print(f"new/old {medians['new'] / medians['old']:.3f}")


if __name__ == "__main__":
    main()
