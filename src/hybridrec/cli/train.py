"""hybridrec-train: the Hydra training app.

hybridrec-train                                   # NeuMF on the embedded synthetic data
hybridrec-train model=mf data=ml100k protocol=loo_full
hybridrec-train experiment=ncf_neumf_ml1m
hybridrec-train --multirun model=mf,gmf,mlp,neumf
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.data.errors import DataError
from hybridrec.lit import RecLitModule
from hybridrec.lit.callbacks import EpochTimer
from hybridrec.tracking import log_run_end, log_run_start

log = logging.getLogger("hybridrec.train")


def _output_dir(cfg: DictConfig) -> str:
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.output_dir)
    return str(cfg.paths.output_dir)


@dataclass
class TrainResult:
    """What one training run produced (also recorded in MLflow under ``run_id``)."""

    metrics: dict[str, float]  # test/… metrics of the best checkpoint, best/<monitor>
    run_id: str | None
    best_checkpoint: str
    epochs: int  # epochs trained (early stopping may end before max_epochs)
    fit_seconds: float  # wall time of trainer.fit (training + validation)
    train_epoch_seconds: list[float]  # per epoch, training only (EpochTimer; empty without it)


def train(cfg: DictConfig) -> TrainResult:
    """Prepare data, fit, test the best checkpoint, record everything in MLflow."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(cfg.seed, workers=True)

    spec, data_dir = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(data_dir)
        cfg.paths.output_dir = _output_dir(cfg)
    log.info(
        "data: %s (%d users, %d items, protocol %s) in %s",
        spec.name,
        spec.n_users,
        spec.n_items,
        spec.protocol,
        data_dir,
    )

    if spec.n_val == 0:  # no validation split: fixed epochs, the last one is kept
        log.info(
            "no validation split: training %s epochs, keeping the last", cfg.trainer.max_epochs
        )
        with open_dict(cfg):
            cfg.trainer.limit_val_batches = 0
            if cfg.get("callbacks"):
                cfg.callbacks.early_stopping = None
                if cfg.callbacks.get("model_checkpoint"):
                    cfg.callbacks.model_checkpoint.monitor = None
                    cfg.callbacks.model_checkpoint.filename = "last_epoch_{epoch:03d}"

    datamodule = instantiate(cfg.datamodule)
    model = instantiate(cfg.model)
    trains = getattr(model, "requires_training", True)
    if not trains:  # count-based baselines: fitted from the training sequences, no optimiser
        model.fit_sequences(*datamodule.train_sequences())
    module = _task(cfg, model)
    resolved = module.run_config or {}

    logger = instantiate(cfg.logger)
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    if isinstance(logger, MLFlowLogger):
        log_run_start(logger, resolved, spec, data_dir)

    start = time.perf_counter()
    if trains:
        trainer.fit(module, datamodule=datamodule)
    elif spec.n_val > 0:
        trainer.validate(module, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start

    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
    best_score = None
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_score is not None:
        best_score = float(checkpoint.best_model_score)
    results: dict[str, float] = {}
    if bool(cfg.get("refit_on_val")) and trains and best_path:
        # test the model retrained on train + validation instead of the selected one
        best_path, refitted = _refit_on_val(cfg, best_path)
        if cfg.get("test_after_fit", True):
            tested = refitted.test(
                refitted.lightning_module,
                datamodule=refitted.datamodule,  # type: ignore[attr-defined]
            )
            results = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
            if isinstance(logger, MLFlowLogger):
                logger.log_metrics(results)
    elif cfg.get("test_after_fit", True):
        tested = trainer.test(
            module, datamodule=datamodule, ckpt_path=(best_path or None) if trains else None
        )
        results = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    if best_score is not None:
        results[f"best/{cfg.monitor}"] = best_score
    if isinstance(logger, MLFlowLogger):
        log_run_end(logger, best_path or None, best_score, cfg.monitor)
        _print_summary(logger, results)
    return TrainResult(
        metrics=results,
        run_id=logger.run_id if isinstance(logger, MLFlowLogger) else None,
        best_checkpoint=best_path,
        epochs=trainer.current_epoch,
        fit_seconds=fit_seconds,
        train_epoch_seconds=next(
            (c.train_seconds for c in callbacks if isinstance(c, EpochTimer)), []
        ),
    )


def _task(cfg: DictConfig, model: Any) -> RecLitModule:
    """The training task for ``model`` as the config describes it (resolved config attached,
    so checkpoints carry it)."""
    module = RecLitModule(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        ks=cfg.ks,
        ties=cfg.ties,
        embedding_l2=float(cfg.get("embedding_l2", 0.0)),
    )
    module.run_config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    return module


def _refit_on_val(cfg: DictConfig, best_path: str) -> tuple[str, L.Trainer]:
    """Retrain from scratch on train + validation for the epochs validation chose.

    Model selection stays on the validation split (the best epoch); only the final model sees
    the validation items as training data, as a refit does. Validation is skipped (it would be
    scored on trained items); the refit model is saved next to the selection checkpoint.
    """
    epochs = int(torch.load(best_path, map_location="cpu", weights_only=False)["epoch"]) + 1
    log.info("refit on train + validation for %d epochs (chosen on validation)", epochs)
    datamodule = instantiate(cfg.datamodule, train_on_val=True)
    module = _task(cfg, instantiate(cfg.model))
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[EpochTimer()],
        max_epochs=epochs,
        min_epochs=epochs,
        limit_val_batches=0,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    path = str(Path(best_path).with_name(f"refit_epochs_{epochs:03d}.ckpt"))
    trainer.save_checkpoint(path)
    return path, trainer


def _print_summary(logger: MLFlowLogger, results: dict[str, Any]) -> None:
    uri = logger._tracking_uri or ""
    lines = [
        "",
        f"MLflow run {logger.run_id} (experiment {logger.experiment_id}) in {uri}",
        *(f"  {k:<22} {v:.4f}" for k, v in sorted(results.items()) if math.isfinite(v)),
    ]
    if uri.startswith("sqlite:") or uri.startswith("file:"):
        lines.append(f"Open it: mlflow ui --backend-store-uri {uri}  (then http://127.0.0.1:5000)")
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        results = train(cfg).metrics
    except DataError as exc:  # bad input: the message says where; no traceback from pandas
        log.error("bad input data: %s", exc)
        sys.exit(2)
    # the value Hydra sweepers optimise: the best validation score
    return results.get(f"best/{cfg.monitor}")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
