"""Ranking losses over (B, C) candidate scores, column 0 the positive (:class:`PairBatch`).

A loss term is called as ``term(scores, batch) -> {"loss": scalar, ...named parts}``; the
training task sums the terms with weights (:class:`LossSum`). Models never hold losses.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.data.batch import PairBatch, TrainBatch, layout_error


def _per_row_only(batch: TrainBatch, name: str) -> PairBatch:
    """These losses read column 0 of per-row candidates as the positive: a PairBatch only."""
    if not isinstance(batch, PairBatch):
        raise layout_error(
            f"loss={name}",
            batch,
            PairBatch,
            "it reads column 0 of per-row candidates as the positive; for session-parallel or "
            "next-item training use loss=xe (or loss=bprmax)",
        )
    return batch


class BCELoss(nn.Module):
    """Pointwise binary cross-entropy on the positive and each sampled negative (NCF's log loss).

    Every candidate counts as one instance, as in He et al. 2017 where each positive comes with
    ``num_negatives`` negative instances.
    """

    def forward(self, scores: Tensor, batch: TrainBatch) -> dict[str, Tensor]:
        pairs = _per_row_only(batch, "bce")
        loss = F.binary_cross_entropy_with_logits(scores, pairs.labels)  # mean over B * C
        return {"loss": loss}


class BPRLoss(nn.Module):
    """Bayesian personalised ranking: ``-log σ(s_pos - s_neg)`` averaged over each positive's
    sampled negatives (Rendle et al. 2009)."""

    def forward(self, scores: Tensor, batch: TrainBatch) -> dict[str, Tensor]:
        _per_row_only(batch, "bpr")
        if scores.shape[1] < 2:
            raise ValueError("BPR needs sampled negatives: set datamodule.num_negatives >= 1")
        margin = scores[:, :1] - scores[:, 1:]  # (B, C - 1)
        return {"loss": -F.logsigmoid(margin).mean()}


class LossSum(nn.Module):
    """Weighted sum of named loss terms; logs each term's parts as ``<name>/<part>``.

    Args:
        terms: name -> loss term.
        weights: name -> weight (default 1.0 for names not given).
    """

    def __init__(
        self, terms: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        if not terms:
            raise ValueError("loss.terms: expected at least one loss term")
        self.terms = nn.ModuleDict(dict(terms))
        weights = dict(weights or {})
        unknown = set(weights) - set(self.terms)
        if unknown:
            raise ValueError(f"loss.weights names unknown term(s) {sorted(unknown)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.terms}

    def forward(self, scores: Tensor, batch: TrainBatch) -> dict[str, Tensor]:
        total = torch.zeros((), device=scores.device)
        parts: dict[str, Tensor] = {}
        for name, term in self.terms.items():
            out = term(scores, batch)
            total = total + self.weights[name] * out["loss"]
            parts.update({f"{name}/{key}": value.detach() for key, value in out.items()})
        return {"loss": total, **parts}
