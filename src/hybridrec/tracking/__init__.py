"""MLflow tracking: run start/end, names, tags, dataset inputs, sweeps, comparison and plots.

The names below load their module (and MLflow, Lightning, torch with it) on first use, not on
``import hybridrec.tracking``: a console script that only prints its help never pays for them
(PEP 562 ``__getattr__``; ``tests/cli/test_startup.py`` holds it)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hybridrec.tracking.mlflow_run import (
        DEFAULT_URI,
        MLflowLogger,
        default_tracking_uri,
        git_commit,
        log_missing_metrics,
        log_run_end,
        log_run_start,
        mlflow_key,
    )
    from hybridrec.tracking.runs import (
        TrackingError,
        check_tracking_uri,
        end_run,
        ensure_experiment,
        log_dataset,
        now_ms,
        run_name,
        start_run,
    )
    from hybridrec.tracking.sweep import (
        JOB_TAG,
        OVERRIDES_TAG,
        SWEEP_TAG,
        SweepSummary,
        sweep_id,
    )

#: each public name -> the module that defines it
_HOME = {
    **dict.fromkeys(
        [
            "DEFAULT_URI",
            "MLflowLogger",
            "default_tracking_uri",
            "git_commit",
            "log_missing_metrics",
            "log_run_end",
            "log_run_start",
            "mlflow_key",
        ],
        "hybridrec.tracking.mlflow_run",
    ),
    **dict.fromkeys(
        [
            "TrackingError",
            "check_tracking_uri",
            "end_run",
            "ensure_experiment",
            "log_dataset",
            "now_ms",
            "run_name",
            "start_run",
        ],
        "hybridrec.tracking.runs",
    ),
    **dict.fromkeys(
        ["JOB_TAG", "OVERRIDES_TAG", "SWEEP_TAG", "SweepSummary", "sweep_id"],
        "hybridrec.tracking.sweep",
    ),
}

__all__ = [
    "DEFAULT_URI",
    "JOB_TAG",
    "OVERRIDES_TAG",
    "SWEEP_TAG",
    "MLflowLogger",
    "SweepSummary",
    "TrackingError",
    "check_tracking_uri",
    "default_tracking_uri",
    "end_run",
    "ensure_experiment",
    "git_commit",
    "log_dataset",
    "log_missing_metrics",
    "log_run_end",
    "log_run_start",
    "mlflow_key",
    "now_ms",
    "run_name",
    "start_run",
    "sweep_id",
]
assert sorted(__all__) == sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'hybridrec.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value
