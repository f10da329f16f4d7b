"""``refit_on_val=true``: after model selection on validation, retrain on train + validation
for the epochs validation chose; refused before the fit where that cannot happen."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from hybridrec.cli.checks import ConfigError
from hybridrec.data.catalogue import Catalogue
from hybridrec.data.spec import DataSpec
from hybridrec.lit.callbacks import EpochTimer, StopOnDivergence
from hybridrec.lit.checkpoint import build_model, safe_load
from hybridrec.run.task import build_task

log = logging.getLogger("hybridrec.train")


def check_refit(cfg: DictConfig, spec: DataSpec) -> None:
    """refit_on_val retrains on train + validation after the fit: refuse it before the fit
    where that second training cannot happen."""
    problem = None
    target = str(cfg.datamodule.get("_target_", ""))
    if not target.endswith("SequenceDataModule"):
        problem = (
            f"the datamodule {target.rsplit('.', 1)[-1]} cannot add the validation items to "
            "training (datamodule=sequence or next_item can)"
        )
    elif spec.layout == "sessions":
        problem = (
            "the session protocol has no per-user validation item to add; set "
            "protocol.val_days=0 to train on every session instead"
        )
    elif "cold_items" in spec.files:
        problem = "cold_items keeps the validation-cold items out of training"
    if problem is not None:
        raise ConfigError(f"refit_on_val=true: {problem}; set refit_on_val=false")


def refit_on_val(
    cfg: DictConfig, best_path: str, catalogue: Catalogue | None
) -> tuple[str, L.Trainer]:
    """Retrain from scratch on train + validation for the epochs validation chose.

    Model selection stays on the validation split (the best epoch); only the final model sees
    the validation items as training data, as a refit does. Validation is skipped (it would be
    scored on trained items); the refit model is saved next to the selection checkpoint.
    """
    epochs = int(safe_load(best_path)["epoch"]) + 1  # weights_only: no code from the file runs
    log.info("refit on train + validation for %d epochs (chosen on validation)", epochs)
    datamodule = instantiate(cfg.datamodule, train_on_val=True)
    module = build_task(cfg, build_model(cfg.model, catalogue), catalogue)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[EpochTimer(), StopOnDivergence()],
        max_epochs=epochs,
        min_epochs=epochs,
        limit_val_batches=0,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    path = str(Path(best_path).with_name(f"refit_epochs_{epochs:03d}.ckpt"))
    trainer.save_checkpoint(path)
    return path, trainer
