"""The hybrid: the item gate, ID dropout, cold items through text, every part switchable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA, prepare_with_text
from hybridrec.data.catalogue import Catalogue
from hybridrec.nn import FusedItemTower, Hybrid, TextItemTower
from hybridrec.nn.towers import GRUTower, ItemIdTower, SelfAttentionTower
from hybridrec.run.train import train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    return prepare_with_text(tmp_path_factory.mktemp("hybrid") / "prep", 40, 30)


def _hybrid(prepared: tuple[Path, int, int], **kwargs: object) -> Hybrid:
    folder, n_users, n_items = prepared
    torch.manual_seed(0)
    catalogue = Catalogue.from_folder(folder)
    text = TextItemTower(n_items, catalogue, dim=8, vocab_size=200, max_length=12)
    options: dict[str, object] = {"dim": 8, "text": text, "max_length": 6, "dropout": 0.0}
    return Hybrid(n_users, n_items, catalogue, **{**options, **kwargs})  # type: ignore[arg-type]


def test_the_catalogue_counts_the_train_split(prepared: tuple[Path, int, int]) -> None:
    folder, n_users, n_items = prepared
    catalogue = Catalogue.from_folder(folder)
    assert _hybrid(prepared).items.counts.equal(catalogue.item_counts)  # the gate's counts
    train = pd.read_parquet(folder / "train.parquet")
    assert catalogue.user_counts.shape == (n_users,)
    assert int(catalogue.user_counts.sum()) == len(train)
    user = int(train["user"].iloc[0])
    assert catalogue.user_counts[user] == (train["user"] == user).sum()
    counts = catalogue.item_counts
    train_items = pd.read_parquet(folder / "train.parquet")["item"]
    assert counts.shape == (n_items + 1,) and counts[0] == 0
    assert int(counts.sum()) == len(train_items)
    item = int(train_items.iloc[0])
    assert counts[item] == (train_items == item).sum()


def test_an_item_never_trained_on_is_its_text_alone(prepared: tuple[Path, int, int]) -> None:
    model = _hybrid(prepared)
    tower = model.items
    assert isinstance(tower, FusedItemTower)
    with torch.no_grad():
        tower.counts[5] = 0  # item 5: no training interactions
        tower.counts[6] = 50
        for mode in (True, False):  # in training too: the gate is 0 with or without dropout
            model.train(mode)
            items = torch.tensor([5, 6])
            vectors = tower(items)
            torch.testing.assert_close(vectors[0], tower.text(items)[0])
        gates = model.gate_values(torch.tensor([5, 6]))
    assert gates is not None and gates[0] == 0 and 0 < gates[1] < 1


def test_id_dropout_only_while_training(prepared: tuple[Path, int, int]) -> None:
    model = _hybrid(prepared, id_dropout=0.5)
    tower = model.items
    assert isinstance(tower, FusedItemTower)
    items = torch.arange(1, 31).repeat(4)  # 120 occurrences of warm and cold items
    with torch.no_grad():
        tower.counts[1:] = 10.0  # every item warm: any text-only vector is a dropout
        model.eval()
        first, second = tower(items), tower(items)
        torch.testing.assert_close(first, second)  # evaluation is deterministic
        text = tower.text(items)
        assert not torch.isclose(first, text).all(-1).any()  # the ID part is always in
        model.train()
        torch.manual_seed(1)
        trained = tower(items)
        dropped = torch.isclose(trained, text).all(-1)  # rows that are text alone
    assert 0.3 < dropped.float().mean() < 0.7  # about id_dropout = 0.5 of the occurrences


def test_cold_scores_are_the_same_cached_or_recomputed(prepared: tuple[Path, int, int]) -> None:
    """Evaluation caches the text catalogue; a cold item's score must not depend on it."""
    model = _hybrid(prepared, history=None).eval()
    tower = model.items
    assert isinstance(tower, FusedItemTower)
    with torch.no_grad():
        tower.counts[3] = 0
        users, items = torch.tensor([0, 1]), torch.tensor([[3, 4], [3, 7]])
        recomputed = model.score(users, items)  # no cache yet: encodes the batch's items
        full = model.score_all(users)  # fills the cache
        cached = model.score(users, items)
    torch.testing.assert_close(recomputed, cached)
    torch.testing.assert_close(full.gather(1, items), cached)


@pytest.mark.parametrize(
    ("options", "item_tower", "history"),
    [
        ({}, FusedItemTower, GRUTower),
        ({"history": "attention"}, FusedItemTower, SelfAttentionTower),
        ({"text": None}, ItemIdTower, GRUTower),
        ({"item_id": False}, TextItemTower, GRUTower),
        ({"history": None}, FusedItemTower, type(None)),
        ({"user_id": False}, FusedItemTower, GRUTower),
    ],
)
def test_parts_are_switches(
    prepared: tuple[Path, int, int], options: dict[str, object], item_tower: type, history: type
) -> None:
    model = _hybrid(prepared, **options)
    assert isinstance(model.items, item_tower)
    assert isinstance(model.history, history)
    assert (model.user_id is None) == (options.get("user_id") is False)
    assert (model.gate_values() is None) != (item_tower is FusedItemTower)


def test_bad_settings_are_refused(prepared: tuple[Path, int, int]) -> None:
    with pytest.raises(ValueError, match="model.history='lstm'"):
        _hybrid(prepared, history="lstm")
    with pytest.raises(ValueError, match="model.item_id=true or give a model.text"):
        _hybrid(prepared, item_id=False, text=None)
    with pytest.raises(ValueError, match="model.id_dropout=1.0"):
        _hybrid(prepared, id_dropout=1.0)
    with pytest.raises(ValueError, match="model.fusion='sum'"):
        _hybrid(prepared, fusion="sum")
    with pytest.raises(ValueError, match="model.head='mlp'"):
        _hybrid(prepared, head="mlp")


def test_mix_fusion_of_a_warm_item_by_hand(prepared: tuple[Path, int, int]) -> None:
    """fusion=mix (the default): v = g * id + (1 - g) * text, g = sigmoid(w . [text,
    log(1 + count)] + b), written out from the gate's own weights for items seen 3 and 40
    times, where 0 < g < 1 (a cold item's g = 0 is checked above)."""
    model = _hybrid(prepared, gate_bias=0.5).eval()
    tower = model.items
    assert isinstance(tower, FusedItemTower)
    items = torch.tensor([2, 7])
    with torch.no_grad():
        tower.counts[2], tower.counts[7] = 3.0, 40.0
        text, ids = tower.text(items), tower.ids(items)  # (2, D) each
        weight, bias = tower.gate.weight[0], tower.gate.bias[0]  # (D + 1,), ()
        logits = text @ weight[:-1] + torch.log1p(torch.tensor([3.0, 40.0])) * weight[-1] + bias
        gate = 1 / (1 + torch.exp(-logits))  # (2,)
        expected = gate[:, None] * ids + (1 - gate[:, None]) * text
        torch.testing.assert_close(tower(items), expected)
    assert torch.all((0 < gate) & (gate < 1))
    assert not torch.allclose(gate[0], gate[1])  # the count reaches the gate


def test_residual_fusion_keeps_the_text_at_full_scale(prepared: tuple[Path, int, int]) -> None:
    """fusion=residual: v = text + g * id; a dropped or never-trained item is its text alone,
    the gate starts at sigmoid(gate_bias) on average, also after init=sasrec."""
    model = _hybrid(prepared, fusion="residual", gate_bias=-3.0, init="sasrec").eval()
    tower = model.items
    assert isinstance(tower, FusedItemTower)
    assert torch.all(tower.gate.bias == -3.0)
    items = torch.arange(1, 9)
    with torch.no_grad():
        tower.counts[items[0]] = 0
        gate = tower.gate_values(items)
        expected = tower.text(items) + gate.unsqueeze(-1) * tower.ids(items)
        torch.testing.assert_close(tower(items), expected)
        torch.testing.assert_close(tower(items)[0], tower.text(items)[0])
    assert gate[0] == 0 and torch.all(gate[1:] < 0.1)


HYBRID_RUNS = {
    "full": ["protocol=loo_full", "datamodule=next_item", "loss=xe"],
    "attention-no-user-id": [
        "protocol=loo_full",
        "datamodule=next_item",
        "loss=xe",
        "model.history=attention",
        "model.user_id=false",
    ],
    "pairs-no-history": ["model.history=null"],
    "pairs-neumf-head": ["model.history=null", "model.head=neumf"],
    "residual-fusion": ["experiment=hybrid_synthetic", "model.fusion=residual"],
    "text-prior": ["experiment=hybrid_synthetic", "model.align=1.0", "model.id_shrinkage=5"],
    "ids-only": ["protocol=loo_full", "datamodule=next_item", "loss=xe", "model.text=null"],
    "cold-items": ["protocol=cold_items", "datamodule=next_item", "loss=xe"],
}


@pytest.mark.parametrize("name", list(HYBRID_RUNS))
def test_hybrid_configs_train(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str, name: str
) -> None:
    """Each ablation of the hybrid trains and tests through hybridrec-train's path."""
    cfg = compose_cfg(
        *TINY_DATA,
        "model=hybrid",
        "model.combine=joint",
        "model.dim=16",
        "trainer.max_epochs=1",
        *HYBRID_RUNS[name],
    )
    result = train(cfg)
    results = result.metrics
    assert 0.0 <= results["test/ndcg@10"] <= results["test/hr@10"] <= 1.0
    if name == "cold-items":  # cold items are ranked, through their text
        assert "test/cold/hr@10" in results and "test/warm/hr@10" in results
    # the explanation: gate by popularity, logged when the item side is fused
    client = MlflowClient(tracking_uri=mlflow_uri)
    logged = {a.path for a in client.list_artifacts(str(result.run_id), "explanations")}
    fused = name != "ids-only"
    expected = {"explanations/gate_by_popularity.png", "explanations/gate_by_popularity.csv"}
    assert logged == (expected if fused else set())
    if name == "text-prior":  # the term is part of the loss and logged next to it
        assert client.get_metric_history(str(result.run_id), "train/align_epoch")
    if name == "cold-items":  # the cold items (never trained on) have gate 0
        local = client.download_artifacts(str(result.run_id), "explanations/gate_by_popularity.csv")
        table = pd.read_csv(local).set_index("bucket")
        assert table.loc["cold (0)", "items"] > 0
        assert table.loc["cold (0)", "mean_gate"] == 0.0


def test_popularity_buckets_and_gate_table_by_hand() -> None:
    """counts 0, 0, 1, 2, 3, 4, 5, 6, 7, 8: two cold items; quartiles of the eight warm counts
    1..8 are (0.999, 2.75], (2.75, 4.5], (4.5, 6.25], (6.25, 8]."""
    import numpy as np

    from hybridrec.tracking.plots import gate_table, popularity_buckets

    counts = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    labels = popularity_buckets(counts)
    assert list(labels) == ["cold (0)"] * 2 + ["1-2"] * 2 + ["3-4"] * 2 + ["5-6"] * 2 + ["7-8"] * 2
    gates = np.array([0, 0, 0.1, 0.3, 0.5, 0.5, 0.6, 0.8, 0.9, 0.9])
    table = gate_table(gates, counts).set_index("bucket")
    assert table.loc["cold (0)", "items"] == 2 and table.loc["cold (0)", "mean_gate"] == 0
    assert table.loc["1-2", "mean_gate"] == pytest.approx(0.2)
    assert table.loc["7-8", "median"] == pytest.approx(0.9)
    assert list(table.index) == ["cold (0)", "1-2", "3-4", "5-6", "7-8"]


def test_session_only_hybrid_on_anonymous_sessions(
    compose_cfg: Callable[..., DictConfig], data_files: dict[str, str]
) -> None:
    """RSC15-style click sessions (no user identity): the hybrid with the GRU history tower and
    no user ID tower, trained next-item on the session protocol, IDs only (no item text)."""
    from conftest import data_overrides

    cfg = compose_cfg(
        *data_overrides("rsc15_100k", data_files),
        "model=hybrid",
        "model.combine=joint",
        "model.user_id=false",
        "model.text=null",
        "model.dim=16",
        "datamodule=next_item",
        "loss=xe",
        "trainer.max_epochs=1",
        "ks=[20]",
        "monitor=val/ndcg@20",
    )
    result = train(cfg)
    assert 0.0 <= result.metrics["test/mrr@20"] <= result.metrics["test/recall@20"] <= 1.0


def test_user_gate_mixes_id_and_history(prepared: tuple[Path, int, int]) -> None:
    """user_combine=gate: the user vector is h * id + (1 - h) * history, h in (0, 1) per user;
    the same combination reaches the next-item rows."""
    model = _hybrid(prepared, user_combine="gate").eval()
    assert model.user_gate is not None
    users = torch.tensor([0, 1])
    history = torch.tensor([[0, 2, 3], [1, 2, 3]])
    lengths = (history > 0).sum(1)
    with torch.no_grad():
        table = model.item_vectors()
        id_part = model.user_id(users)  # type: ignore[misc]
        history_part = model.history(history, lengths, table)  # type: ignore[misc]
        share = torch.sigmoid(model.user_gate(torch.cat([id_part, history_part], -1)))
        expected = share * id_part + (1 - share) * history_part
        torch.testing.assert_close(model.user_vectors(users, history, lengths), expected)
        targets = torch.tensor([[0, 0, 4], [0, 0, 5]])  # one target per row, at the end
        rows = model.score_positions(history, lengths, targets, users)
        torch.testing.assert_close(rows, expected @ table.T)
    assert ((share > 0) & (share < 1)).all()
    with pytest.raises(ValueError, match="model.user_combine='max'"):
        _hybrid(prepared, user_combine="max")
    assert _hybrid(prepared, user_combine="gate", history=None).user_gate is None  # ID only


def test_sasrec_init_option(prepared: tuple[Path, int, int]) -> None:
    """init=sasrec: N(0, 0.02) for every Linear and Embedding (text tower included), zero
    biases and padding rows, as SeqRec initialises."""
    model = _hybrid(prepared, init="sasrec", dim=64, text=None, history="attention", heads=2)
    position = model.history.position_embedding.weight  # type: ignore[union-attr]
    assert float(position.std()) == pytest.approx(0.02, rel=0.2)
    assert torch.equal(model.items.all()[0], torch.zeros(64))  # type: ignore[operator]
    assert float(model.user_id.table.weight.std()) == pytest.approx(0.02, rel=0.2)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="model.init='xavier'"):
        _hybrid(prepared, init="xavier")


def test_id_shrinkage_caps_the_id_share_by_the_items_evidence(
    prepared: tuple[Path, int, int],
) -> None:
    """id_shrinkage=k: g = sigmoid(gate) * count / (count + k); a cold item stays at 0."""
    plain, shrunk = _hybrid(prepared), _hybrid(prepared, id_shrinkage=4.0)  # same seed, weights
    items = torch.tensor([1, 2, 3])
    counts = torch.tensor([0.0, 4.0, 12.0])
    for model in (plain, shrunk):
        tower = model.items
        assert isinstance(tower, FusedItemTower)
        tower.counts[items] = counts
    with torch.no_grad():
        base, gates = plain.gate_values(items), shrunk.gate_values(items)
    assert base is not None and gates is not None
    torch.testing.assert_close(gates, base * counts / (counts + 4.0))
    assert gates[0] == 0 and gates[1] == base[1] / 2
    with pytest.raises(ValueError, match="model.id_shrinkage=-1"):
        _hybrid(prepared, id_shrinkage=-1.0)


def test_text_prior_on_the_ids_by_hand(prepared: tuple[Path, int, int]) -> None:
    """align=w: the training loss adds w * mean |id_i - text_i|^2 over the trained items."""
    model = _hybrid(prepared, align=0.5)
    tower = model.items
    assert isinstance(tower, FusedItemTower)
    with torch.no_grad():
        tower.counts.zero_()
        tower.counts[[2, 5]] = torch.tensor([3.0, 1.0])
        ids, text = tower.ids.all(), tower.text.all()
        by_hand = 0.5 * ((ids[[2, 5]] - text[[2, 5]]) ** 2).sum(-1).mean()
        terms = model.auxiliary_losses()
    torch.testing.assert_close(terms["align"], by_hand)
    # after a full-catalogue training step: the same value, from that step's vectors
    model.train()
    tower.all()
    assert tower._seen is not None
    torch.testing.assert_close(model.auxiliary_losses()["align"], by_hand)
    assert tower._seen is None  # used once
    assert _hybrid(prepared).auxiliary_losses() == {}  # off by default
    with pytest.raises(ValueError, match="model.align=-1"):
        _hybrid(prepared, align=-1.0)


@pytest.mark.parametrize(
    "settings",
    [{"history": "gru"}, {"history": "attention", "heads": 2}, {"head": "neumf"}],
    ids=["gru", "attention", "neumf"],
)
def test_sampled_next_item_scores_are_the_full_scores(
    prepared: tuple[Path, int, int], settings: dict[str, object]
) -> None:
    """The joint hybrid (user ID + history, ID + text items): score_positions with shared
    negatives (R, 1 + S) = the full-catalogue rows at each target and the negatives."""
    model = _hybrid(prepared, **settings).eval()
    users = torch.tensor([0, 3])
    history = torch.tensor([[0, 2, 3], [1, 2, 3]])
    lengths = (history > 0).sum(1)
    targets = torch.tensor([[0, 3, 4], [2, 3, 5]])
    negatives = torch.tensor([7, 4, 4, 12])
    with torch.no_grad():
        full = model.score_positions(history, lengths, targets, users)  # (R, N)
        sampled = model.score_positions(history, lengths, targets, users, candidates=negatives)
    positives = targets[targets > 0].unsqueeze(1)
    columns = torch.cat([positives, negatives.expand(positives.shape[0], -1)], 1)
    assert sampled.shape == (5, 5)
    torch.testing.assert_close(sampled, full.gather(1, columns), rtol=1e-5, atol=1e-5)
