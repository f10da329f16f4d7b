"""The served model's request check: each malformed request is refused with one sentence naming
the row and field; good requests come through as Recommender keyword arguments."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.pyfunc.scoring_server import invocations

from hybridrec.export.requests import COLUMNS, MAX_IDS, MAX_ROWS, check_request


def test_good_rows_become_recommend_arguments() -> None:
    # rows leaving fields out arrive from MLflow as NaN; whole-number floats are ids
    # exclude_recent left out: None, the run's own rule (Recommender's default)
    table = pd.DataFrame(
        [
            {"user": "3", "k": 5},
            {
                "recent_items": ["5", np.int64(17)],
                "exclude": [2.0],
                "exclude_recent": False,
                "cold_offset": 1,
            },
        ]
    )
    rows = check_request(table)
    assert rows == [
        {
            "include_seen": False,
            "exclude_recent": None,
            "user": "3",
            "recent_items": [],
            "k": 5,
            "exclude": [],
            "cold_offset": None,
        },
        {
            "include_seen": False,
            "exclude_recent": False,
            "user": None,
            "recent_items": ["5", 17],
            "k": 10,
            "exclude": [2],
            "cold_offset": 1.0,
        },
    ]
    # the "inputs" form: a list of records, or a single record
    assert check_request([{"user": 7}])[0]["user"] == 7
    assert check_request({"recent_items": ["1"]})[0]["recent_items"] == ["1"]


@pytest.mark.parametrize(
    ("request_rows", "words"),
    [
        ([{"usr": "3"}], "unknown field(s) ['usr']"),
        ([{"user": "3", "filter": "x"}], "unknown field(s) ['filter']"),
        ([{"user": ["3"]}], "row 0: user must be a user id"),
        ([{"user": 2.5}], "row 0: user must be a user id"),
        ([{"user": True}], "row 0: user must be a user id"),
        ([{"k": 1}, {"recent_items": "5"}], "row 1: recent_items must be a list"),
        ([{"exclude": {"a": 1}}], "row 0: exclude must be a list"),
        ([{"recent_items": ["5", {"id": 1}]}], "must hold item ids"),
        ([{"recent_items": [None]}], "must hold item ids"),
        ([{"exclude": ["x"] * (MAX_IDS + 1)}], f"at most {MAX_IDS}"),
        ([{"k": 3}] * (MAX_ROWS + 1), f"at most {MAX_ROWS}"),
        ([{"user": "3", "include_seen": "yes"}], "row 0: include_seen must be true or false"),
        ([{"k": 2}, {"exclude_recent": 1}], "row 1: exclude_recent must be true or false"),
        ([{"cold_offset": "high"}], "row 0: cold_offset must be a number"),
        ([{"cold_offset": True}], "row 0: cold_offset must be a number"),
        ([{"cold_offset": 11.0}], "row 0: cold_offset=11.0: expected a number between -10"),
    ],
)
def test_malformed_requests_are_refused(request_rows: list[dict[str, Any]], words: str) -> None:
    with pytest.raises(MlflowException) as error:
        check_request(pd.DataFrame(request_rows))
    assert words in error.value.message
    assert error.value.get_http_status_code() == 400


def test_a_request_that_is_not_records_is_refused() -> None:
    with pytest.raises(MlflowException, match="dataframe_records"):
        check_request(np.zeros((2, 3)))


class _Served:
    """The least a model needs for MLflow's scoring server to call it (``invocations``)."""

    metadata = Model()

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        check_request(data)
        return pd.DataFrame([{"items": []}])


def test_the_scoring_server_answers_a_refusal_with_our_sentence_alone() -> None:
    """MLflow 3's scoring server prefixes an MlflowException raised by predict with "Failed to
    predict data '<the request as a table>'": the 400's body must be our sentence and a code."""
    body = json.dumps({"dataframe_records": [{"usr": 7, "k": 5}]})
    with pytest.raises(MlflowException) as error:
        invocations(body, "application/json", _Served(), None)
    answer = json.loads(error.value.serialize_as_json())
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer["message"] == (
        f"unknown field(s) ['usr']; a request row may hold {list(COLUMNS)}"
    )
    assert error.value.get_http_status_code() == 400
