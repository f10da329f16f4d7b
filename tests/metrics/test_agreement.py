"""Pairwise agreement and Kendall tau-b against hand-counted cases and scipy's tau-b."""

from __future__ import annotations

import math

import pytest
import torch

from hybridrec.data.batching.judgments import within_group_pairs
from hybridrec.metrics import agreement


def _agree(scores: list[float], targets: list[float], groups: list[int]):  # noqa: ANN202
    g = torch.tensor(groups)
    return agreement(torch.tensor(scores), torch.tensor(targets), g, within_group_pairs(g))


def test_perfect_and_reversed_order() -> None:
    same = _agree([3.0, 2.0, 1.0], [30, 20, 10], [0, 0, 0])
    assert (same.agreement, same.kendall_tau, same.pairs) == (1.0, 1.0, 3)
    reverse = _agree([1.0, 2.0, 3.0], [30, 20, 10], [0, 0, 0])
    assert (reverse.agreement, reverse.kendall_tau) == (0.0, -1.0)


def test_model_ties_count_half_and_rater_ties_carry_no_preference() -> None:
    # rater: a > b = c; model ties a and b, orders c below b
    out = _agree([1.0, 1.0, 0.0], [2, 1, 1], [0, 0, 0])
    # ordered pairs: (a, b) model tie -> 1/2; (a, c) agree -> 1; (b, c) rater tie: not counted
    assert out.pairs == 2
    assert out.agreement == pytest.approx(0.75)
    # tau-b by hand: C - D = 1 (a,c); n0 = 3, rater ties 1, model ties 1 -> 1 / sqrt(2 * 2)
    assert out.kendall_tau == pytest.approx(0.5)


def test_pairs_never_cross_groups() -> None:
    # across the groups the order is reversed, within each group it is right
    out = _agree([10.0, 9.0, 1.0, 0.0], [1, 0, 100, 99], [0, 0, 1, 1])
    assert (out.agreement, out.kendall_tau, out.pairs, out.groups) == (1.0, 1.0, 2, 2)


def test_tau_b_matches_scipy_on_random_groups() -> None:
    import scipy.stats as scipy_stats  # a dev dependency (pyproject): a missing one fails

    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (30,), generator=generator).double()
    targets = torch.randint(0, 5, (30,), generator=generator).double()
    groups = torch.arange(30) // 10
    out = agreement(scores, targets, groups, within_group_pairs(groups))
    taus = [
        scipy_stats.kendalltau(targets[g * 10 : g * 10 + 10], scores[g * 10 : g * 10 + 10])[0]
        for g in range(3)
    ]
    # equal-sized groups with the same number of pairs: the weighted mean is the plain mean
    assert out.kendall_tau == pytest.approx(sum(taus) / 3)


def test_no_pairs_gives_nan_not_an_error() -> None:
    out = _agree([1.0, 2.0], [1, 2], [0, 1])
    assert out.pairs == 0 and math.isnan(out.agreement) and math.isnan(out.kendall_tau)
