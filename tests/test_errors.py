"""Every error hybridrec raises on purpose shares one base (hybridrec.errors)."""

from __future__ import annotations

import pytest

from hybridrec.cli.checks import ConfigError
from hybridrec.data.errors import DataError
from hybridrec.data.pseudonyms import MissingKeyError
from hybridrec.errors import (
    CheckpointError,
    ExportError,
    HybridrecError,
    NotFoundError,
    QueryError,
)
from hybridrec.export.recommender import RequestError
from hybridrec.export.review import ReviewError
from hybridrec.lit.callbacks import DivergenceError
from hybridrec.overrides import UsageError
from hybridrec.run.eval_config import EvalError
from hybridrec.tracking.run_ids import RunIdError
from hybridrec.tracking.runs import TrackingError
from hybridrec.validators import ArgumentError

#: each error and the standard base it kept (code that caught that still does)
ERRORS = [
    (ConfigError, ValueError),
    (EvalError, ValueError),
    (UsageError, Exception),
    (DataError, ValueError),
    (MissingKeyError, ValueError),
    (RequestError, ValueError),
    (ReviewError, ValueError),
    (DivergenceError, RuntimeError),
    (RunIdError, LookupError),
    (TrackingError, RuntimeError),
    (ArgumentError, ValueError),
    (CheckpointError, ValueError),
    (ExportError, ValueError),
    (QueryError, ValueError),
    (NotFoundError, LookupError),
]


@pytest.mark.parametrize(("error", "standard"), ERRORS, ids=[e.__name__ for e, _ in ERRORS])
def test_every_error_of_ours_is_a_hybridrec_error(error: type, standard: type) -> None:
    assert issubclass(error, HybridrecError) and issubclass(error, standard)


def test_a_data_error_caught_as_the_base_keeps_its_sentence() -> None:
    with pytest.raises(HybridrecError) as caught:
        raise DataError("missing value", path="clicks.csv", row=3, column="user")
    assert "clicks.csv" in str(caught.value) and "row 3" in str(caught.value)
