"""The MLflow pyfunc model (models-from-code): ``mlflow models serve`` answers top-K requests.

Logged by :func:`hybridrec.export.pyfunc.log_recommender`; MLflow runs this file to build the
model, whose artifacts are the checkpoint and the training popularity. A request is a table of
rows with ``user`` and / or ``recent_items`` (raw ids), ``k`` (default 10) and ``exclude``; each
answer row holds ``items``, ``scores``, ``source``, ``unknown_items`` and, for the hybrid,
``id_share`` (:class:`hybridrec.export.recommender.Recommender`). A bad request is a 400 with
one sentence, never a 500.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

COLUMNS = ("user", "recent_items", "k", "exclude")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ids(value: Any, name: str, row: int) -> list[Any]:
    if _missing(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    raise MlflowException(
        f"row {row}: {name} must be a list of item ids, got {type(value).__name__}",
        error_code=INVALID_PARAMETER_VALUE,
    )


class HybridrecRecommender(PythonModel):
    def load_context(self, context: Any) -> None:
        import torch

        from hybridrec.export.recommender import Recommender
        from hybridrec.lit.checkpoint import PAYLOAD, load_model

        checkpoint = context.artifacts["checkpoint"]
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)[PAYLOAD]
        maps = payload.get("id_maps") or {}
        popularity_path = context.artifacts.get("popularity")
        popularity = np.load(popularity_path) if popularity_path else None
        new_path = context.artifacts.get("new_items")
        added = torch.load(new_path, weights_only=True) if new_path else None
        self.recommender = Recommender(
            load_model(checkpoint),
            [None, *maps.get("items", [])],
            maps.get("users", []),
            popularity,
            new_items=None if added is None else (added["items"], added["vectors"]),
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from hybridrec.export.recommender import RequestError

        unknown = [c for c in model_input.columns if c not in COLUMNS]
        if unknown:
            raise MlflowException(
                f"unknown field(s) {unknown}; a request row has {list(COLUMNS)}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        answers = []
        for row, record in enumerate(model_input.to_dict(orient="records")):
            user = record.get("user")
            k = record.get("k")
            try:
                answers.append(
                    self.recommender.recommend(
                        user=None if _missing(user) else user,
                        recent_items=_ids(record.get("recent_items"), "recent_items", row),
                        k=10 if _missing(k) else k,
                        exclude=_ids(record.get("exclude"), "exclude", row),
                    )
                )
            except RequestError as exc:
                raise MlflowException(
                    f"row {row}: {exc}", error_code=INVALID_PARAMETER_VALUE
                ) from exc
        return pd.DataFrame(answers)


mlflow.models.set_model(HybridrecRecommender())
