"""Run ids as a user types them: any unique prefix, as git takes a commit.

MLflow's run ids are 32 hex digits; ``hybridrec-runs`` prints the first 8 (more where 8 are
not unique). Every command that takes a run id (``hybridrec-export``, ``hybridrec-eval``,
``hybridrec-train resume=``, ``hybridrec-runs --run`` / ``upload --run-id``) resolves it here:
a full id passes through untouched (the command's own lookup says whether the store holds it),
a prefix of at least 4 digits (git's minimum: ``hybridrec-export 1`` must not pick a run and
log to it) becomes the one run whose id starts with it. A short, unknown or ambiguous prefix is
a :class:`RunIdError` of one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from hybridrec.errors import HybridrecError
from hybridrec.tracking.store import redact_uri

RUN_ID_LENGTH = 32
#: the fewest digits taken as a prefix
MIN_PREFIX = 4
#: the length ``hybridrec-runs`` prints at least
SHORT = 8
_PREFIX = re.compile(r"[0-9a-f]{1,32}")
#: runs named in an "ambiguous" message at most
_SHOWN = 5


class RunIdError(HybridrecError, LookupError):
    """A run id prefix that names no run, or more than one (``ambiguous``)."""

    def __init__(self, message: str, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def is_run_ref(text: str) -> bool:
    """Whether ``text`` can be (a prefix of) a run id: 1 to 32 hex digits."""
    return _PREFIX.fullmatch(text.lower()) is not None


def matching_runs(client: MlflowClient, prefix: str, limit: int = _SHOWN + 1) -> list[str]:
    """Ids of the runs (deleted ones included, in any experiment) whose id starts with
    ``prefix``, at most ``limit``."""
    prefix = prefix.lower()
    if not is_run_ref(prefix):
        return []
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        return []
    found = client.search_runs(
        experiments,
        filter_string=f"attributes.run_id LIKE '{prefix}%'",  # hex only: nothing to escape
        run_view_type=ViewType.ALL,
        max_results=limit,
    )
    return [run.info.run_id for run in found]


def resolve_run_id(client: MlflowClient, ref: str, what: str = "run id") -> str:
    """The full id of the one run whose id starts with ``ref``. A full 32-digit id is returned
    as given. RunIdError (one sentence, naming ``what`` and the store) when ``ref`` is not hex,
    names no run, or names several."""
    text = ref.strip().lower()
    store = redact_uri(str(getattr(client, "tracking_uri", "")))
    if not is_run_ref(text):
        raise RunIdError(
            f"{what} {ref!r}: not a run id (hex digits, as hybridrec-runs list prints them)"
        )
    if len(text) == RUN_ID_LENGTH:
        return text
    if len(text) < MIN_PREFIX:
        raise RunIdError(
            f"{what} {ref}: too short for a run id prefix; give at least {MIN_PREFIX} of its "
            "digits (hybridrec-runs list prints them)"
        )
    found = matching_runs(client, text)
    if not found:
        raise RunIdError(f"{what} {ref}: no run id starts with {text} in tracking store {store}")
    if len(found) > 1:
        shown = ", ".join(sorted(found)[:_SHOWN]) + (", …" if len(found) > _SHOWN else "")
        raise RunIdError(
            f"{what} {ref} is ambiguous: {'more than ' if len(found) > _SHOWN else ''}"
            f"{min(len(found), _SHOWN)} runs in {store} start with it ({shown}); "
            "give more of its digits",
            ambiguous=True,
        )
    return found[0]


def short_ids(run_ids: Iterable[str], minimum: int = SHORT) -> dict[str, str]:
    """Each id's shortest prefix of at least ``minimum`` digits that no other of ``run_ids``
    shares (git's abbreviated hashes): what the tables print, and what the commands take back."""
    ids = sorted(set(run_ids))
    out = {}
    for i, run_id in enumerate(ids):
        length = minimum
        for other in (ids[i - 1] if i else "", ids[i + 1] if i + 1 < len(ids) else ""):
            common = len(_common_prefix(run_id, other))
            length = max(length, common + 1)
        out[run_id] = run_id[: min(length, len(run_id))]
    return out


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def run_or_path(client: MlflowClient, source: str) -> str:
    """A command's ``RUN_ID|CHECKPOINT`` argument with a run id prefix made whole: an existing
    file, or anything that is not hex, is returned as given (a path); a hex string is resolved
    by :func:`resolve_run_id`."""
    if Path(source).is_file() or not is_run_ref(source):
        return source
    return resolve_run_id(client, source)
