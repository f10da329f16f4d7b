"""The composed hybrid's job (``model.combine=composed``): its parts (nested runs, or reused),
the combiner fitted on the validation split, the composed model validated, tested and saved,
the side-by-side table printed; the building blocks are in :mod:`hybridrec.run.parts` (the
parts) and :mod:`hybridrec.run.compose` (the combiner, model and table)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.checks import ConfigError
from hybridrec.cli.common import prepare_from_config
from hybridrec.data.catalogue import Catalogue
from hybridrec.run.compose import (
    build_composed,
    carry_weights,
    evaluate_composed,
    fit_composed_head,
    fit_weights,
    log_combiner,
    refit_config,
    side_by_side,
)
from hybridrec.run.logs import log_data, log_judgments
from hybridrec.run.parts import PARTS_TAG, own_shelf, retest_parts, train_parts
from hybridrec.run.result import TrainResult
from hybridrec.run.summary import print_summary
from hybridrec.run.tags import default_run_name, job_output_dir, run_tags, set_tag
from hybridrec.tracking import end_run, log_missing_metrics, log_run_end, log_run_start, start_run
from hybridrec.tracking.fallback import print_fallback_notice, where

log = logging.getLogger("hybridrec.train")


def train_composed(
    cfg: DictConfig, client: MlflowClient, started_ms: int, train: Callable[[DictConfig], Any]
) -> TrainResult:
    """The composed hybrid: its parts (nested runs, or reused, each trained by ``train``), the
    combiner fitted on the validation split, the composed model validated, tested and saved
    (run/parts.py, run/compose.py)."""
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
    output_dir = Path(job_output_dir(cfg))
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(data_dir)
        cfg.paths.output_dir = str(output_dir)
    log_data(spec, data_dir)
    if judgment:
        log_judgments(spec)
    if spec.n_val == 0:
        raise ConfigError(
            "model.combine=composed fits its combiner on the validation split, and this data "
            "has none; give the protocol a validation split, or model.combine=joint"
        )
    refit_config(cfg)  # a bad model.combiner.refit override fails before any part trains
    tags = {**run_tags(cfg, spec), "hybridrec.combine": "composed"}
    run_id = start_run(
        client,
        str(cfg.logger.experiment_name),
        str(cfg.logger.get("run_name") or default_run_name(cfg)),
        started_ms,
        tags=tags,
    )
    error: BaseException | None = None
    start = time.perf_counter()
    try:
        parts = train_parts(cfg, run_id, spec.fingerprint, output_dir, train)
        set_tag(client, run_id, PARTS_TAG, " ".join(f"{p.name}={p.run_id}" for p in parts))
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
            composed = carry_weights(cfg, parts, catalogue, data_dir, composed)
        tested_cfg, round_two = cfg, refit_config(cfg)
        if round_two is not None:  # the parts trained again (model.combiner.refit), same weights
            spec_two, dir_two = prepare_from_config(round_two)
            with open_dict(round_two):
                round_two.spec = spec_two.summary()
                round_two.datamodule.data_dir = str(dir_two)
            log_data(spec_two, dir_two)
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
    print_summary(client, *where(client, run_id), str(output_dir))
    print_fallback_notice(client, run_id)
    return TrainResult(
        metrics={k: v for k, v in results.items() if k.startswith(("test/", "best/"))},
        run_id=run_id,
        best_checkpoint=checkpoint,
        epochs=0,
        fit_seconds=time.perf_counter() - start,
        train_epoch_seconds=[],
    )
