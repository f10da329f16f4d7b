"""Checking a served request: every field, its type and its size, each problem one sentence
naming the row and field (:class:`RequestRefused`, which ``mlflow models serve`` answers with
HTTP 400 and that sentence as the body's ``message``). Used by
:mod:`hybridrec.export.pyfunc_model`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

#: a request row's fields (all optional: a user, a session, both, or neither)
COLUMNS = (
    "user",
    "recent_items",
    "k",
    "exclude",
    "include_seen",
    "exclude_recent",
    "cold_offset",
    "lambda",
    "segment",
)
#: the largest lambda a request may give (the judgment head's weight, docs/judgments.md)
MAX_LAMBDA = 100.0
#: the range of a request's cold_offset (standard deviations of the standardised scores)
MAX_COLD_OFFSET = 10.0
#: rows in one request and ids in one list: bounds the work a single request can ask for
MAX_ROWS = 1000
MAX_IDS = 10_000


class RequestRefused(MlflowException):
    """A refused request: HTTP 400 whose body is ``{"error_code": "INVALID_PARAMETER_VALUE",
    "message": <our sentence>}``.

    MLflow's scoring server (3.x, ``scoring_server.invocations``) rewrites the ``message`` of an
    MlflowException raised by ``predict`` to ``"Failed to predict data '<the request as a
    DataFrame>'. \nError: <message>"`` before answering; the client should read our sentence
    alone, so the message is kept as first given and later assignments are ignored."""

    @property
    def message(self) -> str:
        return self._sentence

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_sentence"):  # MlflowException.__init__ sets it first
            self._sentence = value


def bad_request(message: str) -> RequestRefused:
    return RequestRefused(message, error_code=INVALID_PARAMETER_VALUE)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _id(value: Any) -> bool:
    """A raw id: a string or a whole number (JSON has no other id type)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (str, int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


def _flag(record: dict[str, Any], name: str, row: int) -> bool | None:
    """A true / false field; None when the row leaves it out."""
    value = record.get(name)
    if _missing(value):
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise bad_request(f"row {row}: {name} must be true or false, got {value!r}")
    return bool(value)


def _raw(value: Any) -> Any:
    return int(value) if isinstance(value, (float, np.floating)) else value


def _ids(value: Any, name: str, row: int) -> list[Any]:
    if _missing(value):
        return []
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise bad_request(
            f"row {row}: {name} must be a list of item ids, got {type(value).__name__}"
        )
    if len(value) > MAX_IDS:
        raise bad_request(
            f"row {row}: {name} holds {len(value)} ids; at most {MAX_IDS} are accepted"
        )
    bad = [v for v in value if not _id(v)]
    if bad:
        raise bad_request(
            f"row {row}: {name} must hold item ids (strings or whole numbers), "
            f"got {bad[0]!r} ({type(bad[0]).__name__})"
        )
    return [_raw(v) for v in value]


def _table(model_input: Any) -> pd.DataFrame:
    """The request as a DataFrame: MLflow hands ``dataframe_records`` / ``dataframe_split`` as
    one; ``inputs`` as a list of records (or one record) is accepted as well."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict):
        model_input = [model_input]
    if isinstance(model_input, list) and all(isinstance(r, dict) for r in model_input):
        return pd.DataFrame(model_input)
    raise bad_request(
        'a request is {"dataframe_records": [{"user": ..., "recent_items": [...], "k": ...}]}; '
        f"got {type(model_input).__name__}"
    )


def check_request(model_input: Any) -> list[dict[str, Any]]:
    """The request's rows as keyword arguments of ``Recommender.recommend``; a bad request
    raises an MlflowException (HTTP 400) naming the row and field."""
    table = _table(model_input)
    unknown = [str(c) for c in table.columns if c not in COLUMNS]
    if unknown:
        raise bad_request(f"unknown field(s) {unknown}; a request row may hold {list(COLUMNS)}")
    if len(table) > MAX_ROWS:
        raise bad_request(f"{len(table)} rows in one request; at most {MAX_ROWS} are accepted")
    rows = []
    columns = [str(c) for c in table.columns]  # one object array: cheaper than to_dict per row
    records = (dict(zip(columns, values, strict=True)) for values in table.to_numpy(object))
    for row, record in enumerate(records):
        user, k = record.get("user"), record.get("k")
        if not _missing(user) and not _id(user):
            raise bad_request(
                f"row {row}: user must be a user id (a string or a whole number), "
                f"got {user!r} ({type(user).__name__})"
            )
        judgment = {  # the judgment head's fields, only where the row gives them
            key: value
            for key, value in (
                ("judgment_lambda", _lambda(record.get("lambda"), row)),
                ("segment", _segment(record.get("segment"), row)),
            )
            if value is not None
        }
        rows.append(
            {
                "include_seen": bool(_flag(record, "include_seen", row)),
                # None: the run's own rule (the recommender's default)
                "exclude_recent": _flag(record, "exclude_recent", row),
                "user": None if _missing(user) else _raw(user),
                "recent_items": _ids(record.get("recent_items"), "recent_items", row),
                "k": 10 if _missing(k) else k,
                "exclude": _ids(record.get("exclude"), "exclude", row),
                "cold_offset": _offset(record.get("cold_offset"), row),
                **judgment,
            }
        )
    return rows


def _offset(value: Any, row: int) -> float | None:
    """A cold_offset: a number of standard deviations within ±MAX_COLD_OFFSET; None when left
    out."""
    if _missing(value):
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise bad_request(
            f"row {row}: cold_offset must be a number (standard deviations), got {value!r}"
        )
    if not math.isfinite(float(value)) or abs(float(value)) > MAX_COLD_OFFSET:
        raise bad_request(
            f"row {row}: cold_offset={value}: expected a number between -{MAX_COLD_OFFSET:g} "
            f"and {MAX_COLD_OFFSET:g}"
        )
    return float(value)


def _lambda(value: Any, row: int) -> float | None:
    """The judgment head's lambda: a number in [0, MAX_LAMBDA]; None when left out."""
    if _missing(value):
        return None
    number = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.number))
    if not number or not 0 <= float(value) <= MAX_LAMBDA:
        raise bad_request(
            f"row {row}: lambda={value!r}: expected a number between 0 and {MAX_LAMBDA:g}"
        )
    return float(value)


def _segment(value: Any, row: int) -> str | None:
    """A segment name (the run's data.judgments.segments); None when left out."""
    if _missing(value):
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"row {row}: segment must be a segment name, got {value!r}")
    return value
