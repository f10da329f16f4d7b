"""Erasure: a customer's rows out of a prepared folder (``hybridrec-data forget``).

Which users: :func:`user_rows` finds each requested id among a folder's (or a model's) user
ids: as given (a raw id in a plain folder, a pseudonym in a pseudonymised one) or, with the key
in the environment, as its pseudonym. :func:`forget_in_folder` then removes every row of those
users from the prepared files (train, val, test, their negatives, the judgments made for them
as a context) and blanks their id in ``users.parquet``; every other row, and every index, stays
as it was (a model trained before still lines up with the folder). The spec's sizes, counts and
fingerprint are updated, and ``erasures.json`` records what was removed and when: the user's
index and pseudonym, never a raw id.

What it cannot do: the raw source files are the team's own to delete, and a model trained
before holds what it learnt from the user until it is retrained (docs/privacy.md).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.judgments import USER
from hybridrec.data.preparation.prepare import FILE_ROLES
from hybridrec.data.pseudonyms import KEY_ENV, Pseudonymiser, is_pseudonym, read_key
from hybridrec.data.spec import DataSpec, fingerprint_files

ERASURES_FILE = "erasures.json"
#: the prepared files whose ``user`` column holds a user index
USER_FILES = ("train", "val", "test", "val_negatives", "test_negatives")


@dataclass
class Erasure:
    """One ``forget`` of one folder or model: what ``erasures.json`` records."""

    when: str  # UTC, ISO 8601
    target: str  # "prepared folder" | "export folder" | "served model folder"
    users: list[dict[str, Any]]  # {"index": int, "pseudonym": str | None}: never a raw id
    #: file -> rows removed (data files, seen.npz) or per-user tensors zeroed (weights)
    removed: dict[str, int] = field(default_factory=dict)
    fingerprint_before: str = ""
    fingerprint_after: str = ""


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def user_rows(
    requested: Sequence[str], ids: Sequence[Any], pseudonyms: dict[str, Any], where: str
) -> tuple[dict[str, int], list[str]]:
    """({requested id: user index}, the requested ids not found) among ``ids`` (user ids by
    index; None for users already erased). ``pseudonyms`` is the spec's entry: with users
    (or sessions) pseudonymised and the key in the environment, a raw id is looked up as its
    pseudonym; a key other than the folder's is refused in one sentence."""
    index = {str(raw): i for i, raw in enumerate(ids) if raw is not None}
    hasher = None
    kinds = [k for k in pseudonyms.get("kinds", []) if k in ("users", "sessions")]
    key = read_key() if kinds else None
    if key is not None:
        hasher = Pseudonymiser(key)
        if hasher.check != pseudonyms.get("key_check"):
            raise DataError(
                f"the pseudonym key in the environment ({KEY_ENV}) is not the one these ids "
                "were pseudonymised with; use that key, or give the users' pseudonyms",
                path=where,
            )
    found: dict[str, int] = {}
    missing: list[str] = []
    for user in requested:
        row = index.get(str(user))
        if row is None and hasher is not None:
            row = next((index[hasher(k, user)] for k in kinds if hasher(k, user) in index), None)
        if row is None:
            missing.append(user)
        else:
            found[user] = row
    return found, missing


def missing_users_message(missing: Sequence[str], where: str, pseudonymised: bool) -> str:
    """One sentence for requested users found in no target."""
    hint = (
        f"; its ids are pseudonyms: give the pseudonym, or set {KEY_ENV} to give raw ids"
        if pseudonymised and read_key() is None and not all(is_pseudonym(u) for u in missing)
        else ""
    )
    return f"{len(missing)} requested user(s) are in none of {where}{hint}"


def forget_in_folder(folder: str | Path, rows: Sequence[int]) -> Erasure:
    """Remove the users with indices ``rows`` from the prepared folder (see the module doc);
    returns the record, also appended to the folder's ``erasures.json``."""
    folder = Path(folder)
    spec = DataSpec.load(folder)
    drop = pa.array(sorted({int(r) for r in rows}), type=pa.int64())
    removed: dict[str, int] = {}
    tables: dict[str, pa.Table] = {}
    for role in USER_FILES:
        if role in spec.files:
            table = pq.read_table(folder / spec.files[role])
            keep = pc.invert(pc.is_in(table["user"], value_set=drop))
            tables[role] = table.filter(keep)
            removed[spec.files[role]] = table.num_rows - tables[role].num_rows
    if "judgments" in spec.files:  # judgments made for these users as their context
        table = pq.read_table(folder / spec.files["judgments"])
        for_them = pc.and_(
            pc.equal(table["context_kind"], USER), pc.is_in(table["context"], value_set=drop)
        )
        tables["judgments"] = table.filter(pc.invert(for_them))
        removed[spec.files["judgments"]] = table.num_rows - tables["judgments"].num_rows
    users = pq.read_table(folder / spec.files["users"])
    pseudonymised = bool(spec.pseudonyms)
    erased = [
        {"index": int(r), "pseudonym": users["raw_id"][int(r)].as_py() if pseudonymised else None}
        for r in drop.to_pylist()
    ]
    blank = pc.is_in(users["index"], value_set=drop)
    raw_ids = pc.if_else(blank, pa.scalar(None, users["raw_id"].type), users["raw_id"])
    tables["users"] = users.set_column(users.schema.get_field_index("raw_id"), "raw_id", raw_ids)
    for role, table in tables.items():  # each file replaced whole: never half written
        _replace(folder / spec.files[role], table)
    record = Erasure(
        when=now_utc(),
        target="prepared folder",
        users=erased,
        removed=removed,
        fingerprint_before=spec.fingerprint,
    )
    for role in ("train", "val", "test"):
        setattr(spec, f"n_{role}", tables[role].num_rows)
    spec.counts["erased_users"] = spec.counts.get("erased_users", 0) + len(erased)
    spec.fingerprint = fingerprint_files(
        [folder / spec.files[r] for r in FILE_ROLES if r in spec.files]
    )
    record.fingerprint_after = spec.fingerprint
    spec.save(folder)
    append_record(folder, record)
    return record


def _replace(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def append_record(folder: Path, record: Erasure) -> Path:
    """Append ``record`` to ``folder/erasures.json`` (a JSON list, oldest first)."""
    path = folder / ERASURES_FILE
    records = json.loads(path.read_text()) if path.is_file() else []
    records.append(asdict(record))
    path.write_text(json.dumps(records, indent=2) + "\n")
    return path


def erased_fingerprints(folder: str | Path) -> list[str]:
    """Every fingerprint the folder had before an erasure (runs trained on one of them hold
    erased users' data)."""
    path = Path(folder) / ERASURES_FILE
    if not path.is_file():
        return []
    return [r["fingerprint_before"] for r in json.loads(path.read_text())]
