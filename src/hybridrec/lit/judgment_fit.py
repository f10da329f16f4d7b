"""A judgment head fitted after its model: the composed hybrid's (docs/judgments.md).

The composed hybrid's parts are trained apart and frozen, so its judgment head cannot ride
along with a training loop as a plain model's does (:class:`~hybridrec.lit.module.
RecLitModule`). Once the combiner and the text student are fitted, the head

    s_J(c, i) = <m_c, phi(i)> (+ b_i)

is trained here on the training judgments with the same terms (Bradley-Terry, pointwise,
Crowd-BT, rater weights: :class:`~hybridrec.losses.human.JudgmentLoss`), its K copies (one
per L2 weight, or (l2, map_l2) pair) on the same batches. phi reads the item's text tokens
(the head's own map) and/or the composed model's item vectors (``item``: its item matrix;
``text``: its text parts' vectors; ``id``: its ID parts' blocks), read once and frozen. After
each pass over the training pairs every copy's by-item agreement with the validation
judgments is measured; the copy and pass with the best one are kept, and the fit stops after
``judgment.head.patience`` passes without a better one (at most ``judgment.head.epochs``).

:func:`head_agreement` measures the kept copy on held-out judgments as a plain run logs it
(``<stage>/head/…``); :func:`model_agreement` the model's own scores (lambda 0,
``<stage>/marketer_agreement``).

Shapes: K copies, P pairs, Q single judgments (or held-out rows), N = n_items + 1.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hybridrec.data.batching.judgments import JudgmentData
from hybridrec.losses.human import JudgmentLoss
from hybridrec.metrics import agreement
from hybridrec.nn.contexts import Histories, context_vectors
from hybridrec.nn.judgment_head import JudgmentHead, head_loss

log = logging.getLogger("hybridrec.judgment")

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]


@dataclass
class HeadFit:
    """What the fit chose: the copy (its L2 weights), the pass, the validation agreement."""

    chosen: int
    l2: float
    map_l2: float
    best_epoch: int  # 1-based pass with the best validation agreement
    epochs: int  # passes run
    val_agreement: float
    copies: list[float]  # each copy's validation agreement at the kept pass
    seconds: float

    def metrics(self) -> dict[str, float]:
        """``val/head/…`` and ``judgment/fit/…`` metrics of the fit."""
        out = {
            "val/head/l2": self.l2,
            "val/head/map_l2": self.map_l2,
            "judgment/fit/best_epoch": float(self.best_epoch),
            "judgment/fit/epochs": float(self.epochs),
            "judgment/fit/seconds": self.seconds,
        }
        for k, value in enumerate(self.copies):
            out[f"val/head/l2_{k}/marketer_agreement"] = value
        return out


def copy_agreements(
    head: JudgmentHead, model: nn.Module, data: JudgmentData, stage: str, prefix: str = ""
) -> list[float]:
    """Every copy's agreement on one held-out slice of ``stage`` (NaN where it is empty)."""
    held = data.eval_sets(stage).get(prefix)
    if held is None:
        return [math.nan] * int(head.l2.shape[0])
    with torch.no_grad():
        scores = head(model, held.kind, held.context, held.items.unsqueeze(1)).squeeze(2)
    return [agreement(row, held.targets, held.groups, held.pairs).agreement for row in scores]


def fit_head(
    model: nn.Module,
    judgment: JudgmentLoss,
    data: JudgmentData,
    optimizer: OptimizerFactory,
    max_epochs: int | None = None,
) -> tuple[JudgmentHead, nn.ModuleList, HeadFit]:
    """Train ``judgment.head`` on ``model`` (frozen) from ``data``'s training judgments; the
    copy and pass with the best validation agreement by item are kept. ``optimizer``: a
    factory of parameter groups (the run's optimiser; the head's ``lr`` is its group's)."""
    spec = judgment.head
    if spec is None:
        raise ValueError("judgment.head: fitting a head needs one (judgment=head_pointwise)")
    if spec.shared:
        raise ValueError(
            "judgment.head.shared=true: the model is frozen here (a composed hybrid's parts "
            "are trained apart); use shared=false"
        )
    if "" not in data.eval_sets("val"):
        raise ValueError(
            "judgment.head: the head's copy is chosen on the validation judgments by item, and "
            "this data holds none (data.judgments.held_out_items > 0)"
        )
    start = time.perf_counter()
    n_users, n_items = int(model.n_users), int(model.n_items)  # type: ignore[arg-type]
    head = JudgmentHead(spec, model, n_users, n_items, judgment.n_segments)
    head.freeze(model)
    losses = nn.ModuleList(copy.deepcopy(judgment) for _ in spec.l2)
    params = [*head.parameters(), *losses.parameters()]
    group: dict[str, Any] = {"params": params}
    if spec.lr is not None:
        group["lr"] = float(spec.lr)
    optimise = optimizer([group])
    epochs = int(max_epochs if max_epochs is not None else spec.epochs)
    best = -math.inf
    kept: dict[str, Any] = {}
    best_epoch, chosen, copies, step, ran = 0, 0, [math.nan] * len(spec.l2), 0, 0
    for epoch in range(1, epochs + 1):
        head.train()
        for batch in data.train:
            loss = head_loss(head, losses, model, batch, step)["loss"]
            optimise.zero_grad(set_to_none=True)
            loss.backward()
            optimise.step()
            step += 1
        ran = epoch
        head.eval()
        values = copy_agreements(head, model, data, "val")
        k = max(range(len(values)), key=lambda j: -math.inf if math.isnan(values[j]) else values[j])
        value = values[k]
        if not math.isnan(value) and value > best:
            best, best_epoch, chosen, copies = value, epoch, k, values
            kept = {
                "head": copy.deepcopy(head.state_dict()),
                "losses": copy.deepcopy(losses.state_dict()),
            }
        elif epoch - best_epoch >= spec.patience:
            break
    if kept:
        head.load_state_dict(kept["head"])
        losses.load_state_dict(kept["losses"])
    head.chosen.fill_(chosen)
    head.eval()
    fit = HeadFit(
        chosen=chosen,
        l2=float(spec.l2[chosen]),  # the configured values (the buffers are float32)
        map_l2=float((spec.l2 if spec.map_l2 is None else spec.map_l2)[chosen]),
        best_epoch=best_epoch,
        epochs=ran,
        val_agreement=best,
        copies=[float(v) for v in copies],
        seconds=time.perf_counter() - start,
    )
    log.info(
        "judgment head: copy %d (l2 %g, map_l2 %g) at pass %d of %d, validation agreement "
        "%.4f (%.0f s)",
        chosen,
        fit.l2,
        fit.map_l2,
        best_epoch,
        ran,
        best,
        fit.seconds,
    )
    return head, losses, fit


def head_agreement(
    head: JudgmentHead, model: nn.Module, data: JudgmentData, stage: str
) -> dict[str, float]:
    """The kept copy's agreement on ``stage``'s held-out judgments: ``<stage>/head/{,cold/,
    by_rater/}{marketer_agreement,kendall_tau}`` and ``<stage>/head/l2``."""
    chosen = int(head.chosen)
    out = {f"{stage}/head/l2": float(head.spec.l2[chosen])}
    with torch.no_grad():
        for prefix, held in data.eval_sets(stage).items():
            scores = head(model, held.kind, held.context, held.items.unsqueeze(1))[chosen, :, 0]
            result = agreement(scores, held.targets, held.groups, held.pairs)
            out[f"{stage}/head/{prefix}marketer_agreement"] = float(result.agreement)
            out[f"{stage}/head/{prefix}kendall_tau"] = float(result.kendall_tau)
    return out


def model_agreement(
    model: nn.Module, data: JudgmentData, stage: str, histories: Histories | None = None
) -> dict[str, float]:
    """The model's own agreement (lambda 0) with ``stage``'s held-out judgments: each row's
    context as the evaluation builds it (the mean user vector of the seeded population, the
    user's own vector), the model's dot product with the item's vector."""
    out: dict[str, float] = {}
    with torch.no_grad():
        table = model.item_vectors()  # type: ignore[operator]  # (N, D)
        for prefix, held in data.eval_sets(stage).items():
            vectors = context_vectors(model, held.kind, held.context, data.population, histories)
            scores = (vectors * table[held.items]).sum(-1)  # (Q,)
            result = agreement(scores, held.targets, held.groups, held.pairs)
            out[f"{stage}/{prefix}marketer_agreement"] = float(result.agreement)
            out[f"{stage}/{prefix}kendall_tau"] = float(result.kendall_tau)
    return out
