"""Time (and optionally profile) GRU4Rec training steps on real data, without Lightning.

    .venv/bin/python scripts/profile_gru4rec_step.py                      # Beauty BPR-max
    .venv/bin/python scripts/profile_gru4rec_step.py --profile            # + op table
    .venv/bin/python scripts/profile_gru4rec_step.py experiment=gru4rec_beauty_xe
    .venv/bin/python scripts/profile_gru4rec_step.py datamodule.batch_size=256

Builds the experiment's datamodule, model, loss and optimiser from the Hydra config (extra
arguments are overrides), then times ``--steps`` batches three ways: the batch iterator alone,
the full step (forward, loss, backward, optimiser) on pre-built batches, and both together.
Prints ms per step and the implied seconds per epoch (steps per epoch x ms), which is what a
Lightning epoch costs minus Lightning's own per-step overhead.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.lit.adapter import scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    parser.add_argument("--experiment", default="gru4rec_beauty_bprmax")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--bf16", action="store_true", help="autocast forward + loss to bf16")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    overrides = [f"experiment={args.experiment}", *args.overrides]
    with initialize_config_dir(config_dir(), version_base=None):
        cfg = compose("train", overrides=overrides)
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)
    torch.manual_seed(0)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    model = instantiate(cfg.model)
    loss = instantiate(cfg.loss)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    model.train()

    loader = datamodule.train_dataloader()
    n_steps = len(loader)
    start = time.perf_counter()
    batches = list(itertools.islice(iter(loader), args.steps))
    iterate = (time.perf_counter() - start) / len(batches)

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            value = loss(scores(model, batch), batch)["loss"]  # model(batch) for GRU4Rec
        value.backward()
        optimizer.step()

    for batch in batches[:20]:
        step(batch)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    compute = (time.perf_counter() - start) / len(batches)

    print(f"{' '.join(overrides)}  threads={args.threads}  bf16={args.bf16}  {n_steps} steps/epoch")
    print(f"  batches : {iterate * 1e3:6.2f} ms/step  (epoch ~ {iterate * n_steps:5.1f} s)")
    print(f"  compute : {compute * 1e3:6.2f} ms/step  (epoch ~ {compute * n_steps:5.1f} s)")
    print(
        f"  total   : {(iterate + compute) * 1e3:6.2f} ms/step  "
        f"(epoch ~ {(iterate + compute) * n_steps:5.1f} s)"
    )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches[:100]:
                step(batch)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
