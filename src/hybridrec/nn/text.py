"""Text encoders: item token ids -> item vectors, the content tower's first half.

Every encoder maps ``input_ids`` (N, L) and a boolean ``attention_mask`` (N, L) (True = a real
token, as :meth:`hybridrec.text.TextTokenizer.encode` returns them) to item vectors (N, D) and
reports D as ``out_dim``. Padding never changes an item's vector: all pooling is masked.

  - :class:`BagEncoder`: masked mean of token embeddings (a bag of words). Fast, a strong
    baseline for short titles, trains from scratch with the recommender.
  - :class:`TransformerTextEncoder`: a small Transformer trained from scratch (learned
    positions, key padding mask), pooled by [CLS] or masked mean.
  - :class:`PretrainedTextEncoder`: any Hugging Face encoder (``AutoModel``, hub name or local
    folder). Frozen (``trainable_layers=0``), the catalogue is encoded once and cached on disk
    (:meth:`PretrainedTextEncoder.encode_catalogue`); with ``trainable_layers=k`` the top k
    layers fine-tune with the recommender.

Shapes: N = texts (items), L = tokens per text, E = token embedding size, H = the pretrained
model's hidden size, D = output size (``out_dim``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

POOLINGS = ("cls", "mean")


def masked_mean(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """(N, L, E), (N, L) bool -> (N, E): mean over the real tokens (zeros for a row with none)."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (N, L, 1)
    counts = weights.sum(1).clamp_min(1.0)  # (N, 1)
    return (hidden * weights).sum(1) / counts


def _check_inputs(input_ids: Tensor, attention_mask: Tensor) -> None:
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(
            "expected input_ids and attention_mask of the same shape (N, L), got "
            f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
        )


def _projection(in_dim: int, out_dim: int) -> nn.Module:
    """LayerNorm + Linear to ``out_dim``; identity for out_dim = 0."""
    if out_dim < 0:
        raise ValueError(f"out_dim must be >= 0 (0 = no projection), got {out_dim}")
    if out_dim == 0:
        return nn.Identity()
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim))


def _check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


class BagEncoder(nn.Module):
    """Mean of token embeddings over the unmasked tokens, optionally LayerNorm + Linear.

    Args:
        vocab_size: rows of the token table (``TextTokenizer.vocab_size``).
        dim: E, the token embedding size.
        pad_id: the padding token (its row stays zero and gets no gradient).
        out_dim: D of a LayerNorm + Linear projection on the mean; 0 = none (D = E).
    """

    def __init__(self, vocab_size: int, dim: int, pad_id: int = 0, out_dim: int = 0) -> None:
        super().__init__()
        if vocab_size < 1 or dim < 1:
            raise ValueError(f"vocab_size and dim must be >= 1, got {vocab_size} and {dim}")
        self.token_embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        nn.init.normal_(self.token_embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.token_embedding.weight[pad_id].zero_()
        self.projection = _projection(dim, out_dim)
        self._out_dim = out_dim or dim

    @property
    def out_dim(self) -> int:
        return self._out_dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        _check_inputs(input_ids, attention_mask)
        tokens = self.token_embedding(input_ids)  # (N, L, E)
        return self.projection(masked_mean(tokens, attention_mask))  # (N, D)


class TransformerTextEncoder(nn.Module):
    """A small pre-norm Transformer encoder over item text, trained from scratch.

    Args:
        vocab_size: rows of the token table.
        dim: model width E.
        layers: encoder layers.
        heads: attention heads (must divide ``dim``).
        ffn_dim: feed-forward width.
        dropout: dropout in embeddings, attention and feed-forward.
        max_length: the longest L accepted (size of the learned position table).
        pooling: ``cls`` (the first token, [CLS] for WordPiece) or ``mean`` (masked mean).
        out_dim: D of a LayerNorm + Linear projection; 0 = none (D = E).
        pad_id: the padding token.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        ffn_dim: int = 256,
        dropout: float = 0.1,
        max_length: int = 64,
        pooling: str = "cls",
        out_dim: int = 0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        _check_pooling(pooling)
        if dim % heads != 0:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.pooling, self.max_length = pooling, max_length
        self.token_embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position_embedding = nn.Embedding(max_length, dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[pad_id].zero_()
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=heads,
            dim_feedforward=ffn_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # enable_nested_tensor=False: the nested-tensor fast path is an inference-only
        # optimisation that warns with norm_first; outputs are the same without it
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)
        self.projection = _projection(dim, out_dim)
        self._out_dim = out_dim or dim

    @property
    def out_dim(self) -> int:
        return self._out_dim

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        _check_inputs(input_ids, attention_mask)
        length = input_ids.shape[1]
        if length > self.max_length:
            raise ValueError(
                f"texts of {length} tokens exceed max_length={self.max_length}: raise the "
                "encoder's max_length or the tokenizer's max_length to match"
            )
        positions = torch.arange(length, device=input_ids.device)  # (L,)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)  # (N, L, E)
        hidden = self.dropout(hidden)
        # key_padding_mask: True = ignore. A row with no real token attends to its first
        # position (an all-masked row would give NaN attention).
        ignore = ~attention_mask.bool()  # (N, L)
        if length:
            ignore[:, 0] = False
        hidden = self.final_norm(self.encoder(hidden, src_key_padding_mask=ignore))  # (N, L, E)
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (N, E)
        else:
            pooled = masked_mean(hidden, attention_mask)  # (N, E)
        return self.projection(pooled)  # (N, D)


def _layer_stack(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a Hugging Face encoder (BERT, RoBERTa, DistilBERT, ...)."""
    for path in (
        "encoder.layer",  # BERT, RoBERTa, MiniLM, ELECTRA, DeBERTa
        "transformer.layer",  # DistilBERT
        "encoder.layers",
        "layers",  # ModernBERT
        "layer",
        "encoder.block",  # T5 encoder
    ):
        module: Any = model
        for name in path.split("."):
            module = getattr(module, name, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(
        f"cannot find the transformer layers of {type(model).__name__} "
        "(looked for encoder.layer, transformer.layer, layers, ...); use trainable_layers=0"
    )


def _tensor_bytes(tensor: Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


class PretrainedTextEncoder(nn.Module):
    """Any Hugging Face encoder (``transformers.AutoModel``), pooled, optionally projected.

    Args:
        name_or_path: a hub name or a local folder (``config.json`` + weights), e.g.
            :func:`hybridrec.text.minilm_path`.
        pooling: ``mean`` (masked mean of the last hidden states; sentence-transformers' choice)
            or ``cls`` (the first token).
        trainable_layers: 0 = frozen (the backbone runs in eval mode under no_grad, and
            ``encode_catalogue`` can cache the vectors); k > 0 = fine-tune the top k layers,
            the rest (embeddings, lower layers, the unused pooler) stay frozen.
        out_dim: D of a trainable LayerNorm + Linear projection; 0 = none (D = H).
        cache_dir: where ``encode_catalogue`` keeps vectors; None = no disk cache.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        pooling: str = "mean",
        trainable_layers: int = 0,
        out_dim: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        _check_pooling(pooling)
        from transformers import AutoModel

        source = os.fspath(name_or_path)
        try:
            self.backbone: Any = AutoModel.from_pretrained(source)
        except Exception as error:
            raise OSError(f"cannot load text encoder {source!r}: {error}") from error
        self.name_or_path, self.pooling = source, pooling
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.backbone.requires_grad_(False)
        if trainable_layers < 0:
            raise ValueError(f"trainable_layers must be >= 0, got {trainable_layers}")
        if trainable_layers > 0:
            stack = _layer_stack(self.backbone)
            if trainable_layers > len(stack):
                raise ValueError(
                    f"trainable_layers={trainable_layers} but {source} has {len(stack)} layers"
                )
            for block in stack[len(stack) - trainable_layers :]:
                block.requires_grad_(True)
        self.trainable_layers = trainable_layers
        config = self.backbone.config
        hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
        if hidden is None:
            raise ValueError(f"cannot read the hidden size of {source} from its config")
        self.hidden_size = int(hidden)
        self.projection = _projection(self.hidden_size, out_dim)
        self._out_dim = out_dim or self.hidden_size
        if self.frozen:
            self.backbone.eval()

    @property
    def out_dim(self) -> int:
        return self._out_dim

    @property
    def frozen(self) -> bool:
        return self.trainable_layers == 0

    def train(self, mode: bool = True) -> PretrainedTextEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # no dropout in a frozen backbone: its vectors are fixed
        return self

    def pooled(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(N, L), (N, L) -> (N, H): the backbone's pooled vectors, before the projection."""
        _check_inputs(input_ids, attention_mask)
        mask = attention_mask.bool()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=mask.long()
            ).last_hidden_state  # (N, L, H)
        if self.pooling == "cls":
            return hidden[:, 0]  # (N, H)
        return masked_mean(hidden, mask)  # (N, H)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.projection(self.pooled(input_ids, attention_mask))  # (N, D)

    def model_fingerprint(self) -> str:
        """sha256 of the backbone's config and every parameter/buffer (name, dtype, shape, bytes).

        Hashing the loaded tensors (not the files) covers hub and local models alike, and any
        in-place change to the weights.
        """
        digest = hashlib.sha256(self.backbone.config.to_json_string(use_diff=False).encode())
        state = self.backbone.state_dict()
        for name in sorted(state):
            tensor = state[name]
            digest.update(f"|{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(_tensor_bytes(tensor))
        return digest.hexdigest()

    def cache_key(
        self, input_ids: Tensor, attention_mask: Tensor, tokenizer_fingerprint: str = ""
    ) -> str:
        """sha256(model fingerprint + tokenizer fingerprint + pooling + the token ids and mask)."""
        digest = hashlib.sha256()
        header = {
            "model": self.model_fingerprint(),
            "tokenizer": tokenizer_fingerprint,
            "pooling": self.pooling,
            "shape": list(input_ids.shape),
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        digest.update(_tensor_bytes(input_ids.long()))
        digest.update(_tensor_bytes(attention_mask.bool()))
        return digest.hexdigest()

    def encode_catalogue(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        batch_size: int = 256,
        tokenizer_fingerprint: str = "",
    ) -> Tensor:
        """Every item's pooled backbone vector (N, H), computed once and cached on disk.

        Frozen encoders only: the vectors do not change in training, so they are computed under
        no_grad in batches of ``batch_size`` and, with ``cache_dir`` set, stored as
        ``<cache_dir>/<cache_key>.pt``; a later call with the same model weights, tokenizer and
        token ids reads them back. Apply ``self.projection`` (trainable) on top. Returned on
        the module's device.
        """
        if not self.frozen:
            raise ValueError(
                f"encode_catalogue needs a frozen encoder (trainable_layers=0), got "
                f"trainable_layers={self.trainable_layers}: encode batches with forward instead"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_inputs(input_ids, attention_mask)
        device = next(self.backbone.parameters()).device
        path = None
        if self.cache_dir is not None:
            key = self.cache_key(input_ids, attention_mask, tokenizer_fingerprint)
            path = self.cache_dir / f"{key}.pt"
            if path.is_file():
                return torch.load(path, map_location=device, weights_only=True)
        was_training = self.training
        self.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, input_ids.shape[0], batch_size):
                ids = input_ids[start : start + batch_size].to(device)  # (b, L)
                mask = attention_mask[start : start + batch_size].to(device)
                parts.append(self.pooled(ids, mask).float().cpu())  # (b, H)
        self.train(was_training)
        vectors = torch.cat(parts) if parts else torch.zeros(0, self.hidden_size)  # (N, H)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(vectors, partial)
            os.replace(partial, path)  # atomic: a reader never sees half a file
        return vectors.to(device)
