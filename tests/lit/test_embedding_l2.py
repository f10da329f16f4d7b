"""The embedding L2 penalty: hand-checked on MF, wired into the training loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridrec.data.batch import BatchLayoutError, PairBatch, RowEvalBatch
from hybridrec.lit import RecLitModule
from hybridrec.lit.adapter import embedding_penalty
from hybridrec.losses import BCELoss, LossSum
from hybridrec.nn import MF, NeuMF


def _batch() -> PairBatch:
    return PairBatch(
        users=torch.tensor([0, 1]),
        items=torch.tensor([[1, 2], [3, 1]]),
        labels=torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
    )


def test_mf_penalty_matches_hand_computation() -> None:
    model = MF(n_users=2, n_items=3, embedding_dim=2, use_bias=True)
    scorer = model.scorer
    assert scorer.user_bias is not None and scorer.item_bias is not None
    with torch.no_grad():
        model.user_id.table.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.items.table.weight.copy_(
            torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 3.0], [2.0, 0.0]])
        )
        scorer.user_bias.weight.copy_(torch.tensor([[0.5], [0.0]]))
        scorer.item_bias.weight.copy_(torch.tensor([[0.0], [1.0], [0.0], [0.0]]))
    # users: |p0|^2 = 1, |p1|^2 = 4 -> mean 2.5
    # items: rows [1,2] -> 2, 9 ; [3,1] -> 4, 2 -> mean over 4 pairs = 17 / 4 = 4.25
    # user bias: 0.25, 0 -> 0.125 ; item bias: items 1,2,3,1 -> 1,0,0,1 -> 0.5
    expected = 2.5 + 4.25 + 0.125 + 0.5
    batch = _batch()
    assert model.embedding_penalty(batch.users, batch.items).item() == pytest.approx(expected)
    assert embedding_penalty(model, batch).item() == pytest.approx(expected)


def test_training_loss_adds_weighted_penalty() -> None:
    torch.manual_seed(0)
    model = NeuMF(n_users=2, n_items=3, gmf_dim=4, mlp_embedding_dim=4, hidden_dims=[4])
    loss = LossSum({"ranking": BCELoss()})
    plain = RecLitModule(model, loss, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    weighted = RecLitModule(
        model, loss, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), embedding_l2=0.5
    )
    for module in (plain, weighted):
        module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    batch = _batch()
    base = plain.training_step(batch, 0)
    total = weighted.training_step(batch, 0)
    penalty = embedding_penalty(model, batch).item()
    assert total.item() == pytest.approx(base.item() + 0.5 * penalty)


def test_penalty_needs_a_model_that_has_one() -> None:
    class NoTables(nn.Module):
        def forward(self, batch: PairBatch) -> torch.Tensor:
            return torch.zeros(1)

    with pytest.raises(ValueError, match="embedding_penalty"):
        RecLitModule(
            NoTables(), LossSum({"r": BCELoss()}), optimizer=torch.optim.SGD, embedding_l2=0.1
        )


def test_penalty_reads_a_pair_batch_only() -> None:
    model = MF(n_users=2, n_items=3, embedding_dim=2)
    rows = RowEvalBatch(users=torch.tensor([0, 1]), items=torch.tensor([[1, 2], [3, 1]]))
    with pytest.raises(BatchLayoutError, match="embedding_l2 reads a batch of type PairBatch"):
        embedding_penalty(model, rows)
