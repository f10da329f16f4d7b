"""The item text tower, and TextRec: a text-only two-tower recommender.

An item is its text: its vector is a text encoder (bag of words, a small Transformer, or a
pretrained Hugging Face model) applied to the item's tokens, with no item ID embedding and no
item bias. A user is an ID embedding. ``score(u, i) = <user_vec(u), item_vec(i)>``. Because
nothing about an item is learned per ID, an item never seen in training (a cold item) is scored
from its text alone, exactly like a warm one.

:class:`TextItemTower` is the item half, shared with the sequence model
(:class:`hybridrec.nn.SeqRec`). The catalogue's texts (the run's
:class:`hybridrec.data.catalogue.Catalogue`) are tokenised once at construction into the
buffers ``item_ids`` / ``item_mask``. TextRec's training encodes only the distinct items of
a batch; evaluation encodes the whole catalogue once (in chunks) and reuses it
until the model trains again.

Shapes: B = batch rows, C = candidates per row, M = distinct items, N = n_items + 1 (item 0 is
padding), L = tokens per item, D = ``dim``, H = a pretrained encoder's hidden size.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.data.catalogue import Catalogue
from hybridrec.nn.adaptor import MoEAdaptor
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.text import BagEncoder, PretrainedTextEncoder, TransformerTextEncoder
from hybridrec.nn.towers import UserIdTower
from hybridrec.text.tokenize import TextTokenizer, load_tokenizer, train_wordpiece

ENCODERS = ("bag", "transformer", "pretrained")
ADAPTORS = ("linear", "moe")


class TextItemTower(nn.Module):
    """Item vectors from item text alone: tokens -> text encoder -> adaptor -> (N, D).

    Args:
        n_items: items in the data spec (the catalogue gets one extra padding row, item 0).
        catalogue: the run's :class:`~hybridrec.data.catalogue.Catalogue` (its item texts; the
            data needs ``data.text``); None only with ``text_state``.
        encoder: ``bag`` (masked mean of token embeddings), ``transformer`` (small Transformer
            from scratch, mean-pooled) or ``pretrained`` (Hugging Face ``pretrained``).
        dim: D, the item vector size.
        vocab_size: size of the WordPiece vocabulary trained on the catalogue's texts (all of
            them: new items have text too) when ``tokenizer`` is None.
        max_length: L cap, special tokens included.
        tokenizer: Hugging Face name or path of a pretrained tokenizer; None = train WordPiece
            (``bag`` / ``transformer``) or the pretrained model's own (``pretrained``).
        pretrained: Hugging Face name or path of the encoder, for ``encoder="pretrained"``.
        trainable_layers: ``pretrained`` only. 0 = frozen: the catalogue is encoded once at
            construction and only the adaptor trains on top; k > 0 = the top k layers
            fine-tune and the backbone runs in every forward.
        transformer_layers, heads: ``transformer`` only: depth and attention heads.
        adaptor: what maps the encoder's output to D: ``linear`` (a Linear layer, left out
            when the sizes already match and something else trains) or ``moe`` (UniSRec's
            mixture of whitening experts, :class:`hybridrec.nn.adaptor.MoEAdaptor`).
        experts, adaptor_dropout: ``moe`` only.
        cache_dir: frozen ``pretrained`` only: where the catalogue's vectors are kept between
            runs (keyed by model weights, tokenizer and token ids); None = encode every run.
        text_state: :meth:`catalogue_state` of a trained tower (from a checkpoint): the tower is
            rebuilt from it instead of the catalogue's texts (a frozen pretrained encoder is not
            loaded: its item vectors are in the state; a fine-tuned one still needs ``pretrained``
            for its architecture, its weights come from the checkpoint).
    """

    #: items encoded per chunk when the whole catalogue is encoded
    chunk_items = 1024

    item_ids: Tensor
    item_mask: Tensor
    item_features: Tensor | None

    def __init__(
        self,
        n_items: int,
        catalogue: Catalogue | None = None,
        encoder: str = "bag",
        dim: int = 64,
        vocab_size: int = 8000,
        max_length: int = 32,
        tokenizer: str | None = None,
        pretrained: str | None = None,
        trainable_layers: int = 0,
        transformer_layers: int = 2,
        heads: int = 4,
        adaptor: str = "linear",
        experts: int = 8,
        adaptor_dropout: float = 0.0,
        cache_dir: str | os.PathLike[str] | None = None,
        text_state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"model.encoder={encoder!r}: expected one of {ENCODERS}")
        if adaptor not in ADAPTORS:
            raise ValueError(f"model.adaptor={adaptor!r}: expected one of {ADAPTORS}")
        if dim < 1:
            raise ValueError(f"model.dim must be >= 1, got {dim}")
        if encoder == "pretrained" and pretrained is None:
            raise ValueError(
                "model.pretrained: encoder=pretrained needs a Hugging Face model name or path"
            )
        self.n_items, self.dim, self.encoder_kind = n_items, dim, encoder
        saved_features: Tensor | None = None
        if text_state is not None:  # rebuilt from a checkpoint: no catalogue, no training
            self.tokenizer = TextTokenizer.from_state(text_state["tokenizer"])
            item_ids, item_mask = text_state["item_ids"], text_state["item_mask"]
            saved_features = text_state.get("item_features")
        else:
            if catalogue is None:
                raise ValueError(
                    "the text tower needs the run's catalogue (its item texts): build the model "
                    "with hybridrec.lit.checkpoint.build_model(config, catalogue)"
                )
            texts = catalogue.texts(n_items, "the text tower")
            source = tokenizer if encoder != "pretrained" else (tokenizer or pretrained)
            if source is None:  # a vocabulary fitted to the catalogue, new items included
                self.tokenizer = train_wordpiece(
                    texts[1:], vocab_size=vocab_size, max_length=max_length
                )
            else:
                self.tokenizer = load_tokenizer(source, max_length=max_length)
            item_ids, item_mask = self.tokenizer.encode(texts)  # (N, L) each
        # non-persistent: rebuilt from the catalogue (or the checkpoint's text state) with the model
        self.register_buffer("item_ids", item_ids, persistent=False)
        self.register_buffer("item_mask", item_mask, persistent=False)

        pad_id, vocab = self.tokenizer.pad_id, self.tokenizer.vocab_size
        self.text_encoder: nn.Module | None
        self.register_buffer("item_features", None, persistent=False)
        if encoder == "bag":
            self.text_encoder = BagEncoder(vocab, dim, pad_id=pad_id)
            encoded_dim = dim
        elif encoder == "transformer":
            # mean pooling: works with any tokenizer, [CLS] or not
            self.text_encoder = TransformerTextEncoder(
                vocab,
                dim=dim,
                layers=transformer_layers,
                heads=heads,
                ffn_dim=4 * dim,
                max_length=max_length,
                pooling="mean",
                pad_id=pad_id,
            )
            encoded_dim = dim
        elif saved_features is not None:  # a frozen encoder's vectors, from the checkpoint
            self.item_features = saved_features.float()
            self.text_encoder = None
            encoded_dim = saved_features.shape[1]
        else:
            assert pretrained is not None
            backbone = PretrainedTextEncoder(
                pretrained, trainable_layers=trainable_layers, cache_dir=cache_dir
            )
            encoded_dim = backbone.out_dim
            if backbone.frozen:
                # fixed vectors: encode once, keep only them (not the backbone's weights)
                features = backbone.encode_catalogue(
                    item_ids, item_mask, tokenizer_fingerprint=self.tokenizer.fingerprint()
                )  # (N, H)
                self.item_features = features.float()
                self.text_encoder = None
            else:
                self.text_encoder = backbone
        self.projection: nn.Module
        if adaptor == "moe":
            self.projection = MoEAdaptor(encoded_dim, dim, experts, adaptor_dropout)
        elif encoded_dim != dim or self.text_encoder is None:
            # a frozen pretrained model always gets one: it is all that trains there
            self.projection = nn.Linear(encoded_dim, dim)
        else:
            self.projection = nn.Identity()
        self._catalogue: Tensor | None = None  # (N, D) item vectors, cached while evaluating

    def catalogue_state(self) -> dict[str, Any]:
        """What rebuilds this tower without the catalogue (``text_state=``): the tokenizer as
        plain data, the catalogue's token ids, and a frozen encoder's item vectors."""
        state: dict[str, Any] = {
            "tokenizer": self.tokenizer.to_state(),
            "item_ids": self.item_ids.cpu(),
            "item_mask": self.item_mask.cpu(),
        }
        if self.item_features is not None:
            state["item_features"] = self.item_features.cpu()
        return state

    def train(self, mode: bool = True) -> TextItemTower:
        # weights may change between evaluations: the next one encodes the catalogue again
        self._catalogue = None
        super().train(mode)
        return self

    def encode_items(self, items: Tensor) -> Tensor:
        """(M,) item indices -> (M, D) item vectors, from the items' text alone."""
        if self.item_features is not None:
            return self.projection(self.item_features[items])  # (M, D)
        assert self.text_encoder is not None
        encoded = self.text_encoder(self.item_ids[items], self.item_mask[items])  # (M, E)
        return self.projection(encoded)  # (M, D)

    def cached(self, device: torch.device) -> Tensor | None:
        """The (N, D) catalogue of the current evaluation, if one is cached on ``device``."""
        cached = self._catalogue
        if not self.training and cached is not None and cached.device == device:
            return cached
        return None

    def item_vectors(self) -> Tensor:
        """(N, D) every item's vector, encoded in chunks of ``chunk_items``.

        While not training the result is computed without gradients and cached, so one
        evaluation epoch encodes the catalogue once; ``train()`` / ``eval()`` drop the cache.
        """
        device = self.item_ids.device
        cached = self.cached(device)
        if cached is not None:
            return cached
        all_items = torch.arange(self.n_items + 1, device=device)  # (N,)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            vectors = torch.cat(
                [self.encode_items(part) for part in torch.split(all_items, self.chunk_items)]
            )  # (N, D)
        if not self.training:
            self._catalogue = vectors
        return vectors

    def all(self) -> Tensor:
        """(N, D) the whole catalogue: the item-tower contract's name for :meth:`item_vectors`."""
        return self.item_vectors()

    def forward(self, items: Tensor) -> Tensor:
        """items (...) -> (..., D); encodes each distinct item once (or reads the cache)."""
        cached = self.cached(items.device)
        if cached is not None:
            return cached[items]
        unique, inverse = torch.unique(items, return_inverse=True)  # (M,), (...)
        return self.encode_items(unique)[inverse]  # (..., D)

    def extra_repr(self) -> str:
        return f"encoder={self.encoder_kind!r}, dim={self.dim}, tokenizer={self.tokenizer!r}"

    def __getstate__(self) -> dict[str, Any]:
        # a cached catalogue is derived state: never pickled (deepcopy, checkpoint callbacks)
        state = self.__dict__.copy()
        state["_catalogue"] = None
        return state


class TextRec(FactorizedModel):
    """A :class:`FactorizedModel`: user ID tower × :class:`TextItemTower`, dot product.

    There is deliberately no learned per-item bias or ID embedding: cold items must be scored
    from their text alone, the same way as items seen in training.

    Args:
        n_users, n_items: sizes from the data spec (items get one extra padding row).
        catalogue: the run's :class:`~hybridrec.data.catalogue.Catalogue` (item texts).
        dim: D, the user and item vector size.
        **text: the item tower's other settings (``encoder``, ``vocab_size``, ``max_length``,
            ``tokenizer``, ``pretrained``, ``trainable_layers``, ...), see
            :class:`TextItemTower`.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        catalogue: Catalogue | None = None,
        dim: int = 64,
        **text: Any,
    ) -> None:
        items = TextItemTower(n_items, catalogue, dim=dim, **text)
        user_id = UserIdTower(n_users, dim, init_std=dim**-0.5)
        super().__init__(n_users, n_items, items, DotScorer(), user_id=user_id)
        self.dim = dim
