"""ComposedHybrid: trained factorised parts combined by their standardised scores.

Each part k is a trained :class:`FactorizedModel` (MF, TextRec, SASRec / SeqText, a joint
hybrid) that scores with a dot product, ``s_k(u, i) = <u_k, v_k(i)> + b_k(i)`` (cosine parts:
the normalised vectors / temperature). The composed score is a weighted sum of the parts'
scores, each standardised over the catalogue for that user, with a weight per part and per
item-popularity bucket ``b(i)`` (fitted on the validation split: :mod:`hybridrec.lit.combiner`):

    z_k(u, i) = (s_k(u, i) - mean_j s_k(u, j)) / std_j s_k(u, j)
    s(u, i)   = sum_k w_k(b(i)) * z_k(u, i) + c(b(i))

The weights of a bucket decide how its items rank among themselves, its offset c(b) (in
standard deviations) how they compete with the other buckets' items: cold items can be ranked by
the text parts and kept below well-known items at once. Optionally the mix also depends on how
much the model knows of the user: a multiplier a_k(h(u)) per part and user-history bucket h
(the user's training interactions, else — a session, an unknown user — the length of the
history read; split at quantiles of the users' training counts),
``s(u, i) = sum_k a_k(h(u)) w_k(b(i)) z_k(u, i) + c(b(i))`` — a short-history user may lean
on one part, a long one on another. It scales the user's blocks, so the model stays one dot
product.

Where a row reads a history (a sequence, a session, a served user's known items), an item the
row has already had gets one more term, the repeat offset r (in standard deviations, fitted on
validation where evaluation ranks known items: ``protocol.mask_known=false``, sessions):
``s(u, i) + r · [i in history(u)]``. Whether people take an item again is a property of the
data (none in Amazon Scientific's reviews, many in a session's clicks; repeat-aware
recommenders learn it, Ren et al. 2019 RepeatNet); r = 0 where it was not fitted, and a
large negative r ranks a user's own items last. It is a sparse term beside the dot product
(one scatter over the history's items), not part of the vectors.

Both statistics are over the warm items j (trained on) and come in closed form from the item
side: with ũ = [u_k, 1], ṽ_i = [v_k(i), b_k(i)], m_k their mean and C_k their covariance,
``mean_j s = <ũ, m_k>`` and ``std_j s = sqrt(ũᵀ C_k ũ)``. So the composed model is again ONE
dot product, of concatenated vectors (Burke's weighted hybrid, as one factorised model):

    user(u) = [a_1 ũ_1 / σ_1(u), a_2 ũ_2 / σ_2(u), ..., 1]                 (B, Σ(D_k + 1) + 1)
    item(i) = [w_1(b(i)) (ṽ_1(i) - m_1), w_2(b(i)) (ṽ_2(i) - m_2), ..., c(b(i))]

one item matrix to export and serve, top-K by one matrix product. Bucket 0 holds the cold items
(no training interaction). Without a student, parts that do not read item text get weight 0
there, so a cold item is scored by the text parts only. With a text student
(:class:`~hybridrec.nn.student.TextStudent`, fitted by :mod:`hybridrec.lit.student`), a cold
item's block of every part that reads no text (MF, SASRec, GRU4Rec) is the student's estimate
from the item's text, on the warm items' scale, and every part may weigh cold items.
The user-side terms of a part (user bias, global bias) shift a user's row by a constant and drop
out of the standardised score.

Shapes: B = batch rows, C = candidates, N = n_items + 1 (item 0 is padding), K = parts,
G = popularity buckets, H = user-history buckets, D = Σ_k (D_k + 1) + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.student import TextStudent
from hybridrec.nn.textrec import TextItemTower
from hybridrec.validators import COMBINER_BUCKETS, COMBINER_USER_BUCKETS

_EPS = 1e-12


def reads_text(model: nn.Module) -> bool:
    """True when ``model`` encodes items from their text (it can score a cold item)."""
    return any(isinstance(m, TextItemTower) for m in model.modules())


def text_tower_of(model: nn.Module) -> TextItemTower | None:
    """The model's item text tower: its item tower itself (TextRec, SeqText) or the fused
    tower's text half (a joint hybrid); None when it reads no text."""
    items = getattr(model, "items", None)
    for tower in (items, getattr(items, "text", None)):
        if isinstance(tower, TextItemTower):
            return tower
    return None


def popularity_buckets(counts: Tensor, n_buckets: int) -> tuple[Tensor, Tensor]:
    """Training counts (N,) -> (bucket per item (N,) long, edges (G - 2,)). Bucket 0: cold
    (count 0, and the padding item); buckets 1..G-1: warm items by count, split at quantiles
    of the warm items' counts (each warm bucket holds about as many items). G = 1: one bucket
    for every item."""
    COMBINER_BUCKETS.require("model.combiner.buckets", n_buckets)
    if n_buckets == 1:  # one weight per part for every item, cold ones included
        return torch.zeros(len(counts), dtype=torch.long), torch.zeros(0)
    warm = counts[1:][counts[1:] > 0].float()
    n_warm_buckets = max(n_buckets - 1, 1)
    if len(warm) and n_warm_buckets > 1:
        quantiles = torch.arange(1, n_warm_buckets, dtype=torch.float32) / n_warm_buckets
        edges = torch.quantile(warm, quantiles)
    else:
        edges = torch.zeros(0)
    bucket = 1 + torch.bucketize(counts.float(), edges, right=True)  # (N,) 1..G-1
    bucket = torch.where(counts > 0, bucket, torch.zeros_like(bucket))
    bucket[0] = 0
    return bucket.long(), edges


def repeat_mask(history: Tensor, scores: Tensor, items: Tensor | None = None) -> Tensor:
    """(B, C) 1.0 where the column's item is in the row's ``history`` (B, T) (0 = padding,
    never), else 0, in ``scores``' dtype; ``items`` (B, C) the columns' items (None: column i
    is item i). The whole catalogue by one scatter (traces; ONNX ScatterElements)."""
    if items is not None:  # a few candidates per row: compared with the history directly
        hit = (items.unsqueeze(-1) == history.unsqueeze(1)).any(-1) & (items > 0)  # (B, C)
        return hit.to(scores.dtype)
    ones = torch.ones_like(history, dtype=scores.dtype)
    seen = torch.zeros_like(scores).scatter(1, history, ones)  # (B, N)
    seen[:, 0] = 0.0
    return seen


def _sync_after_load(module: nn.Module, _keys: Any) -> None:
    """After load_state_dict: the Python copy of r follows the loaded buffer (a plain function,
    so the module still deep-copies and pickles)."""
    assert isinstance(module, ComposedHybrid)
    module._sync_repeat()


class ComposedHybrid(nn.Module):
    """Args:
    parts: trained factorised models with dot-product scorers (eval mode; frozen here).
    names: one name per part (the combiner's weights and the explanations use them).
    counts: (N,) training interactions per item: the cold / popularity buckets.
    n_buckets: G, popularity buckets including the cold one (1: one weight per part).
    user_counts: (U + 1,) training interactions per user index: the user-history buckets'
        edges (with ``n_user_buckets`` > 1; None: they come with a state dict).
    n_user_buckets: H, user-history buckets (1: the mix does not depend on the user).

    ``weights`` (K, G) starts uniform over the parts (cold bucket: over the text parts) and is
    set by :meth:`set_weights` (the combiner fitted on validation); ``user_weights`` (K, H)
    starts at 1 and is set by :meth:`set_user_weights`. :meth:`set_student` adds a text
    student for the cold items' ID-part blocks (``student_parts``: which parts).
    """

    weights: Tensor
    offsets: Tensor
    user_weights: Tensor
    user_edges: Tensor
    user_counts: Tensor
    repeat: Tensor
    item_bucket: Tensor
    counts: Tensor
    allowed: Tensor
    part_payloads: list[dict[str, Any]]  # each part's checkpoint entry (set by whoever builds it)
    student: TextStudent | None

    def __init__(
        self,
        parts: Sequence[FactorizedModel],
        names: Sequence[str],
        counts: Tensor,
        n_buckets: int = 4,
        user_counts: Tensor | None = None,
        n_user_buckets: int = 1,
    ) -> None:
        super().__init__()
        if len(parts) != len(names) or not parts:
            raise ValueError("model.parts: expected at least one part, one name each")
        for name, part in zip(names, parts, strict=True):
            if not isinstance(part, FactorizedModel) or not isinstance(part.scorer, DotScorer):
                raise ValueError(
                    f"model.parts.{name}: a part must be a factorised model scoring with a dot "
                    f"product (MF, TextRec, SASRec, SeqText, a joint hybrid with head=dot); "
                    f"got {type(part).__name__}"
                )
        self.parts = nn.ModuleList(parts)
        for parameter in self.parts.parameters():
            parameter.requires_grad_(False)
        self.names = list(names)
        self.part_payloads = []
        self.n_items = int(parts[0].n_items)
        self.n_users = int(parts[0].n_users)
        if counts.shape != (self.n_items + 1,):
            raise ValueError(f"counts: shape {tuple(counts.shape)}, expected ({self.n_items + 1},)")
        bucket, _ = popularity_buckets(counts, n_buckets)
        self.n_buckets = int(n_buckets)
        self.register_buffer("counts", counts.float().clone())
        self.register_buffer("item_bucket", bucket)
        # which part may carry weight in which bucket: the cold bucket only text parts (when
        # there is one; else every part, as each would score a cold item alone)
        text = torch.tensor([reads_text(p) for p in parts])
        allowed = torch.ones(len(parts), self.n_buckets, dtype=torch.bool)
        if text.any() and n_buckets > 1:
            allowed[:, 0] = text
        self.register_buffer("allowed", allowed)
        weights = allowed.float() / allowed.float().sum(0, keepdim=True)
        self.register_buffer("weights", weights)
        self.register_buffer("offsets", torch.zeros(self.n_buckets))  # c(b), set by the combiner
        self.register_buffer("repeat", torch.zeros(()))  # r, the history's items; the combiner
        self.repeat_value = 0.0  # r as a Python float: no device sync per scored batch
        self.register_load_state_dict_post_hook(_sync_after_load)
        # user-history buckets: edges (H - 1,) over the users' training counts, a multiplier
        # per part and bucket (1: as without them)
        COMBINER_USER_BUCKETS.require("model.combiner.user_buckets", n_user_buckets)
        self.n_user_buckets = int(n_user_buckets)
        edges = torch.zeros(self.n_user_buckets - 1)
        if self.n_user_buckets > 1 and user_counts is not None:  # None: from a state dict
            known = user_counts[user_counts > 0].float()
            if len(known):
                quantiles = torch.arange(1, self.n_user_buckets) / self.n_user_buckets
                edges = torch.quantile(known, quantiles)
        self.register_buffer("user_edges", edges)
        self.register_buffer("user_weights", torch.ones(len(parts), self.n_user_buckets))
        by_user = user_counts if user_counts is not None else torch.zeros(self.n_users + 1)
        self.register_buffer("user_counts", by_user.float().clone())
        # the text student's sources (parts reading text) and targets (parts reading none; a
        # joint hybrid with text keeps its own text-only vector for a cold item): a student
        # exists only when both do
        self.text_parts = [k for k, p in enumerate(parts) if text_tower_of(p) is not None]
        self.student_parts = (
            [k for k, p in enumerate(parts) if text_tower_of(p) is None] if self.text_parts else []
        )
        self.register_module("student", None)
        # standardisation statistics per part, over the warm items (the catalogue if none)
        warm = counts > 0
        warm[0] = False
        if not warm.any():
            warm = torch.ones_like(warm)
            warm[0] = False
        self.eval()
        with torch.no_grad():
            for k, part in enumerate(parts):
                table = self._augmented_items(part, part.item_vectors())[warm]  # (W, D_k + 1)
                mean = table.mean(0)
                centred = table - mean
                self.register_buffer(f"mean_{k}", mean)
                self.register_buffer(f"cov_{k}", centred.T @ centred / len(table))

    # -- the parts' vectors, as they meet -------------------------------------------------
    @staticmethod
    def _augmented_items(part: FactorizedModel, table: Tensor) -> Tensor:
        """(..., D_k) raw item vectors -> (..., D_k + 1): [scorer-side vector, item bias]."""
        scorer = part.scorer
        assert isinstance(scorer, DotScorer)
        vectors = scorer.items(table)
        if scorer.item_bias is not None and table.dim() == 2:
            bias = scorer.item_bias.weight[: table.shape[0]]  # (N, 1)
        else:
            bias = vectors.new_zeros(*vectors.shape[:-1], 1)
        return torch.cat([vectors, bias], -1)

    def _stats(self, k: int) -> tuple[Tensor, Tensor]:
        return getattr(self, f"mean_{k}"), getattr(self, f"cov_{k}")

    @property
    def history(self) -> nn.Module | None:
        """The first part's history tower (None: no part reads a history)."""
        towers = [p.history for p in self.parts if isinstance(p.history, nn.Module)]
        return towers[0] if towers else None

    def standardise(self, k: int, user: Tensor) -> Tensor:
        """Part k's raw user vectors (B, D_k) -> ũ_k / σ_k(u), (B, D_k + 1)."""
        part = self.parts[k]
        assert isinstance(part, FactorizedModel)
        user = part.scorer.users(user)  # type: ignore[operator]
        user = torch.cat([user, user.new_ones(user.shape[0], 1)], -1)  # (B, D_k + 1)
        _, cov = self._stats(k)
        scale = ((user @ cov) * user).sum(-1, keepdim=True).clamp(min=_EPS).sqrt()
        return user / scale

    def user_bucket(self, users: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B,) each row's user-history bucket: from the user's training interactions where the
        user has some, else from the history's length (``lengths`` (B,): a session, an
        unknown user), else 0. Counts, not the read history, where both exist: a history
        tower reads only the latest ``max_length`` items."""
        if self.n_user_buckets == 1:
            return torch.zeros_like(users)
        last = len(self.user_counts) - 1
        inside = (users >= 0) & (users <= last)
        size = torch.where(inside, self.user_counts[users.clamp(0, last)], 0.0)  # (B,)
        if lengths is not None:
            size = torch.where(size > 0, size, lengths.to(size.dtype))
        return (size.unsqueeze(-1) >= self.user_edges).sum(-1)  # bucketize, as ONNX exports

    def _scaled(self, blocks: list[Tensor], bucket: Tensor) -> list[Tensor]:
        """Each part's user block (B, D_k + 1) times its multiplier a_k(h(u))."""
        if self.n_user_buckets == 1:
            return blocks
        factors = self.user_weights[:, bucket]  # (K, B)
        return [f.unsqueeze(1) * block for f, block in zip(factors, blocks, strict=True)]

    def user_from_parts(
        self,
        raw: Sequence[Tensor | None],
        users: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """(B, D) from each part's raw user vector (B, D_k), or None where a part cannot
        build one (an unknown user, no history): its block is zero, i.e. that part scores
        every item at its average (the standardised scores are centred). ``users`` (B,) /
        ``lengths`` (B,): the rows' user-history buckets (:meth:`user_bucket`)."""
        rows = next(r.shape[0] for r in raw if r is not None)
        blocks = []
        for k, user in enumerate(raw):
            size = int(self._stats(k)[0].shape[0])
            blocks.append(
                self.standardise(k, user)
                if user is not None
                else self.weights.new_zeros(rows, size)
            )
        if self.n_user_buckets > 1:
            if users is None and lengths is None:
                raise ValueError("a composed model with user buckets needs the users or lengths")
            ids = users if users is not None else torch.zeros(rows, dtype=torch.long)
            blocks = self._scaled(blocks, self.user_bucket(ids, lengths))
        return self._users(blocks)  # the constant that meets the item's bucket offset

    def part_user_vectors(
        self,
        users: Tensor,
        history: Tensor | None = None,
        lengths: Tensor | None = None,
        tables: list[Tensor] | None = None,
    ) -> list[Tensor]:
        """Each part's standardised user vector ũ_k / σ_k(u), (B, D_k + 1)."""
        out = []
        for k, part in enumerate(self.parts):
            assert isinstance(part, FactorizedModel)
            table = tables[k] if tables is not None else None
            out.append(self.standardise(k, part.user_vectors(users, history, lengths, table)))
        return out

    def new_item_vectors(self, raw: Sequence[Tensor | None]) -> Tensor:
        """(M, D) vectors of products added after training (cold: bucket 0) from each part's
        raw vectors (M, D_k) of them: a text part's text-tower output, None for a part
        without item text. With a student, the blocks of its target parts are its estimates
        from the text parts' vectors; without, a part without text has weight 0 there."""
        rows = next(r.shape[0] for r in raw if r is not None)
        predicted: dict[int, Tensor] = {}
        if self.student is not None:
            features = torch.cat([raw[k] for k in self.text_parts], -1)  # type: ignore[misc]
            predicted = dict(zip(self.student_parts, self.student.blocks(features), strict=True))
        blocks = []
        for k, vectors in enumerate(raw):
            mean, _ = self._stats(k)
            weight = self.weights[k, 0]
            if k in predicted:
                blocks.append(weight * predicted[k])
                continue
            if vectors is None:
                if float(weight) != 0.0:
                    raise ValueError(f"part {self.names[k]} weighs cold items but reads no text")
                blocks.append(mean.new_zeros(rows, mean.shape[0]))
                continue
            part = self.parts[k]
            assert isinstance(part, FactorizedModel)
            scored = part.scorer.items(vectors)  # type: ignore[operator]
            augmented = torch.cat([scored, scored.new_zeros(rows, 1)], -1)  # no bias yet
            blocks.append(weight * (augmented - mean))
        blocks.append(self.offsets[0].expand(rows, 1))  # cold: bucket 0's offset
        return torch.cat(blocks, -1)

    def part_item_vectors(self, tables: list[Tensor] | None = None) -> list[Tensor]:
        """Each part's centred item vectors ṽ_k(i) - m_k, unweighted, (N, D_k + 1); the
        padding row is zero; with a student, the cold items' rows of its target parts are the
        student's."""
        out = []
        for k, part in enumerate(self.parts):
            assert isinstance(part, FactorizedModel)
            table = tables[k] if tables is not None else part.item_vectors()
            mean, _ = self._stats(k)
            centred = self._augmented_items(part, table) - mean
            centred[0] = 0.0
            out.append(centred)
        student = self.student
        if student is not None:
            cold = self.counts == 0  # (N,)
            cold[0] = False
            if bool(cold.any()):
                index = torch.nonzero(cold).flatten()
                predicted = student.blocks(self.text_features(index))  # (M, D_k + 1) each
                for k, block in zip(self.student_parts, predicted, strict=True):
                    out[k] = out[k].index_copy(0, index, block.to(out[k].dtype))
        return out

    # -- the text student ---------------------------------------------------------------------
    def text_features(self, items: Tensor | None = None) -> Tensor:
        """(N, F) (or (M, F) of ``items``) the text parts' text-tower outputs, concatenated:
        what the student reads."""
        blocks = []
        for k in self.text_parts:
            tower = text_tower_of(self.parts[k])
            assert tower is not None
            table = tower.item_vectors()  # (N, D_t), cached while evaluating
            blocks.append(table if items is None else table[items])
        return torch.cat(blocks, -1)

    def student_sizes(self) -> list[int]:
        """D_k + 1 of each student target part's block."""
        sizes = self.block_sizes
        return [sizes[k] for k in self.student_parts]

    def set_student(self, student: TextStudent | None) -> None:
        """Use ``student`` for the cold items' blocks of ``student_parts``; every part may then
        weigh the cold bucket (None: back to text parts only)."""
        if student is not None:
            if not self.student_parts:
                raise ValueError(
                    "a text student needs a part that reads item text and one that reads none"
                )
            if student.sizes != self.student_sizes():
                raise ValueError(
                    f"student: block sizes {student.sizes}, expected {self.student_sizes()}"
                )
        self.student = student
        text = torch.tensor([k in self.text_parts for k in range(len(self.parts))])
        if self.n_buckets > 1 and bool(text.any()):
            self.allowed[:, 0] = True if student is not None else text.to(self.allowed.device)

    def item_weights(self) -> Tensor:
        """(K, N) each part's weight on each item (its bucket's)."""
        return self.weights[:, self.item_bucket]

    # -- the factorised model contract ----------------------------------------------------------
    def _tables(self) -> list[Tensor]:
        return [p.item_vectors() for p in self.parts]  # type: ignore[operator]

    def _users(self, parts: list[Tensor]) -> Tensor:
        """The parts' standardised user vectors -> (B, D), the offset's constant last."""
        return torch.cat([*parts, parts[0].new_ones(parts[0].shape[0], 1)], -1)

    def _items(self, parts: list[Tensor]) -> Tensor:
        """The parts' centred item vectors -> (N, D): weighted, the bucket offset last (the
        padding row zero)."""
        weights = self.item_weights()  # (K, N)
        offset = self.offsets[self.item_bucket].unsqueeze(1).clone()  # (N, 1)
        offset[0] = 0.0
        blocks = [w.unsqueeze(1) * v for w, v in zip(weights, parts)]
        return torch.cat([*blocks, offset], -1)

    def user_vectors(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """(B, D): the parts' standardised user vectors, each times its user-history
        multiplier, concatenated."""
        blocks = self.part_user_vectors(users, history, lengths, self._tables())
        return self._users(self._scaled(blocks, self.user_bucket(users, lengths)))

    def item_vectors(self, items: Tensor | None = None) -> Tensor:
        """items (...) -> (..., D); None -> the whole catalogue (N, D)."""
        table = self._items(self.part_item_vectors())
        return table if items is None else table[items]

    def score_all(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """users (B,) -> (B, N) composed scores of every item."""
        tables = self._tables()
        blocks = self.part_user_vectors(users, history, lengths, tables)
        user = self._users(self._scaled(blocks, self.user_bucket(users, lengths)))
        scores = user @ self._items(self.part_item_vectors(tables)).T  # (B, N)
        return self.with_repeat(scores, history)

    def with_repeat(
        self, scores: Tensor, history: Tensor | None, items: Tensor | None = None
    ) -> Tensor:
        """scores (B, C) plus r where the column's item is in the row's ``history`` (B, T),
        0-padded; ``items`` (B, C): the columns' items (None: column i is item i)."""
        if history is None or self.repeat_value == 0.0:
            return scores
        return scores + self.repeat_value * repeat_mask(history, scores, items)

    def score(
        self,
        users: Tensor,
        items: Tensor,
        history: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> Tensor:
        """users (B,), items (B, C) -> (B, C)."""
        user = self.user_vectors(users, history, lengths)  # (B, D)
        scores = (user.unsqueeze(1) * self.item_vectors(items)).sum(-1)
        return self.with_repeat(scores, history, items)

    def standardised_scores(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor:
        """(K, B, N) each part's standardised scores z_k(u, i), unweighted (the combiner fits
        its weights on these)."""
        tables = self._tables()
        user_parts = self.part_user_vectors(users, history, lengths, tables)
        item_parts = self.part_item_vectors(tables)
        return torch.stack([u @ v.T for u, v in zip(user_parts, item_parts)])

    def teacher_user_vectors(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> list[Tensor]:
        """Each part's standardised user vectors (B, D_k + 1): what the student is fitted
        against (:mod:`hybridrec.lit.student`)."""
        return self.part_user_vectors(users, history, lengths, self._tables())

    def set_weights(self, weights: Tensor) -> None:
        """(K, G) combiner weights; a part not allowed in a bucket must have weight 0 there."""
        if weights.shape != self.weights.shape:
            raise ValueError(
                f"weights: shape {tuple(weights.shape)}, expected {tuple(self.weights.shape)}"
            )
        if bool((weights[~self.allowed] != 0).any()):
            raise ValueError("weights: a part without item text has weight on cold items")
        self.weights.copy_(weights.to(self.weights))

    def set_user_weights(self, user_weights: Tensor) -> None:
        """(K, H) each part's multiplier per user-history bucket."""
        if user_weights.shape != self.user_weights.shape:
            raise ValueError(
                f"user_weights: shape {tuple(user_weights.shape)}, expected "
                f"{tuple(self.user_weights.shape)}"
            )
        self.user_weights.copy_(user_weights.to(self.user_weights))

    def set_offsets(self, offsets: Tensor) -> None:
        """(G,) each bucket's offset c(b), in standard deviations."""
        if offsets.shape != self.offsets.shape:
            raise ValueError(
                f"offsets: shape {tuple(offsets.shape)}, expected {tuple(self.offsets.shape)}"
            )
        self.offsets.copy_(offsets.to(self.offsets))

    def set_repeat(self, repeat: float) -> None:
        """r, the offset of the items a row's history holds, in standard deviations."""
        self.repeat.fill_(float(repeat))
        self._sync_repeat()

    def _sync_repeat(self) -> None:
        self.repeat_value = float(self.repeat)

    @property
    def block_sizes(self) -> list[int]:
        """D_k + 1 of each part's block in the concatenated vectors."""
        return [int(self._stats(k)[0].shape[0]) for k in range(len(self.parts))]

    def part_shares(self, user: Tensor, item_rows: Tensor) -> Tensor:
        """(K, M) each part's share of the composed score of M items for one user: ``user``
        (1, D) as :meth:`user_vectors` makes it, ``item_rows`` (M, D) their rows of the item
        matrix; share_k = w_k z_k / sum_j |w_j z_j| (signed: a negative share pulled the item
        down; the bucket offset is no part's)."""
        sizes = self.block_sizes
        parts = [
            (u * v).sum(-1)
            for u, v in zip(user[0, :-1].split(sizes), item_rows[:, :-1].split(sizes, -1))
        ]
        contributions = torch.stack(parts)  # (K, M)
        return contributions / contributions.abs().sum(0, keepdim=True).clamp(min=_EPS)
