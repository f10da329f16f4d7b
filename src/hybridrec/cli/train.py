"""hybridrec-train: the Hydra training app.

hybridrec-train                                   # NeuMF on the embedded synthetic data
hybridrec-train model=mf data=ml100k protocol=loo_full
hybridrec-train experiment=ncf_neumf_ml1m
hybridrec-train --multirun model=mf,gmf,mlp,neumf
hybridrec-train resume=RUN_ID                     # continue a killed/failed run where it stopped
"""

from __future__ import annotations

import logging
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import lightning as L
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.checks import ConfigError, check_config
from hybridrec.cli.common import prepare_from_config
from hybridrec.cli.compose import (
    PARENT_TAG,
    PART_KEY_TAG,
    PARTS_TAG,
    build_composed,
    carry_weights,
    evaluate_composed,
    fit_composed_head,
    fit_weights,
    is_composed,
    log_combiner,
    own_shelf,
    refit_composed,
    refit_config,
    retest_parts,
    side_by_side,
    train_parts,
)
from hybridrec.data.catalogue import Catalogue
from hybridrec.data.errors import DataError
from hybridrec.data.preparation.judgments import rater_summary
from hybridrec.data.spec import DataSpec
from hybridrec.lit import RecLitModule
from hybridrec.lit.callbacks import DivergenceError, EpochTimer, StopOnDivergence
from hybridrec.lit.checkpoint import RUN_ID_KEY, build_model, safe_load
from hybridrec.runtime import tune_allocator
from hybridrec.tracking import (
    DEFAULT_URI,
    JOB_TAG,
    OVERRIDES_TAG,
    SWEEP_TAG,
    MLflowLogger,
    TrackingError,
    check_tracking_uri,
    default_tracking_uri,
    end_run,
    log_missing_metrics,
    log_run_end,
    log_run_start,
    now_ms,
    run_name,
    start_run,
    sweep_id,
)
from hybridrec.tracking.compare import FAST_DEV_RUN_TAG
from hybridrec.tracking.fallback import FallbackClient, print_fallback_notice, where
from hybridrec.tracking.mlflow_run import mlflow_key
from hybridrec.tracking.plots import log_gate_by_popularity
from hybridrec.tracking.run_ids import RunIdError, resolve_run_id
from hybridrec.tracking.runs import UI_VIEW
from hybridrec.tracking.sweep import study_tags
from hybridrec.tracking.tags import FAILURE_TAG, PART_TAG

log = logging.getLogger("hybridrec.train")

#: Run tags: the job's output folder (its checkpoints: what ``resume=`` continues from), how
#: often and from what the run was resumed, and why it failed (a divergence).
OUTPUT_DIR_TAG = "hybridrec.output_dir"
RESUMED_TAG = "hybridrec.resumed"
#: Config keys that may differ when a run is resumed (where things go, how long it trains,
#: how it reports); every other key must be what the run was started with.
RESUME_MAY_CHANGE = (
    "resume",
    "ckpt_path",
    "paths",
    "logger",
    "callbacks",
    "task_name",
    "threads",
    "required",
    "test_after_fit",
    "datamodule/data_dir",
    "data/",
    "trainer/max_epochs",
    "trainer/min_epochs",
    "trainer/enable_progress_bar",
    "trainer/log_every_n_steps",
    "trainer/default_root_dir",
)


def _output_dir(cfg: DictConfig) -> str:
    if cfg.get("part"):  # a composed hybrid's part: its folder under the hybrid's job folder
        return str(cfg.paths.output_dir)
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
    client = cast(MlflowClient, FallbackClient(uri, _output_dir(cfg)))
    if is_composed(cfg):  # trained parts + a combiner fitted on validation (cli/compose.py)
        return _train_composed(cfg, client, started_ms)
    plan = _resume_plan(cfg, client)  # resume= / ckpt_path=: what to continue, and where
    spec, data_dir = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(data_dir)
        # a resumed run keeps its checkpoints in its first job's folder (ModelCheckpoint
        # restores its best/last bookkeeping only from the same folder)
        cfg.paths.output_dir = plan.output_dir if plan and plan.output_dir else _output_dir(cfg)
    _log_data(spec, data_dir)
    _log_judgments(spec)
    if bool(cfg.get("refit_on_val")):
        _check_refit(cfg, spec)

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
    module = _task(cfg, model, catalogue)

    run_id = None
    if plan is not None:
        _check_same_config(plan, module.run_config or {})
    if rank_zero and plan is not None and plan.run_id is not None:
        run_id = _reopen_run(client, plan)
    elif rank_zero:
        run_id = start_run(
            client,
            str(cfg.logger.experiment_name),
            str(cfg.logger.get("run_name") or _run_name(cfg)),
            started_ms,
            tags=_run_tags(cfg, spec),
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
                _set_tag(client, run_id, FAILURE_TAG, str(error)[:5000])
            status = end_run(client, run_id, error)
            if error is not None:
                log.error("MLflow run %s ended %s", run_id, status)
    if run_id is not None:
        _print_summary(client, *where(client, run_id), cfg.paths.output_dir)
        print_fallback_notice(client, run_id)
    return result


def _train_composed(cfg: DictConfig, client: MlflowClient, started_ms: int) -> TrainResult:
    """The composed hybrid: its parts (nested runs, or reused), the combiner fitted on the
    validation split, the composed model validated, tested and saved (cli/compose.py)."""
    judgment = cfg.get("judgment")
    if judgment and not judgment.get("head"):
        raise ConfigError(
            "judgment: the composed hybrid's parts are trained apart and frozen, so the joint "
            "term (judgment=bt, pointwise, crowd_bt) cannot move them; train a judgment head "
            "on it (judgment=head_pointwise or head_bt), or the joint hybrid "
            "(model.combine=joint) with the term"
        )
    if judgment and judgment.head.get("shared"):
        raise ConfigError(
            "judgment.head.shared=true: the composed hybrid's parts are frozen; its head reads "
            "their vectors without gradient (judgment.head.shared=false)"
        )
    if cfg.get("resume") or cfg.get("ckpt_path"):
        raise ConfigError(
            "resume / ckpt_path: a composed hybrid is not resumed; run it again (its finished "
            "parts are reused)"
        )
    spec, data_dir = prepare_from_config(cfg)
    output_dir = Path(_output_dir(cfg))
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(data_dir)
        cfg.paths.output_dir = str(output_dir)
    _log_data(spec, data_dir)
    if judgment:
        _log_judgments(spec)
    if spec.n_val == 0:
        raise ConfigError(
            "model.combine=composed fits its combiner on the validation split, and this data "
            "has none; give the protocol a validation split, or model.combine=joint"
        )
    refit_config(cfg)  # a bad model.combiner.refit override fails before any part trains
    tags = {**_run_tags(cfg, spec), "hybridrec.combine": "composed"}
    run_id = start_run(
        client,
        str(cfg.logger.experiment_name),
        str(cfg.logger.get("run_name") or _run_name(cfg)),
        started_ms,
        tags=tags,
    )
    error: BaseException | None = None
    start = time.perf_counter()
    try:
        parts = train_parts(cfg, run_id, spec.fingerprint, output_dir, train)
        _set_tag(client, run_id, PARTS_TAG, " ".join(f"{p.name}={p.run_id}" for p in parts))
        logger = instantiate(cfg.logger, run_id=run_id)
        if hasattr(logger, "use_client"):
            logger.use_client(client)
        run_config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
        log_run_start(logger, run_config, spec, data_dir)
        datamodule = instantiate(cfg.datamodule)
        catalogue = Catalogue.from_folder(data_dir)
        composed = build_composed(cfg, parts, catalogue, selection=True)
        fit = fit_weights(cfg, composed, datamodule, data_dir)  # on the parts chosen on val
        refit = any(p.refit for p in parts)
        if refit:  # the weights carry over to the parts refit on train + validation
            composed = refit_composed(cfg, parts, catalogue, data_dir, composed)
        tested_cfg, round_two = cfg, refit_config(cfg)
        if round_two is not None:  # the parts trained again (model.combiner.refit), same weights
            spec_two, dir_two = prepare_from_config(round_two)
            with open_dict(round_two):
                round_two.spec = spec_two.summary()
                round_two.datamodule.data_dir = str(dir_two)
            _log_data(spec_two, dir_two)
            parts_two = train_parts(
                round_two, run_id, spec_two.fingerprint, output_dir, train, stage="refit"
            )
            catalogue = Catalogue.from_folder(dir_two)
            composed = carry_weights(round_two, parts_two, catalogue, dir_two, composed)
            datamodule = instantiate(round_two.datamodule)
            tested_cfg, parts, refit = round_two, parts + parts_two, True
        results, checkpoint = evaluate_composed(
            tested_cfg, composed, datamodule, catalogue, logger, output_dir, validate=not refit
        )
        if judgment:  # the head on the fitted, frozen composed model (lit/judgment_fit.py)
            results.update(fit_composed_head(tested_cfg, composed, datamodule, checkpoint))
        if refit:  # validation as the combiner measured it, before the refits
            results[f"val/ndcg@{cfg.ks[0]}"] = float(fit[f"val_ndcg@{cfg.ks[0]}"])
        best = results.get(cfg.monitor)
        if best is not None:
            results[f"best/{cfg.monitor}"] = best
        log_missing_metrics(logger, results)
        log_run_end(logger, checkpoint, best, cfg.monitor)
        log_combiner(client, run_id, composed, fit)
        if own_shelf(tested_cfg):  # the parts ranked as the composed model is
            retest_parts(tested_cfg, parts, datamodule)
        table = side_by_side(parts, results, str(cfg.monitor), list(cfg.ks))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "parts.md").write_text(table + "\n")
            client.log_artifact(run_id, str(Path(tmp) / "parts.md"))
    except BaseException as exc:
        error = exc
        raise
    finally:
        status = end_run(client, run_id, error)
        if error is not None:
            log.error("MLflow run %s ended %s", run_id, status)
    print("\n" + table, flush=True)
    _print_summary(client, *where(client, run_id), str(output_dir))
    print_fallback_notice(client, run_id)
    return TrainResult(
        metrics={k: v for k, v in results.items() if k.startswith(("test/", "best/"))},
        run_id=run_id,
        best_checkpoint=checkpoint,
        epochs=0,
        fit_seconds=time.perf_counter() - start,
        train_epoch_seconds=[],
    )


def _fit_and_test(
    cfg: DictConfig,
    module: RecLitModule,
    datamodule: Any,
    logger: MLflowLogger,
    spec: DataSpec,
    data_dir: Path,
    trains: bool,
    plan: _Resume | None = None,
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
        best_path, refitted = _refit_on_val(cfg, best_path, module.catalogue)
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
    results.update(_head_choice(module))
    if run_id is not None:
        # what Lightning did not log itself (refit tests run without a logger; fast_dev_run
        # swaps the logger for a dummy) reaches the run here, so the summary can read it back
        log_missing_metrics(logger, results)
        log_run_end(logger, best_path or None, best_score, cfg.monitor)
        _log_explanations(logger, module.model)
        _log_rater_reliability(logger, module, spec)
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


def _log_data(spec: DataSpec, data_dir: Path) -> None:
    log.info(
        "data: %s (%d users, %d items, protocol %s) in %s",
        spec.name,
        spec.n_users,
        spec.n_items,
        spec.protocol,
        data_dir,
    )


def _log_explanations(logger: MLflowLogger, model: Any) -> None:
    """A hybrid's gate (ID vs text share of each item vector) by item popularity, as a PNG
    and a CSV under the run's ``explanations/`` artifacts."""
    gate_values = getattr(model, "gate_values", None)
    if not callable(gate_values):
        return
    was_training = model.training
    model.eval()
    with torch.no_grad():
        gates = gate_values()  # (N,) or None when the item side is not fused
    model.train(was_training)
    if gates is None:
        return
    log_gate_by_popularity(
        logger.experiment,
        str(logger.run_id),
        gates[1:].cpu().numpy(),  # item 0 is padding
        model.items.counts[1:].cpu().numpy(),
    )


def _log_judgments(spec: DataSpec) -> None:
    """What the run learns from: judgments kept, held out, dropped (data.judgments.invalid=drop)
    per reason, and the raters' reliability weights in summary (every rater's in MLflow:
    judgments/raters.csv and judgments/weight/<rater>)."""
    info = spec.judgments
    if not info:
        return
    counts = info.get("counts", {})
    split = counts.get("judgments_rater_split_by_item", 0)  # docs/judgments.md, "The split"
    log.info(
        "judgments: %d (train %d, held out by item %d + %d, by rater %d + %d%s); %s "
        "(every rater: run artifact judgments/raters.csv)",
        counts.get("judgments", 0),
        counts.get("judgments_train", 0),
        counts.get("judgments_item_val", 0),
        counts.get("judgments_item_test", 0),
        counts.get("judgments_rater_val", 0),
        counts.get("judgments_rater_test", 0),
        ", split by item: their groups (rater, context, set) all fell on one side" if split else "",
        rater_summary(info),
    )
    dropped = {k.removeprefix("judgments_dropped_"): v for k, v in counts.items() if "dropped" in k}
    if dropped:
        log.warning(
            "judgments: %d rows dropped (data.judgments.invalid=drop): %s",
            sum(dropped.values()),
            ", ".join(f"{k} {v}" for k, v in dropped.items()),
        )


def _head_choice(module: RecLitModule) -> dict[str, float]:
    """The judgment head's copy kept on validation: ``val/head/map_l2``, the L2 of its linear
    map of the model's vector (``judgment.head.map_l2``; without it, the map's L2 is ``l2``,
    logged by the module as ``<stage>/head/l2``). Empty without a head."""
    head = module.head
    if head is None:
        return {}
    spec = head.spec
    maps = spec.l2 if spec.map_l2 is None else spec.map_l2
    return {"val/head/map_l2": float(maps[int(head.chosen)])}


def _log_rater_reliability(logger: MLflowLogger, module: RecLitModule, spec: DataSpec) -> None:
    """Crowd-BT: each rater's learned reliability eta at the end of training."""
    eta = module.rater_reliability()
    if eta is None or logger.run_id is None:
        return
    for rater, value in zip(spec.judgments.get("raters", []), eta.tolist(), strict=False):
        logger.experiment.log_metric(
            logger.run_id, f"judgment/eta/{mlflow_key(str(rater))}", float(value)
        )


def _check_refit(cfg: DictConfig, spec: DataSpec) -> None:
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


def _model_choice(cfg: DictConfig) -> str:
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return str(choice)
    return str(cfg.model.get("_target_", "model")).rsplit(".", 1)[-1].lower()


def _sweep_job() -> tuple[str, int] | None:
    """(sweep id, job number) inside a Hydra multirun, else None."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return sweep_id(Path(hydra_cfg.runtime.output_dir).parent), int(hydra_cfg.job.num)


def _run_name(cfg: DictConfig) -> str:
    job = _sweep_job()
    return run_name(
        _model_choice(cfg),
        str(cfg.data.name),
        str(cfg.protocol.name),
        job=None if job is None else job[1],
    )


def _run_tags(cfg: DictConfig, spec: DataSpec) -> dict[str, str]:
    tags = {str(k): str(v) for k, v in (cfg.logger.get("tags") or {}).items()}
    tags[OUTPUT_DIR_TAG] = str(Path(str(cfg.paths.output_dir)).resolve())
    part = cfg.get("part")
    if part:  # a composed hybrid's part: a nested run under the hybrid's run
        tags[PART_TAG], tags[PART_KEY_TAG] = str(part.name), str(part.key)
        if part.get("parent"):
            tags[PARENT_TAG] = str(part.parent)
    if HydraConfig.initialized():
        tags[OVERRIDES_TAG] = " ".join(HydraConfig.get().overrides.task)[:5000]
    job = _sweep_job()
    if job is not None:
        tags[SWEEP_TAG], tags[JOB_TAG] = job[0], str(job[1])
        tags.update(study_tags())  # an hparams_search study's trial
    if cfg.trainer.get("fast_dev_run"):  # hybridrec-runs leaves such runs out by default
        tags["debug"] = "fast_dev_run (one batch per stage; no validation metrics)"
        tags[FAST_DEV_RUN_TAG] = "true"
    short = int(spec.counts.get("eval_rows_short_of_negatives", 0) or 0)
    if short:
        tags["eval_rows_short_of_negatives"] = str(short)
    return tags


def _task(cfg: DictConfig, model: Any, catalogue: Catalogue | None) -> RecLitModule:
    """The training task for ``model`` as the config describes it (resolved config and the
    run's catalogue attached, so checkpoints carry them)."""
    module = RecLitModule(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        ks=cfg.ks,
        ties=cfg.ties,
        embedding_l2=float(cfg.get("embedding_l2", 0.0)),
        judgment=instantiate(cfg.judgment) if cfg.get("judgment") else None,
        blend=float(cfg.get("judgment_blend", 0.0)),
        blend_metric=f"ndcg@{cfg.ks[0]}",
        compile_scores=bool(cfg.get("compile", False)),
    )
    run_config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    model_config = run_config.get("model") or {}
    if model_config.get("combine") == "joint":  # the composed hybrid's keys: not this model's
        for key in ("parts", "combiner", "reuse_parts"):
            model_config.pop(key, None)
    module.run_config = run_config
    module.catalogue = catalogue
    return module


@dataclass
class _Resume:
    """What ``resume=`` / ``ckpt_path=`` continue: the checkpoint ``fit`` starts from, the
    MLflow run it continues (None: a new run) and the folder its checkpoints stay in."""

    checkpoint: str
    run_id: str | None
    output_dir: str | None
    config: dict[str, Any]  # the resolved config the checkpoint was trained with


def _resume_plan(cfg: DictConfig, client: MlflowClient) -> _Resume | None:
    """``resume=RUN_ID``: that run's ``last.ckpt`` (end of its last finished epoch), into the
    same run. ``ckpt_path=PATH``: that checkpoint, into the run that wrote it when this store
    holds it, else into a new run. Neither: None."""
    run_ref, ckpt = cfg.get("resume"), cfg.get("ckpt_path")
    if run_ref is None and ckpt is None:
        return None
    run = None
    if run_ref is not None:
        run = _get_run(client, str(run_ref), "resume")
        if run is None:
            raise ConfigError(
                f"resume={run_ref}: no such MLflow run in {_shown_uri(cfg)} (give the run id "
                "that hybridrec-train printed, or ckpt_path= a checkpoint file)"
            )
    output_dir = _run_output_dir(run) if run is not None else None
    if ckpt is None:
        if output_dir is None:
            raise ConfigError(
                f"resume={run_ref}: the run records no output folder ({OUTPUT_DIR_TAG}); "
                "give its checkpoint with ckpt_path= instead"
            )
        ckpt = str(Path(output_dir) / "checkpoints" / "last.ckpt")  # saved every epoch
        if not Path(ckpt).is_file():
            raise ConfigError(
                f"resume={run_ref}: no checkpoint to resume from ({_shown_path(ckpt)} is "
                "missing: the run stopped before its first epoch ended); start it again "
                "without resume="
            )
    elif not Path(str(ckpt)).is_file():
        raise ConfigError(f"ckpt_path={ckpt}: no such file")
    try:
        saved = safe_load(str(ckpt))
    except ValueError as exc:
        raise ConfigError(f"ckpt_path: {exc}") from None
    if not isinstance(saved, dict) or "loops" not in saved:
        raise ConfigError(
            f"{ckpt}: not a training checkpoint written by hybridrec-train (no loop state to "
            "resume from)"
        )
    if run is None:  # ckpt_path= alone: the run that wrote it, when this store holds it
        written_by = saved.get(RUN_ID_KEY)
        run = _get_run(client, str(written_by), "ckpt_path") if written_by else None
        if run is not None:
            output_dir = _run_output_dir(run)
        else:
            log.info("ckpt_path=%s: its MLflow run is not in this store; a new run", ckpt)
    if output_dir is not None and not Path(str(ckpt)).resolve().is_relative_to(output_dir):
        output_dir = None  # a checkpoint from elsewhere: new checkpoints go to this job's folder
    return _Resume(
        checkpoint=str(Path(str(ckpt)).resolve()),
        run_id=None if run is None else str(run.info.run_id),
        output_dir=output_dir,
        config=dict(saved.get("hybridrec_config") or {}),
    )


def _get_run(client: MlflowClient, run_id: str, key: str) -> Any:
    """The run (None if this store does not hold it); ``run_id`` may be any unique prefix of
    its id; an ambiguous prefix and a deleted run are refused."""
    try:
        run = client.get_run(resolve_run_id(client, run_id, key))
    except RunIdError as exc:
        if exc.ambiguous:
            raise ConfigError(str(exc)) from None
        return None
    except MlflowException:
        return None
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(
            f"{key}: MLflow run {run.info.run_id} was deleted; restore it (`mlflow runs "
            f"restore --run-id {run.info.run_id}`) to continue it"
        )
    return run


def _run_output_dir(run: Any) -> str | None:
    folder = run.data.tags.get(OUTPUT_DIR_TAG) or run.data.params.get("paths/output_dir")
    return str(Path(folder).resolve()) if folder else None


def _shown_uri(cfg: DictConfig) -> str:
    """The tracking URI without credentials (``user:password@``)."""
    return re.sub(r"//[^/@]*@", "//", str(cfg.logger.tracking_uri))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): tree}


def _check_same_config(plan: _Resume, config: dict[str, Any]) -> None:
    """A resumed run trains on with the config it started with (model, loss, optimiser, data,
    seed, ...): anything else would not be the run its MLflow params describe."""
    if not plan.config:
        return
    before, now = _flat(plan.config), _flat(config)

    def checked(key: str) -> bool:
        return not any(key == k or key.startswith(k.rstrip("/") + "/") for k in RESUME_MAY_CHANGE)

    keys = sorted(k for k in set(before) | set(now) if checked(k))
    changed = [k for k in keys if before.get(k) != now.get(k)]
    if not changed:
        return
    shown = "; ".join(
        f"{k.replace('/', '.')}: {before.get(k)!r} then, {now.get(k)!r} now" for k in changed[:6]
    )
    more = f" (and {len(changed) - 6} more)" if len(changed) > 6 else ""
    raise ConfigError(
        f"resume: the config differs from the one the checkpoint was trained with: {shown}"
        f"{more}. Give the run's overrides again (its tag {OVERRIDES_TAG} in MLflow), or "
        "train a new run without resume= / ckpt_path="
    )


def _reopen_run(client: MlflowClient, plan: _Resume) -> str:
    """Take the run over again: RUNNING (a job killed by SIGKILL left it RUNNING; a failed or
    killed one is FAILED / KILLED), with a tag saying from which checkpoint, how often."""
    assert plan.run_id is not None
    run = client.get_run(plan.run_id)
    if run.info.status == "FINISHED":
        log.warning(
            "MLflow run %s had FINISHED; training it on from %s", plan.run_id, plan.checkpoint
        )
    client.update_run(plan.run_id, status="RUNNING")
    count = int(str(run.data.tags.get(RESUMED_TAG, "0")).split(" ", 1)[0] or 0) + 1
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    _set_tag(client, plan.run_id, RESUMED_TAG, f"{count} (last {when}, from {plan.checkpoint})")
    log.info(
        "resuming MLflow run %s (was %s) from %s", plan.run_id, run.info.status, plan.checkpoint
    )
    return plan.run_id


def _set_tag(client: MlflowClient, run_id: str, key: str, value: str) -> None:
    try:
        client.set_tag(run_id, key, value)
    except Exception as error:  # the job's own outcome matters more than this tag
        log.error("could not tag MLflow run %s (%s): %s", run_id, key, error)


def _refit_on_val(
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
    module = _task(cfg, build_model(cfg.model, catalogue), catalogue)
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


def _print_summary(client: MlflowClient, run_id: str, uri: str, output_dir: str) -> None:
    """Print what the run holds, read back from the store: test and best metrics under their
    MLflow names, where the outputs are, and a command that opens the run as typed."""
    run = client.get_run(run_id)
    experiment_id = run.info.experiment_id
    metrics = {k: v for k, v in run.data.metrics.items() if k.startswith(("test/", "best/"))}
    # MLflow 3's UI opens on its GenAI view in a fresh browser (mlflow/mlflow#24498): the
    # link asks for the Model training view
    link = f"#/experiments/{experiment_id}/runs/{run_id}?{UI_VIEW}"
    if uri.startswith(("http://", "https://")):
        open_it = f"Open it: {uri.rstrip('/')}/{link}"
    else:
        open_it = f"Open it: {_ui_command(uri)}  (then http://127.0.0.1:5000/{link})"
    lines = [
        "",
        f"MLflow run {run_id} ({run.info.run_name}, experiment {experiment_id}, "
        f"{run.info.status}) in {uri}",
        *(f"  {k:<22} {v:.4f}" for k, v in sorted(metrics.items()) if math.isfinite(v)),
        f"Outputs (checkpoints, Hydra config and log): {_shown_path(output_dir)}",
        open_it,
    ]
    print("\n".join(lines), flush=True)


def _shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def _ui_command(uri: str) -> str:
    """A command that starts the MLflow UI on ``uri`` as typed: ``make ui`` for the default
    store in a checkout, else the ``mlflow`` of this environment by its path (it is not on
    PATH unless the virtualenv is active)."""
    makefile = Path("Makefile")
    if uri == DEFAULT_URI and makefile.is_file() and "\nui:" in makefile.read_text():
        return "make ui"
    mlflow_bin = _shown_path(Path(sys.executable).parent / "mlflow")
    if "/" not in mlflow_bin:
        mlflow_bin = f"./{mlflow_bin}"
    return f"{mlflow_bin} server --backend-store-uri {uri} --workers 1 --port 5000"


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (``hybridrec-train: error: …``), the same in the job's log file
    (not on Hydra's console handler, which writes to stdout), then exit with ``code``."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(f"hybridrec-train: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_job(cfg: DictConfig) -> float | None:
    """One Hydra job (:mod:`hybridrec.cli.train_app`, the console script, calls it): train, a
    user's mistake as one sentence and an exit code, else the best validation score."""
    try:
        result = train(cfg)
    except DataError as exc:  # bad input: the message says where; no traceback from pandas
        _fail(f"bad input data: {exc}", 2)
    except ConfigError as exc:
        _fail(f"bad config: {exc}", 2)
    except TrackingError as exc:
        _fail(str(exc), 2)
    except DivergenceError as exc:  # the run is FAILED, its last good checkpoint kept
        _fail(str(exc), 1)
    # the job's log file (train.log) ends with the run, its status and final metrics (not on
    # the console: the summary above printed them); a failed run's status is logged by train()
    lines = [f"MLflow run {result.run_id} FINISHED after {result.epochs} epochs"]
    lines += [f"  {k} {v:.4f}" for k, v in sorted(result.metrics.items())]
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, "\n".join(lines), (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    # the value Hydra sweepers optimise: the best validation score
    return result.metrics.get(f"best/{cfg.monitor}")


def _with_recorded_overrides(args: list[str]) -> list[str]:
    """``resume=RUN_ID`` alone is enough: the overrides the run was started with (its first
    job's ``.hydra/overrides.yaml``) come first, those typed now win. Anything not found is
    left to ``train``, which says what is missing."""
    refs = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not refs or any(a.startswith("-") for a in args):
        return args
    given_uri = [a.split("=", 1)[1] for a in args if a.startswith("logger.tracking_uri=")]
    uri = given_uri[-1] if given_uri else default_tracking_uri()
    try:
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(resolve_run_id(client, refs[-1]))
        folder = _run_output_dir(run)
        recorded_file = Path(str(folder)) / ".hydra" / "overrides.yaml"
        recorded = yaml.safe_load(recorded_file.read_text()) if folder else None
    except Exception:  # no such run, store or file: train() reports it
        return args
    if not isinstance(recorded, list):
        return args

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    given = {key(a) for a in args}
    kept = [
        str(o)
        for o in recorded
        if key(str(o)) not in given and key(str(o)) not in ("resume", "ckpt_path")
    ]
    if kept:
        print(f"resume={refs[-1]}: with the run's overrides {' '.join(kept)}", file=sys.stderr)
    return [*kept, *args]


if __name__ == "__main__":  # python -m hybridrec.cli.train (torchrun): the console script
    from hybridrec.cli.train_app import main

    main()
