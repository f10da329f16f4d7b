"""Optimisers not in ``torch.optim``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


class AdagradM(Optimizer):
    """Adagrad with momentum and lazy sparse updates: the official GRU4Rec's ``IndexedAdagradM``.

    Per parameter, with gradient g, accumulator ``acc`` and momentum ``mom`` (both start at 0)::

        acc  <- acc + g**2
        step  = -lr * g / sqrt(acc + eps)
        mom  <- momentum * mom + step;  p <- p + mom      (momentum > 0)
        p    <- p + step                                 (momentum = 0)

    Unlike ``torch.optim.Adagrad``, eps sits inside the square root and the momentum is applied
    to the Adagrad step. A sparse gradient (``nn.Embedding(sparse=True)``) updates ``acc``,
    ``mom`` and ``p`` only at the rows it touches: untouched rows, and their accumulator and
    momentum, stay as they are (their momentum does not decay), as in the reference.

    Reference: Hidasi, GRU4Rec PyTorch implementation (github.com/hidasib/GRU4Rec_PyTorch_Official).

    Args:
        params: parameters or parameter groups.
        lr: learning rate, > 0.
        momentum: momentum factor in [0, 1); 0 turns momentum off.
        eps: added to the accumulator inside the square root, > 0.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.05,
        momentum: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        if not lr > 0.0:
            raise ValueError(f"AdagradM lr: expected > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"AdagradM momentum: expected in [0, 1), got {momentum}")
        if not eps > 0.0:
            raise ValueError(f"AdagradM eps: expected > 0, got {eps}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "acc" not in state:
                    state["acc"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if momentum > 0 and "mom" not in state:
                    state["mom"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if p.grad.is_sparse:
                    self._sparse_update(p, p.grad, state, lr, momentum, eps)
                else:
                    self._dense_update(p, p.grad, state, lr, momentum, eps)
        return loss

    @staticmethod
    def _dense_update(
        p: Tensor, grad: Tensor, state: dict[str, Tensor], lr: float, momentum: float, eps: float
    ) -> None:
        acc = state["acc"]
        acc.addcmul_(grad, grad)
        denom = (acc + eps).sqrt_()
        if momentum > 0:
            mom = state["mom"]
            mom.mul_(momentum).addcdiv_(grad, denom, value=-lr)
            p.add_(mom)
        else:
            p.addcdiv_(grad, denom, value=-lr)

    @staticmethod
    def _sparse_update(
        p: Tensor, grad: Tensor, state: dict[str, Tensor], lr: float, momentum: float, eps: float
    ) -> None:
        if grad.sparse_dim() != 1:
            raise ValueError(
                "AdagradM: sparse gradients must be row-sparse (sparse_dim 1, as from "
                f"nn.Embedding(sparse=True)), got sparse_dim {grad.sparse_dim()}"
            )
        grad = grad.coalesce()  # one entry per touched row: duplicates summed
        rows = grad.indices()[0]  # (N,) touched rows
        values = grad.values()  # (N, *row shape)
        acc_rows = state["acc"].index_select(0, rows).addcmul_(values, values)
        state["acc"].index_copy_(0, rows, acc_rows)
        step = values.div(acc_rows.add_(eps).sqrt_()).mul_(-lr)  # (N, *row shape)
        if momentum > 0:
            mom_rows = state["mom"].index_select(0, rows).mul_(momentum).add_(step)
            state["mom"].index_copy_(0, rows, mom_rows)
            step = mom_rows
        p.index_add_(0, rows, step)
