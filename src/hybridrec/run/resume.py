"""``resume=RUN_ID`` / ``ckpt_path=PATH``: what a run continues from (the checkpoint, the MLflow
run, its output folder), the check that the config is the one it started with, and the run
taken over again."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hybridrec.cli.checks import ConfigError
from hybridrec.errors import CheckpointError
from hybridrec.lit.checkpoint import RUN_ID_KEY, safe_load
from hybridrec.run.summary import shown_path
from hybridrec.run.tags import OUTPUT_DIR_TAG, set_tag
from hybridrec.tracking import OVERRIDES_TAG
from hybridrec.tracking.run_ids import RunIdError, resolve_run_id

log = logging.getLogger("hybridrec.train")

#: Run tag: how often and from what checkpoint the run was resumed
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


@dataclass
class Resume:
    """What ``resume=`` / ``ckpt_path=`` continue: the checkpoint ``fit`` starts from, the
    MLflow run it continues (None: a new run) and the folder its checkpoints stay in."""

    checkpoint: str
    run_id: str | None
    output_dir: str | None
    config: dict[str, Any]  # the resolved config the checkpoint was trained with


def resume_plan(cfg: DictConfig, client: MlflowClient) -> Resume | None:
    """``resume=RUN_ID``: that run's ``last.ckpt`` (end of its last finished epoch), into the
    same run. ``ckpt_path=PATH``: that checkpoint, into the run that wrote it when this store
    holds it, else into a new run. Neither: None."""
    run_ref, ckpt = cfg.get("resume"), cfg.get("ckpt_path")
    if run_ref is None and ckpt is None:
        return None
    run = None
    if run_ref is not None:
        run = get_run(client, str(run_ref), "resume")
        if run is None:
            raise ConfigError(
                f"resume={run_ref}: no such MLflow run in {_shown_uri(cfg)} (give the run id "
                "that hybridrec-train printed, or ckpt_path= a checkpoint file)"
            )
    output_dir = run_output_dir(run) if run is not None else None
    if ckpt is None:
        if output_dir is None:
            raise ConfigError(
                f"resume={run_ref}: the run records no output folder ({OUTPUT_DIR_TAG}); "
                "give its checkpoint with ckpt_path= instead"
            )
        ckpt = str(Path(output_dir) / "checkpoints" / "last.ckpt")  # saved every epoch
        if not Path(ckpt).is_file():
            raise ConfigError(
                f"resume={run_ref}: no checkpoint to resume from ({shown_path(ckpt)} is "
                "missing: the run stopped before its first epoch ended); start it again "
                "without resume="
            )
    elif not Path(str(ckpt)).is_file():
        raise ConfigError(f"ckpt_path={ckpt}: no such file")
    try:
        saved = safe_load(str(ckpt))
    except CheckpointError as exc:  # not a checkpoint, or one holding objects
        raise ConfigError(f"ckpt_path: {exc}") from None
    if not isinstance(saved, dict) or "loops" not in saved:
        raise ConfigError(
            f"{ckpt}: not a training checkpoint written by hybridrec-train (no loop state to "
            "resume from)"
        )
    if run is None:  # ckpt_path= alone: the run that wrote it, when this store holds it
        written_by = saved.get(RUN_ID_KEY)
        run = get_run(client, str(written_by), "ckpt_path") if written_by else None
        if run is not None:
            output_dir = run_output_dir(run)
        else:
            log.info("ckpt_path=%s: its MLflow run is not in this store; a new run", ckpt)
    if output_dir is not None and not Path(str(ckpt)).resolve().is_relative_to(output_dir):
        output_dir = None  # a checkpoint from elsewhere: new checkpoints go to this job's folder
    return Resume(
        checkpoint=str(Path(str(ckpt)).resolve()),
        run_id=None if run is None else str(run.info.run_id),
        output_dir=output_dir,
        config=dict(saved.get("hybridrec_config") or {}),
    )


def get_run(client: MlflowClient, run_id: str, key: str) -> Any:
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


def run_output_dir(run: Any) -> str | None:
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


def check_same_config(plan: Resume, config: dict[str, Any]) -> None:
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


def reopen_run(client: MlflowClient, plan: Resume) -> str:
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
    set_tag(client, plan.run_id, RESUMED_TAG, f"{count} (last {when}, from {plan.checkpoint})")
    log.info(
        "resuming MLflow run %s (was %s) from %s", plan.run_id, run.info.status, plan.checkpoint
    )
    return plan.run_id
