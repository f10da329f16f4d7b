"""FactorizedModel: user towers × an item tower through a :class:`DotScorer`.

The one contract every factorised model offers (MF, TextRec, SeqRec, the hybrid), in tensors
(written as :class:`hybridrec.nn.protocol.VectorModel`, which mypy holds this class to):

    user_vectors(users, history, lengths)   -> (B, D)
    item_vectors(items) / item_vectors()    -> (..., D) / (N, D) the whole catalogue
    score(users, items, history, lengths)   -> (B, C)
    score_all(users, history, lengths)      -> (B, N), column 0 (padding) left to the caller

``score_all`` equals ``score`` on the same candidates, and both equal the scorer applied to
``user_vectors`` and ``item_vectors``: full ranking, the judgment loss and export treat every
factorised model alike. The user vector is the sum of the user parts present: a user ID tower
and/or a history tower (which reads the history through the model's own item table).

Shapes: B = batch rows, C = candidates per row, T = history width, R = positions with a next-item
target, N = n_items + 1 (item 0 is padding), D = vector size.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from hybridrec.nn.scoring import Scorer
from hybridrec.nn.towers import GRUTower, HistoryTower, ItemIdTower, UserIdTower, catalogue


class FactorizedModel(nn.Module):
    """Args:
    n_users, n_items: sizes from the data spec.
    items: the item tower: ``items (...) -> (..., D)`` and ``all() -> (N, D)``.
    scorer: combines user and item vectors.
    user_id: a user ID tower ``users (B,) -> (B, D)``, or None.
    history: a history tower ``(history (B, T), lengths (B,), item_table (N, D)) -> (B, D)``
        (with ``positions(...) -> (B, T', D)`` for next-item training), or None.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        items: nn.Module,
        scorer: Scorer,
        user_id: nn.Module | None = None,
        history: nn.Module | None = None,
        user_gate: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if user_id is None and history is None:
            raise ValueError("model: a user ID tower, a history tower, or both are needed")
        self.n_users, self.n_items = n_users, n_items
        self.items, self.scorer = items, scorer
        self.user_id, self.history = user_id, history
        self.user_gate = user_gate  # (..., 2D) -> (..., 1) logit; None: the parts are summed

    def combine_users(self, id_part: Tensor | None, history_part: Tensor | None) -> Tensor:
        """(..., D) user ID and history vectors -> the user vector: their sum, or with a user
        gate ``h = sigmoid(gate([id; history]))``, ``h * id + (1 - h) * history``."""
        if id_part is None or history_part is None:
            part = id_part if id_part is not None else history_part
            assert part is not None
            return part
        if self.user_gate is None:
            return id_part + history_part
        share = torch.sigmoid(self.user_gate(torch.cat([id_part, history_part], -1)))
        return share * id_part + (1 - share) * history_part

    # -- vectors ------------------------------------------------------------------------------
    def item_vectors(self, items: Tensor | None = None) -> Tensor:
        """items (...) -> (..., D); None -> the whole catalogue (N, D)."""
        return catalogue(self.items) if items is None else self.items(items)

    def user_vectors(
        self,
        users: Tensor,
        history: Tensor | None = None,
        lengths: Tensor | None = None,
        item_table: Tensor | None = None,
    ) -> Tensor:
        """(B, D): the user parts combined (:meth:`combine_users`). ``item_table`` (N, D) saves
        the history tower a second encoding of the catalogue when the caller has it already."""
        if self.history is not None:
            history, lengths = _require_history(history, lengths)
        vectors = self.user_from(users, history, lengths, item_table)
        assert vectors is not None  # a factorised model has a user ID or a history tower
        return vectors

    def user_from(
        self,
        users: Tensor | None,
        history: Tensor | None = None,
        lengths: Tensor | None = None,
        item_table: Tensor | None = None,
        traceable: bool = False,
    ) -> Tensor | None:
        """The one place a user vector (B, D) is built, from what is known: the user's index
        (``users``; None for a session or a user training never saw) and/or a history (B, T)
        with its ``lengths`` (B,). A tower the model lacks, or an input not given, is left out;
        None when the model reads neither (a served request it cannot answer). Evaluation,
        the served model and the traced scorer all call it; ``traceable`` runs a GRU history
        tower unpacked (:meth:`GRUTower.last_unpacked`: the same vectors, a trace-friendly
        path)."""
        id_part = self.user_id(users) if users is not None and self.user_id is not None else None
        history_part = None
        if history is not None and self.history is not None:
            assert lengths is not None, "a history needs its lengths"
            table = self.item_vectors() if item_table is None else item_table
            if traceable and isinstance(self.history, GRUTower):
                history_part = self.history.last_unpacked(history, lengths, table)
            else:
                history_part = self.history(history, lengths, table)
        if id_part is None and history_part is None:
            return None
        return self.combine_users(id_part, history_part)

    # -- scores -------------------------------------------------------------------------------
    def score(
        self,
        users: Tensor,
        items: Tensor,
        history: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """users (B,), items (B, C) -> (B, C)."""
        if self.history is not None:  # one catalogue encoding for the history and the items
            table = self.item_vectors()
            user_vectors = self.user_vectors(users, history, lengths, table)
            return self.scorer.score(user_vectors, table[items], users, items)
        return self.scorer.score(self.user_vectors(users), self.item_vectors(items), users, items)

    def score_all(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """users (B,) -> (B, N) scores of every item."""
        table = self.item_vectors()
        user_vectors = self.user_vectors(users, history, lengths, table)
        return self.scorer.score_all(user_vectors, table, users)

    def score_positions(
        self,
        history: Tensor,
        lengths: Tensor,
        targets: Tensor,
        users: Tensor | None = None,
        candidates: Tensor | None = None,
    ) -> Tensor:
        """Next-item training: history (B, T), lengths (B,), targets (B, T) (0 = no target),
        users (B,) (for a user ID tower) -> (R, N), one row per position with a target, against
        the whole catalogue; a row's user vector is the history tower's output at that
        position combined with the row's user ID vector (a model without a history tower: the
        user ID vector alone, so every ablation trains on the same windows).

        ``candidates`` (S,): negatives shared by every position (sampled softmax) -> (R, 1 + S),
        each row's target in column 0, then the S candidates: the full scores at those columns,
        without scoring the catalogue (the item vectors are gathered from the table; a text
        tower still encodes the catalogue once, which the history tower reads anyway)."""
        table = self.item_vectors()
        hidden: Tensor | None = None
        if self.history is not None:
            max_length = getattr(self.history, "max_length", None)
            if max_length is not None and targets.shape[1] > max_length:
                raise ValueError(
                    f"training windows hold {targets.shape[1]} items but model.max_length="
                    f"{max_length}: set datamodule.max_length <= model.max_length"
                )
            tower = cast(HistoryTower, self.history)
            hidden = tower.positions(history, lengths, table)  # (B, T, D)
        user_part = None
        if self.user_id is not None:
            if users is None:
                raise ValueError("this model has a user ID tower: next-item rows need users")
            user_part = self.user_id(users).unsqueeze(1).expand(-1, targets.shape[1], -1)
        rows = self.combine_users(user_part, hidden)  # (B, T, D)
        present = targets > 0
        if candidates is None:
            return self.scorer.score_rows(rows[present], table)  # (R, N)
        positions, positives = rows[present], targets[present]  # (R, D), (R,)
        positive = self.scorer.score_row_pairs(positions, table[positives], positives)  # (R,)
        shared = self.scorer.score_rows(positions, table[candidates], candidates)  # (R, S)
        return torch.cat([positive.unsqueeze(1), shared], 1)  # (R, 1 + S)

    def embedding_penalty(self, users: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the ID rows a training batch uses (users (B,), items (B, C)):
        ``mean_b |e_u|^2 + mean_bc |e_i|^2`` over the ID tables and the biases (Rendle et
        al.'s per-example regulariser, weighted by the task's ``embedding_l2``). Text towers
        have no per-item rows and add nothing."""
        penalty = torch.zeros((), device=items.device)
        user_tables = [self.user_id, self.scorer.user_bias]
        item_tables = [getattr(self.items, "ids", self.items), self.scorer.item_bias]
        for table, index in [(t, users) for t in user_tables] + [(t, items) for t in item_tables]:
            if isinstance(table, (nn.Embedding, UserIdTower, ItemIdTower)):
                penalty = penalty + table(index).pow(2).sum(-1).mean()
        return penalty


def _require_history(history: Tensor | None, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """(history (B, T), lengths (B,)); lengths counted from the history when not given."""
    if history is None:
        raise ValueError(
            "this model reads the user's history but the batch has none: use a sequence "
            "datamodule (datamodule=next_item or sequence), or a model without a history tower"
        )
    if lengths is None:
        lengths = (history > 0).sum(1)
    return history, lengths
