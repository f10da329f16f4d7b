"""Erasure in an exported model (``hybridrec-data forget --model DIR``).

Two kinds of folder hold a trained model's per-user state:

* an export folder (``hybridrec-export --out``; ``export.json``): ``users.json`` (the id of each
  user row), ``seen.npz`` (each user's known items), and the user rows inside ``scorer.pt`` /
  ``scorer.onnx``;
* a served model folder (``mlflow.pyfunc.save_model`` / a downloaded ``models:/`` folder;
  ``MLmodel``): its ``artifacts/`` hold the checkpoint (the id maps and the weights) and
  ``seen.npz``.

For each erased user: the id becomes null, the known items go, and every per-user row of the
weights (tensors named ``*user*`` with one row per user: the ID tower's vector, the user bias;
a composed hybrid's parts alike) is set to zero, in the checkpoint, the TorchScript and the ONNX
file. The checkpoint's optimiser state (it holds per-user moments) is dropped: serving never
reads it. The served model then answers that user as an unknown one (their recent items, or
the popularity fallback). Item vectors are left as trained: they hold what every user taught
the model, this one included, until it is retrained (docs/privacy.md).

:func:`without_user_state` is the same for every user at once: what ``hybridrec-export
--no-user-table`` serves from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridrec.data.erasure import Erasure, append_record, now_utc, user_rows
from hybridrec.lit.checkpoint import PAYLOAD, safe_load

SEEN_FILE = "seen.npz"


def model_kind(folder: Path) -> str | None:
    """``"export folder"``, ``"served model folder"`` or None (neither)."""
    if (folder / "export.json").is_file():
        return "export folder"
    if (folder / "MLmodel").is_file():
        return "served model folder"
    return None


def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoint artifacts of a served model folder (torch zip archives)."""
    artifacts = folder / "artifacts"
    if not artifacts.is_dir():
        return []
    found = []
    for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
        if path.suffix in (".npy", ".npz", ".json", ".csv"):
            continue
        saved = safe_load(path) if _is_torch(path) else None
        if isinstance(saved, dict) and PAYLOAD in saved:
            found.append(path)
    return found


def _is_torch(path: Path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def user_ids(folder: Path) -> tuple[list[Any], dict[str, Any]]:
    """(user ids by index, the spec's pseudonyms entry) of an export or served model folder."""
    if model_kind(folder) == "export folder":
        ids = json.loads((folder / "users.json").read_text()) if _has(folder, "users.json") else []
        meta = json.loads((folder / "export.json").read_text())
        return ids, dict(meta.get("pseudonyms") or {})
    for path in _checkpoints(folder):
        payload = safe_load(path)[PAYLOAD]
        spec = payload.get("spec") or {}
        return list((payload.get("id_maps") or {}).get("users") or []), dict(
            spec.get("pseudonyms") or {}
        )
    return [], {}


def _has(folder: Path, name: str) -> bool:
    return (folder / name).is_file()


def forget_in_model(folder: str | Path, requested: Sequence[str]) -> tuple[Erasure, list[str]]:
    """Erase ``requested`` users from the model in ``folder``; (the record, the requested ids
    it does not hold). The record is appended to the folder's ``erasures.json``."""
    folder = Path(folder)
    kind = model_kind(folder)
    if kind is None:
        raise FileNotFoundError(
            f"{folder}: neither an export folder (export.json) nor a served model folder "
            "(MLmodel); give --model the folder hybridrec-export wrote or a saved pyfunc model"
        )
    ids, pseudonyms = user_ids(folder)
    found, missing = user_rows(requested, ids, pseudonyms, str(folder))
    rows = sorted(set(found.values()))
    record = Erasure(
        when=now_utc(),
        target=kind,
        users=[
            {"index": r, "pseudonym": ids[r] if pseudonyms else None}  # never a raw id
            for r in rows
        ],
    )
    if not rows:
        return record, missing
    n_users = len(ids)
    if kind == "export folder":
        if _has(folder, "users.json"):
            _write_json(
                folder / "users.json", [None if i in rows else v for i, v in enumerate(ids)]
            )
        for name in ("scorer.pt", "scorer.onnx"):
            if _has(folder, name):
                changed = (_zero_torchscript if name.endswith(".pt") else _zero_onnx)(
                    folder / name, rows, n_users
                )
                record.removed[name] = changed
        seen = folder / SEEN_FILE
    else:
        for path in _checkpoints(folder):
            record.removed[path.name] = _zero_checkpoint(path, rows, n_users)
        seen = next((folder / "artifacts").rglob(SEEN_FILE), folder / SEEN_FILE)
    if seen.is_file():
        record.removed[SEEN_FILE] = _forget_seen(seen, rows)
    append_record(folder, record)
    return record, missing


def _user_rows(name: str, tensor: torch.Tensor, n_users: int) -> bool:
    return "user" in name and tensor.dim() >= 1 and tensor.shape[0] == n_users


def _zero_checkpoint(path: Path, rows: list[int], n_users: int) -> int:
    """Erased users' ids to None, their weight rows to zero; the optimiser state dropped.
    Returns how many tensors were changed."""
    saved = safe_load(path)
    payload = saved[PAYLOAD]
    maps = payload.get("id_maps") or {}
    if maps.get("users"):
        maps["users"] = [None if i in rows else v for i, v in enumerate(maps["users"])]
    changed = 0
    for name, tensor in saved.get("state_dict", {}).items():
        if _user_rows(name, tensor, n_users):
            tensor[rows] = 0
            changed += 1
    saved.pop("optimizer_states", None)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)
    return changed


def without_user_state(checkpoint: Path, dest: Path) -> Path:
    """A copy of ``checkpoint`` at ``dest`` without per-user state: no user ids, every
    per-user weight row zero, no optimiser state. Served, it knows no user: a request is
    answered from its recent items (history models) or by popularity."""
    saved = safe_load(checkpoint)
    payload = saved[PAYLOAD]
    maps = dict(payload.get("id_maps") or {})
    n_users = len(maps.pop("users", None) or []) or int(
        (payload.get("spec") or {}).get("n_users") or 0
    )
    payload["id_maps"] = maps
    for name, tensor in saved.get("state_dict", {}).items():
        if _user_rows(name, tensor, n_users):
            tensor.zero_()
    saved.pop("optimizer_states", None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, dest)
    return dest


def _zero_torchscript(path: Path, rows: list[int], n_users: int) -> int:
    module = torch.jit.load(str(path), map_location="cpu")
    changed = 0
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if _user_rows(name, tensor, n_users):
                tensor[rows] = 0
                changed += 1
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(module, str(tmp))
    os.replace(tmp, path)
    return changed


def _zero_onnx(path: Path, rows: list[int], n_users: int) -> int:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    changed = 0
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if "user" in init.name and array.ndim >= 1 and array.shape[0] == n_users:
            array = array.copy()
            array[rows] = 0
            init.CopyFrom(numpy_helper.from_array(array, init.name))
            changed += 1
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return changed


def _forget_seen(path: Path, rows: list[int]) -> int:
    """Drop the erased users' known items from the CSR arrays; returns how many went."""
    with np.load(path) as arrays:
        indptr, items = arrays["indptr"], arrays["items"]
    counts = np.diff(indptr)
    keep = np.ones(items.shape[0], dtype=bool)
    for r in rows:
        if r + 1 < indptr.shape[0]:
            keep[indptr[r] : indptr[r + 1]] = False
            counts[r] = 0
    new_indptr = np.zeros_like(indptr)
    np.cumsum(counts, out=new_indptr[1:])
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, indptr=new_indptr, items=items[keep])
    os.replace(tmp, path)
    return int((~keep).sum())


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, default=str))
    os.replace(tmp, path)
