"""The tracking store made safe for parallel jobs, bounded in time, and free of credentials.

- SQLite (``sqlite:///mlflow.db``): parallel jobs (``hydra/launcher=joblib``) would race to run
  MLflow's schema migrations on a fresh file (alembic: "expected to match one row") and then hit
  "database is locked". :func:`prepare_store` creates and migrates the store once, under a file
  lock (``<db>.lock``), and switches it to WAL (readers never block the one writer). Every
  SQLite connection this process opens waits up to :data:`BUSY_TIMEOUT_S` for the lock and
  takes it when its transaction starts (``BEGIN IMMEDIATE``), so a reader never has to upgrade
  to a writer, which SQLite refuses at once instead of waiting.
- HTTP servers: MLflow's client retries a failed request for minutes by default; our jobs bound
  it (:data:`HTTP_LIMITS`, unless the user set those variables) so a dead server is noticed in
  seconds (:mod:`hybridrec.tracking.fallback` takes over from there).
- :func:`redact_uri` is the form of a tracking URI that may be printed, logged or stored:
  ``http://user:***@host:5000``, query values ``***``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

log = logging.getLogger(__name__)

#: seconds a SQLite connection waits for another job's write before "database is locked"
BUSY_TIMEOUT_S = 60.0

#: MLflow's HTTP client limits for our jobs (its defaults retry 7 times with a backoff of
#: minutes, and wait 120 s per request): about 5 s for a refused connection, 30 s for a
#: server that accepts and never answers
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def redact_uri(uri: str) -> str:
    """``uri`` without secrets: the password of ``user:password@`` and every query value become
    ``***`` (``http://me:pw@host:5000?token=x`` -> ``http://me:***@host:5000?token=***``)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", uri)
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return uri  # nothing to hide (and urlunsplit would drop a slash of sqlite:////abs)
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    query = parts.query
    if query:
        query = urlencode([(k, "***") for k, _ in parse_qsl(query, keep_blank_values=True)])
        query = query.replace("%2A", "*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, uri: str) -> str:
    """``text`` with every occurrence of ``uri`` (and its password, token values) redacted."""
    if not uri:
        return text
    text = text.replace(uri, redact_uri(uri))
    parts = urlsplit(uri)
    secrets = [parts.password or ""] + [v for _, v in parse_qsl(parts.query) if len(v) >= 4]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def limit_http_retries() -> None:
    """Bound MLflow's HTTP retries and timeouts for this process, unless the user set them."""
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None: not SQLite, or in memory)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return Path(database)


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on the SQLite store of ``uri`` across processes (``<db>.lock``);
    nothing for other stores or where ``fcntl`` is missing (Windows)."""
    path = sqlite_path(uri)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        path = None
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_configured = False


def configure_sqlite() -> None:
    """Every SQLite connection SQLAlchemy opens in this process: a busy timeout, and write
    locks taken when a transaction begins (the SQLAlchemy recipe for pysqlite)."""
    global _configured
    if _configured:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    _configured = True


def prepare_store(uri: str) -> None:
    """Make the SQLite store of ``uri`` ready for parallel jobs: created and migrated once (the
    first job does it, the others wait on the lock and find it ready), in WAL mode."""
    path = sqlite_path(uri)
    if path is None:
        return
    from mlflow.tracking import MlflowClient

    with store_lock(uri):
        # MLflow's migrations use several connections of this process at once: they run
        # before configure_sqlite (whose BEGIN IMMEDIATE would make them wait on each other),
        # alone, since every other job waits on the lock
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates, migrates
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as connection:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. a network file system: still correct, slower
            log.warning("SQLite store %s stays in %s journal mode", path, mode)
    configure_sqlite()
