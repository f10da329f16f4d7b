"""What a Hydra multirun prints when all its jobs are done: one line per job.

Each job tags its MLflow run with the sweep (its folder) and its job number (``train`` does
it). At the end, :class:`SweepSummary` (a Hydra callback, configured in
``configs/hydra/default.yaml``) reads those runs back through the MLflow client — so it works
with any launcher, parallel ones included — and prints the job number, the run id, the run's
status, the overrides that differ between jobs and the monitored metric.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hybridrec.tracking.mlflow_run import mlflow_key
from hybridrec.tracking.tags import FAILURE_TAG, PART_TAG

SWEEP_TAG = "sweep"
JOB_TAG = "sweep_job"
OVERRIDES_TAG = "overrides"
#: The trials of one hyperparameter search (``hparams_search=…``, the Optuna sweeper) carry its
#: study name and direction; ``hybridrec-runs compare --study NAME`` shows them, best first.
STUDY_TAG = "hybridrec.study"
DIRECTION_TAG = "hybridrec.study_direction"


def sweep_id(sweep_dir: str | Path) -> str:
    """A sweep's identity: its output folder as an absolute path."""
    return str(Path(sweep_dir).resolve())


def study_tags() -> dict[str, str]:
    """Inside a multirun driven by the Optuna sweeper: its study name (else the sweep folder's
    name) and direction, as run tags; otherwise nothing."""
    if not HydraConfig.initialized():
        return {}
    hydra_cfg = HydraConfig.get()
    sweeper = hydra_cfg.sweeper
    if hydra_cfg.mode != RunMode.MULTIRUN or "optuna" not in str(sweeper.get("_target_", "")):
        return {}
    name = sweeper.get("study_name") or Path(str(hydra_cfg.sweep.dir)).name
    return {STUDY_TAG: str(name), DIRECTION_TAG: str(sweeper.get("direction", "minimize"))}


def record_failed_trial(tracking_uri: str, experiment_name: str, code: int) -> str | None:
    """A study's trial that failed before its MLflow run started (a bad config or bad data,
    refused before training): a FAILED run of its own, tagged as the trial (study, sweep, job,
    its overrides) with the reason its ``train.log`` ends with under ``hybridrec.failure``, so
    the study's runs hold every trial. A trial whose run exists (it diverged: ``train`` ended
    it FAILED) gets none. Returns the new run's id, or None."""
    from hybridrec.tracking.runs import end_run, ensure_experiment, now_ms

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    sweep, job = sweep_id(output_dir.parent), str(hydra_cfg.job.num)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    where = f"tags.{SWEEP_TAG} = '{sweep}' and tags.{JOB_TAG} = '{job}'"
    if experiments and client.search_runs(experiments, filter_string=where, max_results=1):
        return None
    log_file = output_dir / "train.log"
    errors = [
        line.split("] - ", 1)[-1]
        for line in (log_file.read_text().splitlines() if log_file.is_file() else [])
        if "[ERROR]" in line
    ]
    reason = errors[-1] if errors else f"the trial exited with code {code}"
    started = now_ms()
    tags = {
        SWEEP_TAG: sweep,
        JOB_TAG: job,
        OVERRIDES_TAG: " ".join(hydra_cfg.overrides.task)[:5000],
        FAILURE_TAG: reason[:5000],
        **study_tags(),
    }
    run = client.create_run(
        ensure_experiment(client, experiment_name),
        start_time=started,
        tags=tags,
        run_name=f"{tags.get(STUDY_TAG, 'sweep')}-job{job}-failed",
    )
    # the trial's overrides as params under their config keys (what `compare` shows)
    for key, value in parse_overrides(tags[OVERRIDES_TAG]).items():
        if not key.startswith(("hydra", "~")):
            client.log_param(run.info.run_id, key.lstrip("+").replace(".", "/"), value[:500])
    end_run(client, run.info.run_id, RuntimeError(reason))
    return str(run.info.run_id)


def parse_overrides(overrides: str) -> dict[str, str]:
    """``"a=1 b=x"`` (the ``overrides`` tag) -> ``{"a": "1", "b": "x"}``."""
    pairs = (item.split("=", 1) for item in overrides.split(" ") if "=" in item)
    return {key: value for key, value in pairs}


def summary_lines(client: MlflowClient, sweep: str, monitor: str) -> list[str]:
    """One line per run of ``sweep``, in job order."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(
        experiments, filter_string=f"tags.{SWEEP_TAG} = '{sweep}'", max_results=10_000
    )
    runs = list(found)
    if not runs:
        return [f"no MLflow run is tagged with sweep {sweep}"]
    runs.sort(key=lambda run: int(run.data.tags.get(JOB_TAG, "0")))
    runs = [run for run in runs if run.data.tags.get(JOB_TAG, "0").isdigit()]  # not summaries
    # a composed hybrid's parts run inside a job (nested under its run; reused by later jobs)
    runs = [run for run in runs if PART_TAG not in run.data.tags]
    overrides = [parse_overrides(run.data.tags.get(OVERRIDES_TAG, "")) for run in runs]
    keys = sorted({key for job in overrides for key in job})
    differing = [k for k in keys if len({job.get(k) for job in overrides}) > 1]
    metric = mlflow_key(f"best/{monitor}")
    lines = [f"sweep {sweep}: {len(runs)} runs; {metric} is the best validation score"]
    for run, job in zip(runs, overrides):
        shown = " ".join(f"{k}={job.get(k, '-')}" for k in differing) or "(no overrides differ)"
        value = run.data.metrics.get(metric)
        score = f"{value:.4f}" if value is not None else "-"
        lines.append(
            f"  job {run.data.tags.get(JOB_TAG, '?'):>3}  {run.info.run_id}  "
            f"{run.info.status:<8}  {metric}={score}  {shown}"
        )
    return lines


class SweepSummary(Callback):
    """Hydra callback: print :func:`summary_lines` after a multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        uri = str(config.logger.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", ""))
        try:
            client = MlflowClient(tracking_uri=uri)
            sweep = sweep_id(config.hydra.sweep.dir)
            lines = summary_lines(client, sweep, str(config.monitor))
            # with marketers' judgments measured: the accuracy-vs-agreement front too
            from hybridrec.tracking.front import write_front

            accuracy = mlflow_key(f"test/ndcg@{config.ks[0]}")
            files, run_id = write_front(client, sweep, Path(sweep) / "front", accuracy)
            if files:
                lines.append(f"accuracy-vs-agreement front: {files[0]}, {files[2]}")
                lines.append(f"  logged to MLflow run {run_id}")
                lines.append(files[0].read_text())
        except Exception as exc:  # a summary must never turn a finished sweep into an error
            lines = [f"sweep summary unavailable: {exc}"]
        print("\n".join(lines), flush=True)
