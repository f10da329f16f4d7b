"""Generic tables by column mapping: interactions (:func:`read_table`) and item side tables
(:func:`read_items_table`) as CSV/TSV with a header line or Parquet, and :func:`join_items`.

``join_items`` is what a config nests to add text to a source that has none, e.g. the ML-1M
pieces (``configs/data/ml1m_pieces_text.yaml``). Items of the table without interactions are
kept (a cold-items protocol ranks them); interacted items without a row get empty text, which
``prepare`` counts (``spec.n_items_without_text``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import (
    check_columns,
    check_interactions,
    check_items,
    check_text_file,
    decode_error,
    parser_error,
    read_delimited,
    require_file,
    show,
)
from hybridrec.data.raw import INTERACTION_COLUMNS, RawData

__all__ = ["join_items", "read_items_table", "read_source_items", "read_table"]

# ----------------------------------------------------------------------------- generic tables


def _sniff_sep(path: Path) -> str:
    """Tab when the header line has a tab, ``;`` when it has semicolons but no comma, else comma."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    if "\t" in header:
        return "\t"
    if ";" in header and "," not in header:
        return ";"
    return ","


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _parquet_error(exc: Exception, path: Path, what: str) -> DataError:
    return DataError(f"cannot read Parquet ({exc}); expected {what}", path=path)


def _table_columns(path: Path, sep: str, what: str) -> list[str]:
    """Column names of a Parquet file or of the header line of a CSV/TSV file."""
    if _is_parquet(path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return [str(c) for c in pq.read_schema(path).names]
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise _parquet_error(exc, path, what) from exc
    check_text_file(path, what)
    try:
        cols = pd.read_csv(path, sep=sep, nrows=0, engine="c").columns
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"empty file: no header line; expected {what}", path=path) from exc
    except pd.errors.ParserError as exc:
        raise parser_error(exc, path, None, what) from exc
    except UnicodeError as exc:
        raise decode_error(exc, path, "utf-8", what) from exc
    except ValueError as exc:
        raise DataError(f"cannot read ({exc}); expected {what}", path=path) from exc
    return [str(c) for c in cols]


def _read_mapped(
    path: str | Path,
    sep: str | None,
    mapping: dict[str, str] | None,
    required: Sequence[str],
    optional: Sequence[str] | None,
    what: str,
) -> tuple[pd.DataFrame, Path, int]:
    """Read the mapped columns of a table, renamed to ours; returns (frame, path, header rows).

    ``mapping`` is ours -> the file's; ``required`` default to identity, and so do ``optional``
    columns found in the file (all columns when ``optional`` is None), except those ``mapping``
    renames (``sku`` read as ``item`` is not kept as ``sku`` too).
    """
    p = require_file(path, what)
    sep = sep if sep is not None or _is_parquet(p) else _sniff_sep(p)
    found = _table_columns(p, sep or ",", what)
    renamed = {theirs for ours, theirs in (mapping or {}).items() if ours != theirs}
    cols = {c: c for c in required}
    cols.update(
        {
            c: c
            for c in found
            if (optional is None or c in optional) and (c not in renamed or c in (mapping or {}))
        }
    )
    cols.update(mapping or {})
    usecols = list(dict.fromkeys(cols.values()))
    check_columns(found, usecols, p)
    if _is_parquet(p):
        import pyarrow as pa

        try:
            df = pd.read_parquet(p, columns=usecols)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise _parquet_error(exc, p, what) from exc
        header_rows = 0
    else:
        df = read_delimited(
            p,
            sep=sep or ",",
            header=True,
            quoting=csv.QUOTE_MINIMAL,
            usecols=usecols,
            fmt=f"{what} (separator {sep!r}, header line)",
        )
        header_rows = 1
    return pd.DataFrame({ours: df[theirs] for ours, theirs in cols.items()}), p, header_rows


def read_table(
    path: str | Path,
    columns: Mapping[str, str | None] | None = None,
    sep: str | None = None,
    items_path: str | Path | None = None,
    item_columns: dict[str, str] | None = None,
    name: str | None = None,
    duplicates: str = "error",
) -> RawData:
    """A generic interactions table: CSV/TSV with a header line, or Parquet (``.parquet``/``.pq``).

    ``columns`` maps our names (``user``, ``item``, ``timestamp``, ``rating``, ``session``) to the
    file's, e.g. ``{"user": "customer_id", "item": "sku"}``; unmapped names (or mapped to None,
    as ``configs/data/csv.yaml`` lists them) are taken from same-named file columns (``user``
    and ``item`` must exist). ``sep`` None sniffs the header line: tab if it has one, ``;`` if
    it has semicolons and no comma, else comma.
    ``items_path``: optional item table read by :func:`read_source_items` with
    ``item_columns`` (our name -> the table's: ``item`` plus the text fields to keep; None keeps
    every column); its id column is the interactions' (``columns["item"]``) unless
    ``item_columns`` names one.
    """
    unknown = sorted(set(columns or {}) - set(INTERACTION_COLUMNS))
    if unknown:
        raise ValueError(f"columns: unknown keys {unknown}; expected some of {INTERACTION_COLUMNS}")
    mapped = {str(k): str(v) for k, v in (columns or {}).items() if v is not None}
    df, p, header_rows = _read_mapped(
        path,
        sep,
        mapped,
        ("user", "item"),
        INTERACTION_COLUMNS,
        "interactions table (columns user, item[, timestamp, rating, session])",
    )
    inter = check_interactions(df, p, header_rows=header_rows, duplicates=duplicates)
    files = [p]
    items = None
    if items_path is not None:
        items = read_source_items(items_path, mapped, item_columns, inter["item"])
        files.append(Path(items.attrs["path"]))
    return RawData(
        name=name if name is not None else p.stem, interactions=inter, items=items, files=files
    )


# ----------------------------------------------------------------------------- item tables


def read_source_items(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    item_columns: Mapping[str, str] | None = None,
    item_ids: pd.Series | None = None,
    new_products: bool = False,
) -> pd.DataFrame:
    """The item table of a :func:`read_table` source (``data.source.items_path``), checked.

    ``item_columns`` maps our names to the table's (``item`` plus the text fields to keep; None,
    or a mapping of the id column alone, keeps every column). The id column is
    ``item_columns["item"]`` when given; else the interactions' item column
    (``columns["item"]``, so ``sku`` in both files needs no second mapping), or ``item`` where
    the table has no such column. ``hybridrec-export --add-items``
    reads new products' tables through this too (``new_products``: the messages speak of the
    run's format, not of a config key to set), with the run's ``data.source`` mapping.
    ``item_ids``: the interactions' item ids; when no id column is found, the columns that hold
    some of them are named (never a column that cannot be the id).
    """
    what = "item table (an item id column plus text fields)"
    p = require_file(path, what)
    sep = None if _is_parquet(p) else _sniff_sep(p)
    mapping = {str(k): str(v) for k, v in (item_columns or {}).items()}
    if "item" not in mapping:
        found = _table_columns(p, sep or ",", what)
        wanted = list(dict.fromkeys([str((columns or {}).get("item", "item")), "item"]))
        present = [c for c in wanted if c in found]
        if not present:
            raise _no_id_column(p, sep, found, wanted, mapping, item_ids, new_products)
        mapping["item"] = present[0]
    keep_all = item_columns is None or set(item_columns) <= {"item"}  # naming the id alone
    frame, p, header_rows = _read_mapped(p, sep, mapping, ("item",), None if keep_all else (), what)
    return check_items(frame, p, header_rows=header_rows)


def _no_id_column(
    path: Path,
    sep: str | None,
    found: list[str],
    wanted: list[str],
    mapping: Mapping[str, str],
    item_ids: pd.Series | None,
    new_products: bool = False,
) -> DataError:
    """No id column: which names were looked for and, where the interactions are known, the
    table's columns that hold their item ids (those, and only those, can be the id column)."""
    names = repr(wanted[0])
    whose = "the run's" if new_products else "the interactions'"
    if len(wanted) > 1:  # the interactions' mapping first, then our own name
        names += f" ({whose} item column, data.source.columns.item) or {wanted[1]!r}"
    if new_products:
        return DataError(
            f"no item id column: expected {names}, found {found}; give new products in the "
            "format of the run's item table (its id column, its text fields)",
            path=path,
            column=wanted[0],
        )
    holding: list[str] | None = None  # None: not known (no interactions, unreadable table)
    candidates = [c for c in found if c not in mapping.values()]
    if item_ids is not None and candidates:
        ids = set(item_ids.astype(str))
        try:
            if _is_parquet(path):
                table = pd.read_parquet(path, columns=candidates).astype(str)
            else:
                table = pd.read_csv(path, sep=sep or ",", usecols=candidates, dtype=str)
            holding = [c for c in candidates if table[c].isin(ids).any()]
        except Exception:  # an unreadable table: no hint here, reading it says why
            holding = None
    column = holding[0] if holding is not None and len(holding) == 1 else "<column>"
    hint = ""
    if holding is not None:
        hint = (
            "; no column holds item ids of the interactions"
            if not holding
            else f"; column {column!r} holds item ids of the interactions"
            if len(holding) == 1
            else f"; columns {holding} hold item ids of the interactions"
        )
    return DataError(
        f"no item id column: expected {names}, found {found}{hint}; name the table's id "
        f"column with 'data.source.item_columns={{item: {column}}}'",
        path=path,
        column=wanted[0],
    )


def read_items_table(
    path: str | Path,
    item_column: str = "item",
    text_columns: Sequence[str] | Mapping[str, str] | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """An item table: CSV/TSV with a header line, or Parquet (``.parquet``/``.pq``).

    ``item_column`` is the file's id column (renamed ``item``). ``text_columns``: the columns to
    keep, as a list of the file's names or a mapping our name -> the file's
    (``{title: product_name}``); None keeps every column. ``sep`` None sniffs the header line
    like :func:`read_table`. Ids must be unique and non-empty.
    """
    mapping = {"item": item_column}
    if isinstance(text_columns, Mapping):
        mapping.update({str(k): str(v) for k, v in text_columns.items()})
    elif text_columns is not None:
        if isinstance(text_columns, str):
            raise ValueError(f"text_columns={text_columns!r}: expected a list of column names")
        mapping.update({str(c): str(c) for c in text_columns})
    frame, p, header_rows = _read_mapped(
        path,
        sep,
        mapping,
        (),
        None if text_columns is None else (),
        f"item table (id column {item_column!r} plus text columns)",
    )
    return check_items(frame, p, header_rows=header_rows)


def join_items(
    interactions: RawData,
    items: pd.DataFrame,
    name: str | None = None,
    duplicates: str | None = None,
) -> RawData:
    """``interactions`` (a RawData from any reader) with ``items`` as its item table.

    Both sides' ids must be of the same kind (numbers or strings): an int id never matches a
    string one, so a mismatch would silently leave every item without text.
    ``duplicates`` is not used here: the config passes it on to the interactions reader
    (``interactions: {duplicates: ${..duplicates}}``) so that ``data.source.duplicates`` is the
    same override for every data config.
    """
    del duplicates  # applied by the interactions reader
    if not isinstance(interactions, RawData):
        raise TypeError(f"join_items: interactions must be RawData, got {type(interactions)}")
    check_columns(items, ["item"], items.attrs.get("path", "item table"))
    numeric = pd.api.types.is_numeric_dtype
    inter_ids, item_ids = interactions.interactions["item"], items["item"]
    if numeric(inter_ids) != numeric(item_ids):
        kinds = ["numbers" if numeric(s) else "strings" for s in (inter_ids, item_ids)]
        raise DataError(
            f"item ids are {kinds[0]} in the interactions but {kinds[1]} in the item table "
            f"(e.g. {show(inter_ids.iloc[0])} vs {show(item_ids.iloc[0])}); they cannot join",
            path=items.attrs.get("path", "item table"),
            column="item",
        )
    files = list(interactions.files)
    if "path" in items.attrs:
        files.append(Path(items.attrs["path"]))
    return RawData(
        name=name if name is not None else interactions.name,
        interactions=interactions.interactions,
        items=items,
        test=interactions.test,
        test_negatives=interactions.test_negatives,
        ratings=interactions.ratings,
        files=files,
        ordered_by_file=interactions.ordered_by_file,
    )
