"""Agreement between a model's scores and marketers' held-out judgments.

Judgments come in groups (one rater, one context, one set of items shown together); only items
of one group are ever compared. For every pair (a, b) of a group, with the rater's scores r and
the model's scores s:

    pairwise agreement = share of pairs with r_a != r_b that the model orders as the rater did,
                         a model tie counting 1/2 (pairs the rater tied carry no preference)
    Kendall tau-b      = (C - D) / sqrt((n0 - n_r) (n0 - n_s)) per group, where C / D count
                         concordant / discordant pairs, n0 all pairs, n_r and n_s the pairs tied
                         by the rater and by the model; the groups' values are averaged with
                         weights n0 (groups whose tau-b is undefined, e.g. all scores tied, are
                         left out).

Both are 1 for a model that orders every group as its rater, 0.5 / 0 for a random one.

Shapes: Q = judgment rows, P = pairs (row indices (P, 2) into the rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Agreement:
    """agreement: share of rater-ordered pairs the model orders alike (ties 1/2);
    kendall_tau: the pair-weighted mean tau-b over groups; pairs: rater-ordered pairs counted;
    groups: groups with a defined tau-b."""

    agreement: float
    kendall_tau: float
    pairs: int
    groups: int


def agreement(scores: Tensor, targets: Tensor, groups: Tensor, pairs: Tensor) -> Agreement:
    """scores (Q,) the model's, targets (Q,) the rater's (higher = preferred), groups (Q,)
    group ids, pairs (P, 2) every pair of rows of one group (the data layer's
    ``within_group_pairs``)."""
    if pairs.numel() == 0:
        return Agreement(float("nan"), float("nan"), 0, 0)
    scores, targets = scores.double(), targets.double()
    a, b = pairs[:, 0], pairs[:, 1]
    rater = torch.sign(targets[a] - targets[b])  # (P,) +1 a preferred, -1 b, 0 tied
    model = torch.sign(scores[a] - scores[b])
    ordered = rater != 0
    n_ordered = int(ordered.sum())
    if n_ordered:
        hits = (rater * model)[ordered]  # +1 agree, 0 model tie, -1 disagree
        share = float(((hits + 1) / 2).mean())
    else:
        share = float("nan")

    # Kendall tau-b per group
    group_of_pair = groups[a]
    ids, group_index = torch.unique(group_of_pair, return_inverse=True)
    n_groups = ids.numel()

    def per_group(values: Tensor) -> Tensor:
        return torch.zeros(n_groups, dtype=torch.float64, device=values.device).index_add_(
            0, group_index, values.double()
        )

    n0 = per_group(torch.ones_like(rater))
    concordant_minus_discordant = per_group(rater * model)
    rater_ties = per_group((rater == 0).double())
    model_ties = per_group((model == 0).double())
    denominator = torch.sqrt((n0 - rater_ties) * (n0 - model_ties))
    defined = denominator > 0
    if bool(defined.any()):
        tau_b = concordant_minus_discordant[defined] / denominator[defined]
        weights = n0[defined]
        tau = float((tau_b * weights).sum() / weights.sum())
    else:
        tau = float("nan")
    return Agreement(share, tau, n_ordered, int(defined.sum()))
