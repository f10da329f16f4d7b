"""The export formats of an :class:`ExportedScorer`: TorchScript (traced) and ONNX (dynamic
batch; dynamic history width unless the scorer fixes it), and the item matrix for retrieval.

Both use the tracing paths of PyTorch (``torch.jit.trace`` and the TorchScript-based ONNX
exporter): ``torch.export`` specialises the GRU's time dimension to the example's width, which
the traced paths keep dynamic (measured: docs/decisions.md, "Export")."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from hybridrec.export.scorer import ExportedScorer, example_inputs


def to_torchscript(scorer: ExportedScorer, path: str | Path) -> Path:
    """Trace and save; load back with ``torch.jit.load(path)``."""
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(scorer, example_inputs(scorer), check_trace=False)
    torch.jit.save(traced, str(path))
    return path


def to_onnx(scorer: ExportedScorer, path: str | Path, opset: int = 17) -> Path:
    """One self-contained ``.onnx`` file; inputs named as ``scorer.inputs`` (int64), output
    ``scores`` (B, N) float32."""
    path = Path(path)
    axes: dict[str, dict[int, str]] = {"users": {0: "batch"}, "scores": {0: "batch"}}
    if scorer.kind == "history":
        axes["history"] = {0: "batch"} if scorer.fixed_width else {0: "batch", 1: "width"}
        axes["lengths"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings(), _no_fast_path():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scorer,
            example_inputs(scorer),
            str(path),
            input_names=scorer.inputs,
            output_names=["scores"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


@contextmanager
def _no_fast_path() -> Iterator[None]:
    """Transformer layers' fused inference kernel (``_transformer_encoder_layer_fwd``) has no
    ONNX form: export the plain layer ops (the same numbers)."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def item_matrix(scorer: ExportedScorer) -> np.ndarray | None:
    """(N, D) float32 item vectors of a factorised model (row 0 padding), for a retrieval
    index; None for pair heads (they have no item matrix)."""
    table = getattr(scorer, "item_table", None)
    return None if table is None else table.detach().cpu().numpy().astype(np.float32)
