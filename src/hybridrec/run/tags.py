"""The MLflow run's name and tags (model, data, protocol, sweep job, a composed hybrid's part,
fast_dev_run), and the job's output folder they record."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hybridrec.data.spec import DataSpec
from hybridrec.run.parts import PARENT_TAG, PART_KEY_TAG
from hybridrec.tracking import JOB_TAG, OVERRIDES_TAG, SWEEP_TAG, run_name, sweep_id
from hybridrec.tracking.compare import FAST_DEV_RUN_TAG
from hybridrec.tracking.sweep import study_tags
from hybridrec.tracking.tags import PART_TAG

log = logging.getLogger("hybridrec.train")

#: Run tag: the job's output folder (its checkpoints: what ``resume=`` continues from)
OUTPUT_DIR_TAG = "hybridrec.output_dir"


def job_output_dir(cfg: DictConfig) -> str:
    """The job's folder: a part's own (under its hybrid's), else Hydra's, else paths.output_dir."""
    if cfg.get("part"):  # a composed hybrid's part: its folder under the hybrid's job folder
        return str(cfg.paths.output_dir)
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.output_dir)
    return str(cfg.paths.output_dir)


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


def default_run_name(cfg: DictConfig) -> str:
    job = _sweep_job()
    return run_name(
        _model_choice(cfg),
        str(cfg.data.name),
        str(cfg.protocol.name),
        job=None if job is None else job[1],
    )


def run_tags(cfg: DictConfig, spec: DataSpec) -> dict[str, str]:
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


def set_tag(client: MlflowClient, run_id: str, key: str, value: str) -> None:
    try:
        client.set_tag(run_id, key, value)
    except Exception as error:  # the job's own outcome matters more than this tag
        log.error("could not tag MLflow run %s (%s): %s", run_id, key, error)
