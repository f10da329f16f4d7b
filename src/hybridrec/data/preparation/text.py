"""Item text: one string per item, assembled from fields of the item side table.

The text tower reads a single text per item, e.g. for MovieLens
``"Toy Story. Year: 1995. Genres: Animation, Children's, Comedy"``. Which fields, in which
order, with which prefixes, and what happens to items without any text are configured under
``data.text`` (see :class:`TextConfig`); ``prepare`` writes the result to
``item_text.parquet`` aligned with the item index, and :func:`load_item_text` reads it back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import check_columns, show

__all__ = [
    "ITEM_TEXT_FILE",
    "MISSING_MODES",
    "TextConfig",
    "assemble_item_text",
    "load_item_text",
    "text_sha256",
]

#: File written by ``prepare`` next to ``items.parquet``: columns ``index``, ``text``.
ITEM_TEXT_FILE = "item_text.parquet"
#: What to do with an item whose configured fields are all empty (see assemble_item_text).
MISSING_MODES = ("empty", "error", "title")
#: Separator inside list-valued fields (MovieLens genres ``Action|Comedy``).
LIST_SEP = "|"
#: How list-valued fields are rendered.
LIST_JOIN = ", "


@dataclass
class TextConfig:
    """The ``data.text`` section of a data config (``None`` there means no item text).

    fields: field names in order (``[title, genres]``) or a mapping field -> prefix
        (``{title: "", genres: "Genres: "}``).
    sep: put between non-empty fields.
    missing: ``empty``, ``error`` or ``title`` (see :func:`assemble_item_text`).
    """

    fields: Sequence[str] | Mapping[str, str] = field(default_factory=list)
    sep: str = ". "
    missing: str = "empty"

    def __post_init__(self) -> None:
        if self.missing not in MISSING_MODES:
            raise ValueError(f"data.text.missing={self.missing!r}: expected one of {MISSING_MODES}")
        if isinstance(self.fields, str) or len(self.fields) == 0:
            raise ValueError(
                f"data.text.fields={self.fields!r}: expected a non-empty list of item table "
                "columns or a mapping column -> prefix"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TextConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"data.text: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**dict(config))

    def field_names(self) -> list[str]:
        return [str(f) for f in self.fields]


def _render_value(value: Any) -> str:
    """One cell as text: lists joined with ", ", whole floats without ".0", NA as ""."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return LIST_JOIN.join(s for s in (_render_value(v) for v in value) if s)
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else str(value)
    if value is pd.NA or value is pd.NaT:
        return ""
    text = str(value).strip()
    if LIST_SEP in text:
        text = LIST_JOIN.join(p.strip() for p in text.split(LIST_SEP) if p.strip())
    return text


def _render(column: pd.Series) -> pd.Series:
    """(N,) cells -> (N,) stripped strings, "" where the cell is missing."""
    if pd.api.types.is_float_dtype(column):
        return pd.Series([_render_value(v) for v in column.to_numpy()], index=column.index)
    if pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
        text = column.astype("string").fillna("")  # nullable Int64 keeps NA as ""
        return text.astype(object).astype(str)
    return column.map(_render_value).astype(str)


def assemble_item_text(
    items: pd.DataFrame,
    fields: Sequence[str] | Mapping[str, str],
    sep: str = ". ",
    missing: str = "empty",
    path: str | Path | None = None,
) -> pd.Series:
    """Join ``fields`` of the item table into one text per item (index: the ``item`` ids).

    Fields are taken in the given order; a Mapping gives each a prefix (``"Genres: "``), used
    only when the field is non-empty. Empty fields are skipped, so there are never two
    separators in a row, and a field already ending with the separator's punctuation (a title
    ending in ".") is not given a second one. List cells and ``|``-separated strings are
    rendered ``"Action, Comedy"``; whole-number floats lose their ``.0`` (years read as float).

    Items whose fields are all empty are handled as ``missing`` says: ``"empty"`` keeps ``""``;
    ``"error"`` raises DataError naming the file (``path``, else ``items.attrs["path"]``), the
    item and the fields; ``"title"`` falls back to the item's ``title`` column, else its id.
    Their number is in ``result.attrs["n_missing"]`` whatever the mode.
    Unknown field names raise DataError with a close-match hint.
    """
    if missing not in MISSING_MODES:
        raise ValueError(f"missing={missing!r}: expected one of {MISSING_MODES}")
    names = [str(f) for f in fields]
    prefixes = [str(fields[n]) for n in names] if isinstance(fields, Mapping) else [""] * len(names)
    if not names:
        raise ValueError("assemble_item_text needs at least one field")
    where = path if path is not None else items.attrs.get("path", "item table")
    check_columns(items, ["item", *names], where)

    out = pd.Series([""] * len(items), index=items.index, dtype=object)
    stop = sep.rstrip()  # "." for ". ": a part already ending with it needs only the space
    rest = sep[len(stop) :]
    for name, prefix in zip(names, prefixes):
        part = _render(items[name])
        has = (part != "").to_numpy()
        part = prefix + part
        empty = (out == "").to_numpy()
        if stop:
            joiner = np.where(out.str.endswith(stop).to_numpy(), rest, sep)
        else:
            joiner = np.full(len(out), sep, dtype=object)
        joined = out + pd.Series(joiner, index=out.index) + part
        out = out.where(~has, part.where(empty, joined))

    no_text = (out == "").to_numpy()
    n_missing = int(no_text.sum())
    if n_missing and missing == "error":
        i = int(no_text.argmax())
        raise DataError(
            f"item {show(items['item'].iloc[i])} has no text: field"
            f"{'s' if len(names) > 1 else ''} {names} {'are' if len(names) > 1 else 'is'} "
            "empty or missing; fill them, or set data.text.missing=empty (keep '') or "
            "=title (fall back to the title)",
            path=where,
            column=names[0],
        )
    if n_missing and missing == "title":
        fallback = items["item"].map(_render_value)
        if "title" in items.columns:
            title = _render(items["title"])
            fallback = title.where(title != "", fallback)
        out = out.where(~no_text, fallback)
    result = pd.Series(out.to_numpy(dtype=object), index=pd.Index(items["item"]), name="text")
    result.attrs["n_missing"] = n_missing
    return result


def text_sha256(texts: Sequence[str]) -> str:
    """sha256 of texts in order (NUL-separated): changes whenever any item's text changes."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def load_item_text(folder: str | Path) -> list[str]:
    """The texts of a prepared dataset: element i is item index i's text (0 = padding, "")."""
    path = Path(folder) / ITEM_TEXT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: this prepared dataset has no item text; set data.text (fields to join) in "
            "the data config and prepare it again"
        )
    frame = pd.read_parquet(path, columns=["index", "text"])
    if not np.array_equal(frame["index"].to_numpy(), np.arange(len(frame))):
        raise DataError("rows are not item indices 0..n_items in order", path=path)
    return [str(t) for t in frame["text"].tolist()]
