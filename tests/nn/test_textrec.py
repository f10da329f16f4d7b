"""TextRec: shapes, score_all == score, the evaluation cache, overfitting, text-only scoring,
the missing item text error, and the pretrained (frozen / fine-tuned) encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import prepare_with_text, save_tiny_bert
from hybridrec.data.batch import PairBatch, RowEvalBatch
from hybridrec.data.catalogue import Catalogue
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.preparation.text import ITEM_TEXT_FILE, load_item_text
from hybridrec.data.readers import read_synthetic
from hybridrec.lit.adapter import scores
from hybridrec.losses import BPRLoss
from hybridrec.nn import TextRec
from hybridrec.text import train_wordpiece

SMALL = {"dim": 16, "vocab_size": 300, "max_length": 16}
ENCODERS = {
    "bag": {"encoder": "bag", **SMALL},
    "transformer": {"encoder": "transformer", "transformer_layers": 1, "heads": 2, **SMALL},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """(folder, n_users, n_items) of a small prepared synthetic dataset with item text."""
    return prepare_with_text(tmp_path_factory.mktemp("textrec") / "prep", 60, 40)


def _model(prepared: tuple[Path, int, int], name: str = "bag", **kwargs: object) -> TextRec:
    folder, n_users, n_items = prepared
    torch.manual_seed(0)
    return TextRec(n_users, n_items, Catalogue.from_folder(folder), **{**ENCODERS[name], **kwargs})  # type: ignore[arg-type]


def _batch(n_users: int, n_items: int, rows: int = 6, columns: int = 5) -> RowEvalBatch:
    generator = torch.Generator().manual_seed(1)
    users = torch.randint(0, n_users, (rows,), generator=generator)
    items = torch.randint(1, n_items + 1, (rows, columns), generator=generator)
    return RowEvalBatch(users=users, items=items)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_shapes_and_score_all_matches_score(prepared: tuple[Path, int, int], name: str) -> None:
    _, n_users, n_items = prepared
    model = _model(prepared, name).eval()
    assert (
        model.items.item_ids.shape[0] == n_items + 1
        and model.items.item_mask.shape == model.items.item_ids.shape
    )
    batch = _batch(n_users, n_items)
    with torch.no_grad():
        sampled = scores(model, batch)  # no cache yet: encodes the batch's distinct items
        assert sampled.shape == (6, 5) and torch.isfinite(sampled).all()
        full = model.score_all(batch.users)
        assert full.shape == (6, n_items + 1)
        assert batch.items is not None
        torch.testing.assert_close(full.gather(1, batch.items), sampled, rtol=1e-5, atol=1e-5)
        # export: the scorer's user vectors against its item vectors, no biases
        scorer = model.scorer
        assert scorer.user_bias is None and scorer.item_bias is None
        vectors = scorer.items(model.item_vectors())
        assert vectors.shape == (n_items + 1, 16)
        users = scorer.users(model.user_vectors(batch.users))
        torch.testing.assert_close(users @ vectors.T, full)


def test_scores_need_items(prepared: tuple[Path, int, int]) -> None:
    with pytest.raises(ValueError, match="items"):
        scores(_model(prepared), RowEvalBatch(users=torch.tensor([0, 1])))


def test_catalogue_is_encoded_once_per_evaluation(
    prepared: tuple[Path, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, n_users, n_items = prepared
    model = _model(prepared)
    calls: list[int] = []
    encode = model.items.encode_items

    def counting(items: torch.Tensor) -> torch.Tensor:
        calls.append(items.numel())
        return encode(items)

    monkeypatch.setattr(model.items, "encode_items", counting)
    batch = _batch(n_users, n_items)
    model.eval()
    with torch.no_grad():
        first = model.score_all(batch.users)
        encoded = len(calls)
        second = model.score_all(batch.users)
        scores(model, batch)  # sampled ranking reads the cached catalogue too
    assert encoded >= 1 and len(calls) == encoded  # cached: nothing encoded again
    torch.testing.assert_close(first, second)
    # a training step changes the text tower: the next evaluation encodes again
    model.train()
    loss = -scores(model, batch)[:, 0].mean()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            if param.grad is not None:
                param.sub_(0.5 * param.grad)
    model.eval()
    with torch.no_grad():
        third = model.score_all(batch.users)
    assert len(calls) > encoded + 1
    assert not torch.allclose(third, first)
    # in training mode nothing is cached and score_all keeps its graph
    model.train()
    assert model.score_all(batch.users).requires_grad and model.items._catalogue is None


@pytest.mark.parametrize("name", list(ENCODERS))
def test_overfits_one_batch_with_bpr(prepared: tuple[Path, int, int], name: str) -> None:
    _, n_users, n_items = prepared
    model = _model(prepared, name).train()
    torch.manual_seed(0)
    users = torch.randperm(n_users)[:16]
    items = torch.randint(1, n_items + 1, (16, 5))  # 1 positive + 4 negatives
    labels = torch.tensor([[1.0, 0, 0, 0, 0]]).expand(16, -1)
    batch = PairBatch(users=users, items=items, labels=labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    loss_fn = BPRLoss()
    first = loss_fn(scores(model, batch), batch)["loss"].item()
    for _ in range(60):
        loss = loss_fn(scores(model, batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first, f"{name}: BPR loss {first:.3f} -> {loss.item():.3f}"


@pytest.mark.parametrize("name", list(ENCODERS))
def test_identical_text_gives_identical_scores(
    prepared: tuple[Path, int, int], name: str, tmp_path: Path
) -> None:
    """Text-only: two items with the same text are the same item to the model."""
    folder, n_users, n_items = prepared
    copy = tmp_path / "same_text"
    shutil.copytree(folder, copy)
    texts = load_item_text(copy)
    assert texts[1] != texts[2]
    texts[2] = texts[1]
    pd.DataFrame({"index": range(len(texts)), "text": texts}).to_parquet(copy / ITEM_TEXT_FILE)
    model = _model((copy, n_users, n_items), name).eval()
    batch = RowEvalBatch(users=torch.arange(5), items=torch.tensor([[1, 2, 3]] * 5))
    with torch.no_grad():
        sampled = scores(model, batch)
        full = model.score_all(batch.users)
    torch.testing.assert_close(sampled[:, 0], sampled[:, 1])
    torch.testing.assert_close(full[:, 1], full[:, 2])
    assert not torch.allclose(full[:, 1], full[:, 3])


def test_config_errors(prepared: tuple[Path, int, int], tmp_path: Path) -> None:
    folder, n_users, n_items = prepared
    plain = tmp_path / "plain"
    raw = read_synthetic(n_users=60, n_items=40, seed=0, ratings_per_rater=20)
    prepare(raw, LeaveOneOut(eval_mode="full"), plain)
    catalogue = Catalogue.from_folder(folder)
    with pytest.raises(ValueError, match=r"needs item text.*set data\.text in the data config"):
        TextRec(n_users, n_items, Catalogue.from_folder(plain))
    with pytest.raises(ValueError, match=r"model\.n_items \+ 1"):
        TextRec(n_users, n_items + 3, catalogue)
    with pytest.raises(ValueError, match=r"model\.encoder"):
        TextRec(n_users, n_items, catalogue, encoder="lstm")
    with pytest.raises(ValueError, match=r"model\.pretrained"):
        TextRec(n_users, n_items, catalogue, encoder="pretrained")
    with pytest.raises(ValueError, match=r"needs the run's catalogue"):
        TextRec(n_users, n_items)


# ---------------------------------------------------------------- pretrained (tiny random BERT)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, prepared: tuple[Path, int, int]) -> Path:
    """A 2-layer, 32-wide random BERT with its own WordPiece tokenizer, saved as one folder."""
    tokenizer = train_wordpiece(load_item_text(prepared[0])[1:], vocab_size=300, max_length=16)
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), tokenizer)


def test_pretrained_frozen_trains_only_the_projection(
    prepared: tuple[Path, int, int], tiny_bert: Path
) -> None:
    _, n_users, n_items = prepared
    model = _model(prepared, encoder="pretrained", pretrained=str(tiny_bert)).train()
    assert model.items.item_features is not None and model.items.item_features.shape == (
        n_items + 1,
        32,
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    projection = {"items.projection.weight", "items.projection.bias"}
    assert trainable == {"user_id.table.weight", *projection}
    batch = _batch(n_users, n_items)
    sampled = scores(model, batch)
    assert sampled.shape == (6, 5)
    sampled.sum().backward()
    assert model.items.projection.weight.grad is not None  # type: ignore[union-attr]
    with torch.no_grad():
        model.eval()
        assert model.score_all(batch.users).shape == (6, n_items + 1)


def test_pretrained_fine_tunes_the_top_layer(
    prepared: tuple[Path, int, int], tiny_bert: Path
) -> None:
    _, n_users, n_items = prepared
    model = _model(
        prepared, encoder="pretrained", pretrained=str(tiny_bert), trainable_layers=1
    ).train()
    assert model.items.item_features is None and model.items.text_encoder is not None
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(".layer.1." in name for name in trainable)
    assert not any(".layer.0." in name for name in trainable)
    batch = _batch(n_users, n_items)
    scores(model, batch).sum().backward()
    grads = [
        p.grad for name, p in model.named_parameters() if ".layer.1." in name and p.grad is not None
    ]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        model.eval()
        sampled = scores(model, batch)  # before score_all fills the cache
        full = model.score_all(batch.users)
        assert batch.items is not None
        torch.testing.assert_close(full.gather(1, batch.items), sampled, rtol=1e-5, atol=1e-5)
