"""Towers: the parts a factorised model is built from.

User towers map tensors to user vectors (B, D):
    UserIdTower           users (B,) -> (B, D)
    SelfAttentionTower    history (B, T), lengths (B,) -> (B, D), SASRec's causal encoder
    GRUTower              the same, a GRU over the window (no state carried across batches)
Item towers map item indices to item vectors and give the whole catalogue:
    ItemIdTower           items (...) -> (..., D);  all() -> (N, D)
    TextItemTower         the same, from item text (:mod:`hybridrec.nn.textrec`)
    SumItemTower          the sum of item towers (ID + text)

A history tower reads its input items through an item table it is handed (the model's own
item tower, so one table serves as the input and the output embedding, as SASRec and UniSRec
do). Shapes: B = batch rows, T = history width, N = n_items + 1 (item 0 is padding),
D = vector size.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn


class ItemTower(Protocol):
    """What a model needs of an item tower."""

    def __call__(self, items: Tensor) -> Tensor: ...  # (...) -> (..., D)

    def all(self) -> Tensor: ...  # (N, D), row 0 the padding item


class HistoryTower(Protocol):
    """What a model needs of a history (user) tower."""

    def __call__(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor: ...

    def positions(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor: ...


def check_item_side(n_items: int, dim: int, item_id: bool, text: Any | None) -> None:
    """A model's item side needs an ID table or a text tower of the model's sizes."""
    if not item_id and text is None:
        raise ValueError("model: set model.item_id=true or give a model.text tower (or both)")
    if text is not None and (text.n_items != n_items or text.dim != dim):
        raise ValueError(
            f"model.text has n_items={text.n_items}, dim={text.dim}; the model has "
            f"n_items={n_items}, dim={dim} (use ${{spec.n_items}} and ${{..dim}})"
        )


def sasrec_init(module: nn.Module) -> None:
    """RecBole's SASRec init (``model.apply(sasrec_init)``): N(0, 0.02) for Linear and
    Embedding weights, zero Linear biases, zero padding rows."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


def catalogue(tower: nn.Module) -> Tensor:
    """(N, D) every item's vector from an item tower module."""
    return cast(ItemTower, tower).all()


class UserIdTower(nn.Module):
    """One learned vector per user.

    Args:
        n_users: users in the data spec.
        dim: D.
        init_std: std of the normal initialisation.
    """

    def __init__(self, n_users: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.table = nn.Embedding(n_users, dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def forward(self, users: Tensor) -> Tensor:
        return self.table(users)  # (B, D)


class ItemIdTower(nn.Module):
    """One learned vector per item; row 0 is the padding item.

    Args:
        n_items: items in the data spec (the table gets one extra row, item 0).
        dim: D.
        init_std: std of the normal initialisation; None keeps PyTorch's N(0, 1) (for models
            that initialise every module themselves, as SASRec's does).
        zero_padding: keep row 0 at zero with no gradient (sequence models read padded
            histories through this table).
    """

    def __init__(
        self, n_items: int, dim: int, init_std: float | None, zero_padding: bool = False
    ) -> None:
        super().__init__()
        self.table = nn.Embedding(n_items + 1, dim, padding_idx=0 if zero_padding else None)
        if init_std is not None:
            nn.init.normal_(self.table.weight, std=init_std)
            if zero_padding:
                with torch.no_grad():
                    self.table.weight[0].zero_()

    def forward(self, items: Tensor) -> Tensor:
        return self.table(items)  # (..., D)

    def all(self) -> Tensor:
        return self.table.weight  # (N, D)


class SumItemTower(nn.Module):
    """The sum of item towers (ID + text: UniSRec's fine-tuning with both)."""

    def __init__(self, *towers: nn.Module) -> None:
        super().__init__()
        self.towers = nn.ModuleList(towers)

    def forward(self, items: Tensor) -> Tensor:
        return torch.stack([tower(items) for tower in self.towers]).sum(0)  # (..., D)

    def all(self) -> Tensor:
        tables = [catalogue(tower) for tower in self.towers]  # each (N, D)
        total = tables[0]
        for table in tables[1:]:
            total = total + table
        return total


class SelfAttentionTower(nn.Module):
    """SASRec's user tower: causal self-attention over the latest ``max_length`` items.

    Kang & McAuley, ICDM 2018, as RecBole implements it: item + learned position embeddings,
    LayerNorm, dropout, post-norm Transformer layers with GELU. Positions count from the oldest
    item of the (truncated) history, so a history left-padded to any width gets the same
    positions. The output at the latest position is the user's vector.

    Args:
        dim: D.
        layers, heads: Transformer depth and attention heads (``heads`` divides ``dim``).
        ffn_dim: the Transformer's inner size (0 = 4 * dim).
        dropout: on the input embeddings and inside the Transformer.
        max_length: the latest items of a history the tower reads (position embeddings).
    """

    def __init__(
        self,
        dim: int,
        layers: int = 2,
        heads: int = 2,
        ffn_dim: int = 0,
        dropout: float = 0.5,
        max_length: int = 50,
    ) -> None:
        super().__init__()
        if dim < 1 or layers < 1 or heads < 1 or dim % heads:
            raise ValueError(
                f"model.dim={dim}, layers={layers}, heads={heads}: expected positive values "
                "with heads dividing dim"
            )
        if max_length < 1:
            raise ValueError(f"model.max_length={max_length}: expected >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: expected a value in [0, 1)")
        self.dim, self.heads, self.max_length = dim, heads, max_length
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

    def positions(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        """history (B, T) left-padded, lengths (B,), item_table (N, D) -> (B, T', D) outputs
        per position for the latest T' = min(T, max_length) columns (-1 = the latest item)."""
        history = history[:, -self.max_length :]  # (B, T')
        lengths = lengths.clamp(max=history.shape[1])
        width = history.shape[1]
        columns = torch.arange(width, device=history.device)  # (T',)
        padding = width - lengths  # (B,) padded columns on the left
        positions = (columns.unsqueeze(0) - padding.unsqueeze(1)).clamp(min=0)  # (B, T')
        real = history > 0  # (B, T')
        x = item_table[history] * real.unsqueeze(-1) + self.position_embedding(positions)
        x = self.input_dropout(self.input_norm(x))  # (B, T', D)
        # a position sees itself and the real items before it; the diagonal keeps padded
        # rows from attending to nothing (their outputs are never read)
        # (built from a float identity: ONNX Runtime has no boolean EyeLike / Trilu)
        eye = torch.eye(width, device=history.device)  # (T', T')
        causal = torch.ones_like(eye).tril() > 0
        allowed = (causal & real.unsqueeze(1)) | (eye > 0)  # (B, T', T')
        mask = ~allowed.repeat_interleave(self.heads, dim=0)  # (B * heads, T', T')
        return self.encoder(x, mask=mask)  # (B, T', D)

    def forward(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        return self.positions(history, lengths, item_table)[:, -1]  # (B, D)


class GRUTower(nn.Module):
    """A GRU over the latest ``max_length`` items of a history, trained on whole windows with
    backpropagation through the window (next-item training reads every position); the output
    after the latest item is the user's vector. Unlike the faithful session-parallel GRU4Rec
    (:mod:`hybridrec.nn.gru4rec`), no hidden state is carried between batches.

    Padding never enters the recurrence: each row's real items are packed
    (``pack_padded_sequence``), so a history left-padded to any width gets the same outputs.

    Args:
        dim: D (input and hidden size).
        layers: stacked GRU layers.
        dropout: on the input embeddings (and between GRU layers).
        max_length: the latest items of a history the tower reads.
    """

    def __init__(self, dim: int, layers: int = 1, dropout: float = 0.0, max_length: int = 50):
        super().__init__()
        if dim < 1 or layers < 1 or max_length < 1:
            raise ValueError(
                f"model.dim={dim}, layers={layers}, max_length={max_length}: expected >= 1"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: expected a value in [0, 1)")
        self.dim, self.max_length = dim, max_length
        self.input_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, layers, batch_first=True, dropout=dropout if layers > 1 else 0)

    def positions(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        """history (B, T) left-padded, lengths (B,), item_table (N, D) -> (B, T', D) outputs per
        position for the latest T' = min(T, max_length) columns (zeros at padded columns)."""
        history = history[:, -self.max_length :]  # (B, T')
        width = history.shape[1]
        lengths = lengths.clamp(min=1, max=width)  # an empty history reads one padding item
        shift = (width - lengths).unsqueeze(1)  # (B, 1) padded columns on the left
        columns = torch.arange(width, device=history.device).unsqueeze(0)  # (1, T')
        # left-align each row (real items first) for packing, then put outputs back in place
        left = history.gather(1, (columns + shift) % width)  # (B, T')
        x = self.input_dropout(item_table[left])  # (B, T', D)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=width)
        back = ((columns - shift) % width).unsqueeze(-1).expand(-1, -1, out.shape[-1])
        return out.gather(1, back)  # (B, T', D)

    def forward(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        return self.positions(history, lengths, item_table)[:, -1]  # (B, D)

    def last_unpacked(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        """:meth:`forward` (eval mode) without packing, for a trace: (B, T), (B,), (N, D) ->
        (B, D). Each row's real items first, the GRU over the whole width, the state read at
        its last real item; the width arithmetic stays in tensors so a trace keeps T dynamic."""
        history = history[:, -self.max_length :]
        columns = torch.ones_like(history).cumsum(1) - 1  # (B, T') 0..T'-1
        width = columns[:, -1:] + 1  # (B, 1)
        lengths = torch.minimum(lengths.clamp(min=1), width.squeeze(1))  # (B,)
        shift = width - lengths.unsqueeze(1)  # padded columns on the left
        left = history.gather(1, (columns + shift) % width)  # real items first
        out, _ = self.gru(item_table[left])  # (B, T', D)
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return out.gather(1, index).squeeze(1)  # (B, D)
