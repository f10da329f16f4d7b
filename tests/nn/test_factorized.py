"""The factorised-model contract: towers, the dot scorer, and every model built from them.

For MF, TextRec and SeqRec (IDs, text, both; dot or cosine): ``score_all`` equals ``score`` on
the same candidates, and both equal the scorer applied to ``user_vectors`` and
``item_vectors`` — the property full ranking, the judgment loss and export rely on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from conftest import prepare_with_text
from hybridrec.data.catalogue import Catalogue
from hybridrec.nn import MF, Hybrid, SeqRec, TextItemTower, TextRec
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer, NeuMFScorer
from hybridrec.nn.towers import ItemIdTower, SumItemTower, UserIdTower

N_USERS = 12


@pytest.fixture(scope="module")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder, _, n_items = prepare_with_text(tmp_path_factory.mktemp("factorized") / "p", 40, 30)
    return folder, n_items


def _text(data: tuple[Path, int], dim: int = 8) -> TextItemTower:
    folder, n_items = data
    return TextItemTower(
        n_items, Catalogue.from_folder(folder), dim=dim, vocab_size=200, max_length=12
    )


Builder = Callable[[tuple[Path, int]], FactorizedModel]
MODELS: dict[str, Builder] = {
    "mf": lambda d: MF(N_USERS, d[1], embedding_dim=8),
    "mf-nobias": lambda d: MF(N_USERS, d[1], embedding_dim=8, use_bias=False),
    "textrec": lambda d: TextRec(
        N_USERS, d[1], Catalogue.from_folder(d[0]), dim=8, vocab_size=200, max_length=12
    ),
    "sasrec": lambda d: SeqRec(N_USERS, d[1], dim=8, max_length=5, dropout=0.0),
    "seqtext": lambda d: SeqRec(
        N_USERS, d[1], dim=8, max_length=5, dropout=0.0, item_id=False, text=_text(d)
    ),
    "unisrec": lambda d: SeqRec(
        N_USERS, d[1], dim=8, dropout=0.0, text=_text(d), temperature=0.1, max_length=5
    ),
    "hybrid": lambda d: Hybrid(
        N_USERS, d[1], Catalogue.from_folder(d[0]), dim=8, text=_text(d), max_length=5
    ),
    "hybrid-attention-cosine": lambda d: Hybrid(
        N_USERS,
        d[1],
        Catalogue.from_folder(d[0]),
        dim=8,
        text=_text(d),
        history="attention",
        temperature=0.2,
    ),
    "hybrid-ids-no-history": lambda d: Hybrid(
        N_USERS, d[1], Catalogue.from_folder(d[0]), dim=8, history=None
    ),
    "hybrid-residual": lambda d: Hybrid(
        N_USERS,
        d[1],
        Catalogue.from_folder(d[0]),
        dim=8,
        text=_text(d),
        max_length=5,
        fusion="residual",
        gate_bias=-1,
    ),
}


def _inputs(n_items: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(3)
    users = torch.randint(0, N_USERS, (4,), generator=generator)  # (B,)
    items = torch.randint(1, n_items + 1, (4, 6), generator=generator)  # (B, C)
    history = torch.randint(1, n_items + 1, (4, 7), generator=generator)  # (B, T)
    history[0, :4] = 0  # left padding
    return users, items, history, (history > 0).sum(1)


@pytest.mark.parametrize("name", list(MODELS))
def test_score_all_is_score_is_the_scorer_on_the_vectors(
    name: str, text_data: tuple[Path, int]
) -> None:
    torch.manual_seed(0)
    model = MODELS[name](text_data).eval()
    with torch.no_grad():  # non-zero biases, so the bias terms are checked too
        for table in (model.scorer.user_bias, model.scorer.item_bias):
            if table is not None:
                table.weight.normal_()
        if model.scorer.global_bias is not None:
            model.scorer.global_bias.fill_(0.25)
    users, items, history, lengths = _inputs(text_data[1])
    with torch.no_grad():
        full = model.score_all(users, history, lengths)  # (B, N)
        picked = model.score(users, items, history, lengths)  # (B, C)
        torch.testing.assert_close(full.gather(1, items), picked)
        user_vectors = model.scorer.users(model.user_vectors(users, history, lengths))
        item_table = model.scorer.items(model.item_vectors())  # (N, D)
        expected = user_vectors @ item_table.T
        if model.scorer.item_bias is not None:
            expected = expected + model.scorer.item_bias.weight.T
        if model.scorer.user_bias is not None and model.scorer.global_bias is not None:
            expected = expected + model.scorer.user_bias(users) + model.scorer.global_bias
        torch.testing.assert_close(full, expected)
        # item_vectors of some items = rows of the catalogue table
        torch.testing.assert_close(model.item_vectors(items), model.item_vectors()[items])
    assert full.shape == (4, text_data[1] + 1)


@pytest.mark.parametrize("history", [None, "gru"])
def test_neumf_head_scores_every_pair_alike(
    history: str | None, text_data: tuple[Path, int]
) -> None:
    """The NeuMF-style head is not a dot product, but the contract holds: score_all = score on
    the same candidates = the head applied to each (user vector, item vector) pair, whatever
    the chunk size of the full ranking."""
    folder, n_items = text_data
    torch.manual_seed(0)
    model = Hybrid(
        N_USERS,
        n_items,
        Catalogue.from_folder(folder),
        dim=8,
        text=_text(text_data),
        history=history,
        head="neumf",
        head_layers=[6, 4],
        max_length=5,
    ).eval()
    scorer = model.scorer
    assert isinstance(scorer, NeuMFScorer)
    users, items, history_items, lengths = _inputs(n_items)
    with torch.no_grad():
        full = model.score_all(users, history_items, lengths)  # (B, N)
        picked = model.score(users, items, history_items, lengths)  # (B, C)
        torch.testing.assert_close(full.gather(1, items), picked)
        scorer.chunk = 5  # a few items per chunk: the same scores
        torch.testing.assert_close(model.score_all(users, history_items, lengths), full)
        user = model.user_vectors(users, history_items, lengths)[1]  # (D,)
        item = model.item_vectors(torch.tensor([3]))[0]  # (D,)
        hidden = scorer.mlp(torch.cat([user, item]))
        by_hand = scorer.out(torch.cat([user * item, hidden]))
        torch.testing.assert_close(full[1, 3], by_hand[0])
    assert full.shape == (4, n_items + 1)
    with pytest.raises(ValueError, match="model.head=neumf takes no temperature"):
        Hybrid(
            N_USERS, n_items, folder, dim=8, text=_text(text_data), head="neumf", temperature=0.1
        )


def test_dot_scorer_by_hand() -> None:
    """u = (1, 2), v = (3, 4): dot 11; + item bias 0.5 + user bias -1 + global 0.25 = 10.75;
    cosine / 0.5: 11 / (sqrt(5) * 5) / 0.5 = 0.98387."""
    user, item = torch.tensor([[1.0, 2.0]]), torch.tensor([[[3.0, 4.0]]])
    users, items = torch.tensor([0]), torch.tensor([[1]])
    with_bias = DotScorer(n_items=2, n_users=1)
    with torch.no_grad():
        with_bias.item_bias.weight[1] = 0.5  # type: ignore[union-attr]
        with_bias.user_bias.weight[0] = -1.0  # type: ignore[union-attr]
        with_bias.global_bias.fill_(0.25)  # type: ignore[union-attr]
    assert float(DotScorer().score(user, item, users, items)) == pytest.approx(11.0)
    assert float(with_bias.score(user, item, users, items).detach()) == pytest.approx(10.75)
    cosine = DotScorer(temperature=0.5).score(user, item, users, items)
    assert float(cosine) == pytest.approx(11 / (math.sqrt(5) * 5) / 0.5)
    with pytest.raises(ValueError, match="takes no biases"):
        DotScorer(temperature=0.5, n_items=2)
    with pytest.raises(ValueError, match="temperature=0"):
        DotScorer(temperature=0.0)


def test_towers() -> None:
    torch.manual_seed(0)
    users = UserIdTower(5, 3, init_std=0.1)
    assert users(torch.tensor([0, 4])).shape == (2, 3)
    ids = ItemIdTower(6, 3, init_std=0.1, zero_padding=True)
    assert torch.equal(ids.all()[0], torch.zeros(3))  # padding row
    items = torch.tensor([[1, 2], [6, 0]])
    torch.testing.assert_close(ids(items), ids.all()[items])
    other = ItemIdTower(6, 3, init_std=0.1)
    both = SumItemTower(ids, other)
    torch.testing.assert_close(both(items), ids(items) + other(items))
    torch.testing.assert_close(both.all(), ids.all() + other.all())


def test_mf_embedding_penalty_by_hand() -> None:
    """users (0,), items ((1, 2)): |p_0|^2 + mean(|q_1|^2, |q_2|^2) + b_u^2 + mean(b_i^2)
    = 1 + (4 + 9) / 2 + 0.25 + (1 + 0) / 2 = 8.25."""
    model = MF(1, 3, embedding_dim=1)
    with torch.no_grad():
        model.user_id.table.weight[0] = 1.0  # type: ignore[union-attr]
        model.items.table.weight[1:3, 0] = torch.tensor([2.0, 3.0])  # type: ignore[union-attr]
        model.scorer.user_bias.weight[0] = 0.5  # type: ignore[union-attr]
        model.scorer.item_bias.weight[1:3, 0] = torch.tensor([1.0, 0.0])  # type: ignore[union-attr]
    penalty = model.embedding_penalty(torch.tensor([0]), torch.tensor([[1, 2]]))
    assert float(penalty) == pytest.approx(8.25)


def test_contract_errors() -> None:
    items = ItemIdTower(5, 4, init_std=0.1)
    with pytest.raises(ValueError, match="user ID tower, a history tower, or both"):
        FactorizedModel(3, 5, items, DotScorer())
    sasrec = SeqRec(3, 5, dim=4, max_length=3)
    with pytest.raises(ValueError, match="reads the user's history but the batch has none"):
        sasrec.score_all(torch.tensor([0]))
    too_wide = torch.ones(1, 4, dtype=torch.long)  # 4 > max_length 3
    with pytest.raises(ValueError, match="datamodule.max_length <= model.max_length"):
        sasrec.score_positions(too_wide, torch.tensor([4]), too_wide)
    with pytest.raises(ValueError, match="user ID tower: next-item rows need users"):
        MF(3, 5).score_positions(too_wide, torch.tensor([4]), too_wide)


def test_next_item_rows_are_the_positions_scored_against_the_catalogue() -> None:
    """score_positions: one row per target, each the scorer on that position's output."""
    torch.manual_seed(0)
    model = SeqRec(3, 9, dim=4, max_length=4, dropout=0.0).eval()
    history = torch.tensor([[0, 2, 3, 4], [1, 2, 3, 4]])
    lengths = (history > 0).sum(1)
    targets = torch.tensor([[0, 3, 0, 5], [2, 3, 4, 6]])  # 2 + 4 = 6 targets
    with torch.no_grad():
        rows = model.score_positions(history, lengths, targets)  # (6, N)
        table = model.item_vectors()
        hidden = model.history.positions(history, lengths, table)  # type: ignore[union-attr]
        torch.testing.assert_close(rows, hidden[targets > 0] @ table.T)
        # the last position of each row is that user's vector
        torch.testing.assert_close(
            model.user_vectors(torch.tensor([0, 1]), history, lengths), hidden[:, -1]
        )
    assert rows.shape == (6, 10)


def test_gru_tower_ignores_left_padding_and_is_causal() -> None:
    """Each position's output is the GRU run over that row's real items up to it: the same
    whatever the padding width, unchanged by later items, equal to a plain GRU on the row."""
    from hybridrec.nn.towers import GRUTower

    torch.manual_seed(0)
    tower = GRUTower(dim=4, layers=1, max_length=6).eval()
    table = torch.randn(10, 4)
    narrow = torch.tensor([[0, 3, 4, 5], [1, 2, 3, 4]])
    wide = torch.cat([torch.zeros(2, 2, dtype=torch.long), narrow], 1)
    with torch.no_grad():
        a = tower.positions(narrow, (narrow > 0).sum(1), table)  # (2, 4, 4)
        b = tower.positions(wide, (wide > 0).sum(1), table)  # (2, 6, 4)
        torch.testing.assert_close(a, b[:, 2:])
        assert torch.equal(a[0, 0], torch.zeros(4))  # the padded column
        plain, _ = tower.gru(table[torch.tensor([[3, 4, 5]])])  # row 0's real items alone
        torch.testing.assert_close(a[0, 1:], plain[0])
        changed = narrow.clone()
        changed[1, 3] = 9  # a later item leaves earlier outputs alone
        c = tower.positions(changed, (changed > 0).sum(1), table)
        torch.testing.assert_close(c[1, :3], a[1, :3])
        assert not torch.allclose(c[1, 3], a[1, 3])


def test_seqrec_with_a_gru_user_tower_trains_on_windows() -> None:
    """model.encoder=gru: the same contract; a few steps of next-item CE lower the loss."""
    from hybridrec.nn.towers import GRUTower

    torch.manual_seed(0)
    model = SeqRec(3, 9, dim=8, max_length=4, dropout=0.0, encoder="gru")
    assert isinstance(model.history, GRUTower)
    history = torch.tensor([[0, 2, 3, 4], [1, 2, 3, 4]])
    targets = torch.tensor([[0, 3, 4, 5], [2, 3, 4, 5]])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        rows = model.score_positions(history, (history > 0).sum(1), targets)  # (7, N)
        loss = torch.nn.functional.cross_entropy(rows, targets[targets > 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0]
    with pytest.raises(ValueError, match="model.encoder='lstm'"):
        SeqRec(3, 9, dim=8, encoder="lstm")


def test_next_item_rows_of_a_user_id_model_are_its_user_vector() -> None:
    """Without a history tower each target row scores the row's user vector (plus biases)."""
    torch.manual_seed(0)
    model = MF(3, 9, embedding_dim=4, use_bias=False)
    history = torch.tensor([[0, 2, 3], [1, 2, 3]])
    targets = torch.tensor([[0, 3, 4], [2, 3, 0]])  # rows: user 0 twice, user 1 twice
    users = torch.tensor([2, 0])
    with torch.no_grad():
        rows = model.score_positions(history, (history > 0).sum(1), targets, users)
        expected = model.score_all(users)[torch.tensor([0, 0, 1, 1])]
    torch.testing.assert_close(rows, expected)


def test_sampled_next_item_rows_keep_the_item_bias() -> None:
    """MF (user ID only, biases): score_positions with shared candidates is the full row at
    the target and the candidates, item bias included (the user terms are left out of both)."""
    torch.manual_seed(0)
    model = MF(3, 9, embedding_dim=4).eval()
    with torch.no_grad():
        assert model.scorer.item_bias is not None
        model.scorer.item_bias.weight.normal_()
        history = torch.tensor([[0, 2, 3], [1, 2, 3]])
        targets = torch.tensor([[0, 3, 5], [2, 0, 8]])
        users = torch.tensor([2, 0])
        candidates = torch.tensor([9, 1, 5])
        full = model.score_positions(history, (history > 0).sum(1), targets, users)
        sampled = model.score_positions(
            history, (history > 0).sum(1), targets, users, candidates=candidates
        )
    positives = targets[targets > 0].unsqueeze(1)
    columns = torch.cat([positives, candidates.expand(positives.shape[0], -1)], 1)
    torch.testing.assert_close(sampled, full.gather(1, columns))
