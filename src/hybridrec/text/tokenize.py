"""Item-text tokenisation: a WordPiece vocabulary trained on the catalogue, or a pretrained one.

Two sources, one interface (:class:`TextTokenizer`):
  - ``train_wordpiece(texts)``: a BERT-style WordPiece tokenizer trained on the catalogue's own
    texts with HF ``tokenizers`` (fast, no download; the vocabulary fits the domain, e.g. brand
    names and part numbers, which a generic vocabulary splits into many pieces);
  - ``load_tokenizer(name_or_path)``: a ``tokenizer.json`` file, a saved folder, or a Hugging
    Face hub name (through ``transformers.AutoTokenizer``), to pair with a pretrained encoder.

``encode(texts)`` returns ``input_ids`` (N, L) and a boolean ``attention_mask`` (N, L), padded
with the pad id to the longest text of the call and truncated to ``max_length`` (special tokens
included). ``fingerprint()`` names the exact tokenisation for cache keys: the serialised
tokenizer (vocabulary, normaliser, post-processor) plus ``max_length``.

Shapes: N = texts, L = tokens per text (<= max_length).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer
from torch import Tensor

#: special tokens of a trained WordPiece vocabulary, in id order ([PAD] = 0)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: file with hybridrec's own settings, next to tokenizer.json in a saved folder
META_FILE = "hybridrec_tokenizer.json"
TOKENIZER_FILE = "tokenizer.json"
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<PAD>")


def _transformers_available() -> bool:
    return importlib.util.find_spec("transformers") is not None


def _canonical(serialised: str) -> str:
    """A tokenizer's JSON without its padding/truncation state (set per call, not identity)."""
    state = json.loads(serialised)
    state.pop("padding", None)
    state.pop("truncation", None)
    return json.dumps(state, sort_keys=True, ensure_ascii=False)


class TextTokenizer:
    """Texts -> padded token ids, over a ``tokenizers.Tokenizer`` or a ``transformers`` tokenizer.

    Args:
        backend: a ``tokenizers.Tokenizer`` or a ``transformers`` ``PreTrainedTokenizerBase``.
        max_length: L cap, special tokens included (>= 2 so that [CLS] and [SEP] fit).
        lowercase: whether the normaliser lowercases (None when unknown); recorded on save.
        pad_id: padding id; by default the backend's own pad token.

    A ``tokenizers.Tokenizer`` backend is configured in place (padding to the longest text,
    truncation at ``max_length``).
    """

    def __init__(
        self,
        backend: Any,
        max_length: int = 64,
        lowercase: bool | None = None,
        pad_id: int | None = None,
    ) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 ([CLS] + [SEP]), got {max_length}")
        self.backend = backend
        self.max_length = max_length
        self.lowercase = lowercase
        self._is_fast_backend = isinstance(backend, Tokenizer)
        if self._is_fast_backend:
            self.pad_id = self._tokenizers_pad_id(backend) if pad_id is None else pad_id
            pad_token = backend.id_to_token(self.pad_id) or "[PAD]"
            # pad to the longest text of each call, cut at max_length (specials included)
            backend.enable_padding(pad_id=self.pad_id, pad_token=pad_token)
            backend.enable_truncation(max_length=max_length)
        else:
            self.pad_id = self._transformers_pad_id(backend) if pad_id is None else pad_id

    @staticmethod
    def _tokenizers_pad_id(backend: Tokenizer) -> int:
        if backend.padding is not None:
            return int(backend.padding["pad_id"])
        for token in _PAD_CANDIDATES:
            token_id = backend.token_to_id(token)
            if token_id is not None:
                return int(token_id)
        raise ValueError(
            f"the tokenizer has no pad token (looked for {', '.join(_PAD_CANDIDATES)}); "
            "pass pad_id explicitly"
        )

    @staticmethod
    def _transformers_pad_id(backend: Any) -> int:
        if backend.pad_token_id is None:
            if backend.eos_token is None:
                raise ValueError(
                    f"tokenizer {backend.name_or_path!r} has neither a pad nor an eos token; "
                    "pass pad_id explicitly"
                )
            backend.pad_token = backend.eos_token  # the usual choice for decoder vocabularies
        return int(backend.pad_token_id)

    @property
    def vocab_size(self) -> int:
        """Rows an embedding table needs (added/special tokens included)."""
        if self._is_fast_backend:
            return int(self.backend.get_vocab_size(with_added_tokens=True))
        return len(self.backend)

    def token_to_id(self, token: str) -> int | None:
        if self._is_fast_backend:
            return self.backend.token_to_id(token)
        token_id = self.backend.convert_tokens_to_ids(token)  # unknown tokens map to unk
        unknown = token_id == self.backend.unk_token_id and token != self.backend.unk_token
        return None if token_id is None or unknown else int(token_id)

    def encode(self, texts: Sequence[str] | str) -> tuple[Tensor, Tensor]:
        """texts (N,) -> ``input_ids`` LongTensor (N, L), ``attention_mask`` BoolTensor (N, L).

        L = the longest text of this call in tokens, capped at ``max_length``. An empty string
        encodes to [CLS] [SEP] (for a WordPiece vocabulary).
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"text {position} is {type(text).__name__} ({text!r}), expected str; "
                    "map missing item text to '' first"
                )
        if not texts:
            empty = torch.zeros((0, 0), dtype=torch.long)
            return empty, empty.bool()
        if self._is_fast_backend:
            encodings = self.backend.encode_batch(texts)
            input_ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)  # (N, L)
            mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool)
            return input_ids, mask
        batch = self.backend(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_token_type_ids=False,
        )
        return batch["input_ids"].long(), batch["attention_mask"].bool()  # (N, L) each

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = True) -> str:
        """One row of ids (L,) -> text (lowercased when the normaliser lowercases)."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode takes one row (L,), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        # same call for both backends
        return str(self.backend.decode(ids, skip_special_tokens=skip_special_tokens))

    def decode_batch(self, ids: Tensor, skip_special_tokens: bool = True) -> list[str]:
        """(N, L) -> N texts."""
        return [self.decode(row, skip_special_tokens) for row in ids]

    def _serialised(self) -> str:
        if self._is_fast_backend:
            return _canonical(self.backend.to_str())
        backend_tokenizer = getattr(self.backend, "backend_tokenizer", None)
        if backend_tokenizer is not None:
            return _canonical(backend_tokenizer.to_str())
        # a slow (pure Python) tokenizer: its class and vocabulary
        vocab = sorted(self.backend.get_vocab().items())
        return json.dumps([type(self.backend).__name__, vocab], ensure_ascii=False)

    def fingerprint(self) -> str:
        """sha256 of the serialised tokenizer + max_length + pad id: a key for caches."""
        digest = hashlib.sha256(self._serialised().encode())
        digest.update(f"|max_length={self.max_length}|pad_id={self.pad_id}".encode())
        return digest.hexdigest()

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json`` (+ the transformers files for that backend) and
        ``hybridrec_tokenizer.json`` (max_length, lowercase, pad_id, backend) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._is_fast_backend:
            self.backend.save(str(folder / TOKENIZER_FILE))
            backend = "tokenizers"
        else:
            self.backend.save_pretrained(str(folder))
            backend = "transformers"
        meta = {
            "backend": backend,
            "max_length": self.max_length,
            "lowercase": self.lowercase,
            "pad_id": self.pad_id,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> TextTokenizer:
        """The tokenizer ``save`` wrote, with its max_length."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path} not found: {folder} was not written by TextTokenizer.save "
                "(use load_tokenizer for other tokenizer folders)"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("backend") == "transformers" and _transformers_available():
            from transformers import AutoTokenizer

            backend: Any = AutoTokenizer.from_pretrained(str(folder))
        else:
            backend = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        return cls(backend, meta["max_length"], meta.get("lowercase"), meta.get("pad_id"))

    def to_state(self) -> dict[str, Any]:
        """The tokenizer as plain data (strings and numbers: ``torch.load(weights_only=True)``
        reads it back), for self-contained checkpoints. A transformers tokenizer is kept as
        its fast backend, which encodes the same ids; a slow (pure Python) one cannot be."""
        backend = self.backend
        if not self._is_fast_backend:
            backend = getattr(self.backend, "backend_tokenizer", None)
            if backend is None:
                raise ValueError(
                    f"{type(self.backend).__name__} is a slow tokenizer: it cannot travel "
                    "inside a checkpoint; use a fast (tokenizers-backed) one"
                )
        return {
            "tokenizer_json": backend.to_str(),
            "max_length": self.max_length,
            "lowercase": self.lowercase,
            "pad_id": self.pad_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextTokenizer:
        """The tokenizer :meth:`to_state` described."""
        backend = Tokenizer.from_str(state["tokenizer_json"])
        return cls(backend, state["max_length"], state.get("lowercase"), state.get("pad_id"))

    def __repr__(self) -> str:
        kind = "tokenizers" if self._is_fast_backend else type(self.backend).__name__
        return (
            f"TextTokenizer({kind}, vocab_size={self.vocab_size}, "
            f"max_length={self.max_length}, pad_id={self.pad_id})"
        )


def train_wordpiece(
    texts: Sequence[str],
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    max_length: int = 64,
) -> TextTokenizer:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (the catalogue's item texts).

    BertNormalizer (lowercase and strip accents when ``lowercase``) -> BertPreTokenizer (split on
    whitespace and punctuation) -> WordPiece (``##`` continuation pieces, [UNK] for characters
    never seen) -> [CLS] ... [SEP]. Ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.

    Args:
        texts: training texts (one per item; duplicates weigh more).
        vocab_size: upper bound on the vocabulary, special tokens included.
        min_frequency: a merge must occur at least this often to enter the vocabulary.
        lowercase: lowercase (and strip accents) before splitting.
        max_length: L cap of ``encode``.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got one str")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be > {len(SPECIAL_TOKENS)}, got {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    pad, unk, cls_token, sep, _ = SPECIAL_TOKENS
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = list(texts)
    # The trainer gives the "##x" continuation pieces ids in hash-map order, which changes from
    # run to run and breaks ties between merges differently: the same texts then give another
    # vocabulary (huggingface/tokenizers#1794). Declaring every "##x" up front, in sorted
    # order, fixes their ids and makes training deterministic; they are turned back into
    # ordinary vocabulary entries below.
    continuation: set[str] = set()
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            continuation.update(word[1:])
    continuation_pieces = [f"##{char}" for char in sorted(continuation)]
    trainer = WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *continuation_pieces],
        continuing_subword_prefix="##",
        show_progress=False,
    )
    draft = Tokenizer(WordPiece(unk_token=unk, continuing_subword_prefix="##"))
    draft.normalizer, draft.pre_tokenizer = normalizer, pre_tokenizer
    draft.train_from_iterator(texts, trainer=trainer, length=len(texts))
    vocab = json.loads(draft.to_str())["model"]["vocab"]  # token -> id, specials 0..4
    tokenizer = Tokenizer(
        WordPiece(
            vocab, unk_token=unk, continuing_subword_prefix="##", max_input_chars_per_word=100
        )
    )
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))  # only these match literally in text
    cls_id, sep_id = tokenizer.token_to_id(cls_token), tokenizer.token_to_id(sep)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls_token} $A {sep}",
        pair=f"{cls_token} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls_token, cls_id), (sep, sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return TextTokenizer(tokenizer, max_length, lowercase, pad_id=tokenizer.token_to_id(pad))


def _looks_like_path(name_or_path: str) -> bool:
    """True for strings that can only mean a local path (never a hub name like 'org/model')."""
    return (
        name_or_path.startswith((".", "/", "~", "\\"))
        or name_or_path.endswith(".json")
        or name_or_path.count("/") > 1
        or (len(name_or_path) > 1 and name_or_path[1] == ":")  # C:\...
    )


def load_tokenizer(name_or_path: str | os.PathLike[str], max_length: int = 64) -> TextTokenizer:
    """A pretrained tokenizer from a ``tokenizer.json`` file, a folder or a hub name.

    - a file: ``tokenizers.Tokenizer.from_file``;
    - a folder: ``transformers.AutoTokenizer.from_pretrained(folder)`` when transformers is
      installed, else ``folder/tokenizer.json``;
    - anything else: a Hugging Face hub name through ``AutoTokenizer`` (downloads unless
      ``HF_HUB_OFFLINE=1``; then only the local HF cache is used).

    ``max_length`` always applies (also to folders written by ``TextTokenizer.save``; use
    ``TextTokenizer.load`` to keep the saved one).
    """
    raw = os.fspath(name_or_path)
    path = Path(raw).expanduser()
    if path.is_file():
        try:
            return TextTokenizer(Tokenizer.from_file(str(path)), max_length)
        except Exception as error:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"cannot read tokenizer file {path}: {error}") from error
    if path.is_dir():
        if _transformers_available():
            from transformers import AutoTokenizer

            try:
                backend = AutoTokenizer.from_pretrained(str(path))
            except Exception as error:
                raise ValueError(f"cannot load a tokenizer from folder {path}: {error}") from error
            return TextTokenizer(backend, max_length)
        file = path / TOKENIZER_FILE
        if not file.is_file():
            raise FileNotFoundError(
                f"tokenizer folder {path} has no {TOKENIZER_FILE} (and transformers, which "
                "reads other formats, is not installed)"
            )
        return TextTokenizer(Tokenizer.from_file(str(file)), max_length)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(raw):
        raise FileNotFoundError(f"tokenizer not found: {raw} is neither a file nor a folder")
    if not _transformers_available():
        raise ModuleNotFoundError(
            f"loading tokenizer {raw!r} from the Hugging Face hub needs transformers"
        )
    from transformers import AutoTokenizer

    try:
        backend = AutoTokenizer.from_pretrained(raw)
    except Exception as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        hint = " (HF_HUB_OFFLINE is set: only the local HF cache was searched)" if offline else ""
        raise OSError(
            f"cannot load tokenizer {raw!r}: not a local file or folder, and not loadable as a "
            f"Hugging Face hub name{hint}: {error}"
        ) from error
    return TextTokenizer(backend, max_length)
