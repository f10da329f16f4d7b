"""Recommender: top-K raw item ids for a user and / or a session, from a trained model.

What the served model (:mod:`hybridrec.export.pyfunc_model`) answers, without MLflow:

    recommend(user=..., recent_items=[...], k=10, exclude=[...], exclude_recent=None,
              cold_offset=None, judgment_lambda=None, segment=None) ->
        {"items": [raw ids], "scores": [...], "score_kind": "model" | "count",
         "source": "user" | "session" | "user+session" | "popularity",
         "unknown_items": [...], "id_share": [...] (the joint hybrid),
         "part_shares": [...] (the composed hybrid)}

* a known user with a user ID tower: that vector (plus the history tower's, when the request
  has recent items and the model reads them);
* an unknown user (or a model without user IDs) with recent items: the history tower alone
  (``source="session"``); recent items the catalogue does not know are skipped and reported;
* neither: the most popular items of training (``source="popularity"``).

A known user's own items (every split of the run's data) are left out, as the evaluation left
them out, unless ``include_seen``. A session's own items (``recent_items`` the catalogue knows)
are left out where the run's evaluation masked the known items of a row's history
(``exclude_recent``, the recommender's default: the served model sets it from the run's
protocol, ``protocol.mask_known``; session data ranks them, as GRU4Rec's evaluation does); a
request's ``exclude_recent`` true / false decides for that request.

``score_kind`` says what ``scores`` are: ``"model"``, the model's own scores (comparable within
one model's answers, on no fixed scale); ``"count"``, the popularity answer's training
interactions per item, not on the model's scale.

A pair scorer (GMF, MLP, NeuMF: no item vectors, no history tower) answers a known user with
its own scores over the catalogue; anything else gets the popularity answer, and its recent
items are not read (its model cannot).

A run trained with a judgment head answers ``judgment_lambda`` (the request's ``lambda``;
default: the run's ``judgment.head.serving_lambda``) and ``segment``: it ranks by
``z(s) + lambda z(s_J)`` for the segment, the user, or everyone
(:mod:`hybridrec.export.judgment`, docs/judgments.md).

Cold items (no training interaction) are scored like any other: through the text tower in a
hybrid. ``id_share`` is the hybrid's gate, the share of each recommended item's vector that
comes from its ID rather than its text. Requests are checked (k in [1, max_k], ids as given);
a bad one raises :class:`RequestError` with one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hybridrec.errors import HybridrecError
from hybridrec.export.judgment import ServedJudgment
from hybridrec.nn.base import PairScorer
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.judgment_head import standardise_rows

MAX_K = 1000


class RequestError(HybridrecError, ValueError):
    """A request the recommender cannot answer: the message says what was expected."""


class Recommender:
    """Args:
    model: a trained :class:`FactorizedModel` or :class:`PairScorer` (eval mode).
    item_ids, user_ids: raw ids by index (items: index 1..N, element 0 the padding).
    popularity: (N + 1,) training interactions per item (the fallback ranking), or None.
    seen: each user's known items as CSR arrays (indptr (U + 1,), items (nnz,)), or None.
    exclude_recent: leave a session's own items out of its answer unless the request says
        otherwise (True where the run's evaluation masked known items).
    """

    def __init__(
        self,
        model: nn.Module,
        item_ids: Sequence[Any],
        user_ids: Sequence[Any],
        popularity: np.ndarray | None = None,
        max_k: int = MAX_K,
        new_items: tuple[Sequence[Any], torch.Tensor] | None = None,
        seen: tuple[np.ndarray, np.ndarray] | None = None,
        exclude_recent: bool = False,
        judgment: ServedJudgment | None = None,
        audience: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(model, (FactorizedModel, PairScorer, ComposedHybrid)):
            raise ValueError(
                f"serving needs a model with the tower contract or a pair scorer (GMF, MLP, "
                f"NeuMF); {type(model).__name__} is neither"
            )
        self.model = model.eval()
        self.item_ids = list(item_ids)
        added = 0 if new_items is None else len(new_items[0])
        if new_items is not None:  # products added after training: text only, never trained
            self.item_ids += list(new_items[0])
        self.item_index = {str(raw): i for i, raw in enumerate(self.item_ids) if i > 0}
        self.user_index = {str(raw): i for i, raw in enumerate(user_ids)}
        self.n_items = len(self.item_ids) - 1
        self.max_k = min(max_k, self.n_items)
        self.table: torch.Tensor | None = None
        self.gates: torch.Tensor | None = None
        self.part_tables: list[torch.Tensor] = []
        if isinstance(model, ComposedHybrid):
            with torch.no_grad():
                self.table = model.item_vectors()  # (N + 1, D) concatenated, weighted
                self.part_tables = [p.item_vectors() for p in model.parts]  # type: ignore[operator]
        elif isinstance(model, FactorizedModel):
            with torch.no_grad():
                self.table = model.item_vectors()  # (N + 1, D), cold items through their text
                gates = getattr(model, "gate_values", None)
                self.gates = gates() if callable(gates) else None  # (N + 1,) or None
        elif new_items is not None:
            raise ValueError(f"{type(model).__name__} has no item vectors to add products to")
        self.cold_rows: torch.Tensor | None = None  # composed: the rows its cold offset lifts
        if isinstance(model, ComposedHybrid):
            cold = model.item_bucket == 0  # (N + 1,) cold items (bucket 0), padding aside
            cold[0] = False
            self.cold_rows = torch.cat([cold, torch.ones(added, dtype=torch.bool)])
        if new_items is not None and self.table is not None:
            self.table = torch.cat([self.table, new_items[1].to(self.table.dtype)])
            if self.gates is not None:
                self.gates = torch.cat([self.gates, self.gates.new_zeros(added)])
        if popularity is not None and added:
            popularity = np.concatenate([popularity, np.zeros(added, dtype=popularity.dtype)])
        self.popularity = popularity
        self.seen = seen
        self.exclude_recent = exclude_recent
        self.judgment = judgment  # the judgment head: lambda and segment per request
        #: each audience's user-side vector ("" everyone, else a segment: export/judgment.py's
        #: audience_vectors): a request with a segment and no user or session ranks for it
        self.audience = audience

    def _k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            if isinstance(k, float) and k.is_integer():
                k = int(k)
            else:
                raise RequestError(f"k={k!r}: expected a whole number between 1 and {self.max_k}")
        if not 1 <= int(k) <= self.max_k:
            raise RequestError(f"k={k}: expected a whole number between 1 and {self.max_k}")
        return int(k)

    def recommend(
        self,
        user: Any = None,
        recent_items: Sequence[Any] | None = None,
        k: Any = 10,
        exclude: Sequence[Any] | None = None,
        include_seen: bool = False,
        exclude_recent: bool | None = None,
        cold_offset: float | None = None,
        judgment_lambda: float | None = None,
        segment: str | None = None,
    ) -> dict[str, Any]:
        k = self._k(k)
        model = self.model
        lam = self._judgment_request(judgment_lambda, segment)
        if cold_offset is not None and not isinstance(model, ComposedHybrid):
            raise RequestError(
                "cold_offset: only a composed hybrid (model=hybrid) places new items by an "
                "offset; this model scores them as it was trained"
            )
        recent = [str(i) for i in (recent_items or [])]
        known = [self.item_index[i] for i in recent if i in self.item_index]
        unknown = [i for i in recent if i not in self.item_index]
        user_row = None if user is None else self.user_index.get(str(user))
        with torch.no_grad():
            masked = self._seen(user_row) if not include_seen else []
            if self.exclude_recent if exclude_recent is None else exclude_recent:
                masked += known  # the session's own items
            if isinstance(model, PairScorer):
                scores, source = self._pair_scores(user_row)
                return self._top(scores, k, source, unknown, exclude, masked)
            if isinstance(model, ComposedHybrid):
                return self._composed(
                    user_row, known, k, unknown, exclude, masked, cold_offset, lam, segment
                )
            assert self.table is not None
            vector, read = _user_vector(model, user_row, known, self.table)  # (1, D) | None
            if vector is None and segment is not None and self.audience is not None:
                vector, read = self._audience(segment), ["segment"]
            if vector is None:
                scores, source = self._popularity(), "popularity"
            else:
                users = torch.tensor([user_row if user_row is not None else 0])
                scores = model.scorer.score_all(vector, self.table, users)[0]
                if lam > 0:  # z(s) + lambda z(s_J): the judgment head (docs/judgments.md)
                    assert self.judgment is not None
                    scores = self.judgment.combine(scores, lam, user_row, segment)
                source = "+".join(read)
        return self._top(scores, k, source, unknown, exclude, masked)

    def _composed(
        self,
        user_row: int | None,
        known: list[int],
        k: int,
        unknown: list[str],
        exclude: Sequence[Any] | None,
        masked: list[int],
        cold_offset: float | None = None,
        lam: float = 0.0,
        segment: str | None = None,
    ) -> dict[str, Any]:
        """A composed hybrid: each part's user vector from what it can read (its user ID, the
        session's items it was trained on); a part that can read neither scores every item at
        its average (zero block). No part: the popularity answer. ``cold_offset`` (standard
        deviations) replaces the fitted offset of the cold items (new products included) for
        this answer: how far a shelf pushes new items up or down."""
        model = self.model
        assert isinstance(model, ComposedHybrid) and self.table is not None
        raw: list[torch.Tensor | None] = []
        used: list[str] = []
        for part, table in zip(model.parts, self.part_tables, strict=True):
            assert isinstance(part, FactorizedModel)
            history = [i for i in known if i < table.shape[0]]  # new products: text only
            part_vector, part_read = _user_vector(part, user_row, history, table)
            raw.append(part_vector)
            used += part_read
        if all(r is None for r in raw):
            if segment is None or self.audience is None:
                out = self._top(self._popularity(), k, "popularity", unknown, exclude, masked)
                out.pop("_indices", None)
                return out
            vector, used = self._audience(segment), ["segment"]  # the segment's audience
        else:
            # the user-history bucket: the user's training interactions, else the session's
            # length where a part read it (as in evaluation)
            read = [i for i in known if i <= model.n_items]
            read_lengths = torch.tensor([len(read)]) if "session" in used else None
            users = torch.tensor([user_row if user_row is not None else -1])
            vector = model.user_from_parts(raw, users, read_lengths)  # (1, D)
        scores = (vector @ self.table.T)[0]
        if model.repeat_value != 0.0:  # the items the user / session already had: + r
            had = set(self._seen(user_row)) | set(known)
            scores[torch.tensor(sorted(had), dtype=torch.long)] += model.repeat_value
        if cold_offset is not None and self.cold_rows is not None:  # the offset column, moved
            shift = float(cold_offset) - float(model.offsets[0])
            scores = scores + shift * self.cold_rows.to(scores.dtype)
        if lam > 0:  # z(s) + lambda z(s_J): the judgment head (docs/judgments.md)
            assert self.judgment is not None
            scores = self.judgment.combine(scores, lam, user_row, segment)
        source = "+".join(s for s in ("user", "session", "segment") if s in used)
        out = self._top(scores, k, source, unknown, exclude, masked)
        indices = out.pop("_indices")
        if indices:
            shares = model.part_shares(vector, self.table[indices])  # (K, M)
            out["part_shares"] = [
                {name: round(float(shares[j, m]), 4) for j, name in enumerate(model.names)}
                for m in range(len(indices))
            ]
        return out

    def recommend_audience(
        self,
        vector: torch.Tensor,
        k: Any = 10,
        judgment_lambda: float | None = None,
        segment: str | None = None,
    ) -> dict[str, Any]:
        """The top-K for an audience rather than one user: ``vector`` (1, D) its user-side
        vector (the review page's "everyone" or a segment: the evaluation's mean user vector
        and the run's context offsets, :mod:`hybridrec.export.review`), ranked as
        :meth:`recommend` ranks a user's row: ``z(s) + lambda z(s_J)`` for ``segment`` (else
        everyone), nothing left out. Adds, per item, ``own_part`` (the model's score
        standardised over the catalogue, z(s)) and ``judgment_part`` (lambda z(s_J): 0 at
        lambda 0), beside ``id_share`` / ``part_shares`` as the served answer has them."""
        k = self._k(k)
        model = self.model
        lam = self._judgment_request(judgment_lambda, segment)
        if self.table is None or isinstance(model, PairScorer):
            raise RequestError(
                f"{type(model).__name__} has no user-side vector to rank for an audience"
            )
        with torch.no_grad():
            if isinstance(model, ComposedHybrid):
                scores = (vector @ self.table.T)[0]
            else:
                users = torch.zeros(1, dtype=torch.long)  # no user: as the judgment contexts
                scores = model.scorer.score_all(vector, self.table, users)[0]
            own = standardise_rows(scores.unsqueeze(0))[0]
            head = torch.zeros_like(scores)
            if lam > 0:
                assert self.judgment is not None
                head = self.judgment.head_term(scores, lam, None, segment)
                scores = self.judgment.combine(scores, lam, None, segment)
            out = self._top(scores, k, "audience", [], None, [])
            indices = out.pop("_indices", None)
            if indices is None:
                indices = [self.item_index[raw] for raw in out["items"]]
            elif indices:
                assert isinstance(model, ComposedHybrid)
                shares = model.part_shares(vector, self.table[indices])  # (K, M)
                out["part_shares"] = [
                    {name: round(float(shares[j, m]), 4) for j, name in enumerate(model.names)}
                    for m in range(len(indices))
                ]
            out["own_part"] = [float(own[i]) for i in indices]
            out["judgment_part"] = [float(head[i]) for i in indices]
        return out

    def _audience(self, segment: str) -> torch.Tensor:
        """(1, D) the segment's audience vector (everyone's where the run has none of its
        own): what the review page ranks for it (:meth:`recommend_audience`)."""
        assert self.audience is not None
        return self.audience.get(segment, self.audience[""]).unsqueeze(0)

    def _judgment_request(self, lam: float | None, segment: str | None) -> float:
        """The request's lambda (the run's default when left out); refused without a head or
        with an unknown segment."""
        if self.judgment is None:
            if (lam is not None and lam > 0) or segment is not None:
                raise RequestError(
                    "lambda / segment: this model was trained without a judgment head "
                    "(judgment=head_bt or head_pointwise); leave both out"
                )
            return 0.0
        if segment is not None and segment not in self.judgment.segments:
            raise RequestError(
                f"segment={segment!r}: expected one of {sorted(self.judgment.segments)}"
            )
        return self.judgment.default_lambda if lam is None else float(lam)

    def _seen(self, user_row: int | None) -> list[int]:
        if self.seen is None or user_row is None or user_row + 1 >= len(self.seen[0]):
            return []
        indptr, items = self.seen
        return items[indptr[user_row] : indptr[user_row + 1]].tolist()

    def _popularity(self) -> torch.Tensor:
        if self.popularity is None:
            raise RequestError(
                "no known user and no known recent item, and this export has no popularity "
                "to fall back on"
            )
        return torch.as_tensor(self.popularity, dtype=torch.float32).clone()

    def _pair_scores(self, user_row: int | None) -> tuple[torch.Tensor, str]:
        if user_row is None:
            return self._popularity(), "popularity"
        return self.model.score_all(torch.tensor([user_row]))[0], "user"

    def _top(
        self,
        scores: torch.Tensor,
        k: int,
        source: str,
        unknown: list[str],
        exclude: Sequence[Any] | None,
        masked: list[int],
    ) -> dict[str, Any]:
        scores = scores.clone()
        scores[0] = -torch.inf
        scores[masked] = -torch.inf  # the user's known items
        for raw in exclude or []:
            index = self.item_index.get(str(raw))
            if index is not None:
                scores[index] = -torch.inf
        top = torch.topk(scores, k)
        keep = torch.isfinite(top.values)
        indices = top.indices[keep].tolist()
        out: dict[str, Any] = {
            "items": [str(self.item_ids[i]) for i in indices],
            "scores": [float(v) for v in top.values[keep]],
            "score_kind": "count" if source == "popularity" else "model",
            "source": source,
            "unknown_items": unknown,
        }
        if self.gates is not None:
            out["id_share"] = [float(self.gates[i]) for i in indices]
        if isinstance(self.model, ComposedHybrid):
            out["_indices"] = indices  # the composed answer adds each part's share
        return out


def _user_vector(
    model: FactorizedModel, user_row: int | None, history: list[int], table: torch.Tensor
) -> tuple[torch.Tensor | None, list[str]]:
    """(1, D) the user vector the model builds (:meth:`FactorizedModel.user_from`) from what a
    request gives: the user's index and/or the session's items (oldest first), and what it
    read of them ("user", "session"); (None, []) when it can read neither."""
    users = torch.tensor([user_row]) if user_row is not None else None
    items = torch.tensor([history]) if history else None
    lengths = torch.tensor([len(history)]) if history else None
    towers = (("user", users, model.user_id), ("session", items, model.history))
    read = [name for name, given, tower in towers if given is not None and tower is not None]
    return model.user_from(users, items, lengths, table), read
