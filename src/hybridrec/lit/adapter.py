"""The one place a RecBatch meets a model: unpack the batch layout, call the model's tensors.

Factorised models (:class:`FactorizedModel`) and pair heads (:class:`PairScorer`) take tensors
(users, candidate items, history, lengths); the faithful session-parallel GRU4Rec and the
count baselines keep their batch-level ``forward(batch)`` / ``score_all(batch)`` (GRU4Rec
carries hidden state across batches, which no tensor signature expresses).

    scores(model, batch)         training and sampled-evaluation scores (see RecBatch layouts)
    scores_all(model, batch)     (B, N + 1) every item, for full ranking
    embedding_penalty(model, batch)

An evaluation batch in RecBatch's prefix layout (each session once, its positions as rows)
reaches a model that reads it (``reads_prefix_layout``: GRU4Rec) as it is, every other model in
the per-row layout (``RecBatch.with_row_histories``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from hybridrec.data.batch import RecBatch
from hybridrec.nn.base import PairScorer
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.factorized import FactorizedModel


def _layout_for(model: Any, batch: RecBatch) -> RecBatch:
    if batch.prefix_sequences is None or getattr(model, "reads_prefix_layout", False):
        return batch
    return batch.with_row_histories()


def scores(model: Any, batch: RecBatch) -> Tensor:
    """Per-row layout (B, C); sequence layout (R, N + 1); shared layout: the model's own."""
    batch = _layout_for(model, batch)
    if isinstance(model, FactorizedModel):
        if batch.sequence_targets is not None:
            batch.require("history")
            assert batch.history is not None
            lengths = batch.history_lengths
            if lengths is None:
                lengths = (batch.history > 0).sum(1)
            return model.score_positions(
                batch.history,
                lengths,
                batch.sequence_targets,
                batch.users,
                candidates=batch.sequence_negatives,  # (S,) shared negatives, or None: all
            )
        batch.require("items")
        assert batch.items is not None
        return model.score(batch.users, batch.items, batch.history, batch.history_lengths)
    if isinstance(model, ComposedHybrid):  # evaluation only: its parts are trained apart
        batch.require("items")
        assert batch.items is not None
        return model.score(batch.users, batch.items, batch.history, batch.history_lengths)
    if isinstance(model, PairScorer):
        batch.require("items")
        assert batch.items is not None
        return model.score(batch.users, batch.items)
    return model(batch)


def scores_all(model: Any, batch: RecBatch) -> Tensor:
    """(B, N + 1) scores of every item; column 0 (padding) is left to the caller to mask."""
    batch = _layout_for(model, batch)
    if isinstance(model, (FactorizedModel, ComposedHybrid)):
        return model.score_all(batch.users, batch.history, batch.history_lengths)
    if isinstance(model, PairScorer):
        return model.score_all(batch.users)
    return model.score_all(batch)


def embedding_penalty(model: Any, batch: RecBatch) -> Tensor:
    """The model's L2 on the ID rows a per-row training batch uses."""
    batch.require("items")
    assert batch.items is not None
    return model.embedding_penalty(batch.users, batch.items)
