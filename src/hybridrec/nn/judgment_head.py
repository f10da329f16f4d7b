"""The judgment head: marketers' judgments as a scorer of their own next to the recommender.

    s_J(c, i) = <m_c, phi(i)> (+ b_i)

``phi(i)`` is the item's representation, one of (``judgment.head.source``):

    tokens   the head's own linear map of the item's text tokens: phi(i) = sum of W[t] over
             the distinct tokens t of the item's text (the model's tokenised catalogue), i.e. a
             linear model on the bag of words (the ridge probe's features), rank ``dim``;
             with ``fields`` F > 1, W[t, f] per token and field: f = how many field
             separators (``field_separator``, "." by default) come before the token, the last
             field taking the rest, so "premium" in a title and "premium" in a description
             are two features (measured: docs/benchmarks.md, issue 23)
    text     the model's text-tower vector of the item
    id       the model's item ID vector (items with interactions only)
    item     the model's own item vector (the hybrid's fused one)
    tokens+text, tokens+id, tokens+item   the sum of both: the tokens' map and a linear map of
             the model's vector (what the text says, and what the interactions learnt)

For the model's vectors an optional learned linear map (``linear``) takes them to ``dim``.
An item with no training interaction has no learnt ID vector (its row is still the random
start), so ``id`` reads zeros there when the model counts its items' interactions (the hybrid).
``m_c`` is the context: "everyone" a learned vector, a segment "everyone + a learned offset",
a user "everyone + the user's learned offset" (offsets zero at the start, so a context with few
judgments stays close to everyone's). ``b_i`` an optional learned item bias (it only moves items
that have training judgments).

The head keeps ``K = len(l2)`` copies, each with its own L2 weight on its parameters; all are
trained on the same batches, and validation picks the copy that agrees best with the held-out
validation judgments (``chosen``, saved in checkpoints). With ``map_l2`` the linear map of the
model's vector has an L2 of its own: the copies are every pair (l2, map_l2), so the tokens'
weight and the model vector's weight are chosen on validation together.

With ``shared=False`` phi is read without gradient, so the term never reaches the recommender
(its ranking is the one it would have learnt alone); ``shared=True`` lets the term's gradient
into the shared item representation, as the joint term does (not for ``tokens``: that map is
the head's own).

Served score: ``s(u, i) + lambda s_J(c, i)`` = one dot product of ``[u, lambda m_c]`` with
``[v_i, phi_i]`` (docs/judgments.md). Shapes: K = copies, P = rows, C = items per row,
N = n_items + 1 (item 0 padding), L = tokens per item, V = token vocabulary, D = ``dim``,
E = the model's vector size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.nn.composed import ComposedHybrid, text_tower_of
from hybridrec.nn.contexts import EVERYONE, SEGMENT, USER
from hybridrec.nn.hybrid import FusedItemTower
from hybridrec.nn.textrec import TextItemTower
from hybridrec.nn.towers import ItemIdTower

SOURCES = ("tokens", "text", "id", "item", "tokens+text", "tokens+id", "tokens+item")


@dataclass
class HeadSpec:
    """``judgment.head``: what the judgment head reads and how it is regularised.

    Args:
        source: phi(i): ``tokens`` | ``text`` | ``id`` | ``item`` | ``tokens+<one of those>``
            (module docstring).
        dim: D of m_c and of a mapped phi (``tokens``, or ``linear=True``).
        linear: a learned linear map on the model's vector (``text``/``id``/``item``); without
            it m_c has the model's vector size.
        item_bias: a learned bias b_i per item.
        shared: the term's gradient also reaches the model's item representation.
        l2: the L2 weights tried (one copy of the head each; validation agreement picks one).
        serving_lambda: the lambda a served model uses when a request gives none (0: the
            recommender's own ranking; docs/judgments.md).
        lr: the head's learning rate (its own parameter group: the head sees one judgment batch
            per training step, far fewer steps than a probe fitted to convergence); None: the
            optimiser's.
        fields: ``tokens``: 1 = a weight per token (the bag of words); F > 1 = a weight per
            (token, field), the field counted by ``field_separator`` tokens, at most F.
        field_separator: the token that ends a field ("." : the prepared item text is
            "Title. Category: c. Brand: b. description").
        map_l2: the L2 weights tried for the linear map of the model's vector (``tokens+id``
            and the like, ``linear``); None: the map shares ``l2``. Given, ``l2`` and ``map_l2``
            become the K = len(l2) * len(map_l2) pairs, one copy each.
        epochs: a head fitted after its model (the composed hybrid: :mod:`hybridrec.lit.
            judgment_fit`): passes over the training judgment pairs at most.
        patience: that fit stops after this many passes without a better validation agreement
            (the copy and pass with the best one are kept).
    """

    source: str = "tokens"
    dim: int = 16
    linear: bool = True
    item_bias: bool = False
    shared: bool = False
    l2: Sequence[float] = field(default_factory=lambda: (1e-5, 1e-4, 1e-3, 1e-2))
    lr: float | None = 0.03
    serving_lambda: float = 0.0
    fields: int = 1
    field_separator: str = "."
    map_l2: Sequence[float] | None = None
    epochs: int = 200
    patience: int = 20

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"judgment.head.source={self.source!r}: expected one of {SOURCES}")
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"judgment.head.dim={self.dim}: expected an int >= 1")
        values = [float(v) for v in self.l2]
        if not values or any(v < 0 or not math.isfinite(v) for v in values):
            raise ValueError(
                f"judgment.head.l2={list(self.l2)}: expected a non-empty list of numbers >= 0"
            )
        if not isinstance(self.fields, int) or self.fields < 1:
            raise ValueError(f"judgment.head.fields={self.fields}: expected an int >= 1")
        if self.fields > 1 and not self.source.startswith("tokens"):
            raise ValueError(
                f"judgment.head.fields={self.fields} with source={self.source}: fields split "
                "the head's own tokens; use source=tokens (or tokens+<vector>)"
            )
        if self.map_l2 is not None:
            maps = [float(v) for v in self.map_l2]
            if not maps or any(v < 0 or not math.isfinite(v) for v in maps):
                raise ValueError(
                    f"judgment.head.map_l2={list(self.map_l2)}: expected null or a non-empty "
                    "list of numbers >= 0"
                )
            if self.source == "tokens" or not (self.linear or self.source.startswith("tokens")):
                raise ValueError(
                    f"judgment.head.map_l2 with source={self.source}, linear={self.linear}: "
                    "there is no linear map of the model's vector to regularise"
                )
            values, maps = [a for a in values for _ in maps], maps * len(values)
            self.map_l2 = tuple(maps)
        self.l2 = tuple(values)
        if not (isinstance(self.serving_lambda, (int, float)) and 0 <= self.serving_lambda):
            raise ValueError(
                f"judgment.head.serving_lambda={self.serving_lambda}: expected a number >= 0"
            )
        for name in ("epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"judgment.head.{name}={value}: expected an int >= 1")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"judgment.head.lr={self.lr}: expected a number > 0 or null")
        if self.shared and self.source == "tokens":
            raise ValueError(
                "judgment.head.shared=true with source=tokens: that map is the head's own, "
                "nothing of the model is shared; use source=text, id or item"
            )


def distinct_tokens(item_ids: Tensor, item_mask: Tensor) -> Tensor:
    """(N, L) token ids and mask -> (N, L) the distinct tokens of each row, the rest -1."""
    tokens = torch.where(item_mask.bool(), item_ids, torch.full_like(item_ids, -1))
    tokens = tokens.sort(dim=1).values
    repeated = torch.zeros_like(tokens, dtype=torch.bool)
    repeated[:, 1:] = tokens[:, 1:] == tokens[:, :-1]
    return tokens.masked_fill(repeated, -1)


def field_tokens(item_ids: Tensor, item_mask: Tensor, separator: int, fields: int) -> Tensor:
    """(N, L) token ids -> (N, L) ``token + V * field``: field = the number of ``separator``
    tokens before the position (the separator itself ends its field), at most ``fields - 1``;
    V = the largest token id + 1."""
    vocab = int(item_ids.max()) + 1
    ends = ((item_ids == separator) & item_mask.bool()).long()  # (N, L)
    field = (ends.cumsum(1) - ends).clamp(max=fields - 1)
    return item_ids + vocab * field


def text_tower(model: nn.Module) -> TextItemTower | None:
    """The model's item text tower (a composed hybrid: its first text part's)."""
    if isinstance(model, ComposedHybrid):
        towers = [text_tower_of(model.parts[k]) for k in model.text_parts]
        return towers[0] if towers else None
    items = getattr(model, "items", None)
    if isinstance(items, FusedItemTower):
        return items.text
    return items if isinstance(items, TextItemTower) else None


def _composed_vectors(model: ComposedHybrid, source: str) -> Tensor:
    """A composed hybrid's catalogue (N, E) for ``source``: ``item`` its item matrix (the
    weighted parts and the bucket offset); ``text`` its text parts' text-tower outputs;
    ``id`` the centred vectors of its parts that read no text (MF, SASRec, an ID-only joint
    hybrid), zero for an item without training interactions (as a plain model's ID vector)."""
    if source == "item":
        return model.item_vectors()
    if source == "text":
        if not model.text_parts:
            raise ValueError(
                "judgment.head.source=text: no part of the composed hybrid reads item text; "
                "use source=item or id"
            )
        return model.text_features()
    if not model.student_parts:
        raise ValueError(
            "judgment.head.source=id: every part of the composed hybrid reads item text "
            "(none has an ID vector alone); use source=item or text"
        )
    blocks = model.part_item_vectors()
    table = torch.cat([blocks[k] for k in model.student_parts], -1)  # (N, E)
    return table * (model.counts > 0).unsqueeze(-1).to(table.dtype)


def _model_vectors(model: nn.Module, source: str, items: Tensor | None) -> Tensor:
    """The model's vectors of ``items`` (...) -> (..., E); None: the catalogue (N, E)."""
    if isinstance(model, ComposedHybrid):
        table = _composed_vectors(model, source)
        return table if items is None else table[items]
    if source == "item":
        return model.item_vectors(items)  # type: ignore[operator]
    towers = getattr(model, "items", None)
    tower: nn.Module | None
    if source == "text":
        tower = text_tower(model)
    elif isinstance(towers, FusedItemTower):
        tower = towers.ids
    else:
        tower = towers if isinstance(towers, ItemIdTower) else None
    if tower is None:
        raise ValueError(
            f"judgment.head.source={source}: {type(model).__name__} has no item {source} "
            "tower; use source=item (its item vectors) or tokens"
        )
    if items is None:
        return tower.all()
    return tower(items)


def _devices() -> list[int]:
    """The CUDA device whose random state a read of the model may draw from (none on CPU)."""
    return [torch.cuda.current_device()] if torch.cuda.is_available() else []


class JudgmentHead(nn.Module):
    """K copies of ``s_J(c, i) = <m_c, phi(i)> (+ b_i)``, one per L2 weight.

    Args:
        spec: :class:`HeadSpec`.
        model: the recommender (read for its vector size and its text tokens; not kept).
        n_users, n_items, n_segments: sizes from the data spec.
    """

    tokens: Tensor | None
    chosen: Tensor
    l2: Tensor
    map_l2: Tensor

    def __init__(
        self, spec: HeadSpec, model: nn.Module, n_users: int, n_items: int, n_segments: int
    ) -> None:
        super().__init__()
        self.spec = spec
        k = len(spec.l2)
        self.register_buffer("l2", torch.tensor(spec.l2), persistent=False)
        map_l2 = spec.l2 if spec.map_l2 is None else spec.map_l2
        self.register_buffer("map_l2", torch.tensor(map_l2), persistent=False)
        self.register_buffer("chosen", torch.zeros((), dtype=torch.long))
        self.token_weight: nn.Parameter | None = None
        self.map: nn.Parameter | None = None
        uses_tokens = spec.source.startswith("tokens")
        #: the model's vector phi reads (text | id | item), or None
        self.model_source = None if spec.source == "tokens" else spec.source.split("+")[-1]
        self.register_buffer("tokens", None, persistent=False)
        out_dim = spec.dim
        if uses_tokens:
            tower = text_tower(model)
            if tower is None:
                raise ValueError(
                    f"judgment.head.source=tokens: {type(model).__name__} has no item text "
                    "tower to read tokens from; use a model with text (textrec, hybrid) or "
                    "source=item"
                )
            item_ids = tower.item_ids
            if spec.fields > 1:
                tokenizer = getattr(tower, "tokenizer", None)
                separator = (
                    None if tokenizer is None else tokenizer.token_to_id(spec.field_separator)
                )
                if separator is None:
                    raise ValueError(
                        f"judgment.head.field_separator={spec.field_separator!r} is not a "
                        "token of the model's tokenizer; choose one that is, or fields=1"
                    )
                item_ids = field_tokens(item_ids, tower.item_mask, separator, spec.fields)
            tokens = distinct_tokens(item_ids, tower.item_mask)  # (N, L)
            self.register_buffer("tokens", tokens, persistent=False)
            vocab = int(tokens.max()) + 1
            # zero: a token never seen in a training judgment adds nothing to any score
            self.token_weight = nn.Parameter(torch.zeros(k, vocab, spec.dim))
        generator = torch.Generator().manual_seed(0)  # the recommender's random state untouched
        if self.model_source is not None:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                one = torch.ones(1).long()
                in_dim = int(_model_vectors(model, self.model_source, one).shape[-1])
            if spec.linear or uses_tokens:  # with tokens: both parts in the same D
                start_map = torch.randn(k, in_dim, spec.dim, generator=generator)
                self.map = nn.Parameter(start_map / math.sqrt(in_dim))
            else:
                out_dim = in_dim
        start = torch.randn(k, out_dim, generator=generator) / math.sqrt(out_dim)
        if self.model_source is not None and self.map is None:
            start = torch.zeros(k, out_dim)  # phi is the model's (non-zero): m may start at 0
        self.everyone = nn.Parameter(start)  # (K, D)
        self.segment_offsets = nn.Parameter(torch.zeros(k, max(n_segments, 1), out_dim))
        # users on dim 0, as every per-user table: erasure and --no-user-table find it there
        self.user_offsets = nn.Parameter(torch.zeros(max(n_users, 1), k, out_dim))  # (U, K, D)
        self.item_bias = nn.Parameter(torch.zeros(k, n_items + 1)) if spec.item_bias else None
        self.out_dim = out_dim
        #: the model's vectors (N, E) read once (:meth:`freeze`): a head fitted after a frozen
        #: model reads them from here instead of running the model every step
        self.frozen: Tensor | None = None

    def freeze(self, model: nn.Module) -> None:
        """Read the model's vectors once; later calls of :meth:`item_features` use them (the
        model must not change meanwhile; ``shared`` heads always read the model)."""
        if self.model_source is None or self.spec.shared:
            return
        with torch.no_grad(), torch.random.fork_rng(devices=_devices()):
            self.frozen = _model_vectors(model, self.model_source, None).detach()

    # -- parts ----------------------------------------------------------------------------------
    def item_features(self, model: nn.Module, items: Tensor | None = None) -> Tensor:
        """phi of ``items`` (...) for every copy -> (K, ..., D); None: the catalogue (K, N, D)."""
        parts = []
        if self.token_weight is not None:
            assert self.tokens is not None
            tokens = self.tokens if items is None else self.tokens[items]  # (..., L)
            present = (tokens >= 0).to(self.token_weight.dtype)
            rows = self.token_weight[:, tokens.clamp(min=0)]  # (K, ..., L, D)
            parts.append((rows * present.unsqueeze(-1)).sum(-2))  # (K, ..., D)
        if self.model_source is not None:
            if self.frozen is not None:
                vectors = self.frozen if items is None else self.frozen[items]
            elif self.spec.shared:
                vectors = _model_vectors(model, self.model_source, items)  # (..., E)
            else:  # no gradient, and the model's random state (its ID dropout) untouched
                with torch.no_grad(), torch.random.fork_rng(devices=_devices()):
                    vectors = _model_vectors(model, self.model_source, items)
            counts = getattr(getattr(model, "items", None), "counts", None)
            if self.model_source == "id" and isinstance(counts, Tensor):
                # no interaction, no learnt ID vector: read zeros, not the random start
                seen = counts if items is None else counts[items]  # (...)
                vectors = vectors * (seen > 0).unsqueeze(-1).to(vectors.dtype)
            if self.map is None:
                parts.append(vectors.unsqueeze(0).expand(self.everyone.shape[0], *vectors.shape))
            else:
                flat = vectors.reshape(-1, vectors.shape[-1])  # (M, E)
                mapped = torch.einsum("me,ked->kmd", flat, self.map)  # (K, M, D)
                parts.append(mapped.reshape(mapped.shape[0], *vectors.shape[:-1], -1))
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def contexts(self, kind: Tensor, context: Tensor) -> Tensor:
        """kind, context (P,) (EVERYONE / SEGMENT / USER and its index) -> m_c (K, P, D)."""
        everyone = self.everyone.unsqueeze(1)  # (K, 1, D)
        segment = self.segment_offsets[:, context * (kind == SEGMENT)]  # (K, P, D)
        user = self.user_offsets[context * (kind == USER)].transpose(0, 1)  # (K, P, D)
        is_segment = (kind == SEGMENT).unsqueeze(-1)
        is_user = (kind == USER).unsqueeze(-1)
        return everyone + segment * is_segment + user * is_user

    # -- scores ---------------------------------------------------------------------------------
    def forward(self, model: nn.Module, kind: Tensor, context: Tensor, items: Tensor) -> Tensor:
        """kind, context (P,), items (P, C) -> (K, P, C) every copy's s_J."""
        features = self.item_features(model, items)  # (K, P, C, D)
        scores = (self.contexts(kind, context).unsqueeze(2) * features).sum(-1)
        if self.item_bias is not None:
            scores = scores + self.item_bias[:, items]
        return scores

    def score_all(self, model: nn.Module, kind: Tensor, context: Tensor) -> Tensor:
        """kind, context (P,) -> (P, N): the chosen copy's s_J of every item."""
        k = int(self.chosen)
        features = self.item_features(model)[k]  # (N, D)
        scores = self.contexts(kind, context)[k] @ features.T  # (P, N)
        if self.item_bias is not None:
            scores = scores + self.item_bias[k].unsqueeze(0)
        return scores

    def penalty(self) -> Tensor:
        """(K,) each copy's L2 weight times the squared norm of its parameters."""
        norms = torch.zeros_like(self.l2)
        for parameter in (
            self.token_weight,
            self.everyone,
            self.segment_offsets,
            self.item_bias,
        ):
            if parameter is not None:
                norms = norms + parameter.pow(2).flatten(1).sum(1)
        norms = norms + self.user_offsets.pow(2).sum((0, 2))  # (U, K, D) -> (K,)
        penalty = self.l2 * norms
        if self.map is not None:
            penalty = penalty + self.map_l2 * self.map.pow(2).flatten(1).sum(1)
        return penalty

    def choose(self, agreements: Sequence[float]) -> int:
        """Keep the copy with the highest validation agreement (NaN counts as lowest)."""
        best = max(
            range(len(agreements)),
            key=lambda k: -math.inf if math.isnan(agreements[k]) else agreements[k],
        )
        self.chosen.fill_(best)
        return best


def head_loss(
    head: JudgmentHead, losses: nn.ModuleList, model: nn.Module, batch: Any, step: int
) -> dict[str, Tensor]:
    """The head's term on one JudgmentBatch: every copy's human-rating loss (``losses``, one
    per L2 copy) plus its L2, averaged over the copies (``loss``), with the copies' mean
    ``pairwise`` / ``pointwise`` parts, mean ``l2`` and the term's ``lambda``. Shared by the
    training step (RecLitModule) and the fit on a frozen model (lit/judgment_fit.py)."""
    n_pairs = batch.pair_items.shape[0]
    kind = torch.cat([batch.pair_kind, batch.row_kind])
    context = torch.cat([batch.pair_context, batch.row_context])
    rows = torch.stack([batch.row_items, batch.row_items], 1)
    scores = head(model, kind, context, torch.cat([batch.pair_items, rows]))  # (K, P + Q, 2)
    penalty = head.penalty()  # (K,)
    parts = [
        loss(
            pair_scores=scores[k, :n_pairs],
            pair_weight=batch.pair_weight,
            pair_rater=batch.pair_rater,
            row_scores=scores[k, n_pairs:, 0],
            row_targets=batch.row_targets,
            row_weight=batch.row_weight,
            step=step,
        )
        for k, loss in enumerate(losses)
    ]
    lam = parts[0]["lambda"]
    return {
        "loss": torch.stack([p["loss"] + lam * penalty[k] for k, p in enumerate(parts)]).mean(),
        "pairwise": torch.stack([p["pairwise"] for p in parts]).mean(),
        "pointwise": torch.stack([p["pointwise"] for p in parts]).mean(),
        "l2": penalty.detach().mean(),
        "lambda": lam,
    }


def standardise_rows(scores: Tensor, columns: slice | None = None) -> Tensor:
    """(R, N) -> (R, N) each row minus its mean over ``columns`` (default: all but column 0,
    the padding item), divided by its std over them (1 where the row is constant)."""
    part = scores[:, columns if columns is not None else slice(1, None)]
    mean = part.mean(1, keepdim=True)
    std = part.std(1, unbiased=False, keepdim=True)
    return (scores - mean) / torch.where(std > 0, std, torch.ones_like(std))


__all__ = ["EVERYONE", "HeadSpec", "JudgmentHead", "SOURCES", "field_tokens", "standardise_rows"]
