"""BCE / BPR / LossSum on hand-worked cases, and the loss-at-init check for the NCF models."""

from __future__ import annotations

import math

import pytest
import torch

from hybridrec.data.batch import BatchLayoutError, PairBatch, SessionBatch
from hybridrec.lit import adapter
from hybridrec.losses import BCELoss, BPRLoss, LossSum
from hybridrec.nn import GMF, MF, MLP, NeuMF

LOG2 = 0.6931471805599453


def _batch(scores: torch.Tensor, labels: torch.Tensor | None = None) -> PairBatch:
    rows, cols = scores.shape
    items = torch.arange(1, cols + 1).expand(rows, -1)
    if labels is None:  # the positive in column 0
        labels = (torch.arange(cols) == 0).float().expand(rows, -1)
    return PairBatch(users=torch.zeros(rows, dtype=torch.long), items=items, labels=labels)


def test_bce_hand_case() -> None:
    scores = torch.tensor([[2.0, -1.0]])
    out = BCELoss()(scores, _batch(scores, torch.tensor([[1.0, 0.0]])))
    assert set(out) == {"loss"}
    # mean(log(1 + e^-2), log(1 + e^-1)) = mean(0.126928..., 0.313261...)
    assert out["loss"].item() == pytest.approx(0.22009484928059775, rel=1e-6)


def test_bce_averages_over_every_candidate() -> None:
    # two rows x 3 candidates: the mean is over all 6 instances
    scores = torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    out = BCELoss()(scores, _batch(scores, labels))
    # 4 x log(2) + log(1 + e^-2) + log(1 + e^-1), over 6
    expected = (4 * LOG2 + 0.1269280110429726 + 0.31326168751822286) / 6
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_a_pair_batch_always_has_labels() -> None:
    with pytest.raises(TypeError, match="labels"):
        PairBatch(users=torch.zeros(1, dtype=torch.long), items=torch.ones(1, 2, dtype=torch.long))  # type: ignore[call-arg]


@pytest.mark.parametrize("loss", [BCELoss(), BPRLoss()])
def test_per_row_losses_refuse_a_session_batch(loss: torch.nn.Module) -> None:
    """Column 0 is no positive in a SessionBatch: the error names the type the loss reads."""
    batch = SessionBatch(
        users=torch.zeros(2, dtype=torch.long),
        items=torch.tensor([[5], [7]]),
        negatives=torch.tensor([9]),
        column_logq=torch.zeros(3),
        session_inputs=torch.ones(2, dtype=torch.long),
        session_slots=torch.arange(2),
        session_starts=torch.zeros(2, dtype=torch.bool),
    )
    with pytest.raises(
        BatchLayoutError, match="reads a batch of type PairBatch, but was given a SessionBatch"
    ):
        loss(torch.zeros(2, 3), batch)


def test_bpr_hand_case() -> None:
    scores = torch.tensor([[2.0, -1.0]])
    out = BPRLoss()(scores, _batch(scores))
    assert out["loss"].item() == pytest.approx(0.04858735157374196, rel=1e-6)  # -log sigmoid(3)


def test_bpr_averages_over_negatives() -> None:
    scores = torch.tensor([[1.0, 0.0, 2.0]])  # margins +1 and -1
    out = BPRLoss()(scores, _batch(scores))
    # mean(log(1 + e^-1), log(1 + e^1))
    assert out["loss"].item() == pytest.approx(0.8132616875182228, rel=1e-6)


def test_bpr_without_negatives_raises() -> None:
    scores = torch.tensor([[1.0], [2.0]])
    with pytest.raises(ValueError, match="negatives"):
        BPRLoss()(scores, _batch(scores))


def test_loss_sum_weights_and_part_names() -> None:
    scores = torch.tensor([[2.0, -1.0]], requires_grad=True)
    batch = _batch(scores.detach(), torch.tensor([[1.0, 0.0]]))
    loss = LossSum({"ranking": BCELoss(), "pair": BPRLoss()}, weights={"pair": 0.5})
    out = loss(scores, batch)
    assert set(out) == {"loss", "ranking/loss", "pair/loss"}
    assert out["ranking/loss"].item() == pytest.approx(0.22009484928059775, rel=1e-6)
    assert out["pair/loss"].item() == pytest.approx(0.04858735157374196, rel=1e-6)
    # "ranking" keeps the default weight 1.0
    expected = 0.22009484928059775 + 0.5 * 0.04858735157374196
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert not out["ranking/loss"].requires_grad and not out["pair/loss"].requires_grad
    out["loss"].backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()


def test_loss_sum_single_term_part_is_named_ranking_loss() -> None:
    scores = torch.tensor([[2.0, -1.0]])
    out = LossSum({"ranking": BCELoss()})(scores, _batch(scores, torch.tensor([[1.0, 0.0]])))
    assert set(out) == {"loss", "ranking/loss"}
    assert out["loss"].item() == pytest.approx(out["ranking/loss"].item())


def test_loss_sum_rejects_unknown_weight_and_empty_terms() -> None:
    with pytest.raises(ValueError, match="unknown term"):
        LossSum({"ranking": BCELoss()}, weights={"rankng": 2.0})
    with pytest.raises(ValueError, match="at least one"):
        LossSum({})


@pytest.mark.parametrize("model_cls", [MF, GMF, MLP, NeuMF])
def test_loss_at_init_is_log2(model_cls: type[torch.nn.Module]) -> None:
    """A fresh model knows nothing: on 1 positive + 1 negative its BCE is about log(2)."""
    torch.manual_seed(0)
    n_users, n_items = 50, 40
    model = model_cls(n_users, n_items)
    users = torch.randint(0, n_users, (256,))
    items = torch.randint(1, n_items + 1, (256, 2))
    labels = torch.tensor([[1.0, 0.0]]).expand(256, -1)
    batch = PairBatch(users=users, items=items, labels=labels)
    with torch.no_grad():
        loss = BCELoss()(adapter.scores(model, batch), batch)["loss"].item()
    assert loss == pytest.approx(math.log(2), abs=0.05)
