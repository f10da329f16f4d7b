"""Training time per epoch with 1 vs 2 (or more) intra-op threads, to pick the `threads` default.

    .venv/bin/python scripts/bench_threads.py                                  # default config
    .venv/bin/python scripts/bench_threads.py --set experiment=ncf_neumf_ml1m trainer.max_epochs=2

Prints the mean training seconds per epoch (epochs 2.., training only) for each thread count.
"""

from __future__ import annotations

import argparse
import statistics

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from hybridrec.cli.common import config_dir
from hybridrec.run.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--set", nargs="*", default=["trainer.max_epochs=6"])
    args = parser.parse_args()
    rows = []
    for threads in args.threads:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(
                config_name="train",
                overrides=[
                    f"threads={threads}",
                    "callbacks.early_stopping=null",
                    "test_after_fit=false",
                    "paths.output_dir=outputs/bench/threads",
                    "+logger.tags.benchmark=threads",
                    *args.set,
                ],
            )
        seconds = train(cfg).train_epoch_seconds
        rows.append((threads, statistics.mean(seconds[1:] or seconds), seconds))
    print(f"\noverrides: {' '.join(args.set)}")
    print("| threads | mean train s/epoch (2..) | per epoch |")
    print("|---|---|---|")
    for threads, mean, seconds in rows:
        print(f"| {threads} | {mean:.3f} | {', '.join(f'{s:.2f}' for s in seconds)} |")


if __name__ == "__main__":
    main()
