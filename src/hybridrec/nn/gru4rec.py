"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018), as the official code.

What makes it GRU4Rec rather than "a GRU over item ids" (Hidasi & Czapp, RecSys 2023):
  - session-parallel training (:mod:`hybridrec.data.batching.sequences`): one GRU step per
    batch, the hidden state carried between batches and reset where a new session takes a row over;
    back-propagation through one step (the carried state is detached), as in the official code;
  - the output layer scores only the batch's own next items plus shared negatives sampled from
    popularity^alpha (scores (B, B + S)), trained with cross-entropy + logQ correction or
    BPR-max (:mod:`hybridrec.losses.session`);
  - embedding options: ``constrained`` (the input embedding IS the output item table, the
    official default), ``separate`` (an input table of ``embedding_dim``), ``none`` (one-hot
    input: the first GRU layer's input weights are an item table of 3 x hidden);
  - dropout on the input embedding and on each layer's output (the official code stores the
    dropped-out output as the next step's state; so does this one);
  - the official initialisation: uniform(+-sqrt(6 / (fan_in + fan_out))) per gate block,
    zero biases;
  - sparse gradients for the item tables (``sparse=True``) so Adagrad touches only the rows a
    batch uses (:class:`hybridrec.optim.AdagradM`, the official optimiser).

Evaluation encodes a left-padded history (B, T) step by step from a zero state and scores
items with the output table: ``h @ W_y^T + b_y``. A :class:`PrefixEvalBatch` (every position
of a session is a row) holds each session once: it is encoded in one pass and each
row's state read where its prefix ends -- the state a separate encoding of the prefix would
give (the GRU is causal and the prefix starts with the session), in L steps instead of the
L (L - 1) / 2 that encoding each prefix costs.

Batches, by class: ``forward`` takes a :class:`SessionBatch` (a training step, scores
(B, B + S)) or an :class:`EvalBatch` with sampled candidates (scores (B, C)); ``score_all`` and
``user_state`` an :class:`EvalBatch` in either layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from hybridrec.data.batch import (
    EvalBatch,
    PrefixEvalBatch,
    RowEvalBatch,
    SessionBatch,
    layout_error,
)

EMBEDDINGS = ("constrained", "separate", "none")

if TYPE_CHECKING:
    from hybridrec.nn.factorized import FactorizedModel


def _uniform_(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


class OneHotGRUCell(nn.Module):
    """A GRU cell whose input is a one-hot item: the input weights are an item table (N, 3H).

    The official ``GRUEmbedding``, not ``nn.GRUCell``: the reset gate scales the previous state
    *before* the recurrent product, and the update gate weighs the candidate::

        x_c, x_r, x_z = table[item] + b                     # (B, H) each
        r = sigmoid(x_r + h W_r);  z = sigmoid(x_z + h W_z)
        h_new = (1 - z) * h + z * tanh(x_c + (r * h) W_c)
    """

    def __init__(self, n_rows: int, hidden: int, sparse: bool) -> None:
        super().__init__()
        self.input_table = nn.Embedding(n_rows, 3 * hidden, sparse=sparse)  # x -> (c, r, z)
        self.weight_rz = nn.Parameter(torch.empty(hidden, 2 * hidden))  # h -> (r, z)
        self.weight_c = nn.Parameter(torch.empty(hidden, hidden))  # (r * h) -> candidate
        self.bias = nn.Parameter(torch.zeros(3 * hidden))
        for gate in range(3):
            block = slice(gate * hidden, (gate + 1) * hidden)
            _uniform_(self.input_table.weight[:, block], n_rows, hidden)
        for gate in range(2):
            _uniform_(self.weight_rz[:, gate * hidden : (gate + 1) * hidden], hidden, hidden)
        _uniform_(self.weight_c, hidden, hidden)

    def forward(self, items: Tensor, h: Tensor) -> Tensor:
        gx = self.input_table(items) + self.bias  # (B, 3H)
        x_c, x_r, x_z = gx.chunk(3, 1)
        h_r, h_z = (h @ self.weight_rz).chunk(2, 1)  # (B, H) each
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        candidate = torch.tanh(x_c + (r * h) @ self.weight_c)  # (B, H)
        return (1.0 - z) * h + z * candidate


class GRU4Rec(nn.Module):
    """Args:
    n_items: items 1..n_items (0 = padding).
    layers: hidden sizes of the stacked GRU layers, e.g. ``[100]``.
    embedding: ``constrained`` | ``separate`` | ``none`` (see the module doc).
    embedding_dim: input table width for ``separate``.
    dropout_embed: dropout on the input embedding (training only).
    dropout_hidden: dropout on each GRU layer's output (training only).
    sparse: sparse gradients for the item tables (needs a sparse-aware optimiser:
        ``hybridrec.optim.AdagradM`` or ``torch.optim.SparseAdam``; set False for Adam).
    """

    def __init__(
        self,
        n_items: int,
        layers: Sequence[int] = (100,),
        embedding: str = "constrained",
        embedding_dim: int = 0,
        dropout_embed: float = 0.0,
        dropout_hidden: float = 0.0,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        if embedding not in EMBEDDINGS:
            raise ValueError(f"model.embedding={embedding!r}: expected one of {EMBEDDINGS}")
        layers = [int(x) for x in layers]
        if not layers or min(layers) < 1:
            raise ValueError(f"model.layers={layers}: expected one or more positive sizes")
        if embedding == "separate" and embedding_dim < 1:
            raise ValueError("model.embedding=separate needs model.embedding_dim >= 1")
        self.n_items, self.layers, self.embedding = n_items, layers, embedding
        rows = n_items + 1
        self.item_out = nn.Embedding(rows, layers[-1], sparse=sparse)  # W_y (N + 1, H)
        self.item_bias = nn.Embedding(rows, 1, sparse=sparse)  # b_y
        _uniform_(self.item_out.weight, rows, layers[-1])
        nn.init.zeros_(self.item_bias.weight)
        self.item_in: nn.Embedding | None = None
        self.onehot: OneHotGRUCell | None = None
        cells: list[nn.Module] = []
        if embedding == "constrained":
            n_input = layers[-1]
        elif embedding == "separate":
            self.item_in = nn.Embedding(rows, embedding_dim, sparse=sparse)
            _uniform_(self.item_in.weight, rows, embedding_dim)
            n_input = embedding_dim
        else:
            self.onehot = OneHotGRUCell(rows, layers[0], sparse)
            n_input = layers[0]
        first = 1 if embedding == "none" else 0
        for i in range(first, len(layers)):
            size_in = layers[i - 1] if i > 0 else n_input
            cell = nn.GRUCell(size_in, layers[i])
            for gate in range(3):
                block = slice(gate * layers[i], (gate + 1) * layers[i])
                _uniform_(cell.weight_ih[block], size_in, layers[i])
                _uniform_(cell.weight_hh[block], layers[i], layers[i])
            nn.init.zeros_(cell.bias_ih)
            nn.init.zeros_(cell.bias_hh)
            cells.append(cell)
        self.cells = nn.ModuleList(cells)
        self.dropout_embed = nn.Dropout(dropout_embed)
        self.dropout_hidden = nn.Dropout(dropout_hidden)
        with torch.no_grad():  # padding rows score nothing and embed to zero
            self.item_out.weight[0].zero_()
        self._state: list[Tensor] = []  # session-parallel hidden state, one (slots, H) per layer

    # -- one GRU step ----------------------------------------------------------------------
    def step(self, items: Tensor, state: list[Tensor]) -> list[Tensor]:
        """items (B,), state [(B, H_l)] -> new state [(B, H_l)]; the last is the output."""
        new: list[Tensor] = []
        if self.onehot is not None:
            x = self.dropout_hidden(self.onehot(items, state[0]))
            new.append(x)
            return new + self._layers(x, state[1:])
        table = self.item_in if self.item_in is not None else self.item_out
        return self._layers(self.dropout_embed(table(items)), state)

    def _layers(self, x: Tensor, state: list[Tensor]) -> list[Tensor]:
        """The GRU cells on an embedded input x (B, E) -> their new states."""
        new: list[Tensor] = []
        for cell, h in zip(self.cells, state, strict=True):
            x = self.dropout_hidden(cell(x, h))  # (B, H_l)
            new.append(x)
        return new

    def _zeros(self, rows: int, like: Tensor) -> list[Tensor]:
        return [like.new_zeros(rows, h, dtype=self.item_out.weight.dtype) for h in self.layers]

    # -- session-parallel training ---------------------------------------------------------
    def _carried_state(self, batch: SessionBatch) -> list[Tensor]:
        slots, starts = batch.session_slots, batch.session_starts
        need = int(slots.max().item()) + 1
        if (
            not self._state
            or self._state[0].shape[0] < need
            or self._state[0].device != slots.device
        ):
            self._state = self._zeros(max(need, len(batch)), slots)
        keep = (~starts).unsqueeze(1).to(self._state[0].dtype)  # (B, 1) 0 where a session starts
        return [s[slots] * keep for s in self._state]

    def _train_scores(self, batch: SessionBatch) -> Tensor:
        inputs = batch.session_inputs  # (B,)
        columns = batch.column_items()  # (B + S,)
        if self.embedding == "constrained":  # one lookup of the shared table (one sparse grad)
            both = self.item_out(torch.cat([inputs, columns]))  # (B + B + S, H)
            embedded, outputs = both[: inputs.numel()], both[inputs.numel() :]
            state = self._layers(self.dropout_embed(embedded), self._carried_state(batch))
        else:
            state = self.step(inputs, self._carried_state(batch))
            outputs = self.item_out(columns)  # (B + S, H)
        with torch.no_grad():  # carry the state to the next batch, cut from this graph
            for layer, h in enumerate(state):
                # under bf16 autocast h is bf16: the carried state keeps its own dtype
                self._state[layer][batch.session_slots] = h.detach().to(self._state[layer].dtype)
        return torch.addmm(self.item_bias(columns).T, state[-1], outputs.T)  # (B, B + S)

    # -- evaluation ------------------------------------------------------------------------
    #: reads a PrefixEvalBatch itself (hybridrec.lit.adapter converts it for others)
    reads_prefix_layout = True

    def user_state(self, batch: EvalBatch) -> Tensor:
        """Encode ``batch.history`` (B, T), left-padded with 0, from a zero state -> (B, H).

        A :class:`PrefixEvalBatch`: each of ``batch.prefix_sequences`` (S, T) once, and row b's
        state after the first ``prefix_lengths[b]`` items of its sequence -> (B, H). The same
        as ``user_state(batch.with_row_histories())``, which encodes every prefix anew."""
        if isinstance(batch, PrefixEvalBatch):
            return self._prefix_states(batch)
        if not isinstance(batch, RowEvalBatch):
            raise layout_error("GRU4Rec.user_state", batch, (RowEvalBatch, PrefixEvalBatch))
        batch.require("history")
        history = batch.history
        assert history is not None
        return self._encode(history)[0][-1]

    def _encode(self, history: Tensor, every_step: bool = False) -> tuple[list[Tensor], Tensor]:
        """History (B, T), left-padded with 0 -> (the final state of each layer [(B, H_l)],
        the last layer's state after every column (B, T + 1, H), the zero state first, when
        ``every_step``; else an empty tensor).

        The rows run by history length, short first: with left padding the rows that hold an
        item at column t are then a suffix, and only those are stepped (Beauty's validation
        histories are half padding). A history with a 0 after an item takes the masked loop."""
        real = history > 0  # (B, T)
        if bool((real[:, :-1] & ~real[:, 1:]).any()):  # a gap: not left-padded
            return self._encode_masked(history, every_step)
        rows, width = history.shape
        lengths = real.sum(1)  # (B,)
        order = torch.argsort(lengths, stable=True)
        restore = torch.empty_like(order)
        restore[order] = torch.arange(rows, device=order.device)
        history = history[order]
        # rows [waiting[t]:] hold an item at column t: those with length >= T - t
        columns_left = width - torch.arange(width, device=history.device)  # (T,)
        waiting = torch.searchsorted(lengths[order].contiguous(), columns_left).tolist()
        state = self._zeros(0, history)  # the active rows' states (a suffix of the rows)
        zeros = self._zeros(rows, history)
        steps = [zeros[-1]] if every_step else []
        for t, first in enumerate(waiting):
            if first < rows - state[0].shape[0]:  # rows join with a zero state
                state = [
                    torch.cat([z[first : rows - s.shape[0]], s])
                    for z, s in zip(zeros, state, strict=True)
                ]
            if first < rows:
                state = self.step(history[first:, t], state)
            if every_step:
                steps.append(torch.cat([zeros[-1][: rows - state[-1].shape[0]], state[-1]]))
        final = [
            torch.cat([z[: rows - s.shape[0]], s])[restore]
            for z, s in zip(zeros, state, strict=True)
        ]
        if not every_step:
            return final, history.new_zeros(0)
        return final, torch.stack(steps, 1)[restore]  # (B, T + 1, H)

    def _encode_masked(self, history: Tensor, every_step: bool) -> tuple[list[Tensor], Tensor]:
        """:meth:`_encode` for any placement of the 0s: every row is stepped at every column
        and keeps its state where the column holds 0."""
        state = self._zeros(history.shape[0], history)
        steps = [state[-1]] if every_step else []
        for t in range(history.shape[1]):
            items = history[:, t]  # (B,)
            seen = (items > 0).unsqueeze(1)  # padding leaves the state as it is
            if bool(seen.any()):
                stepped = self.step(items, state)
                state = [
                    torch.where(seen, new, old) for new, old in zip(stepped, state, strict=True)
                ]
            if every_step:
                steps.append(state[-1])
        return state, torch.stack(steps, 1) if every_step else history.new_zeros(0)

    def _prefix_states(self, batch: PrefixEvalBatch) -> Tensor:
        sequences, rows, lengths = batch.prefix_sequences, batch.prefix_rows, batch.prefix_lengths
        states = self._encode(sequences, every_step=True)[1]  # (S, T + 1, H)
        # sequence s fills its last n_s columns, so its first p items end at column T - n_s + p
        first = sequences.shape[1] - (sequences > 0).sum(1)  # (S,)
        return states[rows, first[rows] + lengths]  # (B, H)

    def item_embeddings(self) -> tuple[Tensor, Tensor]:
        """(W_y (N + 1, H), b_y (N + 1,)): score = user_state @ W_y^T + b_y."""
        return self.item_out.weight, self.item_bias.weight[:, 0]

    def score_all(self, batch: EvalBatch) -> Tensor:
        weight, bias = self.item_embeddings()
        return self.user_state(batch) @ weight.T + bias  # (B, N + 1)

    def forward(self, batch: SessionBatch | EvalBatch) -> Tensor:
        if isinstance(batch, SessionBatch):  # session-parallel training step
            return self._train_scores(batch)
        if not isinstance(batch, EvalBatch):
            raise layout_error(
                "GRU4Rec",
                batch,
                (SessionBatch, RowEvalBatch, PrefixEvalBatch),
                "train it with datamodule.training=session_parallel",
            )
        batch.require("items")  # sampled ranking: the rows' candidates
        assert batch.items is not None
        h = self.user_state(batch)  # (B, H)
        candidates = self.item_out(batch.items)  # (B, C, H)
        return torch.einsum("bh,bch->bc", h, candidates) + self.item_bias(batch.items)[..., 0]

    def reset_state(self) -> None:
        """Forget the carried session-parallel state (the next batch starts every row anew)."""
        self._state = []


class _GRU4RecItems(nn.Module):
    """GRU4Rec's output item table W_y as an item tower: ``items (...) -> (..., H)``."""

    def __init__(self, model: GRU4Rec) -> None:
        super().__init__()
        self.gru4rec = model

    def forward(self, items: Tensor) -> Tensor:
        return self.gru4rec.item_out(items)

    def all(self) -> Tensor:
        return self.gru4rec.item_out.weight  # (N, H)


class _GRU4RecHistory(nn.Module):
    """GRU4Rec's encoder as a history tower: a left-padded history (B, T) -> its final state
    (B, H), from a zero state (the evaluation encoding). The item table argument is not read:
    GRU4Rec feeds its own input embedding."""

    def __init__(self, model: GRU4Rec) -> None:
        super().__init__()
        self.gru4rec = model

    def forward(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        return self.gru4rec._encode(history)[0][-1]


def gru4rec_factorized(model: GRU4Rec, n_users: int = 1) -> FactorizedModel:
    """A trained GRU4Rec with the factorised contract for evaluation and serving: user vector
    = the encoder's final state over the history, item vectors = W_y, item bias = b_y, so
    ``score_all`` equals GRU4Rec's own (its training stays session-parallel). What the composed
    hybrid takes as a part. Same parameters, shared: no copy."""
    from hybridrec.nn.factorized import FactorizedModel
    from hybridrec.nn.scoring import DotScorer

    scorer = DotScorer(n_items=model.n_items)
    scorer.item_bias = model.item_bias
    factorized = FactorizedModel(
        n_users, model.n_items, _GRU4RecItems(model), scorer, history=_GRU4RecHistory(model)
    )
    return factorized.eval()
