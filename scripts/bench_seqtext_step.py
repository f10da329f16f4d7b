"""Training-step cost of the sequence model's item text towers on Amazon Scientific.

    .venv/bin/python scripts/bench_seqtext_step.py \
        --data-dir data/prepared/scientific-loo_full-<hash>
    .venv/bin/python scripts/bench_seqtext_step.py --data-dir ... --encoders bag --steps 8

``--data-dir`` is a prepared ``data=scientific protocol=loo_full`` folder (any
``hybridrec-train experiment=seqtext_scientific`` run creates one under ``data/prepared/``).
Builds ``TextItemTower`` + ``SeqRec`` as ``experiment=seqtext_scientific`` does (dim 300, 2
layers x 2 heads, inner 256, text only; transformer tower 1 layer x 2 heads), then times
``--steps`` training steps (forward, cross-entropy over the whole catalogue, backward, Adam) on
next-item batches of 512 windows; prints seconds per step (the first includes warm-up) and the
steps per epoch. Every step encodes the whole catalogue's text, since every position is scored
against every item.
"""

from __future__ import annotations

import argparse
import time

import torch

from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
from hybridrec.data.catalogue import Catalogue
from hybridrec.lit.adapter import scores
from hybridrec.losses import CrossEntropyLoss
from hybridrec.nn import SeqRec, TextItemTower


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--encoders", nargs="+", default=["bag", "transformer"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = SequenceDataModule(
        args.data_dir, training="next_item", batch_size=512, max_length=50, data_on_device=False
    )
    data.setup()
    n_items, loader = data.spec.n_items, data.train_dataloader()
    catalogue = Catalogue.from_folder(args.data_dir)
    for encoder in args.encoders:
        torch.manual_seed(0)
        tower = TextItemTower(
            n_items, catalogue, encoder=encoder, dim=300, transformer_layers=1, heads=2
        )
        model = SeqRec(1, n_items, dim=300, ffn_dim=256, item_id=False, text=tower).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss = CrossEntropyLoss()
        seconds = []
        for step, batch in enumerate(loader):
            if step == args.steps:
                break
            start = time.perf_counter()
            optimizer.zero_grad()
            loss(scores(model, batch), batch)["loss"].backward()
            optimizer.step()
            seconds.append(time.perf_counter() - start)
        shown = " ".join(f"{s:.2f}" for s in seconds)
        print(f"{encoder}: s/step {shown}; steps/epoch {len(loader)}; threads {args.threads}")


if __name__ == "__main__":
    main()
