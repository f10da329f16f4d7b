"""One-user-per-line sequence files (``user item item ...``, space-separated, no header), the
format of the SASRec / S3-Rec benchmark files (Beauty, Sports, ML-1M pieces, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import (
    RowOrigin,
    check_interactions,
    check_text_file,
    decode_error,
    require_file,
)
from hybridrec.data.raw import RawData

__all__ = ["read_sequences"]


def _read_sequence_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens of one ``user item item ...`` file: (users, items, 1-based lines), items as str."""
    fmt = "one user per line: 'user item item ...' (space-separated)"
    p = require_file(path, fmt)
    check_text_file(p, fmt)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeError as exc:
        raise decode_error(exc, p, "utf-8", fmt) from exc
    except OSError as exc:
        raise DataError(f"cannot read ({exc}); expected {fmt}", path=p) from exc
    lines = text.splitlines()
    counts = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    if counts.sum() == 0:
        raise DataError(f"empty file: no data rows; expected {fmt}", path=p)
    lonely = counts == 1
    if lonely.any():
        i = int(lonely.argmax())
        raise DataError(
            f"line has a user ({lines[i].strip()!r}) but no items; expected {fmt}",
            path=p,
            row=i + 1,
        )
    tokens = np.array(text.split(), dtype=object)
    kept = counts > 0
    n_items = counts[kept] - 1
    starts = np.concatenate(([0], np.cumsum(counts[kept])[:-1]))
    is_user = np.zeros(len(tokens), dtype=bool)
    is_user[starts] = True
    users = np.repeat(tokens[starts], n_items)
    items = tokens[~is_user]
    line_no = np.repeat(np.flatnonzero(kept) + 1, n_items)
    return users, items, line_no


def _as_ids(tokens: np.ndarray) -> np.ndarray:
    """Token strings as int64 when every one is an integer, else unchanged."""
    try:
        return tokens.astype(np.int64)
    except (ValueError, OverflowError):
        return tokens


def read_sequences(
    path: str | Path | Sequence[str | Path],
    one_based: bool = True,
    ordered: bool = True,
    name: str | None = None,
    duplicates: str = "error",
) -> RawData:
    """One-user-per-line files: ``user item item ...`` (whitespace-separated, no header).

    Several paths are concatenated and a user found in several lines or files gets the union.
    Ids are kept as read (int64 when all are integers, else strings); ``one_based`` only records
    the source convention (ids are mapped later). With ``ordered`` the items are in time order:
    ``timestamp`` is each item's position in the user's sequence (0, 1, 2...; across lines in
    file order) and ``ordered_by_file`` is True; otherwise there is no timestamp column.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    if not paths:
        raise ValueError("read_sequences needs at least one path")
    del one_based  # documentation only: ids are kept as read
    parts = [_read_sequence_file(p) for p in paths]
    users = np.concatenate([u for u, _, _ in parts])
    items = np.concatenate([i for _, i, _ in parts])
    lines = np.concatenate([ln for _, _, ln in parts])
    file_idx = np.repeat(np.arange(len(parts)), [len(u) for u, _, _ in parts])
    df = pd.DataFrame({"user": _as_ids(users), "item": _as_ids(items)})
    if ordered:
        df["timestamp"] = df.groupby("user", sort=False).cumcount().to_numpy(dtype=np.int64)
    origin = RowOrigin(paths=paths, file=file_idx, line=lines)
    inter = check_interactions(df, paths[0], duplicates=duplicates, origin=origin)
    return RawData(
        name=name if name is not None else paths[0].stem,
        interactions=inter,
        files=paths,
        ordered_by_file=ordered,
    )
