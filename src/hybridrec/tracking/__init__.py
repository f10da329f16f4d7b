from hybridrec.tracking.mlflow_run import (
    MLflowLogger,
    default_tracking_uri,
    git_commit,
    log_run_end,
    log_run_start,
    mlflow_key,
)

__all__ = [
    "MLflowLogger",
    "default_tracking_uri",
    "git_commit",
    "log_run_end",
    "log_run_start",
    "mlflow_key",
]
