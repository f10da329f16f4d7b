"""CrossEntropyLoss / BPRMaxLoss on hand-worked cases in both training layouts.

Expected values are written out with plain ``math`` from the formulas, never with torch.
"""

from __future__ import annotations

import math

import pytest
import torch

from hybridrec.data.batch import PairBatch, SessionBatch, WindowBatch
from hybridrec.losses import BPRMaxLoss, CrossEntropyLoss, LossSum


def _lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bpr_max_row(target: float, negatives: list[float], score_reg: float) -> tuple[float, float]:
    """(ranking part, regularisation part) of one row, in plain python."""
    z = sum(math.exp(r) for r in negatives)
    s = [math.exp(r) / z for r in negatives]
    ranking = -math.log(sum(sj * _sigmoid(target - r) for sj, r in zip(s, negatives)) + 1e-24)
    reg = score_reg * sum(sj * r * r for sj, r in zip(s, negatives))
    return ranking, reg


def _per_row(scores: torch.Tensor, items: list[list[int]] | None = None) -> PairBatch:
    """Per-row layout: (B, 1 + K), the positive in column 0."""
    rows, cols = scores.shape
    grid = torch.tensor(items) if items is not None else torch.arange(1, cols + 1).repeat(rows, 1)
    labels = (torch.arange(grid.shape[1]) == 0).float().expand(rows, -1)
    return PairBatch(users=torch.zeros(rows, dtype=torch.long), items=grid, labels=labels)


def _shared(
    positives: list[int], negatives: list[int], column_logq: list[float] | None = None
) -> SessionBatch:
    """Shared layout: scores (B, B + S), row i's positive in column i (column_logq: 0 by
    default, uniform sampling)."""
    rows, columns = len(positives), len(positives) + len(negatives)
    return SessionBatch(
        users=torch.zeros(rows, dtype=torch.long),
        items=torch.tensor(positives).unsqueeze(1),
        negatives=torch.tensor(negatives, dtype=torch.long),
        column_logq=torch.zeros(columns) if column_logq is None else torch.tensor(column_logq),
        session_inputs=torch.ones(rows, dtype=torch.long),  # not read by the losses
        session_slots=torch.arange(rows),
        session_starts=torch.zeros(rows, dtype=torch.bool),
    )


# -- cross-entropy ------------------------------------------------------------------------------


def test_xe_per_row_hand_case() -> None:
    scores = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    out = CrossEntropyLoss()(scores, _per_row(scores))
    assert set(out) == {"loss"}
    expected = ((_lse(2, 0, -1) - 2) + (_lse(0, 1, 1) - 0)) / 2
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_xe_per_row_single_row() -> None:
    scores = torch.tensor([[0.0, 0.0]])
    out = CrossEntropyLoss()(scores, _per_row(scores))
    assert out["loss"].item() == pytest.approx(math.log(2), rel=1e-6)


def test_xe_shared_layout_positive_on_the_diagonal() -> None:
    # B = 2 rows, S = 1 shared negative: row 0's positive in column 0, row 1's in column 1
    scores = torch.tensor([[1.0, 2.0, 0.0], [0.5, 3.0, -1.0]])
    out = CrossEntropyLoss()(scores, _shared([5, 7], [9]))
    expected = ((_lse(1, 2, 0) - 1) + (_lse(0.5, 3, -1) - 3)) / 2
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_xe_shared_layout_single_row() -> None:
    scores = torch.tensor([[1.0, 0.0, -2.0]])  # B = 1, S = 2
    out = CrossEntropyLoss()(scores, _shared([5], [8, 9]))
    assert out["loss"].item() == pytest.approx(_lse(1, 0, -2) - 1, rel=1e-6)


def test_xe_logq_correction_subtracts_column_log_probability() -> None:
    scores = torch.tensor([[1.0, 2.0, 0.0], [0.5, 3.0, -1.0]])
    logq = [math.log(0.5), math.log(0.25), math.log(0.125)]
    batch = _shared([5, 7], [9], column_logq=logq)
    plain = CrossEntropyLoss()(scores, batch)["loss"].item()
    corrected = CrossEntropyLoss(logq=1.0)(scores, batch)["loss"].item()
    half = CrossEntropyLoss(logq=0.5)(scores, batch)["loss"].item()

    def expected(w: float) -> float:
        a = [1.0 - w * logq[0], 2.0 - w * logq[1], 0.0 - w * logq[2]]
        b = [0.5 - w * logq[0], 3.0 - w * logq[1], -1.0 - w * logq[2]]
        return ((_lse(*a) - a[0]) + (_lse(*b) - b[1])) / 2

    assert plain == pytest.approx(expected(0.0), rel=1e-6)
    assert corrected == pytest.approx(expected(1.0), rel=1e-6)
    assert half == pytest.approx(expected(0.5), rel=1e-6)
    # rarely sampled columns (the shared negative, log 1/8) gain weight: the loss grows here
    assert corrected > plain


def test_a_session_batch_always_carries_column_logq() -> None:
    with pytest.raises(TypeError, match="column_logq"):
        SessionBatch(  # type: ignore[call-arg]
            users=torch.zeros(2, dtype=torch.long),
            items=torch.tensor([[5], [7]]),
            negatives=torch.tensor([9]),
            session_inputs=torch.ones(2, dtype=torch.long),
            session_slots=torch.arange(2),
            session_starts=torch.zeros(2, dtype=torch.bool),
        )


def test_xe_logq_without_column_logq_is_a_no_op_per_row() -> None:
    # per-row negatives without column_logq are uniform: the correction shifts every column alike
    scores = torch.tensor([[2.0, 0.0, -1.0]])
    out = CrossEntropyLoss(logq=1.0)(scores, _per_row(scores))
    assert out["loss"].item() == pytest.approx(_lse(2, 0, -1) - 2, rel=1e-6)


def test_xe_logq_rejects_wrong_width() -> None:
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="columns"):
        CrossEntropyLoss(logq=1.0)(scores, _shared([5, 7], [9], column_logq=[0.0, 0.0]))


def test_xe_accidental_hits_shared_layout() -> None:
    # rows 0 and 1 share positive item 5, and the first shared negative is item 5 as well
    scores = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 2.0, 1.0]])
    batch = _shared([5, 5], [5, 9])
    kept = CrossEntropyLoss()(scores, batch)["loss"].item()
    removed = CrossEntropyLoss(remove_accidental_hits=True)(scores, batch)["loss"].item()
    # default keeps every column (the official behaviour)
    assert kept == pytest.approx(((_lse(1, 2, 3, 0) - 1) + (_lse(0.5, -1, 2, 1) + 1)) / 2)
    # removal: row 0 keeps columns {0, 3}, row 1 keeps columns {1, 3}
    assert removed == pytest.approx(((_lse(1, 0) - 1) + (_lse(-1, 1) + 1)) / 2, rel=1e-6)


def test_xe_accidental_hits_per_row_and_finite_gradient() -> None:
    scores = torch.tensor([[1.0, 4.0, 0.0]], requires_grad=True)
    batch = _per_row(scores.detach(), items=[[3, 3, 4]])  # the positive sampled again
    out = CrossEntropyLoss(remove_accidental_hits=True)(scores, batch)
    assert out["loss"].item() == pytest.approx(_lse(1, 0) - 1, rel=1e-6)
    out["loss"].backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert scores.grad[0, 1].item() == 0.0  # the removed column gets no gradient
    # d/ds0 = softmax_0 - 1 = -e^0 / (e^1 + e^0)
    assert scores.grad[0, 0].item() == pytest.approx(-1 / (math.e + 1), rel=1e-6)


def test_xe_gradient_is_finite_and_sums_to_zero_per_row() -> None:
    torch.manual_seed(0)
    scores = (10 * torch.randn(4, 6)).requires_grad_()
    batch = _shared([1, 2, 3, 4], [5, 6], column_logq=[-1.0] * 4 + [-5.0] * 2)
    CrossEntropyLoss(logq=1.0)(scores, batch)["loss"].backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert torch.allclose(scores.grad.sum(dim=1), torch.zeros(4), atol=1e-6)


# -- BPR-max ------------------------------------------------------------------------------------


def test_bpr_max_per_row_hand_case() -> None:
    scores = torch.tensor([[1.0, 0.0, 2.0]])
    out = BPRMaxLoss(score_reg=1.0)(scores, _per_row(scores))
    assert set(out) == {"loss", "score_reg"}
    # negatives 0 and 2: s = (1, e^2) / (1 + e^2) = (0.11920..., 0.88079...)
    s0, s1 = 1 / (1 + math.e**2), math.e**2 / (1 + math.e**2)
    ranking = -math.log(s0 * _sigmoid(1.0) + s1 * _sigmoid(-1.0))  # 0.99138...
    reg = s1 * 2.0**2  # only the score-2 negative has a non-zero square: 3.52318...
    assert reg == pytest.approx(3.5231883119115293)
    assert out["score_reg"].item() == pytest.approx(reg, rel=1e-6)
    assert out["loss"].item() == pytest.approx(ranking + reg, rel=1e-6)
    assert not out["score_reg"].requires_grad


def test_bpr_max_score_reg_weight_scales_the_regulariser() -> None:
    scores = torch.tensor([[1.0, 0.0, 2.0], [-0.5, 1.5, 0.5]])
    out = BPRMaxLoss(score_reg=0.25)(scores, _per_row(scores))
    rows = [_bpr_max_row(1.0, [0.0, 2.0], 0.25), _bpr_max_row(-0.5, [1.5, 0.5], 0.25)]
    assert out["score_reg"].item() == pytest.approx(sum(r for _, r in rows) / 2, rel=1e-6)
    assert out["loss"].item() == pytest.approx(sum(a + b for a, b in rows) / 2, rel=1e-6)


def test_bpr_max_single_negative_is_bpr_plus_reg() -> None:
    scores = torch.tensor([[2.0, -1.0]])
    out = BPRMaxLoss(score_reg=0.0)(scores, _per_row(scores))
    assert out["loss"].item() == pytest.approx(0.04858735157374196, rel=1e-6)  # -log sigmoid(3)
    assert out["score_reg"].item() == 0.0


def test_bpr_max_shared_layout() -> None:
    scores = torch.tensor([[1.0, 2.0, 0.0], [0.5, 3.0, -1.0]])
    out = BPRMaxLoss(score_reg=1.0)(scores, _shared([5, 7], [9]))
    # row 0: target column 0, negatives columns 1, 2; row 1: target column 1, negatives 0, 2
    rows = [_bpr_max_row(1.0, [2.0, 0.0], 1.0), _bpr_max_row(3.0, [0.5, -1.0], 1.0)]
    assert out["loss"].item() == pytest.approx(sum(a + b for a, b in rows) / 2, rel=1e-6)
    assert out["score_reg"].item() == pytest.approx(sum(r for _, r in rows) / 2, rel=1e-6)


def test_bpr_max_shared_layout_single_row() -> None:
    scores = torch.tensor([[1.0, 0.0, -2.0]])
    out = BPRMaxLoss()(scores, _shared([5], [8, 9]))
    ranking, reg = _bpr_max_row(1.0, [0.0, -2.0], 1.0)
    assert out["loss"].item() == pytest.approx(ranking + reg, rel=1e-6)


def test_bpr_max_elu_transforms_scores_first() -> None:
    scores = torch.tensor([[1.0, -1.0, 0.5]])
    out = BPRMaxLoss(score_reg=1.0, elu=0.5)(scores, _per_row(scores))
    neg = 0.5 * (math.exp(-1.0) - 1.0)  # elu(-1, alpha=0.5) = -0.31606...
    ranking, reg = _bpr_max_row(1.0, [neg, 0.5], 1.0)
    assert out["loss"].item() == pytest.approx(ranking + reg, rel=1e-6)
    assert out["score_reg"].item() == pytest.approx(reg, rel=1e-6)


def test_bpr_max_accidental_hits() -> None:
    scores = torch.tensor([[1.0, 5.0, 0.0]], requires_grad=True)
    batch = _per_row(scores.detach(), items=[[3, 3, 4]])
    kept = BPRMaxLoss()(scores, batch)["loss"].item()
    assert kept == pytest.approx(sum(_bpr_max_row(1.0, [5.0, 0.0], 1.0)), rel=1e-6)
    out = BPRMaxLoss(remove_accidental_hits=True)(scores, batch)
    # only item 4 (score 0) is left: -log sigmoid(1) + 1 * 0^2
    assert out["loss"].item() == pytest.approx(-math.log(_sigmoid(1.0)), rel=1e-6)
    out["loss"].backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert scores.grad[0, 1].item() == 0.0


def test_bpr_max_row_without_negatives_after_removal_contributes_zero() -> None:
    scores = torch.tensor([[1.0, 2.0], [1.0, 0.0]], requires_grad=True)
    batch = _per_row(scores.detach(), items=[[3, 3], [3, 4]])
    out = BPRMaxLoss(remove_accidental_hits=True)(scores, batch)
    # row 0 has no negative left (0), row 1 is -log sigmoid(1); mean over both rows
    assert out["loss"].item() == pytest.approx(-math.log(_sigmoid(1.0)) / 2, rel=1e-6)
    out["loss"].backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    assert scores.grad[0].abs().sum().item() == 0.0


def test_bpr_max_gradient_is_finite_on_large_scores() -> None:
    torch.manual_seed(0)
    scores = (50 * torch.randn(4, 6)).requires_grad_()
    out = BPRMaxLoss(elu=0.5)(scores, _shared([1, 2, 3, 4], [5, 6]))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert scores.grad is not None and torch.isfinite(scores.grad).all()


def test_bpr_max_without_negatives_raises() -> None:
    scores = torch.tensor([[1.0], [2.0]])
    with pytest.raises(ValueError, match="negative"):
        BPRMaxLoss()(scores, _per_row(scores))
    with pytest.raises(ValueError, match="negative"):
        BPRMaxLoss()(torch.tensor([[1.0]]), _shared([5], []))


def test_session_losses_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="logq"):
        CrossEntropyLoss(logq=-1.0)
    with pytest.raises(ValueError, match="score_reg"):
        BPRMaxLoss(score_reg=-1.0)
    with pytest.raises(ValueError, match="elu"):
        BPRMaxLoss(elu=-0.5)


def test_session_losses_in_loss_sum() -> None:
    scores = torch.tensor([[1.0, 0.0, 2.0]], requires_grad=True)
    batch = _per_row(scores.detach())
    out = LossSum({"ranking": BPRMaxLoss(), "xe": CrossEntropyLoss()})(scores, batch)
    assert set(out) == {"loss", "ranking/loss", "ranking/score_reg", "xe/loss"}
    out["loss"].backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()


def test_xe_sequence_layout_scores_only_the_training_columns() -> None:
    """Sequence layout: column k is item k; padding (0) and items kept out of training (cold)
    are never candidates, so the loss is the softmax over the remaining columns only."""
    torch.manual_seed(0)
    scores = torch.randn(3, 6)  # 3 target positions x items 0..5
    allowed = torch.tensor([True, True, True, False, True, True])  # item 3 is cold
    batch = WindowBatch(
        users=torch.tensor([0, 1]),
        history=torch.tensor([[1, 2], [0, 4]]),
        history_lengths=torch.tensor([2, 1]),
        sequence_targets=torch.tensor([[2, 5], [0, 1]]),
        train_columns=allowed,
    )
    keep = torch.tensor([1, 2, 4, 5])  # not padding, not cold
    targets = torch.tensor([2, 5, 1])
    expected = -torch.log_softmax(scores[:, keep], 1)[torch.arange(3), [1, 3, 0]].mean()
    assert torch.equal(batch.positive_columns(), targets)
    torch.testing.assert_close(CrossEntropyLoss()(scores, batch)["loss"], expected)
    with pytest.raises(ValueError, match="xe"):
        BPRMaxLoss()(scores, batch)


def test_a_batch_of_the_wrong_layout_names_the_expected_types() -> None:
    """Evaluation rows are no training batch: the error says which types the loss reads."""
    from hybridrec.data.batch import BatchLayoutError, RowEvalBatch
    from hybridrec.errors import HybridrecError

    rows = RowEvalBatch(users=torch.arange(2), items=torch.tensor([[1, 2], [3, 4]]))
    for loss in (CrossEntropyLoss(), BPRMaxLoss()):
        with pytest.raises(BatchLayoutError, match="PairBatch or SessionBatch or WindowBatch"):
            loss(torch.zeros(2, 2), rows)
    assert issubclass(BatchLayoutError, HybridrecError) and issubclass(BatchLayoutError, TypeError)


# -- next-item training with sampled negatives (sequence layout, scores (R, 1 + S)) ---------------
def _sampled_sequence(
    targets: list[list[int]], negatives: list[int], column_logq: torch.Tensor | None = None
) -> WindowBatch:
    """Sampled sequence layout: each position's target in column 0, then the shared negatives."""
    sequence_targets = torch.tensor(targets)
    return WindowBatch(
        users=torch.arange(sequence_targets.shape[0]),
        history=(sequence_targets > 0).long(),  # any non-padding inputs: only targets are read
        history_lengths=(sequence_targets > 0).sum(1),
        sequence_targets=sequence_targets,
        sequence_negatives=torch.tensor(negatives),
        column_logq=column_logq,
    )


SAMPLED_SCORES = [[2.0, 0.5, -1.0, 1.5], [0.0, 1.0, 0.3, -0.2], [1.2, -0.7, 2.2, 0.1]]


def test_xe_sampled_sequence_hand_case() -> None:
    """Three positions (targets 4, 7, 2), negatives [2, 5, 9] shared: softmax over each row's
    1 + 3 columns, the target in column 0; no logQ without column_logq (uniform)."""
    scores = torch.tensor(SAMPLED_SCORES)
    batch = _sampled_sequence([[0, 4, 7], [0, 0, 2]], [2, 5, 9])
    assert batch.sampled and batch.positive_columns().tolist() == [0, 0, 0]
    expected = sum(_lse(*row) - row[0] for row in SAMPLED_SCORES) / 3
    out = CrossEntropyLoss(logq=1.0)(scores, batch)["loss"]
    assert out.item() == pytest.approx(expected, rel=1e-6)
    # row 3's target (item 2) is also negative 1: dropping that accidental hit
    out = CrossEntropyLoss(remove_accidental_hits=True)(scores, batch)["loss"]
    rows = [SAMPLED_SCORES[0], SAMPLED_SCORES[1], [1.2, 2.2, 0.1]]
    expected = sum(_lse(*row) - row[0] for row in rows) / 3
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_xe_sampled_sequence_logq() -> None:
    """Popularity sampling: every column's log sampling weight (the target's too) is
    subtracted before the softmax."""
    scores = torch.tensor(SAMPLED_SCORES)
    logq = torch.tensor([[0.1, 0.4, 0.2, 0.9], [0.7, 0.4, 0.2, 0.9], [0.4, 0.4, 0.2, 0.9]])
    batch = _sampled_sequence([[0, 4, 7], [0, 0, 2]], [2, 5, 9], logq)
    for weight in (1.0, 0.5):
        corrected = [
            [s - weight * q for s, q in zip(row, qs, strict=True)]
            for row, qs in zip(SAMPLED_SCORES, logq.tolist(), strict=True)
        ]
        expected = sum(_lse(*row) - row[0] for row in corrected) / 3
        out = CrossEntropyLoss(logq=weight)(scores, batch)["loss"]
        assert out.item() == pytest.approx(expected, rel=1e-6)
    # scores of another width (the whole catalogue: the model did not read the negatives)
    for loss in (CrossEntropyLoss(), BPRMaxLoss()):
        with pytest.raises(ValueError, match="3 sampled negatives"):
            loss(scores[:, :3], batch)
        with pytest.raises(ValueError, match="candidates"):
            loss(torch.zeros(3, 31), batch)


def test_bpr_max_sampled_sequence_hand_case() -> None:
    scores = torch.tensor(SAMPLED_SCORES)
    batch = _sampled_sequence([[0, 4, 7], [0, 0, 2]], [2, 5, 9])
    parts = [_bpr_max_row(row[0], row[1:], 0.5) for row in SAMPLED_SCORES]
    out = BPRMaxLoss(score_reg=0.5)(scores, batch)
    ranking, reg = sum(p[0] for p in parts) / 3, sum(p[1] for p in parts) / 3
    assert out["loss"].item() == pytest.approx(ranking + reg, rel=1e-5)
    assert out["score_reg"].item() == pytest.approx(reg, rel=1e-5)
    # the accidental hit (row 3: target 2 = negative 2) leaves that row's other negatives
    out = BPRMaxLoss(score_reg=0.5, remove_accidental_hits=True)(scores, batch)
    parts[2] = _bpr_max_row(1.2, [2.2, 0.1], 0.5)
    expected = sum(p[0] + p[1] for p in parts) / 3
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
