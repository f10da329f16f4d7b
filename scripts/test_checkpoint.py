"""Re-test a saved checkpoint on its prepared test split, optionally without masking the
user's known items (the official GRU4Rec evaluation ranks them too).

    .venv/bin/python scripts/test_checkpoint.py outputs/<run>/checkpoints/<file>.ckpt [--no-mask]

The checkpoint carries its resolved config (model, loss, data folder); the test split and the
tie rule are the run's own. Prints the test metrics.
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hybridrec.lit import RecLitModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--no-mask", action="store_true", help="rank the known items too")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    saved = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    cfg = OmegaConf.create(saved["hybridrec_config"])
    module = RecLitModule(
        model=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        ks=cfg.ks,
        ties=cfg.ties,
    )
    module.load_state_dict(saved["state_dict"])
    datamodule = instantiate(cfg.datamodule)
    if args.no_mask:
        datamodule.spec.mask_known = False
    trainer = L.Trainer(logger=False, enable_progress_bar=False, accelerator="cpu")
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    for key, value in sorted(metrics.items()):
        print(f"{key:<16} {value:.4f}")


if __name__ == "__main__":
    main()
