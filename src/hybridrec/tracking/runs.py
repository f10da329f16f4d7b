"""The life of one MLflow run, owned by hybridrec rather than by Lightning.

Lightning's logger creates its run lazily and terminates it when ``fit`` ends (and again after
``test``; never under ``fast_dev_run``, where it swaps the logger for a dummy). A training job is
more than ``fit``: data preparation, the test of the best checkpoint, a refit, the artifacts. So
``train`` creates the run itself (start time = the job's start), hands its id to the logger, and
ends it once, with the status the job earned: FINISHED, FAILED (an exception) or KILLED (Ctrl-C,
SIGTERM).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow.parquet as pq
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hybridrec.data.spec import DataSpec
from hybridrec.errors import HybridrecError
from hybridrec.tracking.store import (
    limit_http_retries,
    prepare_store,
    redact_text,
    redact_uri,
    store_lock,
)

log = logging.getLogger(__name__)

#: What the MLflow UI reads to open an experiment on its runs table (not the GenAI overview).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: A UI link's query that opens MLflow 3's Model training view, not its GenAI view: the UI's
#: switch between them is kept in the browser (localStorage, default GenAI), never synced with
#: the experiment's kind (mlflow/mlflow#24498); the query wins while it is in the address.
UI_VIEW = "workflowType=machine_learning"


class TrackingError(HybridrecError, RuntimeError):
    """The tracking store cannot be used; the message names the URI and what to do."""


def now_ms() -> int:
    return int(time.time() * 1000)


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Make ``uri`` ready for this job, or fail within seconds naming it (without its
    credentials). A SQLite store is created, migrated and put in WAL mode once, under a file
    lock, so parallel jobs never race (:func:`hybridrec.tracking.store.prepare_store`). A server
    must answer ``/health``; MLflow's client would retry for minutes, then print a long
    traceback, so its retries are bounded for the rest of the job too."""
    if uri.startswith("sqlite:"):
        prepare_store(uri)
        return
    if not uri.startswith(("http://", "https://")):
        return
    limit_http_retries()
    parts = urlsplit(uri)
    if parts.username is not None or parts.query:  # MLflow prints run links with the URI
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    request = urllib.request.Request(health)  # noqa: S310
    if parts.username is not None:  # urllib does not read user:password@ from the URL
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = redact_text(str(getattr(exc, "reason", exc)), uri)
    raise TrackingError(
        f"MLflow tracking server {redact_uri(uri)} does not answer ({reason}). Start it "
        f"(`make ui`, or `.venv/bin/mlflow server --host 127.0.0.1 --port 5000 --workers 1`), "
        f"fix MLFLOW_TRACKING_URI / logger.tracking_uri, or unset it to log to the local store "
        f"sqlite:///mlflow.db"
    )


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing, tagged as model training so the
    MLflow UI opens it on the runs table. Safe when parallel jobs race to create it."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        if experiment is not None:  # a deleted name cannot be reused: say so, don't guess
            raise TrackingError(
                f"MLflow experiment {name!r} was deleted; restore it "
                f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}`) "
                f"or choose another name with logger.experiment_name="
            )
        try:
            with store_lock(str(getattr(client, "tracking_uri", ""))):  # once across jobs
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
                    return client.create_experiment(name, tags=tags)
        except MlflowException:  # another job created it between the two calls
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return str(experiment.experiment_id)


def start_run(
    client: MlflowClient,
    experiment_name: str,
    run_name: str,
    start_time_ms: int,
    tags: dict[str, str] | None = None,
) -> str:
    """Create the run (status RUNNING, started at ``start_time_ms``); returns its id."""
    experiment_id = ensure_experiment(client, experiment_name)
    uri = str(getattr(client, "tracking_uri", ""))  # never stored with its credentials
    safe_tags = {key: redact_text(str(value), uri) for key, value in (tags or {}).items()}
    run = client.create_run(
        experiment_id, start_time=start_time_ms, tags=safe_tags, run_name=run_name
    )
    return str(run.info.run_id)


def end_status(exc: BaseException | None) -> str:
    """The run status a job ends with: no exception -> FINISHED; Ctrl-C or SIGTERM (which
    Lightning turns into ``sys.exit(1)`` after a KeyboardInterrupt) -> KILLED; else FAILED."""
    if exc is None:
        return "FINISHED"
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "KILLED"
    return "FAILED"


def end_run(client: MlflowClient, run_id: str, exc: BaseException | None) -> str:
    status = end_status(exc)
    try:
        client.set_terminated(run_id, status=status, end_time=now_ms())
    except Exception as error:  # the job's own error matters more than this one
        log.error("could not mark MLflow run %s as %s: %s", run_id, status, error)
    return status


def run_name(model: str, data: str, protocol: str, job: int | None = None) -> str:
    """``neumf-synthetic-loo_sampled``; ``…-job3`` for job 3 of a sweep."""
    name = f"{model}-{data}-{protocol}"
    return name if job is None else f"{name}-job{job}"


def log_dataset(client: MlflowClient, run_id: str, spec: DataSpec, data_dir: str | Path) -> None:
    """Log the prepared dataset as the run's training input: name, digest (the first 16 hex
    digits of the data fingerprint; MLflow keeps at most 36 characters), source (the prepared
    folder), schema (of the training split, read from the parquet footer, not the data) and
    the split sizes as its profile."""
    folder = Path(data_dir)
    train_file = folder / spec.files["train"]
    schema = _schema_json(train_file)
    dataset = Dataset(
        name=f"{spec.name}-{spec.protocol}",
        digest=spec.fingerprint[:16],
        source_type="local",
        source=json.dumps({"uri": str(folder.resolve())}),
        schema=schema,
        profile=json.dumps(
            {"num_rows": spec.n_train, "val_rows": spec.n_val, "test_rows": spec.n_test}
        ),
    )
    context = InputTag(key="mlflow.data.context", value="train")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=[context])])


_ARROW_TO_MLFLOW = {
    "int8": "integer",
    "int16": "integer",
    "int32": "integer",
    "int64": "long",
    "uint8": "integer",
    "uint16": "integer",
    "uint32": "long",
    "uint64": "long",
    "float": "float",
    "halffloat": "float",
    "double": "double",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
    "binary": "binary",
}


def _schema_json(parquet_file: Path) -> str | None:
    """MLflow's column-spec schema JSON of a parquet file, from its footer only."""
    try:
        arrow = pq.read_schema(parquet_file)
    except (OSError, ValueError):
        return None
    columns: list[dict[str, Any]] = []
    for field in arrow:
        kind = _ARROW_TO_MLFLOW.get(str(field.type))
        if kind is None:  # timestamps -> datetime; lists and others as binary
            kind = "datetime" if str(field.type).startswith(("timestamp", "date")) else "binary"
        columns.append({"type": kind, "name": field.name, "required": not field.nullable})
    return json.dumps({"mlflow_colspec": columns})
