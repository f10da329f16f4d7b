"""SeqRec: training layout shapes, score_all parity, padding and causality invariants, the text
tower (cold items scored from text, identical text -> identical scores), overfitting, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from hybridrec.data.batch import RowEvalBatch, WindowBatch
from hybridrec.data.catalogue import Catalogue
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.preparation.text import ITEM_TEXT_FILE
from hybridrec.data.readers import read_synthetic
from hybridrec.lit.adapter import scores, scores_all
from hybridrec.losses import BPRMaxLoss, CrossEntropyLoss
from hybridrec.nn import ItemIdTower, MoEAdaptor, SeqRec, SumItemTower, TextItemTower

N_ITEMS = 30
TEXT = {"fields": {"title": "", "category": "Category: ", "brand": "Brand: "}}


def _model(**kwargs: object) -> SeqRec:
    torch.manual_seed(0)
    settings: dict[str, object] = {"dim": 16, "layers": 2, "heads": 2, "dropout": 0.0}
    return SeqRec(5, N_ITEMS, **{**settings, **kwargs})  # type: ignore[arg-type]


def _history(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, T) history and (B,) lengths from lists."""
    width = max(len(r) for r in rows)
    history = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    return history, torch.tensor([len(r) for r in rows])


def test_training_scores_one_row_per_target() -> None:
    model = _model().train()
    history, lengths = _history([[1, 2, 3], [4, 5]])
    targets = torch.tensor([[2, 3, 9], [0, 5, 7]])
    batch = WindowBatch(
        users=torch.tensor([0, 1]),
        history=history,
        history_lengths=lengths,
        sequence_targets=targets,
    )
    out = scores(model, batch)
    assert out.shape == (5, N_ITEMS + 1)  # 3 + 2 positions with a target
    torch.testing.assert_close(batch.positive_columns(), torch.tensor([2, 3, 9, 5, 7]))
    loss = CrossEntropyLoss()(out, batch)["loss"]
    # hand value: cross-entropy over items 1..N (column 0, padding, is never a candidate)
    logits = out[:, 1:]
    expected = torch.nn.functional.cross_entropy(logits, batch.positive_columns() - 1)
    torch.testing.assert_close(loss, expected)


def _sampled_columns(targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """(R, 1 + S): each position's target, then the shared negatives."""
    positives = targets[targets > 0].unsqueeze(1)
    return torch.cat([positives, negatives.expand(positives.shape[0], -1)], 1)


def assert_sampled_scores_are_full_scores(model: torch.nn.Module, users: torch.Tensor) -> None:
    """score_positions(candidates=S) is (R, 1 + S): the full-catalogue rows gathered at each
    position's target and the shared negatives (negatives repeated and equal to a target
    included); also for the model in training mode with the same dropout draws."""
    history, lengths = _history([[1, 2, 3], [4, 5], [6]])
    targets = torch.tensor([[2, 3, 9], [0, 5, 7], [0, 0, 4]])
    negatives = torch.tensor([11, 3, 3, 20, 7])
    for training in (False, True):
        model.train(training)
        torch.manual_seed(5)
        full = model.score_positions(history, lengths, targets, users)  # (R, N)
        torch.manual_seed(5)
        sampled = model.score_positions(history, lengths, targets, users, candidates=negatives)
        assert sampled.shape == (6, 1 + 5)
        columns = _sampled_columns(targets, negatives)
        torch.testing.assert_close(sampled, full.gather(1, columns), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [{}, {"temperature": 0.07}, {"encoder": "gru"}],
    ids=["sasrec", "cosine", "gru"],
)
def test_sampled_scores_are_the_full_scores_at_those_columns(settings: dict[str, object]) -> None:
    assert_sampled_scores_are_full_scores(_model(**settings), torch.arange(3))


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), BPRMaxLoss()], ids=["xe", "bprmax"])
def test_sampled_softmax_trains(loss: torch.nn.Module) -> None:
    """Both losses train SASRec on sampled scores: the targets climb above the negatives."""
    model = _model(layers=1)
    history, lengths = _history([[1, 2, 3, 4], [5, 6, 7], [8, 9]])
    targets = torch.tensor([[2, 3, 4, 10], [0, 6, 7, 11], [0, 0, 9, 12]])
    negatives = torch.arange(13, 29)  # 16 shared negatives, none a target
    batch = WindowBatch(
        users=torch.arange(3),
        history=history,
        history_lengths=lengths,
        sequence_targets=targets,
        sequence_negatives=negatives,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(60):
        out = model.score_positions(history, lengths, targets, batch.users, candidates=negatives)
        value = loss(out, batch)["loss"]
        first = value.item() if first is None else first
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert value.item() < first / 3
    model.eval()
    with torch.no_grad():
        out = model.score_positions(history, lengths, targets, batch.users, candidates=negatives)
    assert (out[:, :1] > out[:, 1:]).all()


def test_score_all_matches_score_and_export_layout() -> None:
    model = _model().eval()
    history, lengths = _history([[1, 2, 3, 4], [7], [5, 6]])
    items = torch.tensor([[3, 4, 5], [1, 2, 8], [9, 10, 11]])
    batch = RowEvalBatch(
        users=torch.zeros(3, dtype=torch.long),
        items=items,
        history=history,
        history_lengths=lengths,
    )
    with torch.no_grad():
        full = scores_all(model, batch)
        assert full.shape == (3, N_ITEMS + 1)
        torch.testing.assert_close(full.gather(1, items), scores(model, batch))
        # export: the scorer's user vectors against its item vectors, no biases
        scorer = model.scorer
        assert scorer.user_bias is None and scorer.item_bias is None
        users = scorer.users(model.user_vectors(batch.users, history, lengths))
        vectors = scorer.items(model.item_vectors())
        assert vectors.shape == (N_ITEMS + 1, 16)
        torch.testing.assert_close(users @ vectors.T, full)


@pytest.mark.parametrize("temperature", [None, 0.1])
def test_left_padding_width_does_not_change_scores(temperature: float | None) -> None:
    model = _model(temperature=temperature).eval()
    narrow = RowEvalBatch(users=torch.tensor([0]), history=torch.tensor([[4, 2, 9]]))
    wide = RowEvalBatch(users=torch.tensor([0]), history=torch.tensor([[0, 0, 0, 4, 2, 9]]))
    with torch.no_grad():
        torch.testing.assert_close(scores_all(model, narrow), scores_all(model, wide))


def test_attention_is_causal() -> None:
    model = _model().eval()
    assert model.history is not None
    table = model.item_vectors().detach()
    a = model.history.positions(torch.tensor([[3, 4, 5, 6]]), torch.tensor([4]), table)
    b = model.history.positions(torch.tensor([[3, 4, 5, 11]]), torch.tensor([4]), table)
    torch.testing.assert_close(a[:, :3], b[:, :3])  # earlier positions never see later items
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_history_longer_than_max_length_reads_the_latest_items() -> None:
    model = _model(max_length=3).eval()
    long = RowEvalBatch(users=torch.tensor([0]), history=torch.tensor([[8, 9, 1, 2, 3]]))
    short = RowEvalBatch(users=torch.tensor([0]), history=torch.tensor([[1, 2, 3]]))
    with torch.no_grad():
        torch.testing.assert_close(scores_all(model, long), scores_all(model, short))
    too_wide = WindowBatch(
        users=torch.tensor([0]),
        history=torch.tensor([[8, 9, 1, 2, 3]]),
        history_lengths=torch.tensor([5]),
        sequence_targets=torch.tensor([[9, 1, 2, 3, 4]]),
    )
    with pytest.raises(ValueError, match="datamodule.max_length"):
        scores(model.train(), too_wide)


def test_overfits_a_small_batch() -> None:
    model = _model(dropout=0.1).train()
    history, lengths = _history([[1, 2, 3, 4], [5, 6, 7], [8, 9]])
    targets, _ = _history([[2, 3, 4, 10], [6, 7, 11], [9, 12]])
    batch = WindowBatch(
        users=torch.zeros(3, dtype=torch.long),
        history=history,
        history_lengths=lengths,
        sequence_targets=targets,
    )
    loss = CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = float(loss(scores(model, batch), batch)["loss"].detach())
    for _ in range(150):
        optimizer.zero_grad()
        value = loss(scores(model, batch), batch)["loss"]
        value.backward()
        optimizer.step()
    assert float(value.detach()) < 0.1 * first


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="item_id"):
        SeqRec(5, N_ITEMS, item_id=False, text=None)
    with pytest.raises(ValueError, match="heads"):
        SeqRec(5, N_ITEMS, dim=10, heads=3)
    with pytest.raises(ValueError, match="temperature"):
        SeqRec(5, N_ITEMS, temperature=0.0)


# -- with the item text tower --------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """(folder, n_items) of a small prepared synthetic dataset whose items 1 and 2 share one
    text (so a text-only model must score them identically)."""
    raw = read_synthetic(n_users=40, n_items=30, seed=1, ratings_per_rater=20)
    folder = tmp_path_factory.mktemp("seqrec") / "prep"
    spec = prepare(raw, LeaveOneOut(eval_mode="full"), folder, item_text=TEXT)
    texts = pd.read_parquet(folder / ITEM_TEXT_FILE)
    texts.loc[texts["index"] == 2, "text"] = texts.loc[texts["index"] == 1, "text"].iloc[0]
    texts.to_parquet(folder / ITEM_TEXT_FILE)
    return folder, spec.n_items


@pytest.mark.parametrize("item_id", [False, True])
def test_text_tower_scores_items_by_their_text(prepared: tuple[Path, int], item_id: bool) -> None:
    folder, n_items = prepared
    torch.manual_seed(0)
    tower = TextItemTower(
        n_items, Catalogue.from_folder(folder), dim=16, vocab_size=200, max_length=16
    )
    model = SeqRec(5, n_items, dim=16, dropout=0.0, item_id=item_id, text=tower).eval()
    # the item tower: the text tower alone, or an ID table + the text tower
    towers = list(model.items.towers) if isinstance(model.items, SumItemTower) else [model.items]
    assert any(isinstance(t, ItemIdTower) for t in towers) == item_id and tower in towers
    batch = RowEvalBatch(users=torch.tensor([0, 1]), history=torch.tensor([[0, 3, 4], [5, 6, 7]]))
    with torch.no_grad():
        full = scores_all(model, batch)
    assert full.shape == (2, n_items + 1) and torch.isfinite(full).all()
    same = torch.allclose(full[:, 1], full[:, 2])
    assert same != item_id  # text only: identical text, identical scores; + ID: not


def test_text_tower_trains_through_the_catalogue(prepared: tuple[Path, int]) -> None:
    folder, n_items = prepared
    tower = TextItemTower(
        n_items, Catalogue.from_folder(folder), dim=16, vocab_size=200, max_length=16
    )
    model = SeqRec(5, n_items, dim=16, item_id=False, text=tower).train()
    history, lengths = _history([[1, 2, 3], [4, 5]])
    batch = WindowBatch(
        users=torch.tensor([0, 1]),
        history=history,
        history_lengths=lengths,
        sequence_targets=torch.tensor([[2, 3, 9], [0, 5, 7]]),
    )
    CrossEntropyLoss()(scores(model, batch), batch)["loss"].backward()
    assert tower.text_encoder is not None
    grad = tower.text_encoder.token_embedding.weight.grad  # type: ignore[union-attr]
    assert grad is not None and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="dim"):
        SeqRec(5, n_items, dim=32, item_id=False, text=tower)


@pytest.mark.parametrize("item_id", [False, True])
def test_text_tower_sampled_scores(prepared: tuple[Path, int], item_id: bool) -> None:
    """SeqText: the sampled scores gather the catalogue encoding's rows."""
    folder, n_items = prepared
    tower = TextItemTower(
        n_items, Catalogue.from_folder(folder), dim=16, vocab_size=200, max_length=16
    )
    model = SeqRec(5, n_items, dim=16, dropout=0.1, item_id=item_id, text=tower)
    assert_sampled_scores_are_full_scores(model, torch.arange(3))


def test_moe_adaptor_shapes_and_whitening() -> None:
    torch.manual_seed(0)
    adaptor = MoEAdaptor(12, 5, experts=3)
    x = torch.randn(7, 12)
    assert adaptor(x).shape == (7, 5) and adaptor(x.view(7, 1, 12)).shape == (7, 1, 5)
    # one expert: exactly (x - b) W
    single = MoEAdaptor(12, 5, experts=1)
    with torch.no_grad():
        single.centres.normal_()
    expected = (x - single.centres[0]) @ single.weights[0]
    torch.testing.assert_close(single(x), expected)
    with pytest.raises(ValueError, match="experts"):
        MoEAdaptor(12, 5, experts=0)
