"""A checkpoint's export files (what ``hybridrec-export`` writes before it logs them to the run):

    scorer.pt / scorer.onnx   the full-ranking scorer as TorchScript and ONNX
    item_vectors.npy          the (N, D) item matrix, row 0 padding
    items.json / users.json   raw ids of the score columns and of the user indices
    new_items.pt              with ``add_items``: the new products' raw ids and text vectors
    export.json               inputs, history width, sizes, the model class, the files

Importing this loads torch: ``cli/export.py`` imports it only when a model is exported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridrec.errors import ExportError
from hybridrec.export.formats import item_matrix, to_onnx, to_torchscript
from hybridrec.export.new_items import encode_new_items
from hybridrec.export.scorer import ExportedScorer
from hybridrec.lit.checkpoint import PAYLOAD, load_model


def export_model(checkpoint: Path, out: Path, add_items: Path | None = None) -> dict[str, Any]:
    """Write the export files of ``checkpoint`` into ``out``; returns the export.json content."""
    model = load_model(checkpoint)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    payload = saved[PAYLOAD]
    maps = dict(payload.get("id_maps") or {})
    new_vectors = None
    out.mkdir(parents=True, exist_ok=True)
    if add_items is not None:
        data = (saved.get("hybridrec_config") or {}).get("data") or {}
        text = data.get("text")
        if not text:
            raise ExportError("--add-items: the run's data config has no item text (data.text)")
        known = [str(i) for i in maps.get("items", [])]
        new_ids, new_vectors = encode_new_items(model, add_items, text, known, data.get("source"))
        torch.save(
            {"items": [str(i) for i in new_ids], "vectors": new_vectors}, out / "new_items.pt"
        )
        maps["items"] = [*maps.get("items", []), *new_ids]
    files: dict[str, str] = {}
    try:
        scorer: ExportedScorer | None = ExportedScorer(model, new_vectors)
    except ExportError as exc:  # e.g. a composed hybrid with a GRU4Rec part: no traced path
        if "no traced path" not in str(exc):
            raise
        print(
            f"hybridrec-export: no TorchScript / ONNX scorer ({exc}); the served model and "
            "the item matrix are written",
            file=sys.stderr,
        )
        scorer = None
    if scorer is not None:
        files["torchscript"] = to_torchscript(scorer, out / "scorer.pt").name
        files["onnx"] = to_onnx(scorer, out / "scorer.onnx").name
        matrix = item_matrix(scorer)
    else:
        with torch.no_grad():
            table = model.item_vectors()  # type: ignore[operator]
            if new_vectors is not None:
                table = torch.cat([table, new_vectors.to(table.dtype)])
        matrix = table.detach().cpu().numpy().astype(np.float32)
    if matrix is not None:
        np.save(out / "item_vectors.npy", matrix)
        files["item_vectors"] = "item_vectors.npy"
    if new_vectors is not None:
        files["new_items"] = "new_items.pt"
    for side in ("items", "users"):
        if side in maps:
            ids = [None, *maps[side]] if side == "items" else list(maps[side])
            (out / f"{side}.json").write_text(json.dumps(ids, default=str))
            files[side] = f"{side}.json"
    meta = {
        "model": payload["config"].get("_target_"),
        "inputs": None if scorer is None else scorer.inputs,
        "history_width": None if scorer is None else scorer.fixed_width,  # null: any width
        "n_items": int(getattr(model, "n_items", 0))
        + (0 if new_vectors is None else len(new_vectors)),
        "n_new_items": 0 if new_vectors is None else len(new_vectors),
        "n_users": int(getattr(model, "n_users", 0)),
        "padding_column": 0,
        "files": files,
    }
    pseudonyms = (payload.get("spec") or {}).get("pseudonyms")
    if pseudonyms:  # data.pseudonymise: which ids are keyed hashes, the key's check value
        meta["pseudonyms"] = pseudonyms
    (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
