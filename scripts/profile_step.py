"""Time (and optionally profile) one NeuMF-64 training step in isolation, no Lightning.

    .venv/bin/python scripts/profile_step.py --batch 819 --optimizer fused
    .venv/bin/python scripts/profile_step.py --batch 819 --optimizer plain --profile
    .venv/bin/python scripts/profile_step.py --batch 819 --bf16

NeuMF as in the NCF-64 experiment (6,040 users, 3,706 items, GMF 64, MLP 128 per side,
256 -> 128 -> 64), 1 positive + 4 negatives per row, BCE, Adam. Prints ms per step and the
implied seconds per epoch over the 994,169 NCF training pairs.
"""

from __future__ import annotations

import argparse
import time

import torch

from hybridrec.data.batch import PairBatch
from hybridrec.losses import BCELoss
from hybridrec.nn import NeuMF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=819, help="positives per batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--optimizer", choices=("plain", "foreach", "fused"), default="fused")
    parser.add_argument("--bf16", action="store_true", help="autocast the forward to bf16")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = NeuMF(6040, 3706, gmf_dim=64, mlp_embedding_dim=128, hidden_dims=[128, 64])
    options = {"plain": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **options[args.optimizer])
    loss = BCELoss()
    users = torch.randint(0, 6040, (args.batch,))
    labels = torch.zeros(args.batch, 5)
    labels[:, 0] = 1.0
    items = torch.randint(1, 3707, (args.batch, 5))
    batch = PairBatch(users=users, items=items, labels=labels)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            scores = model.score(users, items)
        loss(scores.float(), batch)["loss"].backward()
        optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    print(
        f"threads={args.threads} batch={args.batch} optimizer={args.optimizer} bf16={args.bf16}: "
        f"{per_step * 1000:.1f} ms/step, epoch ~ {per_step * 994169 / args.batch:.1f} s"
    )
    if args.profile:
        with torch.autograd.profiler.profile() as prof:
            for _ in range(10):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
