"""Checks shared by the readers (and by ``prepare``): each bad input raises :class:`DataError`.

Rows are reported as a person counts lines in the file: 1-based, header included, so row
``i`` of a frame read from a file with ``header_rows`` header lines is line
``i + 1 + header_rows``. Frames assembled from several files or from one line per user carry a
:class:`RowOrigin` instead.

All checks are vectorised: the first bad row is found with numpy, not a Python loop.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.raw import INTERACTION_COLUMNS

__all__ = [
    "DUPLICATES_DROP",
    "DUPLICATE_MODES",
    "RowOrigin",
    "check_columns",
    "check_interactions",
    "check_items",
    "check_text_file",
    "decode_error",
    "parser_error",
    "read_delimited",
    "require_file",
    "show",
]

#: Accepted values of the readers' ``duplicates`` argument.
DUPLICATE_MODES = ("error", "drop", "keep")
#: The override that sets it: every data config whose reader takes it has ``source.duplicates``.
DUPLICATES_DROP = "data.source.duplicates=drop"

_ID_COLUMNS = ("user", "item", "session")
_PARSER_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_PARSER_EOF = re.compile(r"EOF inside string starting at row (\d+)")
#: Bytes read to tell a text table from a binary or UTF-16 file.
_SNIFF_BYTES = 65536
#: Ids above this lose digits as float64; ids at or above 2**63 do not fit int64 at all.
_EXACT_FLOAT = 2**53
_INT64_LIMIT = 2**63
#: Share of rows that must look numeric before the odd ones out are called errors.
_NUMERIC_MAJORITY = 0.5

#: Maps a positional row of a frame to (file, 1-based line).
Where = Callable[[int], tuple[str | Path, int]]


@dataclass(frozen=True)
class RowOrigin:
    """Where each row of a frame came from: file ``paths[file[i]]``, 1-based line ``line[i]``."""

    paths: Sequence[str | Path]
    file: np.ndarray
    line: np.ndarray

    def locate(self, i: int) -> tuple[str | Path, int]:
        return self.paths[int(self.file[i])], int(self.line[i])


def _locator(path: str | Path, header_rows: int, origin: RowOrigin | None) -> Where:
    if origin is not None:
        return origin.locate
    return lambda i: (path, int(i) + 1 + header_rows)


def require_file(path: str | Path, expected: str) -> Path:
    """Return ``path`` as a Path; DataError saying what belongs there when it is not a file."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        raise DataError(f"is a folder, not a file; expected {expected}", path=p)
    hint = "" if p.parent.is_dir() else f" (folder {p.parent} does not exist either)"
    raise DataError(f"file not found{hint}; expected {expected}", path=p)


def check_columns(
    df: pd.DataFrame | Iterable[str], required: Sequence[str], path: str | Path
) -> None:
    """DataError naming the first missing column, the expected and the found columns. A "did
    you mean" names only a column that could be right: never one read as another required
    column (``title`` for a missing ``item`` where ``title`` is read as itself)."""
    found = [str(c) for c in (df.columns if isinstance(df, pd.DataFrame) else df)]
    missing = [c for c in required if c not in found]
    if not missing:
        return
    free = [c for c in found if c not in required]
    parts = []
    for col in missing:
        close = difflib.get_close_matches(col, free, n=1, cutoff=0.5)
        parts.append(f"{col!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise DataError(
        f"missing column{'s' if len(missing) > 1 else ''} {', '.join(parts)}; "
        f"expected columns {list(required)}, found {found}",
        path=path,
        column=missing[0],
    )


def check_text_file(path: str | Path, fmt: str) -> None:
    """DataError when ``path`` is not a text table: UTF-16 text or binary data (NUL bytes)."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    even, odd = head[0::2], head[1::2]
    # ASCII text as UTF-16 without a byte-order mark: every other byte is NUL, the rest are not
    nul_halves = len(head) >= 4 and any(
        a.count(0) == len(a) and b.count(0) == 0 for a, b in ((odd, even), (even, odd))
    )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or nul_halves:
        raise DataError(
            f"the file is UTF-16 text; expected UTF-8 text, {fmt}; save it as UTF-8",
            path=path,
        )
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise DataError(
            f"binary data (a NUL byte at byte {offset:,}), not a text table; expected {fmt}",
            path=path,
            row=head.count(b"\n", 0, offset) + 1,
        )


def decode_error(exc: UnicodeError, path: str | Path, encoding: str, fmt: str) -> DataError:
    """DataError naming the first line that is not valid ``encoding`` text (found by reading
    the file line by line: only on this error path)."""
    with open(path, "rb") as handle:
        for row, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as bad:
                snippet = line[max(bad.start - 10, 0) : bad.end + 10]
                return DataError(
                    f"bytes {line[bad.start : bad.end]!r} (in {snippet!r}) are not {encoding} "
                    f"text; expected {encoding} text, {fmt}; save the file as {encoding.upper()}",
                    path=path,
                    row=row,
                )
    return DataError(f"cannot read ({exc}); expected {encoding} text, {fmt}", path=path)


def parser_error(exc: Exception, path: str | Path, n_fields: int | None, fmt: str) -> DataError:
    """DataError for a pandas ParserError (wrong number of fields), with the line number."""
    eof = _PARSER_EOF.search(str(exc))
    if eof is not None:  # pandas counts rows from 0, the header included: row r is line r + 1
        return DataError(
            "a quoted field opened here is never closed (the file ends inside it: truncated, "
            f"or a stray '\"'); expected {fmt}",
            path=path,
            row=int(eof.group(1)) + 1,
        )
    m = _PARSER_LINE.search(str(exc))
    if m is None:
        return DataError(f"cannot parse ({exc}); expected {fmt}", path=path)
    expected, line, saw = (int(g) for g in m.groups())
    if n_fields is not None and expected != n_fields:
        # pandas takes the field count from the first line; that line is the odd one out
        return DataError(
            f"line has {expected} fields, expected {n_fields}; format: {fmt}", path=path, row=1
        )
    return DataError(
        f"line has {saw} fields, expected {expected}; format: {fmt}", path=path, row=line
    )


def read_delimited(
    path: str | Path,
    *,
    sep: str,
    fmt: str,
    n_fields: int | None = None,
    header: bool = False,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_NONE,
    dtype: Any = None,
    usecols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``pd.read_csv`` (C engine) whose failures become DataErrors naming the file and line.

    ``fmt`` describes the expected format for the messages. Without ``header`` the columns are
    numbered 0..n-1 and, when ``n_fields`` is given, every line must have exactly that many
    fields (short or blank lines surface later as missing values; long ones as a malformed
    line). Only empty fields are missing values: ids such as ``NA`` stay strings. Blank lines at
    the end of the file are dropped.
    """
    p = require_file(path, fmt)
    check_text_file(p, fmt)
    try:
        df = pd.read_csv(
            p,
            sep=sep,
            header=0 if header else None,
            engine="c",
            encoding=encoding,
            quoting=quoting,
            dtype=dtype,
            # every column is parsed: with ``usecols`` pandas silently drops the fields of a
            # line longer than the header instead of reporting it
            usecols=None,
            na_values=[""],
            keep_default_na=False,
            skip_blank_lines=False,  # so row i is line i + 1 (+ header) even after a blank line
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"empty file: no data rows; expected {fmt}", path=p) from exc
    except pd.errors.ParserError as exc:
        raise parser_error(exc, p, n_fields, fmt) from exc
    except UnicodeError as exc:
        raise decode_error(exc, p, encoding, fmt) from exc
    except ValueError as exc:
        raise DataError(f"cannot read ({exc}); expected {fmt}", path=p) from exc
    if usecols is not None:
        df = df[list(usecols)]
    while len(df) and df.iloc[-1].isna().all():  # blank lines at the end of the file
        df = df.iloc[:-1]
    if n_fields is not None and not header and df.shape[1] != n_fields:
        raise DataError(
            f"line has {df.shape[1]} fields, expected {n_fields}; format: {fmt}", path=p, row=1
        )
    return df


def show(value: object) -> str:
    """``repr`` of a value from a frame, without numpy's ``np.int64(...)`` wrapper."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _first(mask: np.ndarray | pd.Series) -> int | None:
    arr = np.asarray(mask, dtype=bool)
    if not arr.any():
        return None
    return int(arr.argmax())


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s) or s.dtype == object


def _check_missing(df: pd.DataFrame, cols: Sequence[str], where: Where) -> None:
    for col in cols:
        s = df[col]
        bad = s.isna().to_numpy()
        if _is_text(s):
            bad = bad | (s.astype("str").str.strip() == "").to_numpy()
        i = _first(bad)
        if i is not None:
            path, row = where(i)
            raise DataError(
                f"missing value (empty field, short or blank line); every row needs a {col}",
                path=path,
                row=row,
                column=col,
            )


def _integral(values: np.ndarray) -> np.ndarray:
    """Mask of finite values without a fractional part."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.floor(values) == values)


def _normalise_ids(s: pd.Series, col: str, where: Where) -> pd.Series:
    """Ids as int64 when numeric, else as strings; DataError on an odd value in a numeric column."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype(np.int64)
    if pd.api.types.is_unsigned_integer_dtype(s):
        _check_range(s.to_numpy() >= _INT64_LIMIT, s, col, where)
        return s.astype(np.int64)
    if pd.api.types.is_integer_dtype(s):
        return s.astype(np.int64)
    if pd.api.types.is_float_dtype(s):
        values = s.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            _check_range(np.abs(values) >= _EXACT_FLOAT, s, col, where)
        i = _first(~_integral(values))
        if i is not None:
            path, row = where(i)
            raise DataError(
                f"id {show(s.iloc[i])} is not an integer; ids are integers or strings",
                path=path,
                row=row,
                column=col,
            )
        return pd.Series(values.astype(np.int64), index=s.index, name=s.name)
    text = s.astype("str")
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    is_num = ~np.isnan(num)
    share = float(is_num.mean())
    if share == 0.0:
        return text
    # numeric-looking ids with leading zeros (ASINs, ISBNs, zip codes) are strings
    if text[is_num].str.match(r"^\s*[+-]?0\d").any():
        return text
    if share <= _NUMERIC_MAJORITY:
        return text
    i = _first(~(is_num & _integral(num)))
    if i is not None:
        path, row = where(i)
        n_num = int(is_num.sum())  # counts, not a share: 599 of 600 must not read "100%"
        raise DataError(
            f"id {show(text.iloc[i])} is not an integer, while {n_num:,} of {len(text):,} "
            f"{col} ids are numbers; fix the row or make every id a string",
            path=path,
            row=row,
            column=col,
        )
    with np.errstate(invalid="ignore"):
        big = np.abs(num) >= _EXACT_FLOAT
    if big.any():  # float64 has lost digits: parse the text exactly, ids past int64 refused
        try:
            exact = [int(v) for v in text.str.strip()]
        except ValueError:  # 1e20: a float's text, its digits are gone
            exact = [_INT64_LIMIT if b else 0 for b in big]
        _check_range(np.array([abs(v) >= _INT64_LIMIT for v in exact]), text, col, where)
        return pd.Series(np.array(exact, dtype=np.int64), index=s.index, name=s.name)
    return pd.Series(num.astype(np.int64), index=s.index, name=s.name)


def _check_range(too_big: np.ndarray, s: pd.Series, col: str, where: Where) -> None:
    """DataError at the first id that does not fit a 64-bit integer (or, read as a float,
    has lost digits)."""
    i = _first(too_big)
    if i is not None:
        path, row = where(i)
        raise DataError(
            f"id {show(s.iloc[i])} is too large: numeric ids must lie within "
            f"+-{_INT64_LIMIT - 1:,} (64-bit integers); make every id a string (e.g. a letter "
            "in front) to keep it",
            path=path,
            row=row,
            column=col,
        )


def _normalise_numbers(s: pd.Series, col: str, where: Where, what: str) -> pd.Series:
    """Timestamps / ratings as numbers (int64 when integral, else float64)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        epoch = pd.Timestamp(0, tz=getattr(s.dt, "tz", None))
        s = (s - epoch) / pd.Timedelta(seconds=1)
    elif pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s.astype("str"), errors="coerce")
        i = _first(num.isna())
        if i is not None:
            path, row = where(i)
            raise DataError(
                f"{what} {show(s.iloc[i])} is not a number", path=path, row=row, column=col
            )
        s = num
    values = s.to_numpy(dtype=np.float64)
    i = _first(~np.isfinite(values))
    if i is not None:
        path, row = where(i)
        raise DataError(
            f"{what} {show(s.iloc[i])} is not a finite number; every {what} must be finite",
            path=path,
            row=row,
            column=col,
        )
    if col == "timestamp" and _integral(values).all() and (np.abs(values) < _INT64_LIMIT).all():
        return pd.Series(values.astype(np.int64), index=s.index, name=col)
    return pd.Series(values, index=s.index, name=col)


def _check_duplicates(
    df: pd.DataFrame, key: list[str], duplicates: str, where: Where
) -> pd.DataFrame:
    if duplicates == "keep":
        return df
    dup = df.duplicated(subset=key, keep="first").to_numpy()
    j = _first(dup)
    if j is None:
        return df
    if duplicates == "drop":
        return df.loc[~dup]
    same = np.ones(len(df), dtype=bool)
    for col in key:
        same &= (df[col] == df[col].iloc[j]).to_numpy()
    i = int(same.argmax())
    path_i, row_i = where(i)
    path_j, row_j = where(j)
    pair = "(" + ", ".join(key) + ")"
    fix = f"to keep the first row of each repeated pair, add the override {DUPLICATES_DROP}"
    if Path(path_i) != Path(path_j):
        msg = f"this row repeats the {pair} pair of row {row_i} of {path_i}; {fix}"
    elif row_i == row_j:
        msg = f"row {row_j} holds the same {pair} pair twice; {fix}"
    else:
        msg = f"rows {row_i} and {row_j} are the same {pair} pair; {fix}"
    raise DataError(msg, path=path_j, row=row_j)


def check_interactions(
    df: pd.DataFrame,
    path: str | Path,
    header_rows: int = 0,
    duplicates: str = "error",
    *,
    origin: RowOrigin | None = None,
) -> pd.DataFrame:
    """Validate and normalise an interactions frame (columns named as in RawData).

    Returns a new frame with the RawData columns in order and a fresh RangeIndex: ids as int64
    when numeric else strings, ``timestamp`` int64 (float64 when fractional), ``rating`` float64.
    Raises DataError on: no rows; an empty/NaN value in any RawData column; a non-integer value
    in a mostly numeric id column; a non-numeric timestamp or rating; a repeated
    ``(user, item)`` pair (``(user, item, session)`` when sessions are given) unless
    ``duplicates`` is ``"drop"`` (keep the first) or ``"keep"``.
    """
    if duplicates not in DUPLICATE_MODES:
        raise ValueError(f"duplicates={duplicates!r}; expected one of {DUPLICATE_MODES}")
    check_columns(df, ["user", "item"], path)
    where = _locator(path, header_rows, origin)
    if len(df) == 0:
        raise DataError("empty file: no data rows", path=path)
    cols = [c for c in INTERACTION_COLUMNS if c in df.columns]
    out = df[cols].reset_index(drop=True)
    _check_missing(out, cols, where)
    for col in cols:
        if col in _ID_COLUMNS:
            out[col] = _normalise_ids(out[col], col, where)
        elif col == "timestamp":
            out[col] = _normalise_numbers(out[col], col, where, "timestamp")
        else:
            out[col] = _normalise_numbers(out[col], col, where, "rating")
    key = ["user", "item"] + (["session"] if "session" in cols else [])
    out = _check_duplicates(out, key, duplicates, where)
    return out.reset_index(drop=True)


def check_items(df: pd.DataFrame, path: str | Path, header_rows: int = 0) -> pd.DataFrame:
    """Validate an item side table: an ``item`` column with one non-empty id per row.

    Ids are normalised like interaction ids; text columns are kept as they are. The file is
    recorded in ``attrs["path"]`` so later errors about an item's text can name it.
    """
    check_columns(df, ["item"], path)
    where = _locator(path, header_rows, None)
    if len(df) == 0:
        raise DataError("empty file: no item rows", path=path)
    out = df.reset_index(drop=True)
    _check_missing(out, ["item"], where)
    out["item"] = _normalise_ids(out["item"], "item", where)
    dup = out["item"].duplicated(keep="first").to_numpy()
    j = _first(dup)
    if j is not None:
        i = int((out["item"] == out["item"].iloc[j]).to_numpy().argmax())
        raise DataError(
            f"rows {where(i)[1]} and {where(j)[1]} describe the same item "
            f"{show(out['item'].iloc[j])}; item ids must be unique",
            path=path,
            row=where(j)[1],
            column="item",
        )
    out.attrs["path"] = str(path)
    return out
