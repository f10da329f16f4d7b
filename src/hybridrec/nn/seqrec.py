"""SeqRec: a SASRec-style sequence recommender whose items are IDs, text, or both.

User tower: the user's latest items (at most ``max_length``) go through causal self-attention
(Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018, as RecBole implements
it: item + learned position embeddings, LayerNorm, dropout, post-norm Transformer layers with
GELU); the output at the latest position is the user's vector. Item tower: an item ID
embedding (``item_id=True``, SASRec), a :class:`TextItemTower` (``text``; the item is its
text, so a cold item is scored like a warm one), or their sum (UniSRec's fine-tuning with
text + ID, Hou et al. KDD 2022). One item table serves as the input embedding and as the
output (scoring) embedding, as in both papers.

``temperature`` (UniSRec): scores are cosine similarities / temperature instead of dot
products. Positions count from the oldest item of the (truncated) history, so a history
left-padded to any width gets the same positions.

Training reads the RecBatch ``sequence`` layout (``history`` + ``sequence_targets``, see
:mod:`hybridrec.data.batch`): every position with a target is one scoring row against the
whole catalogue, scores (R, N + 1); the cross-entropy loss (``loss=xe``) is the one RecBole
and UniSRec train SASRec with.

Shapes: B = batch rows, T = history width, R = positions with a target, N = n_items + 1
(item 0 is padding), D = ``dim``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.data.batch import RecBatch
from hybridrec.nn.textrec import TextItemTower


class SeqRec(nn.Module):
    """Args:
    n_users: unused (the user is their history); kept for the configs' common signature.
    n_items: items in the data spec.
    dim: D.
    layers, heads: Transformer depth and attention heads (``heads`` divides ``dim``).
    ffn_dim: the Transformer's inner size (0 = 4 * dim).
    dropout: on the input embeddings and inside the Transformer (attention and hidden).
    max_length: the latest items of a history the model reads (position embeddings).
    item_id: learn an ID embedding per item.
    text: the item text tower; None = IDs only. At least one of the two is needed.
    temperature: None = dot product; a float = cosine similarity / temperature.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        ffn_dim: int = 0,
        dropout: float = 0.5,
        max_length: int = 50,
        item_id: bool = True,
        text: TextItemTower | None = None,
        temperature: float | None = None,
    ) -> None:
        super().__init__()
        if not item_id and text is None:
            raise ValueError("model: set model.item_id=true or give a model.text tower (or both)")
        if dim < 1 or layers < 1 or heads < 1 or dim % heads:
            raise ValueError(
                f"model.dim={dim}, layers={layers}, heads={heads}: expected positive values "
                "with heads dividing dim"
            )
        if max_length < 1:
            raise ValueError(f"model.max_length={max_length}: expected >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: expected a value in [0, 1)")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"model.temperature={temperature}: expected > 0 or null")
        if text is not None and (text.n_items != n_items or text.dim != dim):
            raise ValueError(
                f"model.text has n_items={text.n_items}, dim={text.dim}; the model has "
                f"n_items={n_items}, dim={dim} (use ${{spec.n_items}} and ${{..dim}})"
            )
        self.n_items, self.dim, self.max_length = n_items, dim, max_length
        self.heads, self.temperature = heads, temperature
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0) if item_id else None
        self.text = text
        self.position_embedding = nn.Embedding(max_length, dim)
        self.input_norm = nn.LayerNorm(dim, eps=1e-12)
        self.input_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=ffn_dim or 4 * dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            layer_norm_eps=1e-12,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """RecBole's SASRec init: N(0, 0.02) for Linear and Embedding weights, zero biases."""
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    # -- items ------------------------------------------------------------------------------
    def item_table(self) -> Tensor:
        """(N, D) every item's vector (ID embedding and/or text tower; row 0 = padding)."""
        table: Tensor | None = None
        if self.item_embedding is not None:
            table = self.item_embedding.weight
        if self.text is not None:
            vectors = self.text.item_vectors()
            table = vectors if table is None else table + vectors
        assert table is not None
        return table

    def _output_table(self, table: Tensor) -> Tensor:
        return F.normalize(table, dim=-1) if self.temperature is not None else table

    # -- users ------------------------------------------------------------------------------
    def encode(self, history: Tensor, lengths: Tensor, table: Tensor) -> Tensor:
        """history (B, T) left-padded, lengths (B,) -> (B, T', D) outputs per position, for the
        latest T' = min(T, max_length) columns (column -1 = the latest item)."""
        history = history[:, -self.max_length :]  # (B, T')
        lengths = lengths.clamp(max=history.shape[1])
        batch, width = history.shape
        columns = torch.arange(width, device=history.device)  # (T',)
        padding = width - lengths  # (B,) padded columns on the left
        positions = (columns.unsqueeze(0) - padding.unsqueeze(1)).clamp(min=0)  # (B, T')
        real = history > 0  # (B, T')
        x = table[history] * real.unsqueeze(-1) + self.position_embedding(positions)
        x = self.input_dropout(self.input_norm(x))  # (B, T', D)
        # a position sees itself and the real items before it; the diagonal keeps padded
        # rows from attending to nothing (their outputs are never read)
        causal = torch.ones(width, width, dtype=torch.bool, device=history.device).tril()
        allowed = (causal & real.unsqueeze(1)) | torch.eye(
            width, dtype=torch.bool, device=history.device
        )  # (B, T', T')
        mask = ~allowed.repeat_interleave(self.heads, dim=0)  # (B * heads, T', T')
        return self.encoder(x, mask=mask)  # (B, T', D)

    @staticmethod
    def _history(batch: RecBatch) -> tuple[Tensor, Tensor]:
        """(history (B, T), lengths (B,)); lengths counted from the history when not given."""
        batch.require("history")
        assert batch.history is not None
        lengths = batch.history_lengths
        if lengths is None:
            lengths = (batch.history > 0).sum(1)
        return batch.history, lengths

    def _user_vectors(self, batch: RecBatch, table: Tensor) -> Tensor:
        latest = self.encode(*self._history(batch), table)[:, -1]  # (B, D)
        if self.temperature is not None:
            latest = F.normalize(latest, dim=-1) / self.temperature
        return latest

    def user_state(self, batch: RecBatch) -> Tensor:
        """(B, D) user vectors: ``user_state @ item_embeddings()[0].T`` equals ``score_all``."""
        return self._user_vectors(batch, self.item_table())

    def item_embeddings(self) -> tuple[Tensor, Tensor]:
        """(item vectors (N, D), bias (N,) of zeros): the export layout of the other models."""
        vectors = self._output_table(self.item_table())
        return vectors, vectors.new_zeros(vectors.shape[0])

    # -- scores -----------------------------------------------------------------------------
    def forward(self, batch: RecBatch) -> Tensor:
        """Training (sequence layout): (R, N + 1), one row per position with a target.
        Sampled evaluation: ``items`` (B, C) -> (B, C)."""
        table = self.item_table()  # (N, D)
        if batch.sequence_targets is not None:
            targets = batch.sequence_targets  # (B, T)
            if targets.shape[1] > self.max_length:
                raise ValueError(
                    f"training windows hold {targets.shape[1]} items but model.max_length="
                    f"{self.max_length}: set datamodule.max_length <= model.max_length"
                )
            hidden = self.encode(*self._history(batch), table)  # (B, T, D)
            rows = hidden[targets > 0]  # (R, D)
            if self.temperature is not None:
                rows = F.normalize(rows, dim=-1) / self.temperature
            return rows @ self._output_table(table).T  # (R, N + 1)
        batch.require("items")
        assert batch.items is not None
        users = self._user_vectors(batch, table).unsqueeze(1)  # (B, 1, D)
        return (users * self._output_table(table)[batch.items]).sum(-1)  # (B, C)

    def score_all(self, batch: RecBatch) -> Tensor:
        """(B, N) scores of every item; column 0 (padding) is left to the caller to mask."""
        table = self.item_table()
        return self._user_vectors(batch, table) @ self._output_table(table).T  # (B, N)
