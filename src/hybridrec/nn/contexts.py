"""Context vectors for marketers' judgments: whom a judgment is about, as a user-side vector.

A judgment is made for a user, for a segment, or for everyone. Its context vector ``c`` takes
the place of a user vector in the model's own scorer, so ``s(c, i)`` is the score the model
would give item i for that audience:

    user      c = model.user_vectors(user, history)        the user's own vector
    everyone  c = m + e: m the mean of the user vectors of a population sample of users, e a
              learned offset (zero at the start); everyone="mean_user": c = m
    segment   c = m + e_segment, e_segment a learned offset per segment (zero at the start)

Both "everyone" choices start from the average user's ranking; the learned offset lets the
judgment take a direction of its own, so the same agreement costs less click accuracy, while
``mean_user`` moves every user's ranking with it (measured: docs/judgments.md). The offsets
belong to the training task, not to the model: the model's weights, export and serving are the
same with or without judgments.

Shapes: P = judgment rows or pairs, U = population users, T = history width, D = vector size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EVERYONE, USER, SEGMENT = 0, 1, 2
EVERYONE_MODES = ("mean_user", "learned")

#: histories of every user, for models with a history tower: (table (n_users, T), lengths)
Histories = tuple[Tensor, Tensor]


def user_vectors(model: nn.Module, users: Tensor, histories: Histories | None = None) -> Tensor:
    """users (U,) -> (U, D) through the model's user towers (histories gathered by user)."""
    history = lengths = None
    if histories is not None:
        history, lengths = histories[0][users], histories[1][users]
    return model.user_vectors(users, history, lengths)  # type: ignore[operator]


def context_vectors(
    model: nn.Module,
    kind: Tensor,
    context: Tensor,
    population: Tensor,
    histories: Histories | None = None,
    everyone_offset: Tensor | None = None,
    segment_offsets: Tensor | None = None,
) -> Tensor:
    """kind (P,) EVERYONE / USER / SEGMENT, context (P,) a user or segment index (0 for
    everyone), population (U,) users whose mean vector stands for everyone -> (P, D).
    Offsets None: zero (evaluating a model trained without judgments)."""
    mean = user_vectors(model, population, histories).mean(0)  # (D,)
    everyone = mean if everyone_offset is None else mean + everyone_offset
    out = everyone.expand(kind.shape[0], -1)
    is_segment, is_user = kind == SEGMENT, kind == USER
    if segment_offsets is not None and bool(is_segment.any()):
        segment = mean + segment_offsets[context * is_segment]  # (P, D)
        out = torch.where(is_segment.unsqueeze(1), segment, out)
    if bool(is_user.any()):
        rows = torch.nonzero(is_user).squeeze(1)
        own = user_vectors(model, context[rows], histories)
        out = out.index_put((rows,), own)
    return out


class JudgmentContexts(nn.Module):
    """The learned offsets of :func:`context_vectors`.

    Args:
        dim: D, the model's user vector size.
        n_segments: number of segments (each gets a learned offset).
        everyone: ``mean_user`` or ``learned`` (see the module docstring).
    """

    def __init__(self, dim: int, n_segments: int = 0, everyone: str = "learned") -> None:
        super().__init__()
        if everyone not in EVERYONE_MODES:
            raise ValueError(f"judgment.everyone={everyone!r}: expected one of {EVERYONE_MODES}")
        self.everyone_offset = nn.Parameter(torch.zeros(dim)) if everyone == "learned" else None
        self.segment_offsets = nn.Parameter(torch.zeros(max(n_segments, 1), dim))

    def forward(
        self,
        model: nn.Module,
        kind: Tensor,
        context: Tensor,
        population: Tensor,
        histories: Histories | None = None,
    ) -> Tensor:
        """See :func:`context_vectors`."""
        return context_vectors(
            model,
            kind,
            context,
            population,
            histories,
            self.everyone_offset,
            self.segment_offsets,
        )
