"""A job's MLflow client that keeps everything when the tracking server goes away mid-run.

:class:`FallbackClient` wraps an ``MlflowClient`` (the same methods). While the server answers,
it records what the job logs (a journal; logged files are copied beside it, since temporary ones
vanish). When a call fails because the server does not answer, it switches the rest of the job
to a local SQLite store, ``<output_dir>/mlflow-fallback.db`` (artifacts beside it): it replays
the journal there (the run, its params, tags, metrics with their steps, artifacts), makes the
failed call again there, and sends every later call there, so training goes on and nothing is
lost. :meth:`FallbackClient.notice` then names the store and the command that uploads the run
into the server (``hybridrec-runs upload``, :mod:`hybridrec.tracking.upload`).

On a SQLite store it also retries a call that another job's write got in the way of (the
database locked, or the same dataset row inserted at the same moment).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hybridrec.tracking.store import prepare_store, redact_text, redact_uri

log = logging.getLogger(__name__)

FALLBACK_DB = "mlflow-fallback.db"
FALLBACK_ARTIFACTS = "mlflow-fallback-artifacts"
JOURNAL = "mlflow-journal"  # copies of the files logged while the server answered
#: the fallback run's tag naming the run it stands for on the server
SERVER_RUN_TAG = "hybridrec.server_run_id"
SERVER_URI_TAG = "hybridrec.server_uri"

#: calls that change the store: recorded while the server answers, replayed on a switch
_WRITES = {
    "create_run",
    "log_batch",
    "log_metric",
    "log_param",
    "set_tag",
    "log_artifact",
    "log_artifacts",
    "log_inputs",
    "log_dict",
    "log_text",
    "set_terminated",
}
#: files up to this size are copied into the journal when logged (bigger ones: by path)
_COPY_LIMIT = 100 * 2**20
_LOCKED_RETRIES = 8


def is_server_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the tracking server does not answer (refused, timed out, 5xx after
    MLflow's retries), not that the request was wrong."""
    import requests

    if isinstance(exc, (requests.exceptions.RequestException, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, MlflowException):
        text = str(exc)
        return ("API request to" in text and "failed with exception" in text) or (
            "Max retries exceeded" in text or "Connection refused" in text
        )
    return False


def _locked(exc: BaseException) -> bool:
    """A write another job's write got in the way of, which the same call repeated completes:
    SQLite's lock, or MLflow's dataset row (``log_inputs`` looks it up, then inserts it; two
    jobs logging the same dataset at once both insert, and the second breaks the unique key —
    seen 1 time in 5 in the 4-job parallel test; repeated, the call finds the row)."""
    text = str(exc)
    return "database is locked" in text or "UNIQUE constraint failed: datasets." in text


class FallbackClient:
    """An ``MlflowClient`` for one job (same methods) that falls back to a local SQLite store
    in ``fallback_dir`` when the server at ``uri`` stops answering."""

    def __init__(self, uri: str, fallback_dir: str | Path) -> None:
        self.server_uri = uri
        self.fallback_dir = Path(fallback_dir)
        self._server = MlflowClient(tracking_uri=uri)
        self._local: MlflowClient | None = None
        self._journal: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._experiment_names: dict[str, str] = {}  # server experiment id -> name
        self._run_ids: dict[str, str] = {}  # server run id -> fallback run id
        self._failure = ""
        self._copies = 0
        self._remote = uri.startswith(("http://", "https://"))

    # -- where calls go ----------------------------------------------------------------------

    @property
    def fell_back(self) -> bool:
        return self._local is not None

    @property
    def tracking_uri(self) -> str:
        return self.fallback_uri if self._local is not None else self.server_uri

    @property
    def fallback_uri(self) -> str:
        return f"sqlite:///{(self.fallback_dir / FALLBACK_DB).resolve()}"

    def run_id(self, server_run_id: str) -> str:
        """The id under which the run ``server_run_id`` is now logged."""
        return self._run_ids.get(server_run_id, server_run_id)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private, or looked up before __init__ (copy, pickle)
            raise AttributeError(name)
        target = getattr(self._local if self._local is not None else self._server, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, args, kwargs)

        return call

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._local is not None:
            return self._on_local(name, args, kwargs)
        entry = self._record(name, args, kwargs) if self._remote and name in _WRITES else None
        try:
            result = self._retry_locked(getattr(self._server, name), args, kwargs)
        except Exception as exc:
            if not (self._remote and is_server_failure(exc)):
                raise
            self._switch(name, exc)  # replays what the server holds, then this call:
            return self._on_local(name, args, kwargs)
        if entry is not None:  # the journal holds what the server holds
            self._journal.append(entry)
        if self._remote and name == "create_run":
            self._created(args, kwargs, result)
        elif name == "get_experiment_by_name" and result is not None:
            self._experiment_names[str(result.experiment_id)] = str(result.name)
        elif name == "create_experiment":
            self._experiment_names[str(result)] = str(kwargs.get("name", args[0] if args else ""))
        return result

    @staticmethod
    def _retry_locked(method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        for attempt in range(_LOCKED_RETRIES):
            try:
                return method(*args, **kwargs)
            except MlflowException as exc:
                if not _locked(exc) or attempt == _LOCKED_RETRIES - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    # -- the journal -------------------------------------------------------------------------

    def _record(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """The call as the journal keeps it for a replay: logged files are copied first
        (temporary ones vanish)."""
        replay_args, replay_kwargs = list(args), dict(kwargs)
        if name in ("log_artifact", "log_artifacts"):
            key, position = ("local_path", 1) if name == "log_artifact" else ("local_dir", 1)
            source = kwargs[key] if key in kwargs else args[position]
            kept = self._keep(Path(source))
            if key in kwargs:
                replay_kwargs[key] = kept
            else:
                replay_args[position] = kept
        return name, tuple(replay_args), replay_kwargs

    def _keep(self, source: Path) -> str:
        if source.resolve().is_relative_to(self.fallback_dir.resolve()):
            return str(source)  # the job's own outputs (checkpoints) stay where they are
        self._copies += 1
        journal = self.fallback_dir / JOURNAL / str(self._copies)
        size = (
            source.stat().st_size
            if source.is_file()
            else sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        )
        if size > _COPY_LIMIT:
            return str(source)
        journal.mkdir(parents=True, exist_ok=True)
        target = journal / source.name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return str(target)

    def _created(self, args: tuple[Any, ...], kwargs: dict[str, Any], run: Any) -> None:
        experiment_id = str(kwargs.get("experiment_id", args[0] if args else ""))
        if experiment_id not in self._experiment_names:
            self._experiment_names[experiment_id] = self._server.get_experiment(experiment_id).name
        self._journal[-1] = ("create_run", args, {**kwargs, "_server_run_id": run.info.run_id})

    # -- the switch --------------------------------------------------------------------------

    def _switch(self, name: str, exc: BaseException) -> None:
        self._failure = f"{name}: {redact_text(str(exc), self.server_uri)[:300]}"
        log.warning(
            "MLflow tracking server %s stopped answering (%s); this run goes on logging to "
            "the local store %s",
            redact_uri(self.server_uri),
            self._failure,
            self.fallback_uri,
        )
        self.fallback_dir.mkdir(parents=True, exist_ok=True)
        prepare_store(self.fallback_uri)
        self._local = MlflowClient(tracking_uri=self.fallback_uri)
        for call_name, args, kwargs in self._journal:
            if call_name == "create_run":
                self._replay_create(args, dict(kwargs))
            else:
                self._on_local(call_name, args, kwargs)
        self._journal.clear()

    def _local_experiment(self, name: str) -> str:
        assert self._local is not None
        experiment = self._local.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = (self.fallback_dir / FALLBACK_ARTIFACTS).resolve().as_uri()
        return str(self._local.create_experiment(name, artifact_location=location))

    def _replay_create(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        assert self._local is not None
        server_run_id = kwargs.pop("_server_run_id")
        experiment_id = str(kwargs.pop("experiment_id", args[0] if args else ""))
        local_experiment = self._local_experiment(self._experiment_names[experiment_id])
        tags = dict(kwargs.pop("tags", None) or {})
        tags[SERVER_RUN_TAG] = server_run_id
        tags[SERVER_URI_TAG] = redact_uri(self.server_uri)
        kwargs["tags"] = tags
        run = self._local.create_run(local_experiment, *args[1:], **kwargs)
        self._run_ids[server_run_id] = run.info.run_id

    def _on_local(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self._local is not None
        args = tuple(self._run_ids.get(a, a) if isinstance(a, str) else a for a in args)
        if isinstance(kwargs.get("run_id"), str):
            kwargs = {**kwargs, "run_id": self._run_ids.get(kwargs["run_id"], kwargs["run_id"])}
        if name == "create_run":  # the server died before the run existed
            kwargs = dict(kwargs)
            experiment_id = str(kwargs.pop("experiment_id", args[0] if args else ""))
            if experiment_id in self._experiment_names:  # a server experiment: by its name
                experiment_id = self._local_experiment(self._experiment_names[experiment_id])
            args = (experiment_id, *args[1:])
        if name == "create_experiment":  # with the fallback's artifact folder
            return self._local_experiment(str(kwargs.get("name", args[0] if args else "")))
        return getattr(self._local, name)(*args, **kwargs)

    # -- the end -----------------------------------------------------------------------------

    def notice(self, server_run_id: str | None = None) -> str | None:
        """What to tell the user after a switch: where the run is and how to upload it."""
        if self._local is None:
            return None
        run = f" (run {self.run_id(server_run_id)})" if server_run_id else ""
        target = redact_uri(self.server_uri)
        hint = " (with your credentials in place of ***)" if target != self.server_uri else ""
        return (
            f"The MLflow tracking server {target} stopped answering during this run "
            f"({self._failure}). Training went on: its params, metrics, checkpoint and "
            f"artifacts are in the local store {self.fallback_uri}{run}. When the server is "
            f"back, upload them{hint}:\n"
            f"  hybridrec-runs upload --from {self.fallback_uri} --to {target}"
        )

    def print_notice(self, server_run_id: str | None = None) -> None:
        """Print :meth:`notice`; without a switch, drop the journal's copies instead."""
        message = self.notice(server_run_id)
        if message:
            print(message, flush=True)
        else:
            shutil.rmtree(self.fallback_dir / JOURNAL, ignore_errors=True)


def where(client: Any, server_run_id: str) -> tuple[str, str]:
    """(run id, tracking URI without credentials) under which ``server_run_id`` is logged now:
    the fallback run and store after a switch, else the same."""
    if isinstance(client, FallbackClient):
        return client.run_id(server_run_id), redact_uri(client.tracking_uri)
    return server_run_id, redact_uri(str(getattr(client, "tracking_uri", "")))


def print_fallback_notice(client: Any, server_run_id: str | None = None) -> None:
    """After a switch to the local store: where the run is, and the command that uploads it."""
    if isinstance(client, FallbackClient):
        client.print_notice(server_run_id)
