"""DotScorer: how a factorised model turns a user vector and item vectors into scores.

    score(u, i) = <u, v_i> + b_i (+ b_u + b)        dot product, optional biases (MF)
    score(u, i) = cos(u, v_i) / temperature          cosine (UniSRec); no biases

The user-side terms (user bias, global bias) do not change a user's ranking, but they change
the pointwise losses (BCE), so MF keeps them. ``score_all`` is one matrix product against the
whole catalogue: the factorised models' fast full ranking and exportable item matrix.

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

    def score_rows(self, user_vectors: Tensor, item_table: Tensor) -> Tensor:
        """(R, D) vectors of no particular user (sequence positions), (N, D) -> (R, N): the
        item-side terms only."""
        scores = self.users(user_vectors) @ self.items(item_table).T
        if self.item_bias is not None:
            scores = scores + self.item_bias.weight.T  # (1, N)
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
