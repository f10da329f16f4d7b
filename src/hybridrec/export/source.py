"""Where a trained model comes from: an MLflow run id (its best checkpoint, logged under
``checkpoints/``) or a checkpoint file. Read through the MLflow client, any tracking URI."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hybridrec.errors import NotFoundError

RUN_ID = re.compile(r"[0-9a-f]{32}")


def resolve_checkpoint(source: str, client: MlflowClient) -> tuple[Path, str | None]:
    """(checkpoint file, run id or None). A 32-hex id is a run: its ``best_checkpoint`` tag
    names the artifact under ``checkpoints/``, downloaded to a temporary folder. Anything else
    is a path. NotFoundError / FileNotFoundError with one sentence when neither works."""
    if RUN_ID.fullmatch(source):
        try:
            run = client.get_run(source)
        except MlflowException as exc:
            raise NotFoundError(
                f"run {source} is not in the tracking store {client.tracking_uri} "
                "(set --tracking-uri or MLFLOW_TRACKING_URI)"
            ) from exc
        name = run.data.tags.get("best_checkpoint")
        if not name:
            raise NotFoundError(
                f"run {source} logged no checkpoint (tag best_checkpoint is missing: did it "
                f"finish? status {run.info.status})"
            )
        folder = tempfile.mkdtemp(prefix="hybridrec-ckpt-")
        local = client.download_artifacts(source, f"checkpoints/{name}", folder)
        return Path(local), source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"{source}: neither a run id (32 hex characters) nor a checkpoint file"
        )
    return path, None
