"""RecLitModule: the one training task — model + losses + metrics + optimiser.

The model maps a batch to scores; the loss terms turn training scores into a loss; evaluation
ranks the held-out items with :mod:`hybridrec.metrics` and logs ``val/…`` and ``test/…``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from hybridrec.data.batch import RecBatch
from hybridrec.lit import adapter
from hybridrec.lit.checkpoint import PAYLOAD, id_maps, model_payload
from hybridrec.metrics import positive_ranks, ranking_metrics

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class RecLitModule(L.LightningModule):
    """Args:
    model: a :class:`FactorizedModel` or :class:`PairScorer` (tensors in; see
        :mod:`hybridrec.lit.adapter`), or a batch-level model (GRU4Rec, baselines).
    loss: called as ``loss(scores, batch) -> {"loss": ..., parts}`` (e.g. ``LossSum``).
    optimizer: a partial taking the parameters (Hydra ``_partial_: true``).
    scheduler: optional partial taking the optimiser.
    ks: cut-offs for HR/Recall/NDCG/MRR@K.
    ties: tie rule for ranks (see :mod:`hybridrec.metrics.ranking`).
    embedding_l2: weight of the model's ``embedding_penalty(users, items)`` (L2 on the ID rows
        each batch uses, as in Rendle et al. 2020); 0 disables it.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        ks: Sequence[int] = (10,),
        ties: str = "pessimistic",
        embedding_l2: float = 0.0,
    ) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.ks, self.ties = tuple(int(k) for k in ks), ties
        if embedding_l2 < 0:
            raise ValueError(f"embedding_l2={embedding_l2}: expected >= 0")
        if embedding_l2 > 0 and not hasattr(model, "embedding_penalty"):
            raise ValueError(
                f"embedding_l2 > 0 but {type(model).__name__} has no embedding_penalty"
            )
        self.embedding_l2 = float(embedding_l2)
        self.run_config: dict[str, Any] | None = None  # stored in checkpoints by train
        self._id_maps: dict[str, list[Any]] | None = None  # raw ids, read once for checkpoints

    def forward(self, batch: RecBatch) -> Tensor:
        return adapter.scores(self.model, batch)

    # -- one step for train / val / test --------------------------------------------------
    def _step(self, batch: RecBatch, stage: str) -> Tensor | None:
        size = len(batch)
        if stage == "train":
            out = self.loss(adapter.scores(self.model, batch), batch)
            if self.embedding_l2 > 0:
                penalty = adapter.embedding_penalty(self.model, batch)
                out["l2"] = penalty.detach()
                out["loss"] = out["loss"] + self.embedding_l2 * penalty
            extra = getattr(self.model, "auxiliary_losses", None)
            for name, term in (extra() if callable(extra) else {}).items():
                # model-side terms, already weighted (the hybrid's text prior on its IDs)
                out[name] = term.detach()
                out["loss"] = out["loss"] + term
            for name, value in out.items():
                # every log_every_n_steps steps, and the epoch's mean (batch-size weighted)
                self.log(f"train/{name}", value, batch_size=size, prog_bar=name == "loss")
                self.log(
                    f"train/{name}_epoch",
                    value,
                    batch_size=size,
                    on_step=False,
                    on_epoch=True,
                    sync_dist=True,
                )
            return out["loss"]
        if batch.items is not None:  # sampled: rank column 0 among the row's candidates
            scores = adapter.scores(self.model, batch)  # (B, C)
            scores = scores.masked_fill(batch.items == 0, -torch.inf)
            positives = torch.zeros(size, 1, dtype=torch.long, device=scores.device)
            valid = None
        else:  # full: rank the held-out items among all items, known items masked
            batch.require("targets", "exclude")
            assert batch.targets is not None and batch.exclude is not None
            scores = adapter.scores_all(self.model, batch).clone()  # (B, N)
            scores[:, 0] = -torch.inf  # padding
            scores[batch.exclude[0], batch.exclude[1]] = -torch.inf
            if batch.cold is not None and batch.restrict_to is not None:
                # candidates: cold -> cold rows rank among the cold items only
                outside = batch.cold.unsqueeze(1) & ~batch.restrict_to.unsqueeze(0)  # (B, N)
                scores = scores.masked_fill(outside, -torch.inf)
            positives, valid = batch.targets, batch.targets > 0
        ranks = positive_ranks(scores.float(), positives, valid, ties=self.ties)  # (B, P)
        # rows per slice: all rows, and with cold flags the cold-target and warm-target rows
        slices: list[tuple[str, Tensor | None]] = [("", None)]
        if batch.cold is not None:
            slices += [("cold/", batch.cold), ("warm/", ~batch.cold)]
        for k in self.ks:
            for name, values in ranking_metrics(ranks, k).as_dict(k).items():
                for prefix, rows in slices:
                    n_rows = size if rows is None else int(rows.sum())
                    if n_rows == 0:
                        continue
                    self.log(
                        f"{stage}/{prefix}{name}",
                        (values if rows is None else values[rows]).mean(),
                        batch_size=n_rows,
                        on_epoch=True,
                        sync_dist=True,
                        prog_bar=stage == "val" and not prefix and name == f"ndcg@{self.ks[0]}",
                    )
        return None

    def training_step(self, batch: RecBatch, batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        assert loss is not None
        return loss

    def validation_step(self, batch: RecBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: RecBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["hybridrec_config"] = self.run_config
            # what rebuilds the model without the data folder (hybridrec.lit.load_model)
            if self._id_maps is None:
                data_dir = (self.run_config.get("datamodule") or {}).get("data_dir")
                self._id_maps = id_maps(data_dir) if data_dir else {}
            checkpoint[PAYLOAD] = model_payload(self.model, self.run_config, self._id_maps or None)
