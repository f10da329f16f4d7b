"""Plots a run logs as artifacts: a hybrid's gate (ID vs text share of each item vector) by
item popularity."""

from __future__ import annotations

from typing import Any

import torch

from hybridrec.tracking import MLflowLogger
from hybridrec.tracking.plots import log_gate_by_popularity


def log_explanations(logger: MLflowLogger, model: Any) -> None:
    """A hybrid's gate (ID vs text share of each item vector) by item popularity, as a PNG
    and a CSV under the run's ``explanations/`` artifacts."""
    gate_values = getattr(model, "gate_values", None)
    if not callable(gate_values):
        return
    was_training = model.training
    model.eval()
    with torch.no_grad():
        gates = gate_values()  # (N,) or None when the item side is not fused
    model.train(was_training)
    if gates is None:
        return
    log_gate_by_popularity(
        logger.experiment,
        str(logger.run_id),
        gates[1:].cpu().numpy(),  # item 0 is padding
        model.items.counts[1:].cpu().numpy(),
    )
