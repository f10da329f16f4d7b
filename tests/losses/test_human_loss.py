"""The human-rating loss terms on hand cases: Bradley-Terry, Crowd-BT, pointwise, lambda."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hybridrec.losses import JudgmentLoss


def _call(term: JudgmentLoss, pairs: torch.Tensor, rows: torch.Tensor | None = None, step: int = 0):  # noqa: ANN202
    n = pairs.shape[0]
    rows = torch.zeros(0) if rows is None else rows
    return term(
        pair_scores=pairs,
        pair_weight=torch.ones(n),
        pair_rater=torch.zeros(n, dtype=torch.long),
        row_scores=rows,
        row_targets=torch.zeros_like(rows),
        row_weight=torch.ones_like(rows),
        step=step,
    )


def test_bradley_terry_by_hand() -> None:
    term = JudgmentLoss(weight=0.5)
    pairs = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    out = _call(term, pairs)
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(1)))) / 2
    assert out["pairwise"].item() == pytest.approx(expected, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.5 * expected, rel=1e-6)


def test_reliability_weights_scale_each_pair() -> None:
    term = JudgmentLoss()
    pairs = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    out = term(
        pairs,
        torch.tensor([2.0, 0.0]),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(0),
        torch.zeros(0),
        torch.zeros(0),
    )
    assert out["pairwise"].item() == pytest.approx(-F.logsigmoid(torch.tensor(-1.0)).item())
    unweighted = JudgmentLoss(reliability="none")
    out = unweighted(
        pairs,
        torch.tensor([2.0, 0.0]),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(0),
        torch.zeros(0),
        torch.zeros(0),
    )
    assert out["pairwise"].item() == pytest.approx(-F.logsigmoid(torch.tensor(-1.0)).item())


def test_crowd_bt_mixes_both_orders_by_the_rater_reliability() -> None:
    term = JudgmentLoss(reliability="crowd_bt", n_raters=2, crowd_bt_init=0.8)
    margin = 1.5
    out = term(
        torch.tensor([[margin, 0.0]]),
        torch.ones(1),
        torch.tensor([1]),
        torch.zeros(0),
        torch.zeros(0),
        torch.zeros(0),
    )
    sig = 1 / (1 + math.exp(-margin))
    assert out["pairwise"].item() == pytest.approx(-math.log(0.8 * sig + 0.2 * (1 - sig)), rel=1e-5)
    reliability = term.rater_reliability()
    assert reliability is not None and reliability.shape == (2,)


def test_pointwise_regresses_through_the_learned_affine_map() -> None:
    term = JudgmentLoss(pairwise=0.0, pointwise=1.0)
    with torch.no_grad():
        term.scale.fill_(2.0)
        term.shift.fill_(1.0)
    out = term(
        torch.zeros(0, 2),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        torch.tensor([1.0, 0.0]),
        torch.tensor([3.0, 0.0]),
        torch.tensor([1.0, 0.5]),
    )
    # predictions 3 and 1: errors 0 and 1 (weight 0.5) -> (0 + 0.5) / 2
    assert out["pointwise"].item() == pytest.approx(0.25)


def test_empty_batch_is_zero_and_nan_free() -> None:
    for term in (JudgmentLoss(pointwise=1.0), JudgmentLoss(reliability="crowd_bt", n_raters=1)):
        out = _call(term, torch.zeros(0, 2))
        assert all(torch.isfinite(v).all() for v in out.values())
        assert out["loss"].item() == 0.0


def test_lambda_zero_and_the_warm_up() -> None:
    pairs = torch.tensor([[0.0, 1.0]])
    assert _call(JudgmentLoss(weight=0.0), pairs)["loss"].item() == 0.0
    ramp = JudgmentLoss(weight=2.0, warmup_steps=10)
    assert [ramp.lambda_at(s) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    full = _call(JudgmentLoss(weight=2.0), pairs)["loss"]
    assert _call(ramp, pairs, step=5)["loss"].item() == pytest.approx(full.item() / 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": -1.0}, "judgment.weight"),
        ({"pairwise": 0.0, "pointwise": 0.0}, "not both 0"),
        ({"reliability": "votes"}, "judgment.reliability"),
        ({"warmup_steps": -1}, "judgment.warmup_steps"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JudgmentLoss(**kwargs)
