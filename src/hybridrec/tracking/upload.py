"""Copy runs from one tracking store into another: what ``hybridrec-runs upload`` does.

Made for the fallback store a job writes when its server stops answering
(:mod:`hybridrec.tracking.fallback`): each run goes into the run it stands for on the server
(tag ``hybridrec.server_run_id``) when that run is there, else into a new run of the experiment
with the same name. Params, tags, every metric with its steps and timestamps (an entry the
target already holds at that step is not logged twice), dataset inputs, artifacts and the
final status are copied. A copied run is tagged on both sides, so a second upload skips it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hybridrec.errors import NotFoundError
from hybridrec.tracking.fallback import SERVER_RUN_TAG
from hybridrec.tracking.runs import check_tracking_uri, ensure_experiment
from hybridrec.tracking.store import redact_uri

UPLOADED_TO_TAG = "hybridrec.uploaded_to"
UPLOADED_FROM_TAG = "hybridrec.uploaded_from"
_BATCH = 500


@dataclass
class Uploaded:
    """One run copied: where from, where to, and what."""

    source_run_id: str
    target_run_id: str
    merged: bool  # into the server's own run (else a new one)
    metrics: int  # metric entries logged (those already there not counted)
    artifacts: int  # files
    skipped: bool = False  # uploaded before


def upload(
    source_uri: str, target_uri: str, run_ids: list[str] | None = None, force: bool = False
) -> list[Uploaded]:
    """Copy the runs of ``source_uri`` (all, or ``run_ids``) into ``target_uri``."""
    check_tracking_uri(target_uri)  # a server that does not answer: one sentence, in seconds
    source = MlflowClient(tracking_uri=source_uri)
    target = MlflowClient(tracking_uri=target_uri)
    if run_ids:
        runs = [source.get_run(run_id) for run_id in run_ids]
    else:
        experiments = [e.experiment_id for e in source.search_experiments()]
        runs = list(source.search_runs(experiments, max_results=10_000)) if experiments else []
    if not runs:
        raise NotFoundError(f"no run to upload in {redact_uri(source_uri)}")
    return [_upload_run(source, target, run, force) for run in runs]


def _upload_run(source: MlflowClient, target: MlflowClient, run: Run, force: bool) -> Uploaded:
    run_id = run.info.run_id
    done = run.data.tags.get(UPLOADED_TO_TAG)
    if done and not force:
        return Uploaded(run_id, done, False, 0, 0, skipped=True)
    existing = _server_run(target, run.data.tags.get(SERVER_RUN_TAG))
    if existing is not None:
        target_id, merged = existing.info.run_id, True
    else:
        experiment_name = source.get_experiment(run.info.experiment_id).name
        experiment_id = ensure_experiment(target, experiment_name)
        created = target.create_run(
            experiment_id, start_time=run.info.start_time, run_name=run.info.run_name
        )
        target_id, merged = created.info.run_id, False
    held = target.get_run(target_id).data
    # a param never changes value: those the server's run holds stay as they are
    params = [Param(k, v) for k, v in run.data.params.items() if k not in held.params]
    tags = [RunTag(k, v) for k, v in run.data.tags.items() if k != UPLOADED_TO_TAG]
    tags.append(RunTag(UPLOADED_FROM_TAG, f"{redact_uri(source.tracking_uri)}#{run_id}"))
    metrics: list[Metric] = []
    for key in run.data.metrics:
        # (step, value): a replayed entry may carry another timestamp than the server's
        there = {(m.step, m.value) for m in target.get_metric_history(target_id, key)}
        for entry in source.get_metric_history(run_id, key):
            if (entry.step, entry.value) not in there:
                metrics.append(Metric(key, entry.value, entry.timestamp, entry.step))
    for start in range(0, max(len(params), len(tags), len(metrics)), _BATCH):
        target.log_batch(
            target_id,
            metrics=metrics[start : start + _BATCH],
            params=params[start : start + _BATCH],
            tags=tags[start : start + _BATCH],
        )
    if run.inputs is not None and run.inputs.dataset_inputs:
        target.log_inputs(target_id, datasets=list(run.inputs.dataset_inputs))
    files = 0
    with tempfile.TemporaryDirectory() as tmp:
        if source.list_artifacts(run_id):
            local = Path(source.download_artifacts(run_id, "", tmp))
            files = sum(1 for p in local.rglob("*") if p.is_file())
            target.log_artifacts(target_id, str(local))
    if run.info.status != "RUNNING":
        target.set_terminated(target_id, run.info.status, end_time=run.info.end_time)
    source.set_tag(run_id, UPLOADED_TO_TAG, target_id)
    return Uploaded(run_id, target_id, merged, len(metrics), files)


def _server_run(client: MlflowClient, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:  # another server, or its store was reset: a new run
        return None


def upload_and_report(
    source_uri: str, target_uri: str, run_refs: list[str] | None, force: bool = False
) -> None:
    """``hybridrec-runs upload``: copy the runs (all, or ``run_refs``: ids or unique prefixes
    in the source store) and print one line per run."""
    from hybridrec.tracking.run_ids import resolve_run_id

    target = redact_uri(target_uri)
    run_ids = None
    if run_refs:  # prefixes name runs of the store copied from
        source = MlflowClient(tracking_uri=source_uri)
        run_ids = [resolve_run_id(source, ref, "--run-id") for ref in run_refs]
    for done in upload(source_uri, target_uri, run_ids, force=force):
        if done.skipped:
            print(f"run {done.source_run_id}: uploaded before, as run {done.target_run_id}")
            continue
        into = "into its run" if done.merged else "as new run"
        print(
            f"run {done.source_run_id} -> {target} {into} {done.target_run_id}: "
            f"{done.metrics} metric entries, {done.artifacts} artifact files"
        )
