"""Time GRU4Rec's evaluation pass with and without the prefix cache (docs/perf_eval_cache.md).

    .venv/bin/python scripts/time_prefix_eval.py --experiment gru4rec_beauty_xe
    .venv/bin/python scripts/time_prefix_eval.py --experiment gru4rec_rsc15_xe --stage test

Builds the experiment's datamodule twice from the Hydra config (``datamodule.prefix_cache``
false = A, every prefix encoded anew; true = B, each sequence encoded once), one untrained
model and its RecLitModule, and runs Lightning's validation (or test) loop on the CPU:
one warm-up pass each, then A B A B ... ``--repeats`` times. Prints each pass's wall-clock
and CPU seconds (this process's; steadier than wall-clock on a shared machine), the medians,
B's speed-up, and the metrics of both (they must agree). Extra arguments are Hydra
overrides. The RSC15 experiments have no validation split (``protocol.val_days: 0``): time
their test pass, the same code.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.lit import RecLitModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    parser.add_argument("--experiment", default="gru4rec_beauty_xe")
    parser.add_argument("--stage", choices=("val", "test"), default="val")
    parser.add_argument("--repeats", type=int, default=3, help="A B pairs timed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir(), version_base=None):
        cfg = compose("train", overrides=[f"experiment={args.experiment}", *args.overrides])
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    module = RecLitModule(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        ks=cfg.ks,
        ties=cfg.ties,
    )
    datamodules = {
        cache: instantiate(cfg.datamodule, prefix_cache=cache) for cache in (False, True)
    }
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    run = trainer.validate if args.stage == "val" else trainer.test

    def timed(cache: bool) -> tuple[float, float, dict[str, Any]]:
        start, cpu = time.perf_counter(), time.process_time()
        (metrics,) = run(module, datamodule=datamodules[cache], verbose=False)
        return time.perf_counter() - start, time.process_time() - cpu, metrics

    results = {cache: timed(cache)[2] for cache in (False, True)}  # warm-up (and setup)
    for cache, dm in datamodules.items():
        batches = dm._val if args.stage == "val" else dm._test
        print(
            f"prefix_cache={cache}: layout used {batches.prefix_cache}, rows {len(batches.users)}"
        )
    seconds: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for cache in (False, True):
            wall, cpu, results[cache] = timed(cache)
            seconds.setdefault(("wall", cache), []).append(wall)
            seconds.setdefault(("cpu", cache), []).append(cpu)
    for clock in ("wall", "cpu"):
        for cache, name in ((False, "A re-encode"), (True, "B cached")):
            runs = " ".join(f"{s:.2f}" for s in seconds[clock, cache])
            median = statistics.median(seconds[clock, cache])
            print(f"{name:11s} {args.stage} pass {clock} s: {runs}  median {median:.2f}")
        a, b = (statistics.median(seconds[clock, cache]) for cache in (False, True))
        print(f"speed-up ({clock}, median A / median B): {a / b:.2f}x")
    for key in sorted(results[False]):
        a, b = float(results[False][key]), float(results[True][key])
        print(f"{key:24s} A {a:.6f}  B {b:.6f}  |A - B| {abs(a - b):.1e}")


if __name__ == "__main__":
    main()
