"""WordPiece trained on item titles, pretrained tokenizers from files and folders, fingerprints."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from hybridrec.text import SPECIAL_TOKENS, TextTokenizer, load_tokenizer, train_wordpiece

COLOURS = ["red", "blue", "black", "green"]
THINGS = ["running shoes", "kettle", "wallet", "desk lamp", "sanding roll"]
BRANDS = ["Acme", "Porter", "Gorilla"]
#: 60 synthetic titles, every word at least 12 times
TITLES = [f"{b} {c} {t}" for b, c, t in itertools.product(BRANDS, COLOURS, THINGS)]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return train_wordpiece(TITLES, vocab_size=300, min_frequency=2, max_length=16)


def test_special_ids_and_vocab(tokenizer: TextTokenizer) -> None:
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tokenizer.pad_id == 0
    assert len(SPECIAL_TOKENS) < tokenizer.vocab_size <= 300


def test_training_is_deterministic(tokenizer: TextTokenizer) -> None:
    """Same texts, same vocabulary and ids (upstream the trainer is not: tokenizers#1794)."""
    for _ in range(5):
        again = train_wordpiece(TITLES, vocab_size=300, min_frequency=2, max_length=16)
        assert again.backend.get_vocab() == tokenizer.backend.get_vocab()
    # continuation pieces are ordinary vocabulary, not special tokens matched in raw text
    assert tokenizer.token_to_id("##e") is not None
    input_ids, _ = tokenizer.encode(["##e kettle"])
    assert tokenizer.token_to_id("##e") not in input_ids[0].tolist()


def test_round_trip_lowercases_in_vocabulary_words(tokenizer: TextTokenizer) -> None:
    texts = ["Acme RED Running Shoes", "gorilla green desk lamp"]
    input_ids, _ = tokenizer.encode(texts)
    assert tokenizer.decode_batch(input_ids) == [t.lower() for t in texts]
    assert tokenizer.decode(input_ids[0].tolist()) == "acme red running shoes"
    # whole in-vocabulary words are single tokens between [CLS] and [SEP]
    assert input_ids[0, 0] == 2 and input_ids[0, 5] == 3


def test_unknown_words_become_subwords_or_unk(tokenizer: TextTokenizer) -> None:
    input_ids, mask = tokenizer.encode(["shoeskettle", "Ωμέγα"])
    pieces = [tokenizer.backend.id_to_token(int(i)) for i in input_ids[0][mask[0]]]
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert any(p.startswith("##") for p in pieces[1:-1])  # split into known pieces
    assert tokenizer.decode(input_ids[0]) == "shoeskettle"
    assert tokenizer.backend.id_to_token(int(input_ids[1, 1])) == "[UNK]"  # unseen characters


def test_padding_truncation_and_mask(tokenizer: TextTokenizer) -> None:
    long_text = " ".join(["red kettle"] * 20)
    input_ids, mask = tokenizer.encode(["red kettle", long_text, "wallet"])
    assert input_ids.dtype == torch.long and mask.dtype == torch.bool
    assert input_ids.shape == mask.shape == (3, 16)  # capped at max_length
    assert mask.sum(1).tolist() == [4, 16, 3]
    assert (input_ids[~mask] == tokenizer.pad_id).all()
    assert input_ids[1, -1] == 3  # [SEP] kept after truncation
    # padded to the longest text of the call, not to max_length
    short_ids, short_mask = tokenizer.encode(["red kettle", "wallet"])
    assert short_ids.shape == (2, 4) and short_mask[1].tolist() == [True, True, True, False]


def test_empty_text_and_empty_call(tokenizer: TextTokenizer) -> None:
    input_ids, mask = tokenizer.encode(["", "kettle"])
    assert input_ids[0].tolist() == [2, 3, 0] and mask[0].tolist() == [True, True, False]
    assert tokenizer.decode(input_ids[0]) == ""
    ids, mask = tokenizer.encode([])
    assert ids.shape == (0, 0) and mask.dtype == torch.bool
    single, _ = tokenizer.encode("kettle")  # one str = one text, not its characters
    assert single.shape[0] == 1
    with pytest.raises(TypeError, match="text 1 is float"):
        tokenizer.encode(["kettle", float("nan")])  # type: ignore[list-item]


def test_save_load_identical(tokenizer: TextTokenizer, tmp_path: Path) -> None:
    texts = ["Porter black sanding roll", "", "unknown thing 42"]
    tokenizer.save(tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    loaded = TextTokenizer.load(tmp_path / "tok")
    assert loaded.max_length == 16 and loaded.lowercase is True and loaded.pad_id == 0
    for got, want in zip(loaded.encode(texts), tokenizer.encode(texts), strict=True):
        assert torch.equal(got, want)
    assert loaded.fingerprint() == tokenizer.fingerprint()
    # the same files through load_tokenizer: a tokenizer.json file and a folder
    from_file = load_tokenizer(tmp_path / "tok" / "tokenizer.json", max_length=16)
    from_folder = load_tokenizer(str(tmp_path / "tok"), max_length=16)
    for other in (from_file, from_folder):
        assert torch.equal(other.encode(texts)[0], tokenizer.encode(texts)[0])


def test_fingerprint_changes_with_vocab_and_max_length(tokenizer: TextTokenizer) -> None:
    same = train_wordpiece(TITLES, vocab_size=300, min_frequency=2, max_length=16)
    assert same.fingerprint() == tokenizer.fingerprint()
    tokenizer.encode(["kettle"])  # encoding does not change the fingerprint
    assert same.fingerprint() == tokenizer.fingerprint()
    other_vocab = train_wordpiece(TITLES[:20], vocab_size=300, min_frequency=2, max_length=16)
    other_length = train_wordpiece(TITLES, vocab_size=300, min_frequency=2, max_length=32)
    fingerprints = {t.fingerprint() for t in (tokenizer, other_vocab, other_length)}
    assert len(fingerprints) == 3


def test_cased_tokenizer_keeps_case() -> None:
    cased = train_wordpiece(TITLES, vocab_size=300, lowercase=False, max_length=16)
    input_ids, _ = cased.encode(["Acme red kettle"])
    assert cased.decode(input_ids[0]) == "Acme red kettle"


def test_bad_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_tokenizer(missing)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        load_tokenizer("./no_such_dir")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_tokenizer(bad)
    with pytest.raises(FileNotFoundError, match="not written by TextTokenizer.save"):
        TextTokenizer.load(tmp_path)


def test_unknown_hub_name_fails_offline_with_the_name() -> None:
    with pytest.raises(OSError, match="hybridrec-no-such/tokenizer"):
        load_tokenizer("hybridrec-no-such/tokenizer")


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_wordpiece(TITLES, vocab_size=3)
    with pytest.raises(ValueError, match="max_length"):
        train_wordpiece(TITLES, max_length=1)
    with pytest.raises(TypeError, match="one str"):
        train_wordpiece("one title")


def test_transformers_folder(tokenizer: TextTokenizer, tmp_path: Path) -> None:
    """A folder in transformers' format (what a pretrained model ships) through AutoTokenizer."""
    import transformers  # a required dependency: a broken install must fail, not skip

    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(str(tmp_path / "hf"))
    hf = load_tokenizer(tmp_path / "hf", max_length=16)
    assert not isinstance(hf.backend, type(tokenizer.backend))  # the transformers backend
    texts = ["Acme red kettle", "", " ".join(["wallet"] * 30)]
    for got, want in zip(hf.encode(texts), tokenizer.encode(texts), strict=True):
        assert torch.equal(got, want)
    assert hf.pad_id == 0 and hf.vocab_size == tokenizer.vocab_size
    hf.save(tmp_path / "saved")
    again = TextTokenizer.load(tmp_path / "saved")
    assert torch.equal(again.encode(texts)[0], hf.encode(texts)[0])
    assert again.fingerprint() == hf.fingerprint()
