"""The one place a batch meets a model: dispatch on the batch's class, call the model's tensors.

Factorised models (:class:`FactorizedModel`) and pair heads (:class:`PairScorer`) take tensors
(users, candidate items, history, lengths); the faithful session-parallel GRU4Rec and the
count baselines keep their batch-level ``forward(batch)`` / ``score_all(batch)`` (GRU4Rec
carries hidden state across batches, which no tensor signature expresses).

    scores(model, batch)         training and sampled-evaluation scores:
                                   PairBatch                (B, 1 + K)  factorised, pair heads
                                   WindowBatch              (R, N + 1) or (R, 1 + S)  factorised
                                   RowEvalBatch (sampled)   (B, C)      every model
                                   SessionBatch             (B, B + S)  GRU4Rec's own forward
    scores_all(model, batch)     (B, N + 1) every item of an evaluation batch, for full ranking
    embedding_penalty(model, batch)   the L2 of the ID rows a PairBatch uses

A :class:`PrefixEvalBatch` (each session once, its positions as rows) reaches a model that
reads it (``reads_prefix_layout``: GRU4Rec) as it is, every other model as the
:class:`RowEvalBatch` of the same rows (``with_row_histories``). A batch of a layout the model
does not read raises :class:`~hybridrec.data.batch.BatchLayoutError`, naming what it expected.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from hybridrec.data.batch import (
    Batch,
    EvalBatch,
    PairBatch,
    PrefixEvalBatch,
    RowEvalBatch,
    WindowBatch,
    layout_error,
)
from hybridrec.nn.base import PairScorer
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.factorized import FactorizedModel


def _layout_for(model: Any, batch: Batch) -> Batch:
    if isinstance(batch, PrefixEvalBatch) and not getattr(model, "reads_prefix_layout", False):
        return batch.with_row_histories()
    return batch


def _candidates(model: Any, batch: Batch, *also: type) -> PairBatch | RowEvalBatch:
    """``batch`` when it holds per-row candidates (a PairBatch, or a RowEvalBatch with sampled
    ``items``), else a clear error naming what ``model`` reads (``also``: other types it
    reads, for the message)."""
    if isinstance(batch, PairBatch):
        return batch
    if isinstance(batch, RowEvalBatch):
        batch.require("items")
        return batch
    raise layout_error(type(model).__name__, batch, (PairBatch, *also, RowEvalBatch))


def _items(batch: PairBatch | RowEvalBatch) -> Tensor:
    assert batch.items is not None  # a PairBatch's always; a RowEvalBatch's checked above
    return batch.items


def scores(model: Any, batch: Batch) -> Tensor:
    """Training and sampled-evaluation scores (see the module doc)."""
    batch = _layout_for(model, batch)
    if isinstance(model, FactorizedModel):
        if isinstance(batch, WindowBatch):
            return model.score_positions(
                batch.history,
                batch.history_lengths,
                batch.sequence_targets,
                batch.users,
                candidates=batch.sequence_negatives,  # (S,) shared negatives, or None: all
            )
        rows = _candidates(model, batch, WindowBatch)
        return model.score(rows.users, _items(rows), rows.history, rows.history_lengths)
    if isinstance(model, ComposedHybrid):  # evaluation only: its parts are trained apart
        rows = _candidates(model, batch)
        return model.score(rows.users, _items(rows), rows.history, rows.history_lengths)
    if isinstance(model, PairScorer):
        rows = _candidates(model, batch)
        return model.score(rows.users, _items(rows))
    return model(batch)


def scores_all(model: Any, batch: Batch) -> Tensor:
    """(B, N + 1) scores of every item; column 0 (padding) is left to the caller to mask."""
    batch = _layout_for(model, batch)
    if isinstance(model, (FactorizedModel, ComposedHybrid)):
        if not isinstance(batch, RowEvalBatch):
            raise layout_error(type(model).__name__, batch, (RowEvalBatch, PrefixEvalBatch))
        return model.score_all(batch.users, batch.history, batch.history_lengths)
    if isinstance(model, PairScorer):
        if not isinstance(batch, EvalBatch):
            raise layout_error(type(model).__name__, batch, (RowEvalBatch, PrefixEvalBatch))
        return model.score_all(batch.users)
    return model.score_all(batch)


def embedding_penalty(model: Any, batch: Batch) -> Tensor:
    """The model's L2 on the ID rows a per-row training batch uses."""
    if not isinstance(batch, PairBatch):
        raise layout_error(
            "embedding_l2", batch, PairBatch, "the penalty is defined on per-row candidates"
        )
    return model.embedding_penalty(batch.users, batch.items)
