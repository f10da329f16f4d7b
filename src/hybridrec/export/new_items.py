"""New products after training: encode their text with the trained text tower and append them
to the exported catalogue, no retraining (``hybridrec-export ... --add-items items.csv``).

The item table is read like the training one (CSV/TSV/Parquet, the run's ``data.source``
mapping: its id column is the training item table's, e.g. ``sku``, else ``item``; the text
fields of the run's ``data.text`` config) and its texts are assembled with the same fields,
prefixes and separator. A new item's vector is its text tower's output: exactly what
the model gives a cold item (the hybrid's gate is 0 for an item without training counts).
Models without a text tower cannot score an item they never saw: refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.text import TextConfig, assemble_item_text
from hybridrec.data.readers.tables import read_source_items
from hybridrec.errors import ExportError
from hybridrec.nn.composed import ComposedHybrid, reads_text
from hybridrec.nn.textrec import TextItemTower


def text_tower(model: nn.Module) -> TextItemTower:
    """The model's text tower (the hybrid's fused tower holds it as ``text``)."""
    items = getattr(model, "items", None)
    for tower in (items, getattr(items, "text", None)):
        if isinstance(tower, TextItemTower):
            return tower
    raise ExportError(
        f"--add-items: {type(model).__name__} has no text tower, so it cannot score an item "
        "it never saw; train a model with item text (model=hybrid, textrec, seqtext)"
    )


def encode_new_items(
    model: nn.Module,
    path: str | Path,
    text: dict[str, Any],
    known: list[str],
    source: Mapping[str, Any] | None = None,
) -> tuple[list[Any], Tensor]:
    """(raw ids, vectors (M, D)) of the items in the table at ``path``; ``text`` is the run's
    ``data.text`` config; ``known`` the raw ids (as strings) already in the catalogue, which
    must not come again; ``source`` the run's ``data.source`` config, whose ``columns`` /
    ``item_columns`` say how the training item table was read (the table here is read the
    same way). A composed hybrid encodes them with each text part and places them as its cold
    items (:meth:`ComposedHybrid.new_item_vectors`)."""
    if isinstance(model, ComposedHybrid):
        if not any(reads_text(part) for part in model.parts):
            raise ExportError(
                "--add-items: no part of this composed hybrid reads item text, so it cannot "
                "score an item it never saw; add a text part (model.parts)"
            )
        new_ids: list[Any] = []
        raw: list[Tensor | None] = []
        for part in model.parts:
            if reads_text(part):
                new_ids, vectors = encode_new_items(part, path, text, known, source)
                raw.append(vectors)
            else:
                raw.append(None)
        with torch.no_grad():
            return new_ids, model.new_item_vectors(raw)
    tower = text_tower(model)
    if tower.text_encoder is None:
        raise ExportError(
            "--add-items: this model keeps precomputed text vectors (a frozen pretrained "
            "encoder cached at training) and no encoder to run on new text"
        )
    columns, item_columns = (_mapping((source or {}).get(k)) for k in ("columns", "item_columns"))
    items = read_source_items(path, columns, item_columns, new_products=True)
    file = items.attrs["path"]
    clash = [str(i) for i in items["item"] if str(i) in set(known)]
    if clash:
        raise DataError(
            f"item {clash[0]!r} is already in the catalogue ({len(clash)} such); --add-items "
            "takes new products only",
            path=file,
            column="item",
        )
    config = TextConfig.from_config(text)
    texts = assemble_item_text(items, config.fields, sep=config.sep, missing=config.missing)
    ids, mask = tower.tokenizer.encode([str(t) for t in texts.tolist()])  # (M, L) each
    with torch.no_grad():
        vectors = tower.projection(tower.text_encoder(ids, mask))  # (M, D)
    return items["item"].tolist(), vectors


def _mapping(value: Any) -> dict[str, str] | None:
    """A column mapping of a ``read_table`` source (``data=csv``); None for other sources."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else None
