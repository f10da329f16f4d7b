"""RawData: what every reader returns, before ids are mapped and splits are made.

Ids are raw (as in the files: ints or strings). Column names are fixed so the protocols never
need to know which format the data came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: Columns of ``RawData.interactions``; only ``user`` and ``item`` are required.
INTERACTION_COLUMNS = ("user", "item", "timestamp", "rating", "session")


@dataclass
class RawData:
    """Interactions and side information read from one source.

    interactions: columns ``user``, ``item`` and optionally ``timestamp`` (sortable number; the
        order of events within a user when the source has no clock), ``rating`` (explicit score),
        ``session`` (session id).
    items: optional item side table, column ``item`` plus text fields (``title``, ``genres``...).
    test: optional held-out interactions given by the source (``user``, ``item``), e.g. NCF's
        ``.test.rating``. When present, protocols use it instead of making their own test split.
    test_negatives: optional sampled negatives given by the source: columns ``user``, ``item``
        (the test item they belong to) and ``negatives`` (a list of raw item ids per row).
    ratings: optional marketer ratings (``rater``, ``item``, ``context``, ``score``,
        ``timestamp``).
    files: the files read, for provenance (fingerprints are taken of the prepared output).
    ordered_by_file: True when ``timestamp`` is a position in the file rather than a clock.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    test_negatives: pd.DataFrame | None = None
    ratings: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    ordered_by_file: bool = False

    @property
    def has_timestamps(self) -> bool:
        return "timestamp" in self.interactions.columns
