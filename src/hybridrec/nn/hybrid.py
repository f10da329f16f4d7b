"""The hybrid: user ID and/or history × item ID and/or text, one model.

Item side (:class:`FusedItemTower`): an item's vector is its ID vector and its text vector
mixed by a per-item gate that sees the item's text vector and how often it was trained on,

    g_i = sigmoid(w · text_i + c · log(1 + count_i) + b) · count_i / (count_i + k)
    v_i = g_i · id_i + (1 - g_i) · text_i      (fusion "mix")
    v_i = text_i + g_i · id_i                  (fusion "residual": the ID vector corrects the text)

so a well-known item leans on its history and a rarely seen one on its description. An item with
no training interactions has g_i = 0: its vector is its text vector alone. "residual" keeps the
text vector at full scale whether or not the ID part is there, so the dropped (text-only)
occurrences in training look like the kept ones; the gate's bias starts at ``gate_bias``.
The shrinkage ``k = id_shrinkage`` (0: off, the factor is 1 for every trained item) caps an
item's ID share by its evidence, as an empirical-Bayes estimate shrinks a rare item's mean: an
item seen k times can lean on its ID at most half-way. Without it the learned gate has no
reason to trust a rarely seen ID less — the training loss rewards memorising it.
During training the ID part is dropped (g = 0) for a share ``id_dropout`` of the item
occurrences (DropoutNet, Volkovs et al. 2017; CLCRec practice), so the text path learns to stand
alone — the path a cold item takes at test time. ``gate_values`` exposes g for explanations.

Text prior on the IDs (``align``, collaborative topic regression, Wang & Blei 2011): the
training loss adds ``align · mean_i |id_i - text_i|^2`` over the trained items (reusing the
catalogue a full-catalogue training step encoded), so an item's ID vector is its text vector plus an
offset the data must pay for: a rarely seen item's ID stays near its text, and the text tower
learns to predict where the collaborative signal puts an item — the vector a cold item has to
rank with.

User side: a user ID tower and/or a history tower (GRU by default, or self-attention) over the
latest items, summed or mixed by a learned per-user gate (:class:`FactorizedModel`). Head: the
dot product (fast full ranking, an exportable item matrix) or a NeuMF-style GMF + MLP head.

Shapes: B = batch rows, C = candidates per row, N = n_items + 1 (item 0 is padding), D = dim.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.data.catalogue import Catalogue
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer, NeuMFScorer, Scorer
from hybridrec.nn.textrec import TextItemTower
from hybridrec.nn.towers import (
    GRUTower,
    ItemIdTower,
    SelfAttentionTower,
    UserIdTower,
    check_item_side,
    sasrec_init,
)

HISTORY_ENCODERS = ("gru", "attention")
USER_COMBINES = ("sum", "gate")
INITS = ("default", "sasrec")
FUSIONS = ("mix", "residual")
HEADS = ("dot", "neumf")


class FusedItemTower(nn.Module):
    """Item ID + text vectors fused by a learned per-item gate (see the module docstring).

    Args:
        n_items: items in the data spec.
        ids: the item ID tower.
        text: the item text tower (same D).
        counts: (N,) training interactions per item (a persistent buffer: checkpoints carry it).
        id_dropout: share of item occurrences whose ID part is dropped in training.
        fusion: ``mix`` (g · id + (1 - g) · text) or ``residual`` (text + g · id).
        gate_bias: initial bias b of the gate (negative: start leaning on the text).
        id_shrinkage: k in the factor count / (count + k) on the gate; 0 = off.
        align: weight of :meth:`alignment_loss` in training (0 = off).
    """

    counts: Tensor

    def __init__(
        self,
        n_items: int,
        ids: ItemIdTower,
        text: TextItemTower,
        counts: Tensor,
        id_dropout: float = 0.3,
        fusion: str = "mix",
        gate_bias: float = 0.0,
        id_shrinkage: float = 0.0,
        align: float = 0.0,
    ) -> None:
        super().__init__()
        if align < 0:
            raise ValueError(f"model.align={align}: expected >= 0 (0: off)")
        if id_shrinkage < 0:
            raise ValueError(f"model.id_shrinkage={id_shrinkage}: expected >= 0 (0: off)")
        if fusion not in FUSIONS:
            raise ValueError(f"model.fusion={fusion!r}: expected one of {FUSIONS}")
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f"model.id_dropout={id_dropout}: expected a value in [0, 1)")
        if counts.shape != (n_items + 1,):
            raise ValueError(
                f"item counts have shape {tuple(counts.shape)}, expected ({n_items + 1},)"
            )
        self.n_items, self.id_dropout, self.fusion = n_items, id_dropout, fusion
        self.ids, self.text = ids, text
        dim = text.dim
        self.gate = nn.Linear(dim + 1, 1)  # [text_i, log(1 + count_i)] -> logit of g_i
        self.gate_bias, self.id_shrinkage, self.align = gate_bias, id_shrinkage, align
        self._seen: tuple[Tensor, Tensor] | None = None  # set by all() in training (align > 0)
        self.reset_gate()
        self.register_buffer("counts", counts.float())

    def reset_gate(self) -> None:
        """Set the gate's bias to ``gate_bias`` (again after a model-wide re-initialisation)."""
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def gate_values(self, items: Tensor, text_vectors: Tensor | None = None) -> Tensor:
        """items (...) -> (...) g in [0, 1): the ID share of each item's vector (0 when the item
        was never trained on). Without ID dropout: what the model uses at evaluation."""
        if text_vectors is None:
            text_vectors = self.text(items)
        count = self.counts[items]  # (...)
        features = torch.cat([text_vectors, torch.log1p(count).unsqueeze(-1)], -1)
        gate = torch.sigmoid(self.gate(features).squeeze(-1))  # (...)
        if self.id_shrinkage > 0:
            return gate * count / (count + self.id_shrinkage)  # 0 for a cold item
        return gate * (count > 0)

    def _fuse(self, items: Tensor, id_vectors: Tensor, text_vectors: Tensor) -> Tensor:
        gate = self.gate_values(items, text_vectors)  # (...)
        if self.training and self.id_dropout > 0:
            kept = torch.rand(gate.shape, device=gate.device) >= self.id_dropout
            gate = gate * kept
        gate = gate.unsqueeze(-1)
        if self.fusion == "residual":
            return text_vectors + gate * id_vectors  # (..., D)
        return gate * id_vectors + (1 - gate) * text_vectors  # (..., D)

    def alignment_loss(self) -> Tensor:
        """mean over the items with training interactions of |id_i - text_i|^2 (a scalar);
        reuses the catalogue this training step encoded (full-catalogue training), encodes it
        otherwise (sampled training)."""
        seen, self._seen = self._seen, None
        ids, text = seen if seen is not None else (self.ids.all(), self.text.all())
        warm = self.counts > 0  # (N,)
        gap = ids[warm] - text[warm]  # (W, D)
        return gap.pow(2).sum(-1).mean()

    def forward(self, items: Tensor) -> Tensor:
        return self._fuse(items, self.ids(items), self.text(items))  # (..., D)

    def all(self) -> Tensor:
        items = torch.arange(self.n_items + 1, device=self.counts.device)
        ids, text = self.ids.all(), self.text.all()  # (N, D) each
        if self.training and self.align > 0:  # the step's catalogue, for alignment_loss
            self._seen = (ids, text)
        return self._fuse(items, ids, text)  # (N, D)


class Hybrid(FactorizedModel):
    """User ID and/or history × item ID and/or text, dot product; every part switchable.

    Args:
        n_users, n_items: sizes from the data spec.
        catalogue: the run's :class:`~hybridrec.data.catalogue.Catalogue` (item training counts
            for the gate); None when rebuilt from a checkpoint (the counts come with the
            weights).
        dim: D.
        user_id: learn a vector per user (off for anonymous sessions).
        history: ``gru`` | ``attention`` | None: a tower over the user's latest items.
        item_id: learn a vector per item.
        text: the item text tower; with ``item_id`` the two are fused by the gate.
        id_dropout: share of item occurrences trained without their ID part (ID + text only).
        fusion, gate_bias, id_shrinkage, align: how the item ID and text vectors combine and
            the text prior on the IDs (see FusedItemTower).
        head: ``dot`` (factorised: one matrix product ranks the catalogue) or ``neumf`` (GMF +
            MLP on the user and item vectors, :class:`NeuMFScorer`; train it on sampled
            candidates, the pair datamodule).
        head_layers: the NeuMF head's MLP layer sizes.
        layers, heads, dropout, max_length: the history tower's settings.
        init_std: std of the ID embeddings' normal initialisation.
        temperature: None = dot product; a float = cosine similarity / temperature.
        user_combine: how a user ID vector and a history vector combine: ``sum``, or ``gate``
            (a learned per-user share ``h = sigmoid(w · [id; history] + b)`` of the ID vector).
        init: ``default`` (each part's own: ID tables N(0, init_std), PyTorch's for the rest) or
            ``sasrec`` (N(0, 0.02) for every Linear and Embedding, as SeqRec initialises).
        combine: ``joint`` (this class: one jointly trained model) or ``composed`` (trained
            parts combined on validation: hybridrec-train builds it, see
            :mod:`hybridrec.run.compose`; this class refuses it).
        parts, combiner, reuse_parts: the composed hybrid's settings (read by
            :mod:`hybridrec.run.parts` and :mod:`hybridrec.run.compose`; the joint model
            ignores them).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        catalogue: Catalogue | None = None,
        dim: int = 64,
        user_id: bool = True,
        history: str | None = "gru",
        item_id: bool = True,
        text: TextItemTower | None = None,
        id_dropout: float = 0.3,
        layers: int = 1,
        heads: int = 2,
        dropout: float = 0.2,
        max_length: int = 50,
        init_std: float = 0.05,
        temperature: float | None = None,
        user_combine: str = "sum",
        init: str = "default",
        fusion: str = "mix",
        gate_bias: float = 0.0,
        id_shrinkage: float = 0.0,
        align: float = 0.0,
        head: str = "dot",
        head_layers: tuple[int, ...] | list[int] = (64, 32),
        combine: str = "joint",
        parts: dict[str, list[str]] | None = None,
        combiner: dict[str, Any] | None = None,
        reuse_parts: bool = True,
    ) -> None:
        if combine != "joint":
            raise ValueError(
                f"model.combine={combine!r}: the composed hybrid is built by hybridrec-train "
                "from its trained parts, not instantiated; here only 'joint' is possible"
            )
        if head not in HEADS:
            raise ValueError(f"model.head={head!r}: expected one of {HEADS}")
        if head == "neumf" and temperature is not None:
            raise ValueError("model.head=neumf takes no temperature: set model.temperature=null")
        if init not in INITS:
            raise ValueError(f"model.init={init!r}: expected one of {INITS}")
        if user_combine not in USER_COMBINES:
            raise ValueError(
                f"model.user_combine={user_combine!r}: expected one of {USER_COMBINES}"
            )
        if history is not None and history not in HISTORY_ENCODERS:
            raise ValueError(
                f"model.history={history!r}: expected one of {HISTORY_ENCODERS} or null"
            )
        check_item_side(n_items, dim, item_id, text)
        items: nn.Module
        if item_id and text is not None:
            counts = (
                catalogue.item_counts.clone()
                if catalogue is not None
                else torch.zeros(n_items + 1)  # filled by load_state_dict
            )
            ids = ItemIdTower(n_items, dim, init_std, zero_padding=True)
            items = FusedItemTower(
                n_items, ids, text, counts, id_dropout, fusion, gate_bias, id_shrinkage, align
            )
        elif item_id:
            items = ItemIdTower(n_items, dim, init_std, zero_padding=True)
        else:
            assert text is not None
            items = text
        users = UserIdTower(n_users, dim, init_std) if user_id else None
        tower: nn.Module | None = None
        if history == "gru":
            tower = GRUTower(dim, layers, dropout, max_length)
        elif history == "attention":
            tower = SelfAttentionTower(dim, layers, heads, 0, dropout, max_length)
        gate = None
        if user_combine == "gate" and users is not None and tower is not None:
            gate = nn.Linear(2 * dim, 1)  # [id_u; history_u] -> logit of the ID share
        scorer: Scorer = (
            NeuMFScorer(dim, tuple(head_layers), dropout)
            if head == "neumf"
            else DotScorer(temperature)
        )
        super().__init__(n_users, n_items, items, scorer, users, tower, gate)
        self.dim = dim
        if init == "sasrec":  # every Linear and Embedding, text tower included, as SeqRec
            self.apply(sasrec_init)
            if isinstance(self.items, FusedItemTower):
                self.items.reset_gate()

    def auxiliary_losses(self) -> dict[str, Tensor]:
        """Weighted terms the training loss adds: ``align`` (the text prior on the IDs)."""
        if isinstance(self.items, FusedItemTower) and self.items.align > 0:
            return {"align": self.items.align * self.items.alignment_loss()}
        return {}

    def gate_values(self, items: Tensor | None = None) -> Tensor | None:
        """The ID share g of each item's vector ((N,) for the catalogue), or None when the
        item side is not fused."""
        if not isinstance(self.items, FusedItemTower):
            return None
        if items is None:
            items = torch.arange(self.n_items + 1, device=self.items.counts.device)
        return self.items.gate_values(items)
