"""Marketers' judgments files: CSV/TSV with a header line, or Parquet, columns mapped by name.

Columns (ours): ``rater``, ``item``, ``score`` (required), ``context``, ``set``, ``timestamp``
(optional). Values are checked later against the prepared id maps
(:mod:`hybridrec.data.preparation.judgments`), which needs the interactions and the catalogue.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.readers.tables import _read_mapped

JUDGMENT_COLUMNS = ("rater", "item", "score", "context", "set", "timestamp")


def read_judgments(
    path: str | Path, columns: dict[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """The judgments table with our column names; ``attrs`` record the file and its header
    rows so every later error names the file's own line."""
    unknown = sorted(set(columns or {}) - set(JUDGMENT_COLUMNS))
    if unknown:
        raise ValueError(
            f"data.judgments.columns: unknown keys {unknown}; expected some of "
            f"{list(JUDGMENT_COLUMNS)}"
        )
    frame, p, header_rows = _read_mapped(
        path,
        sep,
        columns,
        ("rater", "item", "score"),
        JUDGMENT_COLUMNS,
        "judgments table (columns rater, item, score[, context, set, timestamp])",
    )
    if len(frame) == 0:
        raise DataError(
            "empty judgments: no rows; expected columns rater, item, score[, context, set]",
            path=p,
        )
    frame.attrs["path"] = str(p)
    frame.attrs["header_rows"] = header_rows
    return frame
