"""ExportedScorer: a trained model's full-ranking scores as one module TorchScript and ONNX can
trace, with the catalogue frozen in.

    factorised, no history tower   (users (B,))                          -> scores (B, N)
    factorised, history tower      (users (B,), history (B, T), lengths (B,)) -> scores (B, N)
    pair heads (GMF, MLP, NeuMF)   (users (B,))                          -> scores (B, N)

Column 0 is the padding item (its score is meaningless: callers mask it, as evaluation does).
The item vectors are computed once, in eval mode, and stored as a buffer (N, D): the text tower
is not part of the export, so the exported scorer needs neither the tokenizer nor the item text
(new items are added by re-encoding, not by retraining).

History towers, traced: the GRU tower's packed sequence becomes the same computation without
packing (each history left-aligned, the GRU run over it, the output taken at the last real
item: outputs before the padding do not depend on it), so any width T traces and exports with a
dynamic history axis. The self-attention tower builds its causal mask from the width, which a
trace freezes: its export takes histories of exactly ``max_length`` columns (left-padded), and
the exported metadata says so.

A composed hybrid with a fitted repeat offset r adds r at the columns of the history's items
(one scatter, as :meth:`hybridrec.nn.composed.ComposedHybrid.score_all`; r is a constant of the
trace).

Shapes: B = rows, T = history width, N = n_items + 1, D = vector size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.errors import ExportError
from hybridrec.nn.base import PairScorer
from hybridrec.nn.composed import ComposedHybrid, repeat_mask
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.towers import GRUTower, SelfAttentionTower


def _user(
    model: FactorizedModel, users: Tensor, history: Any, lengths: Any, table: Tensor
) -> Tensor:
    """A factorised model's user vector (B, D), built by the model (:meth:`user_from`) along
    its traceable path."""
    vectors = model.user_from(users, history, lengths, table, traceable=True)
    assert vectors is not None
    return vectors


def _history_kind(towers: list[nn.Module]) -> tuple[str, int | None]:
    """("users" | "history", fixed width or None) for the history towers of a model."""
    width: int | None = None
    for tower in towers:
        if isinstance(tower, SelfAttentionTower):
            if width is not None and width != tower.max_length:
                raise ExportError("export: parts with attention towers of different max_length")
            width = tower.max_length
        elif not isinstance(tower, GRUTower):
            raise ExportError(f"export: no traced path for the {type(tower).__name__}")
    return ("history" if towers else "users"), width


class ExportedScorer(nn.Module):
    """Args:
    model: a trained :class:`FactorizedModel` or :class:`PairScorer` (put in eval mode).
    new_items: (M, D) vectors of products added after training (their text tower outputs),
        appended to the catalogue as columns N, N + 1, ...

    ``inputs`` names the forward's inputs; ``fixed_width`` is the history width the export
    needs (None: any width)."""

    def __init__(self, model: nn.Module, new_items: Tensor | None = None) -> None:
        super().__init__()
        model.eval()
        self.model = model
        self.kind = "pairs"
        self.fixed_width: int | None = None
        self.n_parts = 0
        self.repeat = 0.0
        if isinstance(model, ComposedHybrid):  # one dot product of the parts' concatenated vectors
            with torch.no_grad():
                table = model.item_vectors().detach().clone()  # (N, D)
                for k, part in enumerate(model.parts):  # what the history towers read
                    assert isinstance(part, FactorizedModel)
                    self.register_buffer(f"part_table_{k}", part.item_vectors().detach().clone())
            if new_items is not None:
                table = torch.cat([table, new_items.detach().to(table.dtype)])
            self.register_buffer("item_table", table)
            self.register_buffer("all_items", torch.arange(table.shape[0]))
            self.n_parts = len(model.parts)
            self.repeat = model.repeat_value  # a constant of the trace
            towers = [p.history for p in model.parts if isinstance(p.history, nn.Module)]
            self.kind, self.fixed_width = _history_kind(towers)
        elif isinstance(model, FactorizedModel):
            with torch.no_grad():
                table = model.item_vectors().detach().clone()  # (N, D)
            if new_items is not None:  # products added after training: rows N, N + 1, ...
                table = torch.cat([table, new_items.detach().to(table.dtype)])
            self.register_buffer("item_table", table)
            history = model.history
            if history is None:
                self.kind = "users"
            elif isinstance(history, GRUTower):
                self.kind = "history"
            elif isinstance(history, SelfAttentionTower):
                self.kind = "history"
                self.fixed_width = history.max_length
            else:
                raise ExportError(f"export: no traced path for the {type(history).__name__}")
            self.register_buffer("all_items", torch.arange(table.shape[0]))
        elif isinstance(model, PairScorer):
            if new_items is not None:
                raise ExportError("--add-items: a pair head has no item vectors to add to")
            self.register_buffer("all_items", torch.arange(int(model.n_items) + 1))
        else:
            raise ExportError(
                f"export: {type(model).__name__} scores a whole batch with state carried between "
                "batches (GRU4Rec, count baselines); only models with the tower contract "
                "(MF, TextRec, SeqRec, the hybrid) and the NCF pair heads export"
            )

        self.eval()  # an exporter restores the mode it found: eval, never the default train

    @property
    def inputs(self) -> list[str]:
        return ["users", "history", "lengths"] if self.kind == "history" else ["users"]

    def forward(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        model = self.model
        if isinstance(model, ComposedHybrid):
            raw = [
                _user(part, users, history, lengths, getattr(self, f"part_table_{k}"))
                for k, part in enumerate(model.parts)
                if isinstance(part, FactorizedModel)
            ]
            composed_table: Tensor = self.item_table  # type: ignore[assignment]
            read = lengths if self.kind == "history" else None  # user-history buckets
            scores = model.user_from_parts(raw, users, read) @ composed_table.T  # (B, N)
            if self.kind == "history" and self.repeat != 0.0:  # the history's items: + r
                assert history is not None
                scores = scores + self.repeat * repeat_mask(history, scores)
            return scores
        if not isinstance(model, FactorizedModel):
            # every (user, item) pair in one call: the models' own score_all works in chunks
            # sized by the batch, which a trace would freeze
            all_items: Tensor = self.all_items  # type: ignore[assignment]
            items = all_items.unsqueeze(0).expand(users.shape[0], -1)  # (B, N)
            return model.score(users, items)  # type: ignore[operator]
        table: Tensor = self.item_table  # type: ignore[assignment]
        if self.kind == "history":
            assert history is not None and lengths is not None
        else:
            history = lengths = None
        user = _user(model, users, history, lengths, table)
        if isinstance(model.scorer, DotScorer):
            return model.scorer.score_all(user, table, users)
        # a pair head (NeuMF): every item in one call, not in batch-sized chunks
        catalogue: Tensor = self.all_items  # type: ignore[assignment]
        items = torch.ones_like(users).unsqueeze(1) * catalogue.unsqueeze(0)  # (B, N)
        return model.scorer.score(user, table[items], users, items)


def example_inputs(scorer: ExportedScorer, batch: int = 2, width: int = 4) -> tuple[Any, ...]:
    """Inputs to trace with: users 0..batch-1, histories of real items (the first ones)."""
    users = torch.arange(batch)
    if scorer.kind != "history":
        return (users,)
    width = scorer.fixed_width or width
    history = (torch.arange(batch * width).view(batch, width) % 3) + 1  # (B, T) items 1..3
    history[0, : width // 2] = 0  # one left-padded row
    return users, history, (history > 0).sum(1)
