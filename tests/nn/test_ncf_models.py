"""MF, GMF, MLP, NeuMF: shapes, score_all == score on every item, overfitting, pre-training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from hybridrec.data.batch import PairBatch, RowEvalBatch
from hybridrec.lit.adapter import scores
from hybridrec.losses import BCELoss
from hybridrec.nn import GMF, MF, MLP, FactorizedModel, NeuMF, PairScorer
from hybridrec.nn.ncf import load_model_state

N_USERS, N_ITEMS = 30, 25

#: MF is a FactorizedModel; GMF, MLP and NeuMF are PairScorers: the same score / score_all
Model = FactorizedModel | PairScorer

FACTORIES: dict[str, Callable[[], Model]] = {
    "MF": lambda: MF(N_USERS, N_ITEMS, embedding_dim=8),
    "MF-nobias": lambda: MF(N_USERS, N_ITEMS, embedding_dim=8, use_bias=False),
    "GMF": lambda: GMF(N_USERS, N_ITEMS, embedding_dim=8, init_std=0.3),
    "MLP": lambda: MLP(N_USERS, N_ITEMS, embedding_dim=8, hidden_dims=(16, 8), dropout=0.2),
    "NeuMF": lambda: NeuMF(
        N_USERS, N_ITEMS, gmf_dim=4, mlp_embedding_dim=8, hidden_dims=(16, 8), dropout=0.2
    ),
}


def _make(name: str) -> Model:
    torch.manual_seed(0)
    model = FACTORIES[name]()
    with torch.no_grad():  # move biases away from their zero init so they are exercised
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def _users(n: int = 7) -> Tensor:
    return torch.randperm(N_USERS, generator=torch.Generator().manual_seed(1))[:n]


def _forward_all(model: Model, users: Tensor) -> Tensor:
    """score() over the full item range 0..n_items, one row per user (the slow reference)."""
    rows = [model.score(u.view(1), torch.arange(N_ITEMS + 1).view(1, -1)) for u in users]
    return torch.cat(rows, 0)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_forward_shape(name: str) -> None:
    model = _make(name)
    users = _users(6)
    items = torch.randint(1, N_ITEMS + 1, (6, 5))
    out = scores(model, RowEvalBatch(users=users, items=items))
    assert out.shape == (6, 5)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


# --- one score by hand: tiny weights set explicitly, D = 2, one MLP layer -------------------------
# user 1 has p = [1, 2] and item 2 has q = [3, -1] in every model below; the other rows keep
# their random init, so a wrong row lookup gives a different number.
P_USER, Q_ITEM = [1.0, 2.0], [3.0, -1.0]
HAND_BATCH = RowEvalBatch(users=torch.tensor([1]), items=torch.tensor([[2, 1]]))


def _set(param: Tensor, values: list[float] | list[list[float]]) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(values))


def _set_pair(user_table: torch.nn.Embedding, item_table: torch.nn.Embedding) -> None:
    with torch.no_grad():
        user_table.weight[1] = torch.tensor(P_USER)
        item_table.weight[2] = torch.tensor(Q_ITEM)


def _hand_score(model: Model) -> tuple[float, float]:
    """(score of user 1, item 2; score_all's entry for the same pair)."""
    with torch.no_grad():
        return (
            float(scores(model, HAND_BATCH)[0, 0]),
            float(model.score_all(HAND_BATCH.users)[0, 2]),
        )


def test_mf_score_by_hand() -> None:
    torch.manual_seed(0)
    model = MF(3, 4, embedding_dim=2).eval()
    scorer = model.scorer
    assert scorer.user_bias is not None and scorer.item_bias is not None
    assert scorer.global_bias is not None
    _set_pair(model.user_id.table, model.items.table)
    with torch.no_grad():
        scorer.user_bias.weight[1] = 0.5
        scorer.item_bias.weight[2] = -0.25
        scorer.global_bias.fill_(0.125)
        model.items.table.weight[1] = torch.tensor([0.5, 0.5])
    # <p, q> + b_u + b_i + b = (1 * 3 + 2 * -1) + 0.5 - 0.25 + 0.125 = 1.375
    assert _hand_score(model) == pytest.approx((1.375, 1.375))
    # item 1 (second candidate): (1 * 0.5 + 2 * 0.5) + 0.5 + 0 (its bias) + 0.125 = 2.125
    with torch.no_grad():
        assert float(scores(model, HAND_BATCH)[0, 1]) == pytest.approx(2.125)


def test_gmf_score_by_hand() -> None:
    torch.manual_seed(0)
    model = GMF(3, 4, embedding_dim=2).eval()
    _set_pair(model.user_embedding, model.item_embedding)
    _set(model.predict.weight, [[0.5, 2.0]])
    _set(model.predict.bias, [0.125])
    # h . (p * q) + b = 0.5 * (1 * 3) + 2 * (2 * -1) + 0.125 = 1.5 - 4 + 0.125 = -2.375
    assert _hand_score(model) == pytest.approx((-2.375, -2.375))


def _set_mlp_half(model: MLP) -> None:
    """First layer W_u p + b_u + W_i q with W_u = I, b_u = [0.5, -1], W_i = [[1, 1], [-1, 0]]."""
    _set_pair(model.user_embedding, model.item_embedding)
    _set(model.user_proj.weight, [[1.0, 0.0], [0.0, 1.0]])
    _set(model.user_proj.bias, [0.5, -1.0])
    _set(model.item_proj.weight, [[1.0, 1.0], [-1.0, 0.0]])


def test_mlp_score_by_hand() -> None:
    torch.manual_seed(0)
    model = MLP(3, 4, embedding_dim=2, hidden_dims=(2,)).eval()
    _set_mlp_half(model)
    _set(model.predict.weight, [[2.0, 5.0]])
    _set(model.predict.bias, [-1.0])
    # W_u p + b_u = [1, 2] + [0.5, -1] = [1.5, 1]; W_i q = [3 - 1, -3] = [2, -3]
    # relu([1.5 + 2, 1 - 3]) = relu([3.5, -2]) = [3.5, 0]; 2 * 3.5 + 5 * 0 - 1 = 6
    assert _hand_score(model) == pytest.approx((6.0, 6.0))


def test_neumf_score_by_hand() -> None:
    torch.manual_seed(0)
    model = NeuMF(3, 4, gmf_dim=2, mlp_embedding_dim=2, hidden_dims=(2,)).eval()
    _set_pair(model.gmf.user_embedding, model.gmf.item_embedding)
    _set_mlp_half(model.mlp)
    _set(model.predict.weight, [[0.5, 2.0, 2.0, 5.0]])
    _set(model.predict.bias, [0.125])
    # fused = [GMF p * q, MLP tower] = [3, -2, 3.5, 0] (as in the two tests above)
    # 0.5 * 3 + 2 * -2 + 2 * 3.5 + 5 * 0 + 0.125 = 1.5 - 4 + 7 + 0.125 = 4.625
    assert _hand_score(model) == pytest.approx((4.625, 4.625))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_forward_needs_items(name: str) -> None:
    with pytest.raises(ValueError, match="items"):
        scores(_make(name), RowEvalBatch(users=_users(2)))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_score_all_matches_forward_on_every_item(name: str) -> None:
    model = _make(name)
    users = _users(7)
    with torch.no_grad():
        reference = _forward_all(model, users)
        full = model.score_all(users)
        assert full.shape == (7, N_ITEMS + 1)
        torch.testing.assert_close(full, reference, rtol=1e-5, atol=1e-6)
        # chunking: 2 users per chunk -> 4 chunks for 7 users, same result
        model.chunk_pairs = 2 * (N_ITEMS + 1)
        torch.testing.assert_close(model.score_all(users), reference, rtol=1e-5, atol=1e-6)
        model.chunk_pairs = 1  # fewer pairs than one row: still one user per chunk
        torch.testing.assert_close(model.score_all(users), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["MLP", "NeuMF"])
def test_item_table_projection_path_matches_embedding_path(name: str) -> None:
    """A big batch (more candidates than items) projects the item table once; the same rows
    scored one by one take the per-candidate path. Both must agree."""
    model = _make(name)
    users = _users(7)
    items = torch.randint(0, N_ITEMS + 1, (7, 6))  # 42 candidates > 26 table rows
    assert items.numel() > N_ITEMS + 1
    with torch.no_grad():
        big = scores(model, RowEvalBatch(users=users, items=items))
        rows = [RowEvalBatch(users=users[i : i + 1], items=items[i : i + 1]) for i in range(7)]
        small = torch.cat([scores(model, row) for row in rows])
    torch.testing.assert_close(big, small, rtol=1e-5, atol=1e-6)


def _user_dot_items(model: Model, users: Tensor) -> Tensor:
    """The export layout: one user matrix against one item matrix. GMF: ``user_state(users) @
    item_embeddings().T``; MF (a FactorizedModel): the scorer's user vectors against its item
    vectors, plus the biases (``b_u + b`` per user, ``b_i`` per item) when the model has them."""
    if isinstance(model, GMF):
        return model.user_state(users) @ model.item_embeddings().T
    assert isinstance(model, FactorizedModel)
    scorer = model.scorer
    dot = scorer.users(model.user_vectors(users)) @ scorer.items(model.item_vectors()).T
    if scorer.user_bias is not None and scorer.global_bias is not None:
        dot = dot + scorer.user_bias(users) + scorer.global_bias
    if scorer.item_bias is not None:
        dot = dot + scorer.item_bias.weight.T
    return dot  # (B, N + 1)


@pytest.mark.parametrize("name", ["MF", "MF-nobias", "GMF"])
def test_user_matrix_dot_item_matrix_is_score_all(name: str) -> None:
    model = _make(name)
    users = _users(5)
    with torch.no_grad():
        dot = _user_dot_items(model, users)
        torch.testing.assert_close(dot, model.score_all(users))
        torch.testing.assert_close(dot, _forward_all(model, users), rtol=1e-5, atol=1e-6)


def test_base_pair_scorer_chunks_score_all() -> None:
    class Table(PairScorer):
        def __init__(self) -> None:
            super().__init__()
            self.n_items = 4

        def score(self, users: Tensor, items: Tensor) -> Tensor:
            return (users.unsqueeze(1) * 10 + items).float()

    model = Table()
    model.chunk_pairs = 5  # one user per chunk
    out = model.score_all(torch.tensor([3, 0, 2]))
    assert out.tolist() == [
        [30.0, 31.0, 32.0, 33.0, 34.0],
        [0.0, 1.0, 2.0, 3.0, 4.0],
        [20.0, 21.0, 22.0, 23.0, 24.0],
    ]


@pytest.mark.parametrize(
    ("name", "lr"), [("MF", 0.05), ("GMF", 0.05), ("MLP", 0.03), ("NeuMF", 0.03)]
)
def test_overfits_one_batch(name: str, lr: float) -> None:
    torch.manual_seed(0)
    model = {
        "MF": lambda: MF(N_USERS + 20, 40),
        "GMF": lambda: GMF(N_USERS + 20, 40),
        "MLP": lambda: MLP(N_USERS + 20, 40),
        "NeuMF": lambda: NeuMF(N_USERS + 20, 40),
    }[name]()
    users = torch.randperm(N_USERS + 20)[:32]
    items = torch.randint(1, 41, (32, 5))  # 1 positive + 4 negatives
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]]).expand(32, -1)
    batch = PairBatch(users=users, items=items, labels=labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = BCELoss()
    first = loss_fn(scores(model, batch), batch)["loss"].item()
    for _ in range(300):
        loss = loss_fn(scores(model, batch), batch)["loss"]
        if loss.item() < 0.05:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"{name}: loss {first:.3f} -> {loss.item():.3f} after 300 steps"


def _trained_halves() -> tuple[GMF, MLP]:
    torch.manual_seed(0)
    gmf = GMF(N_USERS, N_ITEMS, embedding_dim=4)
    mlp = MLP(N_USERS, N_ITEMS, embedding_dim=8, hidden_dims=(16, 8))
    users = torch.randint(0, N_USERS, (64,))
    items = torch.randint(1, N_ITEMS + 1, (64, 3))
    labels = torch.tensor([[1.0, 0.0, 0.0]]).expand(64, -1)
    batch = PairBatch(users=users, items=items, labels=labels)
    for model in (gmf, mlp):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(20):
            loss = BCELoss()(scores(model, batch), batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    return gmf, mlp


def _neumf() -> NeuMF:
    return NeuMF(N_USERS, N_ITEMS, gmf_dim=4, mlp_embedding_dim=8, hidden_dims=(16, 8)).eval()


def test_neumf_pretrained_alpha_one_is_the_gmf() -> None:
    gmf, mlp = _trained_halves()
    neumf = _neumf()
    neumf.load_pretrained(gmf.state_dict(), mlp.state_dict(), alpha=1.0)
    # fused weight = [h_gmf, 0 * h_mlp], bias = b_gmf: exactly GMF's prediction
    torch.testing.assert_close(neumf.predict.weight[:, 4:], torch.zeros(1, 8), rtol=0.0, atol=0.0)
    users, items = _users(6), torch.randint(1, N_ITEMS + 1, (6, 9))
    batch = RowEvalBatch(users=users, items=items)
    with torch.no_grad():
        torch.testing.assert_close(scores(neumf, batch), scores(gmf, batch), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            neumf.score_all(users), gmf.score_all(users), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_neumf_pretrained_is_alpha_fused(alpha: float) -> None:
    gmf, mlp = _trained_halves()
    neumf = _neumf()
    neumf.load_pretrained(gmf.state_dict(), mlp.state_dict(), alpha=alpha)
    users = _users(6)
    batch = RowEvalBatch(users=users, items=torch.randint(1, N_ITEMS + 1, (6, 9)))
    with torch.no_grad():
        expected = alpha * scores(gmf, batch) + (1 - alpha) * scores(mlp, batch)
        torch.testing.assert_close(scores(neumf, batch), expected, rtol=1e-5, atol=1e-6)
        expected_all = alpha * gmf.score_all(users) + (1 - alpha) * mlp.score_all(users)
        torch.testing.assert_close(neumf.score_all(users), expected_all, rtol=1e-5, atol=1e-6)


def test_load_model_state_from_lightning_checkpoint_and_plain_dict(tmp_path: Path) -> None:
    gmf, mlp = _trained_halves()
    gmf_ckpt = tmp_path / "gmf.ckpt"
    torch.save(
        {
            "state_dict": {"model." + k: v for k, v in gmf.state_dict().items()},
            "epoch": 3,
            "global_step": 60,
        },
        gmf_ckpt,
    )
    mlp_plain = tmp_path / "mlp.pt"
    torch.save(mlp.state_dict(), mlp_plain)

    loaded = load_model_state(str(gmf_ckpt))
    assert set(loaded) == set(gmf.state_dict())
    for key, value in gmf.state_dict().items():
        assert torch.equal(loaded[key], value)
    plain = load_model_state(str(mlp_plain))
    assert set(plain) == set(mlp.state_dict())

    # the constructor path: NeuMF(pretrained_gmf=..., pretrained_mlp=...)
    neumf = NeuMF(
        N_USERS,
        N_ITEMS,
        gmf_dim=4,
        mlp_embedding_dim=8,
        hidden_dims=(16, 8),
        pretrained_gmf=str(gmf_ckpt),
        pretrained_mlp=str(mlp_plain),
        alpha=1.0,
    ).eval()
    batch = RowEvalBatch(users=_users(4), items=torch.randint(1, N_ITEMS + 1, (4, 5)))
    with torch.no_grad():
        torch.testing.assert_close(scores(neumf, batch), scores(gmf, batch), rtol=1e-5, atol=1e-6)


def test_neumf_pretrained_paths_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        NeuMF(N_USERS, N_ITEMS, pretrained_gmf=str(tmp_path / "gmf.ckpt"))


def test_mlp_needs_a_layer() -> None:
    with pytest.raises(ValueError, match="hidden_dims"):
        MLP(N_USERS, N_ITEMS, hidden_dims=())
