"""Scaling sweep: how epoch time, evaluation time and memory grow with interactions and items.

    .venv/bin/python scripts/bench_scaling.py                              # CPU grid, MF
    .venv/bin/python scripts/bench_scaling.py --interactions 1e6 5e6 20e6 --items 1e4 1e5 1e6 \\
        --model neumf --set trainer=gpu                                    # on a GPU

One ``hybridrec-bench`` process per cell (so each peak memory is that cell's own) on
``data=synthetic_scale`` with ``interactions / --per-user`` users, in ``bench/scaling/`` (its own
prepared data and MLflow store). Printed: a markdown table of the cells, written to ``--out`` as
JSON too. Preparing a dataset is not timed (it is cached for the next run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "scaling"


def cell(interactions: int, items: int, args: argparse.Namespace) -> dict:
    users = max(interactions // args.per_user, 1)
    out = BENCH / f"{args.model}-{interactions}-{items}.json"
    command = [
        sys.executable,
        "-m",
        "hybridrec.cli.bench",
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
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{BENCH / 'mlflow.db'}"}
    env.pop("HYBRIDREC_ROOT", None)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=BENCH, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"interactions": interactions, "items": items, "error": done.returncode}
    report = json.loads(out.read_text())
    return {"interactions": interactions, "items": items, "users": users, "wall_s": wall, **report}


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
    args = parser.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    rows = []
    for interactions in args.interactions:
        for items in args.items:
            row = cell(int(interactions), int(items), args)
            rows.append(row)
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
        "| peak host MiB | peak device MiB | test HR@10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
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
        print("| " + " | ".join(cells) + " |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
