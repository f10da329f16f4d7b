"""The catalogue as a run knows it: one object, built once from the prepared folder.

Models, the LightningModule and the composed hybrid's combiner used to read the prepared folder
by path, each its own files. Now training (``hybridrec-train``, ``hybridrec-eval``) builds one
:class:`Catalogue` right after the data is prepared and passes it explicitly; models take
tensors and this object, never a folder path. Its fields:

    spec         the :class:`DataSpec` (sizes, protocol, fingerprint, item text fields)
    id_maps      raw ids by index: ``users[u]`` is user index u, ``items[i - 1]`` item index i
                 (None for a user erased by ``hybridrec-data forget``)
    item_text    (N + 1) item texts, element i = item index i, element 0 the padding "";
                 None when the data has no item text (``data.text`` unset)
    item_counts  (N + 1,) float32 training interactions per item index (0: cold, padding)
    user_counts  (U,) float32 training interactions per user index

A checkpoint keeps what rebuilds a model without the folder (hybridrec.lit.checkpoint): the id
maps and the spec's summary; a text tower adds its tokens (or a frozen encoder's vectors), and
the counts a model uses are in its weights (the hybrid's gate, the composed hybrid's buckets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch import Tensor

from hybridrec.data.preparation.text import ITEM_TEXT_FILE, load_item_text
from hybridrec.data.spec import DataSpec

TRAIN_FILE = "train.parquet"


def read_id_maps(folder: str | os.PathLike[str]) -> dict[str, list[Any]]:
    """Raw ids by index from a prepared folder (``users.parquet``, ``items.parquet``); None for
    a user erased by ``hybridrec-data forget`` (read by pyarrow: a whole-number id column with
    such a gap stays whole numbers)."""
    out: dict[str, list[Any]] = {}
    for side in ("users", "items"):
        table = pq.read_table(Path(folder) / f"{side}.parquet", columns=["index", "raw_id"])
        out[side] = table.sort_by("index")["raw_id"].to_pylist()
    return out


def _counts(values: np.ndarray, size: int) -> Tensor:
    """(size,) float32 occurrences of each index 0..size-1 in ``values``."""
    return torch.as_tensor(np.bincount(values, minlength=size)[:size], dtype=torch.float32)


@dataclass(frozen=True, eq=False)
class Catalogue:
    """See the module docstring."""

    spec: DataSpec
    id_maps: dict[str, list[Any]]
    item_text: list[str] | None
    item_counts: Tensor  # (N + 1,)
    user_counts: Tensor  # (U,)

    @property
    def n_users(self) -> int:
        return int(self.spec.n_users)

    @property
    def n_items(self) -> int:
        return int(self.spec.n_items)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> Catalogue:
        """Everything above from one prepared folder, each file read once."""
        path = Path(folder)
        spec = DataSpec.load(path)
        train = pd.read_parquet(path / TRAIN_FILE, columns=["user", "item"])
        has_text = (path / ITEM_TEXT_FILE).is_file()
        return cls(
            spec=spec,
            id_maps=read_id_maps(path),
            item_text=load_item_text(path) if has_text else None,
            item_counts=_counts(train["item"].to_numpy(), spec.n_items + 1),
            user_counts=_counts(train["user"].to_numpy(), spec.n_users),
        )

    def texts(self, n_items: int, reader: str) -> list[str]:
        """The (N + 1) item texts, checked against the model's ``n_items``; ``reader`` names
        the model that needs them in the error."""
        if self.item_text is None:
            raise ValueError(
                f"{reader} needs item text, and the data {self.spec.name!r} has none: set "
                "data.text in the data config (the item fields to join) and prepare it again"
            )
        if len(self.item_text) != n_items + 1:
            raise ValueError(
                f"{reader}: the catalogue has {len(self.item_text)} item texts, expected "
                f"model.n_items + 1 = {n_items + 1} (is the model config of this run's data?)"
            )
        return self.item_text
