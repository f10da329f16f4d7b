"""The human-rating terms: make the model's ranking agree with marketers' judgments.

Given the model's scores ``s(c, i)`` of judged items in their judgment's context ``c``
(:mod:`hybridrec.nn.contexts` turns a context into a vector, the model's own scorer does the
rest, so the terms are model-agnostic):

    pairwise (Bradley-Terry)  w * -log sigma(s(c, i) - s(c, j))       i preferred to j
    pairwise (Crowd-BT)       -log(eta_r sigma(s_i - s_j) + (1 - eta_r) sigma(s_j - s_i))
                              eta_r = sigmoid(theta_r) a learned reliability of rater r
    pointwise                 w * (a s(c, i) + b - z)^2                z the rater-normalised score

``w`` is the rater's reliability weight from preparation (mean 1 over raters; see
docs/judgments.md). ``a``, ``b`` are learned (the scores live on the model's scale, the
normalised judgments on a z scale). Each part is a sum over the batch divided by the batch size,
so a low-weight rater contributes little even in a batch that holds only their pairs.

The total added to the training loss is ``lambda(step) * (pairwise_weight * pairwise +
pointwise_weight * pointwise)``, ``lambda(step) = lambda * min(1, step / warmup_steps)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RELIABILITY_MODES = ("weights", "crowd_bt", "none")
EVERYONE_MODES = ("mean_user", "learned")  # as hybridrec.nn.contexts


class JudgmentLoss(nn.Module):
    """Args:
    weight: lambda, the term's weight in the training loss; 0 switches it off exactly.
    warmup_steps: lambda rises linearly from 0 over this many optimiser steps (0: no warm-up).
    pairwise, pointwise: weights of the two parts inside the term (>= 0, not both 0).
    reliability: ``weights`` (the preparation's per-rater weights), ``crowd_bt`` (a learned
        reliability per rater in the pairwise part; the pointwise part keeps the weights) or
        ``none`` (every rater 1).
    n_raters: number of raters (for crowd_bt).
    crowd_bt_init: the starting eta of every rater (in (0.5, 1)).
    everyone, n_segments: how contexts become vectors (read by the training task, which owns
        the context offsets: :class:`hybridrec.nn.contexts.JudgmentContexts`).
    head: None (the term acts on the model's own scores, the joint term) or the
        :class:`hybridrec.nn.judgment_head.HeadSpec` of a judgment head that the term trains
        instead (``judgment.head``; docs/judgments.md). Read by the training task.
    """

    def __init__(
        self,
        weight: float = 1.0,
        warmup_steps: int = 0,
        pairwise: float = 1.0,
        pointwise: float = 0.0,
        reliability: str = "weights",
        n_raters: int = 0,
        crowd_bt_init: float = 0.9,
        everyone: str = "learned",
        n_segments: int = 0,
        head: Any = None,
    ) -> None:
        super().__init__()
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"judgment.weight={weight}: expected a finite number >= 0")
        if warmup_steps < 0:
            raise ValueError(f"judgment.warmup_steps={warmup_steps}: expected >= 0")
        if pairwise < 0 or pointwise < 0 or pairwise + pointwise == 0:
            raise ValueError(
                f"judgment.pairwise={pairwise}, judgment.pointwise={pointwise}: expected >= 0, "
                "not both 0"
            )
        if reliability not in RELIABILITY_MODES:
            raise ValueError(
                f"judgment.reliability={reliability!r}: expected one of {RELIABILITY_MODES}"
            )
        if reliability == "crowd_bt" and not 0.5 < crowd_bt_init < 1:
            raise ValueError(f"judgment.crowd_bt_init={crowd_bt_init}: expected in (0.5, 1)")
        if everyone not in EVERYONE_MODES:
            raise ValueError(f"judgment.everyone={everyone!r}: expected one of {EVERYONE_MODES}")
        if head is not None and weight == 0:
            raise ValueError(
                "judgment.head with judgment.weight=0: the head learns only from the term; "
                "give the term a weight > 0 (serving's lambda is chosen apart, at serving time)"
            )
        self.head = head
        self.everyone, self.n_segments = everyone, int(n_segments)
        self.weight, self.warmup_steps = float(weight), int(warmup_steps)
        self.pairwise, self.pointwise = float(pairwise), float(pointwise)
        self.reliability = reliability
        # pointwise: a s + b ~ z (learned; starts as the identity)
        self.scale = nn.Parameter(torch.ones(()))
        self.shift = nn.Parameter(torch.zeros(()))
        logit = math.log(crowd_bt_init / (1 - crowd_bt_init))
        self.rater_logit = (
            nn.Parameter(torch.full((max(n_raters, 1),), logit))
            if reliability == "crowd_bt"
            else None
        )

    def lambda_at(self, step: int) -> float:
        """lambda at optimiser step ``step`` (the warm-up ramp)."""
        if self.warmup_steps == 0:
            return self.weight
        return self.weight * min(1.0, step / self.warmup_steps)

    def rater_reliability(self) -> Tensor | None:
        """(n_raters,) the learned eta of each rater (crowd_bt), else None."""
        return None if self.rater_logit is None else torch.sigmoid(self.rater_logit.detach())

    def forward(
        self,
        pair_scores: Tensor,
        pair_weight: Tensor,
        pair_rater: Tensor,
        row_scores: Tensor,
        row_targets: Tensor,
        row_weight: Tensor,
        step: int = 0,
    ) -> dict[str, Tensor]:
        """pair_scores (P, 2): column 0 the preferred item; pair_weight, pair_rater (P,);
        row_scores, row_targets, row_weight (Q,). Returns ``loss`` (lambda-weighted) and the
        unweighted parts ``pairwise``, ``pointwise`` and ``lambda``."""
        device = pair_scores.device
        zero = torch.zeros((), device=device)
        lam = self.lambda_at(step)
        pair_part = point_part = zero
        if self.pairwise > 0 and pair_scores.shape[0] > 0:
            margin = pair_scores[:, 0] - pair_scores[:, 1]  # (P,)
            if self.rater_logit is not None:
                eta = self.rater_logit[pair_rater]
                # log(eta sigma(m) + (1 - eta) sigma(-m)), stably
                nll = -torch.logaddexp(
                    F.logsigmoid(eta) + F.logsigmoid(margin),
                    F.logsigmoid(-eta) + F.logsigmoid(-margin),
                )
            else:
                weight = pair_weight if self.reliability == "weights" else 1.0
                nll = -F.logsigmoid(margin) * weight
            pair_part = nll.sum() / margin.shape[0]
        if self.pointwise > 0 and row_scores.shape[0] > 0:
            predicted = self.scale * row_scores + self.shift
            squared = (predicted - row_targets).pow(2)
            if self.reliability != "none":
                squared = squared * row_weight
            point_part = squared.sum() / row_scores.shape[0]
        total = self.pairwise * pair_part + self.pointwise * point_part
        return {
            "loss": lam * total,
            "pairwise": pair_part.detach(),
            "pointwise": point_part.detach(),
            "lambda": torch.tensor(lam, device=device),
        }
