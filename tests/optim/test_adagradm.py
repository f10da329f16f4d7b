"""AdagradM: dense steps against hand-worked values, lazy sparse rows, and a tiny training run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hybridrec.optim import AdagradM

LR, EPS = 0.1, 1e-6
GRADS = [0.5, 1.0, -2.0]  # the gradient fed at each of three steps


def _run_dense(momentum: float) -> list[float]:
    """The scalar parameter after each of three steps with the gradients in GRADS."""
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = AdagradM([p], lr=LR, momentum=momentum, eps=EPS)
    values = []
    for g in GRADS:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        values.append(p.item())
    return values


def test_dense_steps_without_momentum() -> None:
    # acc: 0.25, 1.25, 5.25; step = -lr * g / sqrt(acc + eps)
    s1 = -LR * 0.5 / math.sqrt(0.25 + EPS)  # -0.0999998...
    s2 = -LR * 1.0 / math.sqrt(1.25 + EPS)  # -0.0894427...
    s3 = -LR * -2.0 / math.sqrt(5.25 + EPS)  # +0.0872871...
    expected = [1.0 + s1, 1.0 + s1 + s2, 1.0 + s1 + s2 + s3]
    assert _run_dense(0.0) == pytest.approx(expected, rel=1e-12)
    assert expected[-1] == pytest.approx(0.8978447, abs=1e-7)


def test_dense_steps_with_momentum() -> None:
    s1 = -LR * 0.5 / math.sqrt(0.25 + EPS)
    s2 = -LR * 1.0 / math.sqrt(1.25 + EPS)
    s3 = -LR * -2.0 / math.sqrt(5.25 + EPS)
    m1 = s1
    m2 = 0.9 * m1 + s2
    m3 = 0.9 * m2 + s3
    expected = [1.0 + m1, 1.0 + m1 + m2, 1.0 + m1 + m2 + m3]
    assert _run_dense(0.9) == pytest.approx(expected, rel=1e-12)


def test_dense_state_holds_accumulator_and_momentum() -> None:
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = AdagradM([p], lr=LR, momentum=0.5, eps=EPS)
    p.grad = torch.tensor([3.0, -4.0], dtype=torch.float64)
    opt.step()
    p.grad = torch.tensor([1.0, 0.0], dtype=torch.float64)
    opt.step()
    state = opt.state[p]
    assert state["acc"].tolist() == pytest.approx([10.0, 16.0])
    m_first = [-LR * 3 / math.sqrt(9 + EPS), -LR * -4 / math.sqrt(16 + EPS)]
    m_second = [0.5 * m_first[0] - LR * 1 / math.sqrt(10 + EPS), 0.5 * m_first[1]]
    assert state["mom"].tolist() == pytest.approx(m_second, rel=1e-12)
    assert p.tolist() == pytest.approx([a + b for a, b in zip(m_first, m_second)], rel=1e-12)


def _embedding_pair(momentum: float) -> tuple[torch.nn.Parameter, AdagradM, torch.Tensor, AdagradM]:
    torch.manual_seed(0)
    init = torch.randn(6, 3, dtype=torch.float64)
    sparse_w = torch.nn.Parameter(init.clone())
    dense_w = torch.nn.Parameter(init.clone())
    kwargs = {"lr": LR, "momentum": momentum, "eps": EPS}
    return sparse_w, AdagradM([sparse_w], **kwargs), dense_w, AdagradM([dense_w], **kwargs)


def _step(weight: torch.nn.Parameter, opt: AdagradM, rows: list[int], sparse: bool) -> None:
    opt.zero_grad()
    idx = torch.tensor(rows)
    target = torch.arange(len(rows) * 3, dtype=torch.float64).reshape(len(rows), 3)
    loss = (F.embedding(idx, weight, sparse=sparse) * target).sum()
    loss.backward()
    assert weight.grad is not None and weight.grad.is_sparse == sparse
    opt.step()


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_sparse_step_matches_dense_on_touched_rows(momentum: float) -> None:
    sparse_w, sparse_opt, dense_w, dense_opt = _embedding_pair(momentum)
    start = sparse_w.detach().clone()
    rows = [1, 3, 1]  # row 1 twice: the sparse gradient is coalesced (summed) first
    _step(sparse_w, sparse_opt, rows, sparse=True)
    _step(dense_w, dense_opt, rows, sparse=False)
    assert torch.allclose(sparse_w, dense_w, rtol=0, atol=1e-12)
    for name in ["acc", "mom"] if momentum > 0 else ["acc"]:
        assert torch.allclose(sparse_opt.state[sparse_w][name], dense_opt.state[dense_w][name])
    untouched = [0, 2, 4, 5]
    assert torch.equal(sparse_w[untouched], start[untouched])
    assert not sparse_opt.state[sparse_w]["acc"][untouched].any()


def test_sparse_step_is_lazy_on_untouched_rows() -> None:
    """With momentum a dense step keeps moving every row; a sparse one touches only its rows."""
    sparse_w, sparse_opt, dense_w, dense_opt = _embedding_pair(0.5)
    _step(sparse_w, sparse_opt, [1, 3], sparse=True)
    _step(dense_w, dense_opt, [1, 3], sparse=False)
    after_first = sparse_w.detach().clone()
    state = {k: v.clone() for k, v in sparse_opt.state[sparse_w].items()}

    _step(sparse_w, sparse_opt, [2], sparse=True)
    _step(dense_w, dense_opt, [2], sparse=False)
    # row 2 had no history: sparse and dense agree there
    assert torch.allclose(sparse_w[2], dense_w[2], rtol=0, atol=1e-12)
    # rows 1 and 3: the dense optimiser applies their decayed momentum again, the sparse one not
    assert torch.equal(sparse_w[[0, 1, 3, 4, 5]], after_first[[0, 1, 3, 4, 5]])
    assert not torch.allclose(dense_w[[1, 3]], after_first[[1, 3]])
    for name in ["acc", "mom"]:
        now = sparse_opt.state[sparse_w][name]
        assert torch.equal(now[[0, 1, 3, 4, 5]], state[name][[0, 1, 3, 4, 5]])
        assert not torch.equal(now[2], state[name][2])


def test_sparse_embedding_training_decreases_loss() -> None:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(20, 4, sparse=True)
    target = torch.randn(20, 4)
    opt = AdagradM(emb.parameters(), lr=0.5, momentum=0.3)
    before = F.mse_loss(emb.weight, target).item()
    for _ in range(100):
        idx = torch.randint(0, 20, (8,))
        opt.zero_grad()
        F.mse_loss(emb(idx), target[idx]).backward()
        assert emb.weight.grad is not None and emb.weight.grad.is_sparse
        opt.step()
    after = F.mse_loss(emb.weight, target).item()
    assert after < 0.1 * before


def test_step_calls_the_closure_and_skips_params_without_grad() -> None:
    a = torch.nn.Parameter(torch.ones(2))
    b = torch.nn.Parameter(torch.ones(2))
    opt = AdagradM([a, b], lr=LR)

    def closure() -> float:
        opt.zero_grad()
        loss = (a * 2).sum()
        loss.backward()
        return float(loss.item())

    assert opt.step(closure) == pytest.approx(4.0)
    assert (a < 1).all() and torch.equal(b, torch.ones(2))
    assert b not in opt.state or not opt.state[b]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"momentum": -0.1}, "momentum"),
        ({"momentum": 1.0}, "momentum"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AdagradM([torch.nn.Parameter(torch.zeros(1))], **kwargs)
