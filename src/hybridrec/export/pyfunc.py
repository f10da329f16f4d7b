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

from hybridrec.export.requests import MAX_IDS, MAX_ROWS
from hybridrec.lit.checkpoint import load_model, safe_load

#: what an answer row holds. There is no input schema on purpose: MLflow's schema enforcement
#: drops unknown request fields with a warning before the model sees them, and a misspelt field
#: must be a 400 (:mod:`hybridrec.export.pyfunc_model` checks every field itself). The request
#: is described by the input example and by the model's metadata (``request``).
OUTPUT_SCHEMA = Schema(
    [
        ColSpec(AnyType(), "items"),
        ColSpec(AnyType(), "scores"),
        ColSpec("string", "score_kind"),  # "model" (the model's scores) | "count" (popularity)
        ColSpec("string", "source"),
        ColSpec(AnyType(), "unknown_items"),
        ColSpec(AnyType(), "id_share", required=False),
        ColSpec(AnyType(), "part_shares", required=False),
    ]
)
REQUEST = {
    "user": "a raw user id (string or whole number); optional",
    "recent_items": "the session's raw item ids, oldest first; optional",
    "k": "how many items, 1..catalogue size (at most 1000); default 10",
    "exclude": "raw item ids never to recommend; optional",
    "include_seen": "true to let a known user be recommended items they already interacted "
    "with (default false: left out, as the evaluation does)",
    "exclude_recent": "true to leave the session's own recent_items out of the answer, false to "
    "let them be recommended; default: as the run's evaluation did (left out where it masked "
    "known items, protocol.mask_known; kept for session data)",
    "cold_offset": "composed hybrid only: the offset (standard deviations, -10..10) of the new "
    "items (no training interaction, added products included) for this answer, in place of the "
    "one fitted on validation: higher pushes new items up (a new-arrivals shelf), lower keeps "
    "them out; optional",
    "lambda": "runs with a judgment head: the judgments' weight, 0..100, in z(s) + lambda "
    "z(s_J) (docs/judgments.md); default: the run's judgment.head.serving_lambda",
    "segment": "runs with a judgment head: a segment of data.judgments.segments, the context "
    "of the judgments' score; without a user or session the answer ranks for the segment's "
    "audience (as the review page); optional",
}


def _data_dir(checkpoint: Path) -> Path | None:
    saved = safe_load(checkpoint)
    data_dir = ((saved.get("hybridrec_config") or {}).get("datamodule") or {}).get("data_dir")
    return Path(str(data_dir)) if data_dir else None


def seen_items(checkpoint: Path) -> dict[str, np.ndarray] | None:
    """Every user's known items (train, val and test splits of the run's prepared data) as
    CSR arrays by user index: ``indptr`` (U + 1,), ``items`` (nnz,); None when the prepared
    data is gone or its splits have no user column (sessions)."""
    folder = _data_dir(checkpoint)
    frames = []
    for split in ("train", "val", "test"):
        path = folder / f"{split}.parquet" if folder else None
        if path is None or not path.is_file():
            continue
        frame = pd.read_parquet(path)
        if {"user", "item"} <= set(frame.columns):
            frames.append(frame[["user", "item"]])
    if not frames:
        return None
    pairs = pd.concat(frames).drop_duplicates().sort_values(["user", "item"])
    users = pairs["user"].to_numpy(np.int64)
    n_users = int(users.max()) + 1 if len(users) else 0
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return {"indptr": indptr, "items": pairs["item"].to_numpy(np.int64)}


def popularity(checkpoint: Path) -> np.ndarray | None:
    """(N + 1,) training interactions per item: the hybrid carries them (its gate's counts);
    otherwise the run's prepared training split when it is still there; else None."""
    model = load_model(checkpoint)
    counts = getattr(model, "counts", None)  # the composed hybrid's
    if not isinstance(counts, torch.Tensor):
        counts = getattr(getattr(model, "items", None), "counts", None)
    if counts is not None:
        return counts.detach().cpu().numpy().astype(np.float32)
    folder = _data_dir(checkpoint)
    train = folder / "train.parquet" if folder else None
    if train is None or not train.is_file():
        return None
    items = pd.read_parquet(train, columns=["item"])["item"].to_numpy()
    n_items = int(getattr(model, "n_items", items.max()))
    return np.bincount(items, minlength=n_items + 1)[: n_items + 1].astype(np.float32)


def audience_file(checkpoint: Path, out: Path) -> Path | None:
    """A run with a judgment head: each audience's user-side vector (everyone, each segment;
    :func:`hybridrec.export.judgment.audience_vectors`) written to ``out/audience.pt``, so a
    request with a ``segment`` and no user or session ranks for that audience as the review
    page does; None without a head or when the run's prepared data is gone."""
    from hybridrec.export.judgment import audience_vectors

    saved = safe_load(checkpoint)
    head = ((saved.get("hybridrec_config") or {}).get("judgment") or {}).get("head")
    folder = _data_dir(checkpoint)
    if not head or folder is None or not (folder / "spec.json").is_file():
        return None
    vectors = audience_vectors(saved, load_model(checkpoint), folder)
    if vectors is None:
        return None
    path = out / "audience.pt"
    torch.save({"names": list(vectors), "vectors": torch.stack(list(vectors.values()))}, path)
    return path


def _model_args(
    checkpoint: Path, out: Path, new_items: Path | None, user_table: bool = True
) -> dict[str, Any]:
    """What logging and saving share: the code file, the artifacts (the checkpoint, the
    popularity and the users' known items written into ``out``, the added products), the
    signature, the input example and the requirements. ``user_table=False``
    (``hybridrec-export --no-user-table``): no users' known items."""
    artifacts = {"checkpoint": str(checkpoint)}
    if new_items is not None:  # products added after training (hybridrec-export --add-items)
        artifacts["new_items"] = str(new_items)
    counts = popularity(checkpoint)
    if counts is not None:
        np.save(out / "popularity.npy", counts)
        artifacts["popularity"] = str(out / "popularity.npy")
    audience = audience_file(checkpoint, out)
    if audience is not None:
        artifacts["audience"] = str(audience)
    seen = seen_items(checkpoint) if user_table else None
    if seen is not None:
        np.savez(out / "seen.npz", indptr=seen["indptr"], items=seen["items"])
        artifacts["seen"] = str(out / "seen.npz")
    return {
        "python_model": str(Path(__file__).with_name("pyfunc_model.py")),
        "artifacts": artifacts,
        "signature": ModelSignature(inputs=None, outputs=OUTPUT_SCHEMA),
        "metadata": {"request": REQUEST, "max_rows": MAX_ROWS, "max_ids": MAX_IDS},
        "input_example": pd.DataFrame([{"user": None, "recent_items": [], "k": 5, "exclude": []}]),
        "pip_requirements": ["hybridrec"],
    }


def log_recommender(
    checkpoint: Path,
    out: Path,
    run_id: str | None = None,
    new_items: Path | None = None,
    user_table: bool = True,
) -> Any:
    """Log the pyfunc model under the active / given run (``name="model"``); returns MLflow's
    ModelInfo. ``out`` holds the popularity file it ships."""
    import mlflow

    kwargs = _model_args(checkpoint, out, new_items, user_table)
    with mlflow.start_run(run_id=run_id) if run_id else nullcontext():
        return mlflow.pyfunc.log_model(name="model", **kwargs)


def save_recommender(
    checkpoint: Path,
    out: Path,
    path: Path,
    new_items: Path | None = None,
    user_table: bool = True,
) -> Path:
    """The same pyfunc model saved to a folder (no tracking store): ``mlflow.pyfunc.load_model``
    or ``mlflow models serve -m <path>`` read it."""
    import mlflow

    mlflow.pyfunc.save_model(str(path), **_model_args(checkpoint, out, new_items, user_table))
    return path
