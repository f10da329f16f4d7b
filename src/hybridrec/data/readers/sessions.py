"""Session click readers: GRU4Rec's TSV click files (:func:`read_sessions`, with an optional given
test file) and Diginetica's raw item views (:func:`read_diginetica`). Repeated clicks are kept;
timestamps are in seconds. The ``session`` protocol that splits them is in
:mod:`hybridrec.data.preparation.sessions`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import check_interactions, read_delimited
from hybridrec.data.raw import RawData
from hybridrec.data.readers.tables import read_table

__all__ = ["read_diginetica", "read_sessions"]


def read_sessions(
    path: str | Path,
    test_path: str | Path | None = None,
    session_column: str = "SessionId",
    item_column: str = "ItemId",
    time_column: str = "Time",
    sep: str | None = None,
    name: str | None = None,
) -> RawData:
    """Click files with one event per row: session id, item id, time (GRU4Rec's TSV format).

    ``test_path``: the source's own held-out sessions (e.g. GRU4Rec's ``*_test.txt``), used by
    the ``session`` protocol instead of its own time cut. Repeated clicks are kept.
    """
    columns = {"user": session_column, "item": item_column, "timestamp": time_column}
    train = read_table(path, columns=columns, sep=sep, name=name, duplicates="keep")
    raw = RawData(
        name=train.name,
        interactions=train.interactions,
        files=list(train.files),
    )
    if test_path is not None:
        test = read_table(test_path, columns=columns, sep=sep, duplicates="keep")
        raw.test = test.interactions
        raw.files.extend(test.files)
    return raw


def read_diginetica(path: str | Path, name: str = "diginetica") -> RawData:
    """Diginetica (CIKM Cup 2016) ``train-item-views.csv``: ``;``-separated
    ``session_id;user_id;item_id;timeframe;eventdate``.

    The usual preprocessing (SR-GNN; Hidasi & Czapp's comparison scripts): a click's time is its
    session's first ``eventdate`` (midnight, UTC) plus ``timeframe`` (milliseconds into the
    session), and a click repeating the session's previous item is dropped. Length and support
    filters are the ``session`` protocol's.
    """
    fmt = "Diginetica item views: session_id;user_id;item_id;timeframe;eventdate with a header"
    frame = read_delimited(path, sep=";", fmt=fmt, header=True, dtype=str)
    missing = [
        c for c in ("session_id", "item_id", "timeframe", "eventdate") if c not in frame.columns
    ]
    if missing:
        raise DataError(f"missing column(s) {missing}; expected {fmt}", path=path, row=1)
    dates = pd.to_datetime(frame["eventdate"], format="%Y-%m-%d", errors="coerce")
    frames = pd.to_numeric(frame["timeframe"], errors="coerce")
    for column, parsed, what in (
        ("eventdate", dates, "a date YYYY-MM-DD"),
        ("timeframe", frames, "milliseconds (a number)"),
    ):
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise DataError(
                f"{frame[column].iloc[row]!r} is not {what}",
                path=path,
                row=row + 2,
                column=column,
            )
    # seconds since the epoch whatever the datetime unit (pandas 3 parses dates at "us")
    day = (dates - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    df = pd.DataFrame({"user": frame["session_id"], "item": frame["item_id"]})
    df["timestamp"] = day.groupby(df["user"]).transform("min").to_numpy() + frames / 1000.0
    inter = check_interactions(df, path, header_rows=1, duplicates="keep")
    inter = inter.sort_values(["user", "timestamp"], kind="stable")
    same_session = inter["user"].to_numpy()[1:] == inter["user"].to_numpy()[:-1]
    same_item = inter["item"].to_numpy()[1:] == inter["item"].to_numpy()[:-1]
    repeat = np.concatenate([[False], same_session & same_item])
    return RawData(
        name=name,
        interactions=inter[~repeat].reset_index(drop=True),
        files=[Path(path)],
    )
