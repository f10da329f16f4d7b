"""The model contracts, written once (PEP 544) and checked by mypy.

Two kinds of model meet evaluation, export and serving:

- :class:`VectorModel` scores with user vectors against item vectors (MF, TextRec, SeqRec /
  SASRec / SeqText, the joint hybrid, GRU4Rec through :func:`~hybridrec.nn.gru4rec.
  gru4rec_factorized`, and the composed hybrid, whose vectors are its parts' concatenated):

      user_vectors(users (B,), history (B, T)?, lengths (B,)?) -> (B, D)
      item_vectors(items (...)?)                               -> (..., D); None: (N, D)
      score(users (B,), items (B, C), history?, lengths?)      -> (B, C)
      score_all(users (B,), history?, lengths?)                -> (B, N)

  ``score_all`` equals ``score`` on the same candidates; with a dot-product scorer both are
  ``user_vectors @ item_vectors().T`` (plus an item bias where the model has one), which is
  what lets the composed hybrid concatenate parts, the judgment head add a block, and export
  serve top-K by one matrix product.
- :class:`PairModel` scores (user, item) pairs only (GMF, MLP, NeuMF:
  :class:`~hybridrec.nn.base.PairScorer`): ``score`` and ``score_all``, no vectors.

GRU4Rec trains session-parallel on its own batches (its state carried between them) and
meets the rest of the code through its factorised view; the count baselines (popularity,
ItemKNN) score a batch and are neither. Shapes: B rows, C candidates, T history width,
N = n_items + 1 (item 0 is padding), D vector size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from torch import Tensor


class VectorModel(Protocol):
    """A model that scores with user vectors against item vectors (see the module doc)."""

    n_users: int
    n_items: int

    def user_vectors(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor: ...

    def item_vectors(self, items: Tensor | None = None) -> Tensor: ...

    def score(
        self,
        users: Tensor,
        items: Tensor,
        history: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> Tensor: ...

    def score_all(
        self, users: Tensor, history: Tensor | None = None, lengths: Tensor | None = None
    ) -> Tensor: ...


class PairModel(Protocol):
    """A model that scores (user, item) pairs only (see the module doc)."""

    n_items: int

    def score(self, users: Tensor, items: Tensor) -> Tensor: ...

    def score_all(self, users: Tensor) -> Tensor: ...


if TYPE_CHECKING:  # mypy holds every model to its contract here; nothing runs
    from hybridrec.nn.base import PairScorer
    from hybridrec.nn.composed import ComposedHybrid
    from hybridrec.nn.factorized import FactorizedModel

    def _vector_models(a: FactorizedModel, b: ComposedHybrid) -> list[VectorModel]:
        return [a, b]

    def _pair_models(a: PairScorer) -> list[PairModel]:
        return [a]
