"""Vectorised negative sampling, checked against each user's known positives.

Positives are kept as one sorted tensor of keys ``user * (n_items + 1) + item``, so checking a
(B, K) block of candidates is one ``searchsorted`` — no Python loop over samples.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pair_keys(users: Tensor, items: Tensor, n_items: int) -> Tensor:
    """(…) user/item index tensors -> (…) int64 keys, unique per pair."""
    return users.long() * (n_items + 1) + items.long()


def sorted_isin(query: Tensor, sorted_keys: Tensor) -> Tensor:
    """Elementwise ``query in sorted_keys`` for a sorted 1-D key tensor. Same shape as query."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool)
    position = torch.searchsorted(sorted_keys, query).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[position] == query


class NegativeSampler:
    """Uniform item negatives that are not among the user's positives.

    Items are 1..n_items (0 is padding and never sampled), or only those in ``pool`` (item
    indices: the cold_items protocol keeps its cold items out of training, negatives included).
    Collisions with a positive are redrawn, vectorised, up to ``max_rounds`` times; a user who
    has interacted with nearly the whole catalogue can keep a few positives after that, which
    is counted in ``n_unresolved``.
    """

    def __init__(
        self,
        positive_keys: Tensor,
        n_items: int,
        max_rounds: int = 50,
        pool: Tensor | None = None,
    ) -> None:
        self.positive_keys = torch.sort(positive_keys.long()).values
        self.n_items = n_items
        self.max_rounds = max_rounds
        self.pool = pool.long() if pool is not None else None  # (M,) items to draw from
        self.n_unresolved = 0

    def to(self, device: torch.device | str) -> NegativeSampler:
        self.positive_keys = self.positive_keys.to(device)
        if self.pool is not None:
            self.pool = self.pool.to(device)
        return self

    def _draw(self, shape: tuple[int, ...], device: torch.device, generator) -> Tensor:
        if self.pool is None:
            return torch.randint(1, self.n_items + 1, shape, device=device, generator=generator)
        picks = torch.randint(0, self.pool.numel(), shape, device=device, generator=generator)
        return self.pool[picks]

    def sample(self, users: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """users (B,) -> negatives (B, k), each not a positive of its user."""
        shape = (users.shape[0], k)
        device = users.device
        negatives = self._draw(shape, device, generator)
        flat = negatives.view(-1)  # (B * k,)
        owners = users.long().repeat_interleave(k)  # (B * k,) the user of each draw
        # only the draws that hit a positive are re-checked in later rounds
        todo = torch.arange(flat.numel(), device=device)
        for _ in range(self.max_rounds):
            hit = sorted_isin(pair_keys(owners[todo], flat[todo], self.n_items), self.positive_keys)
            todo = todo[hit]
            if todo.numel() == 0:
                return negatives
            flat[todo] = self._draw((todo.numel(),), device, generator)
        hit = sorted_isin(pair_keys(owners[todo], flat[todo], self.n_items), self.positive_keys)
        self.n_unresolved += int(hit.sum())
        return negatives
