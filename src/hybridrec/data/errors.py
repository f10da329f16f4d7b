"""One error type for bad input data, carrying where the problem is."""

from __future__ import annotations

from pathlib import Path

from hybridrec.errors import HybridrecError


class DataError(HybridrecError, ValueError):
    """Bad input data. The message names the file, row and column and what was expected.

    ``row`` is 1-based as a person counts lines in the file (header included when the file has
    one), so an editor's "go to line" lands on it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        where = []
        if path is not None:
            where.append(f"file {path}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
