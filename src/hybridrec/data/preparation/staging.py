"""What ``prepare`` and the session protocol's prepare step share: :func:`staged_folder` (a
prepared folder is written atomically) and :func:`read_negatives`, the reader of the
``*_negatives.parquet`` files that ``prepare`` writes (the DataModules read them back).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


@contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """Write into a temporary sibling of ``folder``; on success it replaces ``folder``, on any
    error it is removed: a prepared folder is never half-written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_negatives(path: Path) -> np.ndarray:
    """(n_rows, K) int64 negatives from a ``*_negatives.parquet`` file."""
    column = pq.read_table(path, columns=["negatives"]).column("negatives").combine_chunks()
    k = column.type.list_size
    return column.flatten().to_numpy().reshape(-1, k).astype(np.int64)
