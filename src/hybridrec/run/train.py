"""The training job behind hybridrec-train: check the config, prepare the data, fit, test the
best checkpoint, record everything in one MLflow run (:func:`train`). Resume, refit, the run's
tags, logs, plots and printed summary are in the modules beside this one; a composed hybrid goes
to :mod:`hybridrec.run.composed`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, open_dict

from hybridrec.cli.checks import check_config
from hybridrec.cli.common import prepare_from_config
from hybridrec.data.catalogue import Catalogue
from hybridrec.data.spec import DataSpec
from hybridrec.lit import RecLitModule
from hybridrec.lit.callbacks import DivergenceError, EpochTimer
from hybridrec.lit.checkpoint import build_model
from hybridrec.run.composed import train_composed
from hybridrec.run.logs import head_choice, log_data, log_judgments, log_rater_reliability
from hybridrec.run.parts import is_composed
from hybridrec.run.plots import log_explanations
from hybridrec.run.refit import check_refit, refit_on_val
from hybridrec.run.result import TrainResult
from hybridrec.run.resume import Resume, check_same_config, reopen_run, resume_plan
from hybridrec.run.summary import print_summary
from hybridrec.run.tags import default_run_name, job_output_dir, run_tags, set_tag
from hybridrec.run.task import build_task
from hybridrec.runtime import tune_allocator
from hybridrec.tracking import (
    MLflowLogger,
    check_tracking_uri,
    end_run,
    log_missing_metrics,
    log_run_end,
    log_run_start,
    now_ms,
    start_run,
)
from hybridrec.tracking.fallback import FallbackClient, print_fallback_notice, where
from hybridrec.tracking.tags import FAILURE_TAG

log = logging.getLogger("hybridrec.train")


def train(cfg: DictConfig) -> TrainResult:
    """Check the config, prepare data, fit, test the best checkpoint, record everything in one
    MLflow run that ends FINISHED, FAILED or KILLED (DDP: only rank 0 touches MLflow)."""
    started_ms = now_ms()  # the run's start: its duration covers data, fit, test and refit
    check_config(cfg)  # wrong types, ranges, unknown keys: before any data is read
    # DDP children are started with RANK / LOCAL_RANK set, which Lightning reads on import
    rank_zero = getattr(rank_zero_only, "rank", 0) == 0
    uri = str(cfg.logger.tracking_uri)
    if rank_zero:
        check_tracking_uri(uri)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    tune_allocator()  # large evaluation blocks reuse heap memory instead of faulting pages
    L.seed_everything(cfg.seed, workers=True, verbose=rank_zero)

    # a server that dies mid-run: the job goes on into a local store (tracking/fallback.py)
    client = cast(MlflowClient, FallbackClient(uri, job_output_dir(cfg)))
    if is_composed(cfg):  # trained parts + a combiner (run/parts.py, run/compose.py)
        return train_composed(cfg, client, started_ms, train)
    plan = resume_plan(cfg, client)  # resume= / ckpt_path=: what to continue, and where
    spec, data_dir = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(data_dir)
        # a resumed run keeps its checkpoints in its first job's folder (ModelCheckpoint
        # restores its best/last bookkeeping only from the same folder)
        cfg.paths.output_dir = plan.output_dir if plan and plan.output_dir else job_output_dir(cfg)
    log_data(spec, data_dir)
    log_judgments(spec)
    if bool(cfg.get("refit_on_val")):
        check_refit(cfg, spec)

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
    catalogue = Catalogue.from_folder(data_dir)  # what the model reads of the data, read once
    model: Any = build_model(cfg.model, catalogue)
    trains = getattr(model, "requires_training", True)
    if not trains:  # count-based baselines: fitted from the training sequences, no optimiser
        model.fit_sequences(*datamodule.train_sequences())
    module = build_task(cfg, model, catalogue)

    run_id = None
    if plan is not None:
        check_same_config(plan, module.run_config or {})
    if rank_zero and plan is not None and plan.run_id is not None:
        run_id = reopen_run(client, plan)
    elif rank_zero:
        run_id = start_run(
            client,
            str(cfg.logger.experiment_name),
            str(cfg.logger.get("run_name") or default_run_name(cfg)),
            started_ms,
            tags=run_tags(cfg, spec),
        )
    error: BaseException | None = None
    try:
        logger = instantiate(cfg.logger, run_id=run_id)
        if hasattr(logger, "use_client"):  # one client for the job: it may fall back
            logger.use_client(client)
        result = _fit_and_test(cfg, module, datamodule, logger, spec, data_dir, trains, plan)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if run_id is not None:
            if isinstance(error, DivergenceError):  # the reason, beside the FAILED status
                set_tag(client, run_id, FAILURE_TAG, str(error)[:5000])
            status = end_run(client, run_id, error)
            if error is not None:
                log.error("MLflow run %s ended %s", run_id, status)
    if run_id is not None:
        print_summary(client, *where(client, run_id), cfg.paths.output_dir)
        print_fallback_notice(client, run_id)
    return result


def _fit_and_test(
    cfg: DictConfig,
    module: RecLitModule,
    datamodule: Any,
    logger: MLflowLogger,
    spec: DataSpec,
    data_dir: Path,
    trains: bool,
    plan: Resume | None = None,
) -> TrainResult:
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    run_id = logger.run_id if trainer.is_global_zero else None
    continued = plan is not None and plan.run_id is not None  # params, inputs already logged
    if run_id is not None and not continued:
        log_run_start(logger, module.run_config or {}, spec, data_dir)

    start = time.perf_counter()
    if trains:
        trainer.fit(
            module,
            datamodule=datamodule,
            ckpt_path=plan.checkpoint if plan is not None else None,
            weights_only=True,  # tensors and plain data only: no code from the file runs
        )
    elif spec.n_val > 0:
        trainer.validate(module, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start

    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
    best_score = None
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_score is not None:
        best_score = float(checkpoint.best_model_score)
    if cfg.get("part") and trains and not best_path:  # a part leaves its hybrid a checkpoint
        best_path = str(Path(str(cfg.paths.output_dir)) / "checkpoints" / "part_last.ckpt")
        trainer.save_checkpoint(best_path, weights_only=True)
    results: dict[str, float] = {}
    if bool(cfg.get("refit_on_val")) and trains and best_path:
        # test the model retrained on train + validation instead of the selected one
        best_path, refitted = refit_on_val(cfg, best_path, module.catalogue)
        if cfg.get("test_after_fit", True):
            tested = refitted.test(
                refitted.lightning_module,
                datamodule=refitted.datamodule,  # type: ignore[attr-defined]
            )
            results = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    elif cfg.get("test_after_fit", True):
        tested = trainer.test(
            module,
            datamodule=datamodule,
            ckpt_path=(best_path or None) if trains else None,
            weights_only=True,
        )
        results = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    if best_score is not None:
        results[f"best/{cfg.monitor}"] = best_score
    results.update(head_choice(module))
    if run_id is not None:
        # what Lightning did not log itself (refit tests run without a logger; fast_dev_run
        # swaps the logger for a dummy) reaches the run here, so the summary can read it back
        log_missing_metrics(logger, results)
        log_run_end(logger, best_path or None, best_score, cfg.monitor)
        log_explanations(logger, module.model)
        log_rater_reliability(logger, module, spec)
    return TrainResult(
        metrics=results,
        run_id=run_id,
        best_checkpoint=best_path,
        epochs=trainer.current_epoch,
        fit_seconds=fit_seconds,
        train_epoch_seconds=next(
            (c.train_seconds for c in callbacks if isinstance(c, EpochTimer)), []
        ),
    )
