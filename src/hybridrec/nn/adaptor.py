"""UniSRec's mixture-of-experts adaptor: frozen text vectors -> recommendation item vectors.

Hou et al., "Towards Universal Sequence Representation Learning for Recommender Systems"
(KDD 2022), section 2.2: each expert is a *parametric whitening* ``(x - b_k) W_k`` (a learned
centre, then a linear map without bias), and a softmax gate over the input mixes the experts:
``v = sum_k g_k(x) (x - b_k) W_k`` with ``g(x) = softmax(x W_g)``. The paper's gate adds
trainable Gaussian noise in training; this one does not (plain softmax gate).

Shapes: M = items, H = input size, D = output size, K = experts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MoEAdaptor(nn.Module):
    """Args:
    in_dim: H, the text vectors' size.
    out_dim: D.
    experts: K whitening experts.
    dropout: dropout on the input text vectors (UniSRec's ``adaptor_dropout_prob``).
    """

    def __init__(self, in_dim: int, out_dim: int, experts: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        if experts < 1:
            raise ValueError(f"model.experts must be >= 1, got {experts}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.adaptor_dropout must be in [0, 1), got {dropout}")
        self.centres = nn.Parameter(torch.zeros(experts, in_dim))  # (K, H)
        self.weights = nn.Parameter(torch.empty(experts, in_dim, out_dim))  # (K, H, D)
        nn.init.normal_(self.weights, std=0.02)
        self.gate = nn.Linear(in_dim, experts, bias=False)
        nn.init.zeros_(self.gate.weight)  # uniform mixture at the start
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., H) -> (..., D)."""
        x = self.dropout(x)
        gates = torch.softmax(self.gate(x), dim=-1)  # (..., K)
        # (x - b_k) W_k = x W_k - b_k W_k: no (..., K, H) copy of the input
        experts = torch.einsum("...h,khd->...kd", x, self.weights)  # (..., K, D)
        experts = experts - torch.einsum("kh,khd->kd", self.centres, self.weights)
        return (gates.unsqueeze(-1) * experts).sum(-2)  # (..., D)
