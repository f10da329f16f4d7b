"""DotScorer: how a factorised model turns a user vector and item vectors into scores.

    score(u, i) = <u, v_i> + b_i (+ b_u + b)        dot product, optional biases (MF)
    score(u, i) = cos(u, v_i) / temperature          cosine (UniSRec); no biases

The user-side terms (user bias, global bias) do not change a user's ranking, but they change
the pointwise losses (BCE), so MF keeps them. ``score_all`` is one matrix product against the
whole catalogue: the factorised models' fast full ranking and exportable item matrix.

:class:`NeuMFScorer` is the non-factorised alternative with the same methods: a GMF + MLP head on
the two vectors.

Shapes: B = batch rows, C = candidates per row, N = n_items + 1 (item 0 is padding), D = vector
size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DotScorer(nn.Module):
    """Args:
    temperature: None = dot product; a float = cosine similarity / temperature.
    n_items: give it for a learned item bias (N rows, zero-initialised).
    n_users: give it for a learned user bias and a global bias (zero-initialised).
    """

    def __init__(
        self,
        temperature: float | None = None,
        n_items: int | None = None,
        n_users: int | None = None,
    ) -> None:
        super().__init__()
        if temperature is not None and temperature <= 0:
            raise ValueError(f"model.temperature={temperature}: expected > 0 or null")
        if temperature is not None and (n_items is not None or n_users is not None):
            raise ValueError("model: a cosine scorer (temperature) takes no biases")
        self.temperature = temperature
        self.user_bias = nn.Embedding(n_users, 1) if n_users is not None else None
        self.item_bias = nn.Embedding(n_items + 1, 1) if n_items is not None else None
        self.global_bias = nn.Parameter(torch.zeros(1)) if n_users is not None else None
        for table in (self.user_bias, self.item_bias):
            if table is not None:
                nn.init.zeros_(table.weight)

    def users(self, user_vectors: Tensor) -> Tensor:
        """(..., D) user vectors as they meet the items (normalised / temperature if cosine)."""
        if self.temperature is None:
            return user_vectors
        return F.normalize(user_vectors, dim=-1) / self.temperature

    def items(self, item_vectors: Tensor) -> Tensor:
        """(..., D) item vectors as they meet the users (unit length if cosine)."""
        if self.temperature is None:
            return item_vectors
        return F.normalize(item_vectors, dim=-1)

    def _user_terms(self, users: Tensor) -> Tensor | None:
        if self.user_bias is None or self.global_bias is None:
            return None
        return self.user_bias(users) + self.global_bias  # (B, 1)

    def score(
        self, user_vectors: Tensor, item_vectors: Tensor, users: Tensor, items: Tensor
    ) -> Tensor:
        """user_vectors (B, D), item_vectors (B, C, D), users (B,), items (B, C) -> (B, C)."""
        scores = (self.users(user_vectors).unsqueeze(1) * self.items(item_vectors)).sum(-1)
        user_terms = self._user_terms(users)
        if user_terms is not None:
            scores = scores + user_terms
        if self.item_bias is not None:
            scores = scores + self.item_bias(items).squeeze(-1)
        return scores  # (B, C)

    def score_rows(
        self, user_vectors: Tensor, item_table: Tensor, items: Tensor | None = None
    ) -> Tensor:
        """(R, D) vectors of no particular user (sequence positions), (N, D) -> (R, N): the
        item-side terms only. ``items`` (S,): the table holds the vectors of these items only,
        (S, D) -> (R, S)."""
        scores = self.users(user_vectors) @ self.items(item_table).T
        if self.item_bias is not None:
            bias = self.item_bias.weight if items is None else self.item_bias(items)  # (N|S, 1)
            scores = scores + bias.T
        return scores

    def score_row_pairs(self, user_vectors: Tensor, item_vectors: Tensor, items: Tensor) -> Tensor:
        """(R, D) position vectors, (R, D) one item each, items (R,) -> (R,): row r against its
        own item, the item-side terms only (:meth:`score_rows` at that item's column)."""
        scores = (self.users(user_vectors) * self.items(item_vectors)).sum(-1)
        if self.item_bias is not None:
            scores = scores + self.item_bias(items).squeeze(-1)
        return scores

    def score_all(self, user_vectors: Tensor, item_table: Tensor, users: Tensor) -> Tensor:
        """user_vectors (B, D), item_table (N, D), users (B,) -> (B, N)."""
        scores = self.users(user_vectors) @ self.items(item_table).T
        user_terms = self._user_terms(users)
        if user_terms is not None:
            scores = scores + user_terms
        if self.item_bias is not None:
            scores = scores + self.item_bias.weight.T  # (1, N)
        return scores  # (B, N)


class NeuMFScorer(nn.Module):
    """A NeuMF-style head on a user vector and an item vector (He et al. 2017, Eq. 12):

        score(u, v) = h · [u ⊙ v ; MLP([u ; v])]

    Not factorised: ranking the whole catalogue runs the MLP on every (user, item) pair, in
    chunks of items so that no (B, N, D) tensor is built. Train it on sampled candidates (the
    pair datamodule); full-catalogue cross-entropy would run the MLP B × N times per step.

    Args:
        dim: D of the user and item vectors.
        hidden: the MLP's layer sizes after the 2D input (NCF's tower halves each layer).
        dropout: dropout between the MLP's layers.
        chunk: pairs per chunk in ``score_all`` / ``score_rows`` (B × items per chunk).
    """

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...] | list[int] = (64, 32),
        dropout: float = 0.0,
        chunk: int = 1 << 20,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("model.head_layers: expected at least one MLP layer size")
        layers: list[nn.Module] = []
        width = 2 * dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(dim + width, 1)
        self.chunk = chunk
        self.user_bias: nn.Embedding | None = None  # no ID biases: nothing for the L2 term
        self.item_bias: nn.Embedding | None = None

    def _pairs(self, user_vectors: Tensor, item_vectors: Tensor) -> Tensor:
        """(..., D) and (..., D), broadcast together -> (...) scores."""
        user_vectors, item_vectors = torch.broadcast_tensors(user_vectors, item_vectors)
        gmf = user_vectors * item_vectors  # (..., D)
        mlp = self.mlp(torch.cat([user_vectors, item_vectors], -1))  # (..., H)
        return self.out(torch.cat([gmf, mlp], -1)).squeeze(-1)

    def score(
        self, user_vectors: Tensor, item_vectors: Tensor, users: Tensor, items: Tensor
    ) -> Tensor:
        """user_vectors (B, D), item_vectors (B, C, D) -> (B, C)."""
        return self._pairs(user_vectors.unsqueeze(1), item_vectors)

    def score_row_pairs(self, user_vectors: Tensor, item_vectors: Tensor, items: Tensor) -> Tensor:
        """(R, D), (R, D) -> (R,): row r against its own item."""
        return self._pairs(user_vectors, item_vectors)

    def score_rows(
        self, user_vectors: Tensor, item_table: Tensor, items: Tensor | None = None
    ) -> Tensor:
        """(R, D), (N, D) -> (R, N), the MLP run on chunks of items (``items`` unused: no
        biases)."""
        step = max(1, self.chunk // max(1, user_vectors.shape[0]))
        parts = [
            self._pairs(user_vectors.unsqueeze(1), item_table[lo : lo + step].unsqueeze(0))
            for lo in range(0, item_table.shape[0], step)
        ]
        return torch.cat(parts, 1)  # (R, N)

    def score_all(self, user_vectors: Tensor, item_table: Tensor, users: Tensor) -> Tensor:
        """user_vectors (B, D), item_table (N, D), users (B,) -> (B, N)."""
        return self.score_rows(user_vectors, item_table)


#: what a FactorizedModel scores with
Scorer = DotScorer | NeuMFScorer
