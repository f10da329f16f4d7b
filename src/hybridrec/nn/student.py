"""The text student of the composed hybrid: a cold item's ID-part vectors from its text.

A part that scores items by their ID (MF, SASRec, GRU4Rec, a joint hybrid's fused tower) has
nothing to say about an item it never trained on. The student maps what the text parts read
about an item (their text towers' outputs) to what those ID parts would have learnt for it: it
is trained on the warm items to reproduce the ID parts' scores (ALDI, Huang et al., SIGIR 2023:
the warm model is the frozen teacher; :mod:`hybridrec.lit.student` fits it), so a cold item
lands in the warm items' space, on their scale, and the combiner weighs it like a warm one.
Warm items keep the teacher's own vectors: warm accuracy is unchanged by construction.

Shapes: M items, F = Σ text towers' D_t (the inputs), O = Σ_k (D_k + 1) over the target parts
(each target part's centred, bias-augmented item vector, as the composed model holds it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TextStudent(nn.Module):
    """(M, F) text features -> (M, O) the target parts' item vectors, split by ``sizes``.

    Args:
        n_in: F, the width of the text features.
        sizes: D_k + 1 of each target part's block, in the composed model's part order.
        hidden: width of the two hidden layers; 0 = the linear map alone.

    An MLP (two GELU layers) plus a linear skip from the standardised inputs: the linear map is
    the probe floor the MLP must improve on (``hidden=0`` trains it alone); the input
    statistics (``in_mean``, ``in_std``, over the warm items) are buffers, saved with the
    checkpoint.
    """

    in_mean: Tensor
    in_std: Tensor

    def __init__(self, n_in: int, sizes: Sequence[int], hidden: int = 256) -> None:
        super().__init__()
        if n_in < 1 or not sizes or hidden < 0:
            raise ValueError(
                f"TextStudent: n_in={n_in}, sizes={list(sizes)}, hidden={hidden}: expected "
                "text features, at least one target part and a positive width"
            )
        self.n_in, self.sizes, self.hidden = int(n_in), [int(s) for s in sizes], int(hidden)
        out = sum(self.sizes)
        self.body: nn.Module | None = None
        self.head: nn.Linear | None = None
        if hidden:
            self.body = nn.Sequential(
                nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
            )
            self.head = nn.Linear(hidden, out)
            nn.init.zeros_(self.head.weight)  # starts as the linear map alone
            nn.init.zeros_(self.head.bias)
        self.skip = nn.Linear(n_in, out)
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))

    def set_input_statistics(self, features: Tensor) -> None:
        """Standardise inputs by the mean and std of ``features`` (W, F) (the warm items)."""
        self.in_mean.copy_(features.mean(0))
        self.in_std.copy_(features.std(0).clamp(min=1e-6) if len(features) > 1 else self.in_std)

    def forward(self, features: Tensor) -> Tensor:
        """(M, F) -> (M, O)."""
        z = (features - self.in_mean) / self.in_std  # (M, F)
        out = self.skip(z)  # (M, O)
        if self.body is not None and self.head is not None:
            out = out + self.head(self.body(z))
        return out

    def blocks(self, features: Tensor) -> list[Tensor]:
        """(M, F) -> one (M, D_k + 1) block per target part."""
        return list(self.forward(features).split(self.sizes, -1))

    def config(self) -> dict[str, object]:
        """What rebuilds it (the checkpoint's entry; the weights come with the state dict)."""
        return {"n_in": self.n_in, "sizes": list(self.sizes), "hidden": self.hidden}
