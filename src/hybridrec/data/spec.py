"""DataSpec: the contract between ``prepare`` and everything downstream (spec.json)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hybridrec.data.errors import DataError

SPEC_FILE = "spec.json"
#: bumped when ``prepare`` writes different files for the same config, so ``prepare_cached``
#: re-prepares older folders (2: evaluation negatives distinct within a row)
SPEC_VERSION = 2


@dataclass
class DataSpec:
    """Sizes, id maps, split counts and fingerprint of one prepared dataset.

    Item indices are 1..n_items; index 0 is padding, so embedding tables have ``n_items + 1``
    rows. User indices are 0..n_users-1. The raw id of each index lives in ``users.parquet`` /
    ``items.parquet`` next to this file (columns ``index``, ``raw_id``; items may add text).
    """

    name: str
    protocol: str
    n_users: int
    n_items: int
    n_train: int
    n_val: int
    n_test: int
    eval_mode: str  # "sampled" (1 positive + negatives) or "full" (rank every item)
    n_eval_negatives: int = 0  # negatives per sampled-evaluation row
    has_timestamps: bool = False
    layout: str = "pairs"  # "pairs" (user, item) or "sessions" (preparation/sessions.py)
    mask_known: bool = True  # full ranking masks the user's known items (False: rank them too)
    candidates: str = "all"  # cold_items: rank cold targets among "all" items or "cold" ones
    other_slice: str = "keep"  # cold_items: a user's other-slice held-out items "keep" | "mask"
    item_text_fields: list[str] = field(default_factory=list)
    text_sha256: str = ""  # sha256 of the assembled item texts ("" when there is no item text)
    n_items_without_text: int = 0  # items whose text fields were all empty (see data.text)
    fingerprint: str = ""  # sha256 over the prepared files, in a fixed order
    files: dict[str, str] = field(default_factory=dict)  # role -> file name in the folder
    counts: dict[str, int] = field(default_factory=dict)  # dropped rows etc., for the record
    judgments: dict[str, Any] = field(default_factory=dict)  # raters, segments, weights, ...
    source: dict[str, Any] = field(default_factory=dict)  # the data config that made it
    #: data.pseudonymise: the kinds of id replaced by keyed hashes and the key's check value
    #: (hybridrec.data.pseudonyms); empty, and left out of spec.json, when ids are raw
    pseudonyms: dict[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION
    padding_idx: int = 0

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / SPEC_FILE
        fields = asdict(self)
        if not fields["pseudonyms"]:  # raw ids: spec.json as before pseudonyms existed
            del fields["pseudonyms"]
        path.write_text(json.dumps(fields, indent=2, sort_keys=True, default=str) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> DataSpec:
        path = Path(folder) / SPEC_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no spec.json here; run `hybridrec-data prepare` for this dataset first"
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:  # cut short, edited, not JSON
            raise DataError(
                f"not a readable spec.json ({' '.join(str(exc).split())}); expected the JSON "
                "object that `hybridrec-data prepare` writes: delete the folder and prepare again",
                path=path,
            ) from exc

    def summary(self) -> dict[str, Any]:
        """The fields model configs interpolate (``${spec.n_items}``) and MLflow logs."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "eval_mode": self.eval_mode,
            "layout": self.layout,
            "fingerprint": self.fingerprint,
            "n_raters": len(self.judgments.get("raters", [])),
            "n_segments": len(self.judgments.get("segments", [])),
        } | ({"pseudonyms": self.pseudonyms} if self.pseudonyms else {})


def fingerprint_files(paths: list[Path]) -> str:
    """sha256 over the contents of ``paths`` (name and bytes, in the order given)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
