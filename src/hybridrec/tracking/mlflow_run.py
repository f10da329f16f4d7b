"""What every training run records in MLflow, beyond the metrics Lightning logs per epoch.

At start: the resolved config (flattened as params and whole as ``config.yaml``), the data spec
(``spec.json``) and its fingerprint, the protocol, the git commit. At the end: the best
checkpoint, its validation score and the test metrics it produced.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.loggers import MLFlowLogger

from hybridrec.data.preparation.judgments import rater_table
from hybridrec.data.spec import DataSpec
from hybridrec.tracking.runs import log_dataset
from hybridrec.tracking.store import redact_text

DEFAULT_URI = "sqlite:///mlflow.db"


class MLflowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger with metric keys made MLflow-safe up front (``val/ndcg@10`` ->
    ``val/ndcg10``) instead of a warning per key per step, and without ending the run:
    Lightning would mark it FINISHED when ``fit`` ends, before the test, the refit and the
    artifacts; ``train`` ends it once, with the job's status (:mod:`hybridrec.tracking.runs`).
    """

    def use_client(self, client: Any) -> None:
        """Log through ``client`` (the job's :class:`~hybridrec.tracking.fallback.FallbackClient`,
        shared with ``train``) instead of a client of its own."""
        self._hybridrec_client = client

    @property
    def experiment(self) -> Any:
        client = getattr(self, "_hybridrec_client", None)
        if client is None or self._run_id is None:
            return super().experiment
        if not self._initialized:
            self._mlflow_client = client
            self._experiment_id = client.get_run(self._run_id).info.experiment_id
            self._initialized = True
        return client

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)

    def finalize(self, status: str = "success") -> None:
        """Nothing: the run's end belongs to the job, not to one ``fit`` or ``test``."""


def mlflow_key(name: str) -> str:
    """MLflow's name for a Lightning metric key: MLflow forbids ``@``, and Lightning's logger
    drops it, so ``val/ndcg@10`` is stored as ``val/ndcg10``."""
    return re.sub(r"[^a-zA-Z0-9_/. -]+", "", name)


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else an SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)


def git_commit(cwd: str | Path | None = None) -> tuple[str, bool]:
    """(commit sha or "unknown", whether the work tree has uncommitted changes)."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha, bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(
                _flatten(value, f"{prefix}{key}/" if isinstance(value, dict) else f"{prefix}{key}")
            )
        return out
    return {prefix.rstrip("/"): tree}


def log_run_start(
    logger: MLFlowLogger, config: dict[str, Any], spec: DataSpec, data_dir: str | Path
) -> None:
    client, run_id = logger.experiment, logger.run_id
    assert run_id is not None
    uri = str(getattr(logger, "_tracking_uri", "") or "")  # its credentials never stored
    config = yaml.safe_load(redact_text(yaml.safe_dump(config, sort_keys=False), uri))
    params = {key: str(value)[:6000] for key, value in _flatten(config).items()}
    logger.log_hyperparams(params)
    sha, dirty = git_commit()
    client.set_tag(run_id, "mlflow.source.git.commit", sha)
    client.set_tag(run_id, "git_dirty", str(dirty).lower())
    client.set_tag(run_id, "protocol", spec.protocol)
    client.set_tag(run_id, "eval_mode", spec.eval_mode)
    client.set_tag(run_id, "dataset", spec.name)
    client.set_tag(run_id, "data_fingerprint", spec.fingerprint)
    model_target = str(config.get("model", {}).get("_target_", "?"))
    client.set_tag(run_id, "model", model_target.rsplit(".", 1)[-1])
    log_dataset(client, run_id, spec, data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        client.log_artifact(run_id, str(config_path))
    client.log_artifact(run_id, str(Path(data_dir) / "spec.json"), artifact_path="data")
    log_judgments(client, run_id, spec)


def log_judgments(client: Any, run_id: str, spec: DataSpec) -> None:
    """The judgments' raters (reliability weight, consensus agreement) and counts (kept,
    dropped per reason, per split part) as metrics ``judgments/...`` (docs/judgments.md), and
    the raters' table as the artifact ``judgments/raters.csv`` (least reliable first: the
    training log prints only a summary)."""
    info = spec.judgments
    if not info:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raters.csv"
        rater_table(info).to_csv(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path="judgments")
    for k, rater in enumerate(info.get("raters", [])):
        name = mlflow_key(str(rater))
        client.log_metric(run_id, f"judgments/weight/{name}", float(info["weights"][k]))
        agreement = info.get("consensus_agreement", [None] * (k + 1))[k]
        if agreement is not None:
            client.log_metric(run_id, f"judgments/consensus_agreement/{name}", float(agreement))
    for key, value in info.get("counts", {}).items():
        client.log_metric(run_id, f"judgments/count/{mlflow_key(key)}", float(value))


def log_missing_metrics(logger: MLFlowLogger, metrics: Mapping[str, float]) -> None:
    """Log the ``metrics`` the run does not hold yet (at step 0), leaving those Lightning
    already logged with their epoch steps alone."""
    client, run_id = logger.experiment, logger.run_id
    assert run_id is not None
    stored = client.get_run(run_id).data.metrics
    missing = {mlflow_key(k): float(v) for k, v in metrics.items() if mlflow_key(k) not in stored}
    for key, value in missing.items():
        client.log_metric(run_id, key, value)


def log_run_end(
    logger: MLFlowLogger,
    best_checkpoint: str | None,
    best_score: float | None,
    monitor: str,
) -> None:
    client, run_id = logger.experiment, logger.run_id
    assert run_id is not None
    if best_checkpoint:
        client.log_artifact(run_id, best_checkpoint, artifact_path="checkpoints")
        client.set_tag(run_id, "best_checkpoint", Path(best_checkpoint).name)
    if best_score is not None:
        client.log_metric(run_id, mlflow_key(f"best/{monitor}"), float(best_score))
