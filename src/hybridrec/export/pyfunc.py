"""Logging the served model: an MLflow pyfunc (models-from-code) with its signature and an
input example, hybridrec installed through its requirements (not ``code_paths``)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from hybridrec.lit.checkpoint import load_model

#: what a request row may hold (all optional: a user, a session, both, or neither). The id
#: lists are typed Any: MLflow's Array(string) refuses a row that leaves them out when another
#: row has them (the missing value arrives as a float NaN); the model checks them itself.
INPUT_SCHEMA = Schema(
    [
        ColSpec("string", "user", required=False),
        ColSpec(AnyType(), "recent_items", required=False),
        ColSpec("long", "k", required=False),
        ColSpec(AnyType(), "exclude", required=False),
    ]
)


def popularity(checkpoint: Path) -> np.ndarray | None:
    """(N + 1,) training interactions per item: the hybrid carries them (its gate's counts);
    otherwise the run's prepared training split when it is still there; else None."""
    model = load_model(checkpoint)
    counts = getattr(getattr(model, "items", None), "counts", None)
    if counts is not None:
        return counts.detach().cpu().numpy().astype(np.float32)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data_dir = ((saved.get("hybridrec_config") or {}).get("datamodule") or {}).get("data_dir")
    train = Path(str(data_dir)) / "train.parquet" if data_dir else None
    if train is None or not train.is_file():
        return None
    items = pd.read_parquet(train, columns=["item"])["item"].to_numpy()
    n_items = int(getattr(model, "n_items", items.max()))
    return np.bincount(items, minlength=n_items + 1)[: n_items + 1].astype(np.float32)


def log_recommender(
    checkpoint: Path, out: Path, run_id: str | None = None, new_items: Path | None = None
) -> Any:
    """Log the pyfunc model under the active / given run (``name="model"``); returns MLflow's
    ModelInfo. ``out`` holds the popularity file it ships."""
    import mlflow

    artifacts = {"checkpoint": str(checkpoint)}
    if new_items is not None:  # products added after training (hybridrec-export --add-items)
        artifacts["new_items"] = str(new_items)
    counts = popularity(checkpoint)
    if counts is not None:
        np.save(out / "popularity.npy", counts)
        artifacts["popularity"] = str(out / "popularity.npy")
    example = pd.DataFrame([{"user": None, "recent_items": [], "k": 5, "exclude": []}])
    code = Path(__file__).with_name("pyfunc_model.py")
    with mlflow.start_run(run_id=run_id) if run_id else nullcontext():
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            artifacts=artifacts,
            signature=ModelSignature(inputs=INPUT_SCHEMA),
            input_example=example,
            pip_requirements=["hybridrec"],
        )
