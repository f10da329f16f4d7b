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

Training reads a :class:`~hybridrec.data.batch.WindowBatch` (``history`` +
``sequence_targets``, through :mod:`hybridrec.lit.adapter`): every position with a target is one
scoring row against the whole catalogue (``score_positions``), scores (R, N + 1); the
cross-entropy loss (``loss=xe``) is the one RecBole and UniSRec train SASRec with. The parts
live in :mod:`hybridrec.nn.towers` and :mod:`hybridrec.nn.factorized`; this class only composes
and initialises them.

Shapes: B = batch rows, T = history width, R = positions with a target, N = n_items + 1
(item 0 is padding), D = ``dim``.
"""

from __future__ import annotations

from torch import nn

from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.textrec import TextItemTower
from hybridrec.nn.towers import (
    GRUTower,
    ItemIdTower,
    SelfAttentionTower,
    SumItemTower,
    check_item_side,
    sasrec_init,
)

ENCODERS = ("attention", "gru")


class SeqRec(FactorizedModel):
    """A :class:`FactorizedModel`: SelfAttentionTower (user) × ID / text / ID + text (items).

    Args:
    n_users: users in the data spec (the user is their history: no user ID tower).
    n_items: items in the data spec.
    dim: D.
    layers, heads: Transformer depth and attention heads (``heads`` divides ``dim``).
    ffn_dim: the Transformer's inner size (0 = 4 * dim).
    dropout: on the input embeddings and inside the Transformer (attention and hidden).
    max_length: the latest items of a history the model reads (position embeddings).
    item_id: learn an ID embedding per item.
    text: the item text tower; None = IDs only. At least one of the two is needed.
    temperature: None = dot product; a float = cosine similarity / temperature.
    encoder: the user tower: ``attention`` (SASRec) or ``gru`` (a GRU over the window, trained
        on whole windows; ``heads`` and ``ffn_dim`` unused).
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
        encoder: str = "attention",
    ) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"model.encoder={encoder!r}: expected one of {ENCODERS}")
        check_item_side(n_items, dim, item_id, text)
        # built in the order of the original SeqRec, so a seed gives the same weights
        parts: list[nn.Module] = []
        if item_id:
            parts.append(ItemIdTower(n_items, dim, init_std=None, zero_padding=True))
        if text is not None:
            parts.append(text)
        items = parts[0] if len(parts) == 1 else SumItemTower(*parts)
        history: nn.Module
        if encoder == "gru":
            history = GRUTower(dim, layers, dropout, max_length)
        else:
            history = SelfAttentionTower(dim, layers, heads, ffn_dim, dropout, max_length)
        super().__init__(n_users, n_items, items, DotScorer(temperature), history=history)
        self.dim, self.max_length = dim, max_length
        self.apply(sasrec_init)
