"""Session data's preparation: the ``session`` protocol (:class:`SessionSplit`) and its prepare
step (:func:`prepare_sessions`); the click readers are in :mod:`hybridrec.data.readers.sessions`.

A session is an ordered list of clicks. Sessions play the role of users in the prepared folder
(``user`` = session index), every part keeps its repeats and its order, and item indices cover
the training items only (GRU4Rec's rule: an item never seen in training cannot be recommended,
so held-out clicks on such items are dropped and counted).

The ``session`` protocol (Hidasi et al. 2016; the GRU4Rec preprocessing scripts):
    1. without a given test file: drop sessions shorter than ``min_session_length`` and items
       with fewer than ``min_item_support`` clicks, repeatedly until nothing changes;
    2. test = sessions that END in the last ``test_days`` days (whole sessions, by their last
       click), train = the other sessions — or the source's own test file;
    3. validation = the same cut applied to the training sessions with ``val_days``
       (``val_days: 0`` = no validation split: train on everything before the test cut for a
       fixed number of epochs, the paper's setting);
    4. in validation and test, clicks on items unseen in training are dropped, then sessions
       left shorter than 2 clicks (nothing to predict).
Evaluation predicts the next click at every position of every held-out session, ranking all
items (see docs/protocols.md).

Timestamps are in seconds (the readers convert); ``*_days`` are multiplied by 86,400.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.protocols import Split
from hybridrec.data.preparation.staging import staged_folder
from hybridrec.data.pseudonyms import Pseudonyms
from hybridrec.data.raw import RawData
from hybridrec.data.spec import DataSpec, fingerprint_files

DAY = 86_400.0


# ---------------------------------------------------------------------------------- protocol
def _filter_sessions(frame: pd.DataFrame, min_length: int, min_support: int) -> pd.DataFrame:
    """Drop short sessions and rare items until neither rule removes anything."""
    while True:
        before = len(frame)
        if min_length > 1:
            frame = frame[frame.groupby("user")["user"].transform("size") >= min_length]
        if min_support > 1:
            frame = frame[frame.groupby("item")["item"].transform("size") >= min_support]
        if len(frame) == before:
            return frame


def _time_cut(frame: pd.DataFrame, days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier sessions, sessions ending in the last ``days`` days)."""
    ends = frame.groupby("user")["timestamp"].transform("max").to_numpy()
    cut = float(frame["timestamp"].max()) - days * DAY
    late = ends >= cut
    return frame[~late], frame[late]


def _held_out(frame: pd.DataFrame, train_items: np.ndarray, label: str, counts: dict) -> Any:
    """Drop clicks on items unseen in training, then sessions with fewer than 2 clicks."""
    seen = frame["item"].isin(train_items)
    counts[f"{label}_unseen_item_clicks_dropped"] = int((~seen).sum())
    frame = frame[seen]
    long_enough = frame.groupby("user")["user"].transform("size") >= 2
    counts[f"{label}_short_sessions_dropped"] = int(frame.loc[~long_enough, "user"].nunique())
    return frame[long_enough]


@dataclass
class SessionSplit:
    """The ``session`` protocol (see the module doc). Timestamps in seconds."""

    test_days: float = 1.0
    val_days: float = 1.0
    min_session_length: int = 2
    min_item_support: int = 5
    use_given_test: bool = True
    name: str = "session"
    eval_mode: str = "full"
    layout: str = "sessions"  # prepare() hands this protocol to prepare_sessions

    def __post_init__(self) -> None:
        if self.test_days <= 0:
            raise ValueError(f"protocol.test_days={self.test_days}: expected > 0")
        if self.val_days < 0:
            raise ValueError(f"protocol.val_days={self.val_days}: expected >= 0 (0 = none)")
        if self.eval_mode != "full":
            raise ValueError("protocol session ranks all items: eval_mode must be 'full'")

    def split_sessions(self, frame: pd.DataFrame, given_test: pd.DataFrame | None) -> Split:
        """Raw-id frames (``user`` = session, ``item``, ``timestamp``) -> train/val/test."""
        counts: dict[str, int] = {}
        if given_test is not None and self.use_given_test:
            train, test = frame, given_test
        else:
            before = len(frame)
            frame = _filter_sessions(frame, self.min_session_length, self.min_item_support)
            counts["filtered_clicks"] = before - len(frame)
            train, test = _time_cut(frame, self.test_days)
        if self.val_days > 0:
            train, val = _time_cut(train, self.val_days)
        else:
            val = train.iloc[:0]
        # a training session of one click teaches nothing (no next click)
        train = train[train.groupby("user")["user"].transform("size") >= 2]
        items = train["item"].unique()
        val = _held_out(val, items, "val", counts)
        test = _held_out(test, items, "test", counts)
        return Split(train=train, val=val, test=test, eval_mode="full", counts=counts)


# ----------------------------------------------------------------------------------- prepare
def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)


def prepare_sessions(
    raw: RawData,
    protocol: SessionSplit,
    folder: str | Path,
    source_config: dict[str, Any] | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> DataSpec:
    """Write a prepared folder for session data (layout ``sessions``; see the module doc).

    train/val/test.parquet: ``user`` (session index), ``item``, ``timestamp``, sorted by session
    then time, repeats kept. users.parquet maps session indices to raw session ids (keyed
    hashes with ``pseudonyms`` listing ``sessions``: :mod:`hybridrec.data.pseudonyms`).
    """
    folder = Path(folder)
    where = str(raw.files[0]) if raw.files else raw.name
    if not raw.has_timestamps:
        raise DataError("the session protocol needs click times (a timestamp column)", path=where)
    frame = raw.interactions[["user", "item", "timestamp"]]
    given = raw.test[["user", "item", "timestamp"]] if raw.test is not None else None
    if given is not None and "timestamp" not in given.columns:
        raise DataError("the given test sessions have no timestamps", path=where)
    split = protocol.split_sessions(frame, given)
    if len(split.train) == 0:
        raise DataError("no training sessions with 2+ clicks are left", path=where)
    if len(split.test) == 0:
        raise DataError(
            f"protocol session left no test sessions (test_days={protocol.test_days})", path=where
        )
    parts = {role: getattr(split, role) for role in ("train", "val", "test")}
    item_ids = np.sort(parts["train"]["item"].unique())
    item_index = pd.Index(item_ids)
    # sessions are numbered train first, then val, then test (a session id is in one part)
    session_ids = pd.unique(pd.concat([parts[r]["user"] for r in ("train", "val", "test")]))
    session_index = pd.Index(session_ids)
    if not session_index.is_unique:  # pragma: no cover - pd.unique guarantees it
        raise AssertionError("session ids not unique")

    counts = dict(split.counts)
    counts["raw_clicks"] = len(raw.interactions) + (len(given) if given is not None else 0)
    with staged_folder(folder) as tmp:
        files: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for role, part in parts.items():
            mapped = pd.DataFrame(
                {
                    "user": session_index.get_indexer(part["user"]).astype(np.int64),
                    "item": (item_index.get_indexer(part["item"]) + 1).astype(np.int64),
                    "timestamp": part["timestamp"].to_numpy(np.float64),
                }
            )
            mapped = _ordered(mapped)
            mapped.to_parquet(tmp / f"{role}.parquet", index=False)
            files[role] = f"{role}.parquet"
            sizes[role] = len(mapped)
            counts[f"{role}_sessions"] = int(mapped["user"].nunique())
            counts[f"{role}_predictions"] = len(mapped) - counts[f"{role}_sessions"]
        written = session_ids if pseudonyms is None else pseudonyms.ids("sessions", session_ids)
        pd.DataFrame({"index": np.arange(len(session_ids)), "raw_id": written}).to_parquet(
            tmp / "users.parquet", index=False
        )
        pd.DataFrame({"index": np.arange(1, len(item_ids) + 1), "raw_id": item_ids}).to_parquet(
            tmp / "items.parquet", index=False
        )
        files["users"], files["items"] = "users.parquet", "items.parquet"
        order = ("train", "val", "test", "users", "items")
        spec = DataSpec(
            name=raw.name,
            protocol=protocol.name,
            n_users=len(session_ids),
            n_items=len(item_ids),
            n_train=sizes["train"],
            n_val=sizes["val"],
            n_test=sizes["test"],
            eval_mode="full",
            has_timestamps=True,
            layout="sessions",
            mask_known=False,
            fingerprint=fingerprint_files([tmp / files[r] for r in order]),
            files=files,
            counts=counts,
            source=source_config or {},
            pseudonyms={} if pseudonyms is None else pseudonyms.spec_entry(),
        )
        spec.save(tmp)
    return spec
