"""PairScorer: the contract of the non-factorised heads (MLP, NeuMF, GMF), in tensors.

    score(users (B,), items (B, C))  -> (B, C)
    score_all(users (B,))            -> (B, n_items + 1) scores of every item; column 0 padding

The same ``score`` / ``score_all`` names as :class:`hybridrec.nn.factorized.FactorizedModel`;
a model never computes a loss, and never reads a batch (the task's adapter unpacks each batch
type, :mod:`hybridrec.lit.adapter`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PairScorer(nn.Module):
    """Base for models that score (user, item) pairs: subclasses implement :meth:`score`.

    ``score_all`` evaluates every item in chunks of ``chunk_pairs`` (user, item) pairs so a
    non-factorised model (MLP, NeuMF) never builds a (B, N, D) tensor bigger than that.
    """

    n_items: int
    chunk_pairs: int = 1 << 22

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """users (B,), items (B, C) -> scores (B, C)."""
        raise NotImplementedError

    def score_all(self, users: Tensor) -> Tensor:
        """users (B,) -> (B, N + 1)."""
        all_items = torch.arange(self.n_items + 1, device=users.device)  # (N + 1,)
        rows_per_chunk = max(1, self.chunk_pairs // (self.n_items + 1))
        chunks = [
            self.score(part, all_items.expand(part.numel(), -1))
            for part in torch.split(users, rows_per_chunk)
        ]
        return torch.cat(chunks, dim=0)  # (B, N + 1)

    def embedding_penalty(self, users: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the embedding rows a training batch uses (users (B,), items
        (B, C)), per (user, candidate) pair: ``mean_b(|e_u|^2 + mean_c |e_c|^2)`` summed over
        the model's tables (biases included). Tables whose attribute name contains ``user`` are
        indexed by users, the others by candidate items. Rendle et al.'s per-example
        regulariser, for the task to weight (``RecLitModule(embedding_l2=...)``)."""
        penalty = torch.zeros((), device=users.device)
        for name, table in self.named_modules():
            if not isinstance(table, nn.Embedding):
                continue
            if "user" in name.rsplit(".", 1)[-1]:
                penalty = penalty + table(users).pow(2).sum(-1).mean()  # (B,) -> ()
            else:
                penalty = penalty + table(items).pow(2).sum(-1).mean()  # (B, C) -> ()
        return penalty
