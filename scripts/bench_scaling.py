"""Scaling sweep: how epoch time, evaluation time and memory grow with interactions and items.

    .venv/bin/python scripts/bench_scaling.py                              # CPU grid, MF
    .venv/bin/python scripts/bench_scaling.py --interactions 1e6 5e6 20e6 --items 1e4 1e5 1e6 \\
        --model neumf --set trainer=gpu                                    # on a GPU

One ``hybridrec-bench`` process per cell (so each peak memory is that cell's own), forked from
this one once it has imported the package (``--no-fork``: a fresh interpreter each), on
``data=synthetic_scale`` with ``interactions / --per-user`` users, in ``bench/scaling/`` (its own
prepared data and MLflow store). Printed: a markdown table of the cells, written to ``--out`` as
JSON too (rewritten after every cell). Preparing a dataset is not in the epoch and evaluation
figures (it is cached for the next run), but it is in a cell's wall time.

``--time-limit S`` bounds the whole sweep: a cell still running at S seconds is stopped, the
cells after it are not started, and both are listed as such in the table and the JSON, so a
sweep under an outer time limit (scripts/gpu_check.sh) still reports the cells that finished.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "scaling"


def cell(interactions: int, items: int, args: argparse.Namespace, timeout: float | None) -> dict:
    users = max(interactions // args.per_user, 1)
    out = BENCH / f"{args.model}-{interactions}-{items}.json"
    out.unlink(missing_ok=True)
    argv = [
        "--epochs",
        str(args.epochs),
        "--json",
        str(out),
        "data=synthetic_scale",
        f"data.source.n_users={users}",
        f"data.source.n_items={items}",
        f"data.source.n_interactions={interactions}",
        f"model={args.model}",
        f"protocol={args.protocol}",
        f"datamodule.batch_size={args.batch}",
        f"datamodule.eval_batch_size={args.eval_batch}",
        f"paths.root_dir={BENCH}",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        f"task_name=scaling-{args.model}",
        *args.set,
    ]
    log = BENCH / f"{args.model}-{interactions}-{items}.log"
    started = time.perf_counter()
    code = _forked(argv, log, timeout) if args.fork else _spawned(argv, log, timeout)
    if args.fork and code not in (0, None) and _cuda_refused_the_fork(log):
        print("bench_scaling: CUDA refused a forked cell; fresh interpreters from here on")
        args.fork = False
        left = None if timeout is None else timeout - (time.perf_counter() - started)
        code = _spawned(argv, log, left)
    wall = time.perf_counter() - started
    row: dict = {"interactions": interactions, "items": items, "users": users, "wall_s": wall}
    if code is None:
        return {**row, "error": f"time limit ({wall:.0f} s)"}
    if code != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
        return {**row, "error": code}
    return {**row, **json.loads(out.read_text())}


def _cuda_refused_the_fork(log: Path) -> bool:
    """A forked cell's CUDA did not start: its parent had started CUDA after all."""
    text = log.read_text(errors="replace")
    return "forked subprocess" in text or "CUDA error: initialization error" in text


def _cell_env() -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{BENCH / 'mlflow.db'}"}
    env.pop("HYBRIDREC_ROOT", None)
    return env


def _spawned(argv: list[str], log: Path, timeout: float | None) -> int | None:
    """Run ``hybridrec-bench argv`` in a fresh interpreter; its exit code, None at the limit."""
    command = [sys.executable, "-m", "hybridrec.cli.bench", *argv]
    with log.open("w") as sink:
        try:
            done = subprocess.run(
                command, cwd=BENCH, env=_cell_env(), stdout=sink, stderr=sink, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return None
    return done.returncode


def _warm_up() -> None:
    """Import what every cell imports, once, in this process, so that forked cells start
    without it (here ~25 of a small cell's ~28 s went to imports). CUDA must not start here:
    a forked child cannot use a CUDA its parent started, so any device probe during the
    imports goes through NVML (``PYTORCH_NVML_BASED_CUDA_CHECK``), which starts nothing."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import hybridrec.cli.bench  # noqa: F401
    import hybridrec.cli.train  # noqa: F401
    import hybridrec.data  # noqa: F401
    import hybridrec.lit  # noqa: F401
    import hybridrec.nn  # noqa: F401


def _forked(argv: list[str], log: Path, timeout: float | None) -> int | None:
    """Run ``hybridrec-bench argv`` in a child forked from this warmed-up process (its own
    process, so its peak memory is its own); its exit code, None at the limit."""
    process = multiprocessing.get_context("fork").Process(target=_cell_child, args=(argv, log))
    sys.stdout.flush()
    sys.stderr.flush()
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        return None
    return process.exitcode


def _cell_child(argv: list[str], log: Path) -> None:
    sink = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.chdir(BENCH)
    env = _cell_env()
    os.environ.clear()
    os.environ.update(env)
    from hybridrec.cli.bench import main

    try:
        main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=float, nargs="+", default=[1e6, 5e6])
    parser.add_argument("--items", type=float, nargs="+", default=[1e4, 1e5])
    parser.add_argument("--per-user", type=int, default=50, help="interactions per user")
    parser.add_argument("--model", default="mf")
    parser.add_argument("--protocol", default="loo_sampled")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--eval-batch", type=int, default=4096)
    parser.add_argument("--set", nargs="*", default=[], help="more hybridrec-train overrides")
    parser.add_argument("--out", type=Path, default=BENCH / "scaling.json")
    parser.add_argument(
        "--time-limit", type=float, help="seconds for the whole sweep (default: none)"
    )
    parser.add_argument(
        "--no-fork",
        dest="fork",
        action="store_false",
        help="start every cell as a fresh interpreter (default: forked from a warmed-up one)",
    )
    args = parser.parse_args()
    deadline = None if args.time_limit is None else time.monotonic() + args.time_limit
    BENCH.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.fork:
        _warm_up()
    rows: list[dict] = []
    for interactions in args.interactions:
        for items in args.items:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 1:
                row = {"interactions": int(interactions), "items": int(items)}
                rows.append({**row, "error": "not started (time limit)"})
                continue
            row = cell(int(interactions), int(items), args, left)
            rows.append(row)
            args.out.write_text(json.dumps(rows, indent=2))
            print(
                json.dumps(
                    {
                        k: row.get(k)
                        for k in (
                            "interactions",
                            "items",
                            "train_epoch_s",
                            "val_epoch_s",
                            "peak_host_mb",
                        )
                    }
                ),
                flush=True,
            )
    args.out.write_text(json.dumps(rows, indent=2))
    print(
        f"\n{args.model}, {args.protocol}, batch {args.batch}, {' '.join(args.set) or 'defaults'}"
    )
    print(
        "| interactions | items | users | train epoch s | samples/s | validation s | test s "
        "| peak host MiB | peak device MiB | test HR@10 | cell wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['interactions']:,} | {r['items']:,} | failed ({r['error']}) |")
            continue
        cells = [f"{r['interactions']:,}", f"{r['items']:,}", f"{r['users']:,}"]
        for key, fmt in (
            ("train_epoch_s", ".2f"),
            ("train_samples_per_s", ",.0f"),
            ("val_epoch_s", ".2f"),
            ("test_s", ".2f"),
            ("peak_host_mb", ",.0f"),
            ("peak_device_mb", ",.0f"),
        ):
            cells.append("-" if r.get(key) is None else format(r[key], fmt))
        cells.append(f"{r['quality'].get('test/hr@10', float('nan')):.4f}")
        cells.append(f"{r['wall_s']:.1f}")
        print("| " + " | ".join(cells) + " |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
