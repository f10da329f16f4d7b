"""RecLitModule: the one training task — model + losses + metrics + optimiser.

The model maps a batch to scores; the loss terms turn training scores into a loss; evaluation
ranks the held-out items with :mod:`hybridrec.metrics` and logs ``val/…`` and ``test/…``.
Training steps read a training batch (``PairBatch``, ``SessionBatch``, ``WindowBatch``),
validation and test an ``EvalBatch`` (``RowEvalBatch`` or ``PrefixEvalBatch``), told apart by
their class (:mod:`hybridrec.data.batch`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import lightning as L
import torch
from torch import Tensor, nn

from hybridrec.data.batch import TRAIN_BATCHES, Batch, EvalBatch, layout_error
from hybridrec.data.catalogue import Catalogue
from hybridrec.lit import adapter
from hybridrec.lit.checkpoint import PAYLOAD, RUN_ID_KEY, model_payload
from hybridrec.losses.human import JudgmentLoss
from hybridrec.metrics import BeyondAccuracy, agreement, positive_ranks, ranking_metrics
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.contexts import USER, JudgmentContexts, context_vectors
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.judgment_head import JudgmentHead, head_loss, standardise_rows
from hybridrec.validators import EMBEDDING_L2, JUDGMENT_BLEND, ArgumentError, tower_contract

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
    judgment: the human-rating term (:class:`JudgmentLoss`), or None. Held-out judgments are
        measured whenever the data has them (``…/marketer_agreement``), with or without it.
    blend: beta of ``val/blend = (1 - beta) val/<blend_metric> + beta val/marketer_agreement``
        (0: not logged), a monitor that weighs both.
    compile_scores: score training batches through ``torch.compile`` (config key ``compile``;
        measured slower than eager for NeuMF on this CPU, docs/benchmarks.md, hence off).
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
        judgment: JudgmentLoss | None = None,
        blend: float = 0.0,
        blend_metric: str = "ndcg@10",
        compile_scores: bool = False,
    ) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.ks, self.ties = tuple(int(k) for k in ks), ties
        EMBEDDING_L2.require("embedding_l2", embedding_l2)
        if embedding_l2 > 0 and not hasattr(model, "embedding_penalty"):
            raise ArgumentError(
                f"embedding_l2 > 0 but {type(model).__name__} has no embedding_penalty"
            )
        self.embedding_l2 = float(embedding_l2)
        if judgment is not None:
            # a composed hybrid takes a judgment head (fitted after it: lit/judgment_fit.py),
            # never the joint term (its parts are frozen)
            head_only = isinstance(model, ComposedHybrid) and judgment.head is not None
            factorized = isinstance(model, FactorizedModel) or head_only
            towers = tower_contract(type(model).__name__, factorized)
            if towers is not None:
                raise ArgumentError(f"judgment: expected {towers}")
        JUDGMENT_BLEND.require("judgment_blend", blend)
        self.judgment = judgment
        # the term's learned context offsets (segments, "everyone"); None: zero offsets
        self.contexts = (
            None
            if judgment is None
            else JudgmentContexts(_vector_size(model), judgment.n_segments, judgment.everyone)
        )
        # the judgment head (judgment.head): its own copies of the term, one per L2 weight
        self.head: JudgmentHead | None = None
        self.head_losses: nn.ModuleList | None = None
        if judgment is not None and judgment.head is not None:
            assert isinstance(model, (FactorizedModel, ComposedHybrid))
            self.head = JudgmentHead(
                judgment.head, model, model.n_users, model.n_items, judgment.n_segments
            )
            self.head_losses = nn.ModuleList(copy.deepcopy(judgment) for _ in judgment.head.l2)
        #: lambda of s(u, i) + lambda s_J(c, i) in evaluation (hybridrec-eval --lambdas); 0:
        #: the recommender's own scores, untouched
        self.serving_lambda = 0.0
        self.blend, self.blend_metric = float(blend), blend_metric
        self.compile_scores = bool(compile_scores)
        self._compiled: Callable[[nn.Module, Batch], Tensor] | None = None
        self._epoch_sums: dict[str, Tensor] = {}  # name -> (weighted sum, rows), this epoch
        self._blend_sums: list[Tensor] = []
        self._history_cache: tuple[Tensor, Tensor] | None = None  # users' histories, on device
        self._beyond: BeyondAccuracy | None = None  # test: coverage, novelty, cold share
        self.run_config: dict[str, Any] | None = None  # stored in checkpoints by train
        #: the run's catalogue (raw ids for checkpoints), set by train with ``run_config``
        self.catalogue: Catalogue | None = None

    def forward(self, batch: Batch) -> Tensor:
        return adapter.scores(self.model, batch)

    # -- one step for train / val / test --------------------------------------------------
    def _step(self, batch: Batch, stage: str, judgments: Any = None) -> Tensor | None:
        size = len(batch)
        if stage == "train":
            if not isinstance(batch, TRAIN_BATCHES):
                raise layout_error("a training step", batch, TRAIN_BATCHES)
            out = self.loss(self._training_scores()(self.model, batch), batch)
            if self.embedding_l2 > 0:
                penalty = adapter.embedding_penalty(self.model, batch)
                out["l2"] = penalty.detach()
                out["loss"] = out["loss"] + self.embedding_l2 * penalty
            extra = getattr(self.model, "auxiliary_losses", None)
            for name, term in (extra() if callable(extra) else {}).items():
                # model-side terms, already weighted (the hybrid's text prior on its IDs)
                out[name] = term.detach()
                out["loss"] = out["loss"] + term
            if self.judgment is not None and judgments is not None:
                if self.judgment.lambda_at(self.global_step) > 0:  # lambda 0: exactly the base
                    term = self._head_term if self.head is not None else self._judgment_term
                    human = term(judgments)
                    out["loss"] = out["loss"] + human.pop("loss")
                    out.update({f"judgment/{k}": v for k, v in human.items()})
            # the epoch's batch-size weighted mean: summed on the device, logged at epoch end
            for name, value in out.items():
                pair = torch.stack([value.detach().float() * size, value.new_tensor(float(size))])
                sums = self._epoch_sums.get(name)
                self._epoch_sums[name] = pair if sums is None else sums + pair
            if self._logger_writes_this_step():
                # each self.log costs ~0.75 ms on a CPU (Lightning's result bookkeeping): only
                # the steps the logger writes (log_every_n_steps) pay it (docs/benchmarks.md)
                for name, value in out.items():
                    self.log(f"train/{name}", value, batch_size=size, prog_bar=name == "loss")
            return out["loss"]
        if not isinstance(batch, EvalBatch):
            raise layout_error(f"a {stage} step", batch, EvalBatch)
        if batch.sampled:  # rank column 0 among the row's candidates
            assert batch.items is not None
            scores = adapter.scores(self.model, batch)  # (B, C)
            if self._serving_head():
                scores = self._with_head(scores, batch.users, batch.items)
            scores = scores.masked_fill(batch.items == 0, -torch.inf)
            positives = torch.zeros(size, 1, dtype=torch.long, device=scores.device)
            valid = None
        else:  # full: rank the held-out items among all items, known items masked
            batch.require("targets", "exclude")
            assert batch.targets is not None and batch.exclude is not None
            scores = adapter.scores_all(self.model, batch).clone()  # (B, N)
            if self._serving_head():
                scores = self._with_head(scores, batch.users)
            scores[:, 0] = -torch.inf  # padding
            scores[batch.exclude[0], batch.exclude[1]] = -torch.inf
            outside = batch.non_candidates()  # (B, N): candidates cold / slice
            if outside is not None:
                scores = scores.masked_fill(outside, -torch.inf)
            positives, valid = batch.targets, batch.targets > 0
        if stage == "test" and not batch.sampled and self._beyond is not None:
            self._log_beyond(scores, size)
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
                        batch_size=_rows(n_rows),
                        on_epoch=True,
                        sync_dist=True,
                        prog_bar=stage == "val" and not prefix and name == f"ndcg@{self.ks[0]}",
                    )
                if stage == "val" and self.blend > 0 and name == self.blend_metric:
                    self._blend_sums.append(torch.stack([values.sum(), values.new_tensor(size)]))
        return None

    def _logger_writes_this_step(self) -> bool:
        """Lightning's own rule for writing step metrics (every ``log_every_n_steps`` steps,
        and when the run stops), or every step of a ``fast_dev_run``."""
        trainer = getattr(self, "_trainer", None)
        connector = getattr(trainer, "_logger_connector", None)
        if trainer is None or connector is None or trainer.fast_dev_run:
            return True
        return bool(connector.should_update_logs)

    def on_train_epoch_end(self) -> None:
        """``train/<name>_epoch``: each training output's mean over the epoch's rows, on all
        ranks (sums reduced across DDP processes)."""
        for name, sums in self._epoch_sums.items():
            total = self.trainer.strategy.reduce(sums, reduce_op="sum")
            self.log(f"train/{name}_epoch", total[0] / total[1].clamp(min=1.0))
        self._epoch_sums = {}

    def _training_scores(self) -> Callable[[nn.Module, Batch], Tensor]:
        if not self.compile_scores:
            return adapter.scores
        if self._compiled is None:  # compiled once, on first use (shapes are seen then)
            self._compiled = cast(
                Callable[[nn.Module, Batch], Tensor], torch.compile(adapter.scores)
            )
        return self._compiled

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        judgments = None
        if isinstance(batch, dict):  # CombinedLoader: interactions + judgments
            judgments = batch.get("judgments")
            batch = batch["interactions"]
        loss = self._step(batch, "train", judgments)
        assert loss is not None
        return loss

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and self.judgment is not None:
            # the second training loader, only when the term can act (lambda > 0)
            datamodule.train_judgments = self.judgment.weight > 0

    # -- marketers' judgments -----------------------------------------------------------------
    def _judgment_data(self) -> Any:
        trainer = getattr(self, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        return getattr(datamodule, "judgments", None)

    def _histories(self) -> tuple[Tensor, Tensor] | None:
        """Every user's latest training items for a history model (from the datamodule)."""
        if getattr(self.model, "history", None) is None:
            return None
        trainer = getattr(self, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "user_histories"):
            raise ValueError(
                "judgments with a history model need the users' histories: use a sequence "
                "datamodule (datamodule=next_item)"
            )
        cached = self._history_cache
        if cached is None or cached[0].device != self.device:
            table, lengths = datamodule.user_histories()
            cached = self._history_cache = (table.to(self.device), lengths.to(self.device))
        return cached

    def _judgment_scores(
        self, kind: Tensor, context: Tensor, items: Tensor, population: Tensor
    ) -> Tensor:
        """kind, context (P,), items (P, C) -> (P, C): the model's scores of the items for
        each judgment's audience (see hybridrec.nn.contexts)."""
        model = self.model
        histories = self._histories()
        if self.contexts is not None:
            vectors = self.contexts(model, kind, context, population, histories)
        else:
            vectors = context_vectors(model, kind, context, population, histories)
        if isinstance(model, ComposedHybrid):  # one dot product of concatenated vectors
            return (vectors.unsqueeze(1) * model.item_vectors(items)).sum(-1)
        assert isinstance(model, FactorizedModel)
        users = torch.where(kind == USER, context, torch.zeros_like(context))
        return model.scorer.score(vectors, model.item_vectors(items), users, items)

    def _judgment_term(self, batch: Any) -> dict[str, Tensor]:
        """The lambda-weighted human-rating term on one JudgmentBatch (pairs + rows)."""
        assert self.judgment is not None
        n_pairs = batch.pair_items.shape[0]
        kind = torch.cat([batch.pair_kind, batch.row_kind])
        context = torch.cat([batch.pair_context, batch.row_context])
        # pairs (P, 2) and single rows (Q, 1 -> padded to 2) scored in one call
        rows = torch.stack([batch.row_items, batch.row_items], 1)
        scores = self._judgment_scores(
            kind, context, torch.cat([batch.pair_items, rows]), batch.population
        )
        out = dict(
            self.judgment(
                pair_scores=scores[:n_pairs],
                pair_weight=batch.pair_weight,
                pair_rater=batch.pair_rater,
                row_scores=scores[n_pairs:, 0],
                row_targets=batch.row_targets,
                row_weight=batch.row_weight,
                step=self.global_step,
            )
        )
        return out

    def _head_term(self, batch: Any) -> dict[str, Tensor]:
        """The judgment head's term: every copy's human-rating loss plus its L2, averaged over
        the copies (so with ``shared`` the model gets one copy's worth of gradient), times the
        training lambda."""
        assert self.head is not None and self.head_losses is not None
        return head_loss(self.head, self.head_losses, self.model, batch, self.global_step)

    def rater_reliability(self) -> Tensor | None:
        """Crowd-BT: each rater's learned eta (with a head: its kept copy's term), else None."""
        if self.head is not None and self.head_losses is not None:
            term = self.head_losses[int(self.head.chosen)]
            assert isinstance(term, JudgmentLoss)
            return term.rater_reliability()
        return None if self.judgment is None else self.judgment.rater_reliability()

    # -- lambda at serving time: s(u, i) + lambda s_J(c, i), each standardised per row ------------
    def _serving_head(self) -> bool:
        return self.head is not None and self.serving_lambda > 0

    def _with_head(self, scores: Tensor, users: Tensor, items: Tensor | None = None) -> Tensor:
        """scores (B, N) of every item, or (B, C) of ``items`` -> the same plus lambda times the
        head's score for each row's user (context: everyone + the user's own offset), both
        standardised per row: over the catalogue for full ranking, over the row's candidates
        for sampled ranking (docs/judgments.md)."""
        assert self.head is not None
        kind = torch.full_like(users, USER)
        if items is None:
            head = self.head.score_all(self.model, kind, users)  # (B, N)
            return standardise_rows(scores) + self.serving_lambda * standardise_rows(head)
        head = self.head(self.model, kind, users, items)[int(self.head.chosen)]  # (B, C)
        every = slice(None)
        return standardise_rows(scores, every) + self.serving_lambda * standardise_rows(head, every)

    def _combined_judgment_scores(
        self, kind: Tensor, context: Tensor, items: Tensor, population: Tensor
    ) -> Tensor:
        """(Q,) rows -> (Q,) s(c, i) + lambda s_J(c, i), each standardised over the catalogue
        for the row's context (what the combined ranking of that audience orders by)."""
        model = self.model
        assert isinstance(model, (FactorizedModel, ComposedHybrid)) and self.head is not None
        histories = self._histories()
        if self.contexts is not None:
            vectors = self.contexts(model, kind, context, population, histories)
        else:
            vectors = context_vectors(model, kind, context, population, histories)
        users = torch.where(kind == USER, context, torch.zeros_like(context))
        if isinstance(model, ComposedHybrid):
            own = vectors @ model.item_vectors().T  # (Q, N)
        else:
            own = model.scorer.score_all(vectors, model.item_vectors(), users)  # (Q, N)
        head = self.head.score_all(model, kind, context)  # (Q, N)
        combined = standardise_rows(own) + self.serving_lambda * standardise_rows(head)
        return combined.gather(1, items.unsqueeze(1)).squeeze(1)

    def _log_head_agreement(self, stage: str, sets: dict[str, Any], population: Tensor) -> None:
        """The head's own agreement (s_J alone) as ``<stage>/head/…``; in validation, every
        copy's by-item agreement picks the copy kept (``<stage>/head/l2``)."""
        assert self.head is not None
        per_set = {}
        for prefix, held_out in sets.items():
            scores = self.head(
                self.model, held_out.kind, held_out.context, held_out.items.unsqueeze(1)
            ).squeeze(2)  # (K, Q)
            per_set[prefix] = [
                agreement(row, held_out.targets, held_out.groups, held_out.pairs) for row in scores
            ]
        if stage == "val" and "" in per_set:
            chosen = self.head.choose([r.agreement for r in per_set[""]])
            for k, result in enumerate(per_set[""]):
                self.log(f"val/head/l2_{k}/marketer_agreement", float(result.agreement))
        chosen = int(self.head.chosen)
        self.log(f"{stage}/head/l2", float(self.head.l2[chosen]))
        for prefix, results in per_set.items():
            result = results[chosen]
            self.log(f"{stage}/head/{prefix}marketer_agreement", float(result.agreement))
            self.log(f"{stage}/head/{prefix}kendall_tau", float(result.kendall_tau))

    def _log_agreement(self, stage: str) -> None:
        """Agreement with the held-out judgments of ``stage`` (see hybridrec.metrics.agreement)."""
        data = self._judgment_data()
        if data is None or not isinstance(self.model, (FactorizedModel, ComposedHybrid)):
            return
        population = data.population.to(self.device)
        with torch.no_grad():
            sets = {k: v.to(self.device) for k, v in data.eval_sets(stage).items()}
            if self.head is not None:  # first: validation picks the head's copy here
                self._log_head_agreement(stage, sets, population)
            for prefix, held_out in sets.items():
                if self._serving_head():
                    scores = self._combined_judgment_scores(
                        held_out.kind, held_out.context, held_out.items, population
                    )
                else:
                    scores = self._judgment_scores(
                        held_out.kind, held_out.context, held_out.items.unsqueeze(1), population
                    ).squeeze(1)
                result = agreement(scores, held_out.targets, held_out.groups, held_out.pairs)
                values = {"marketer_agreement": result.agreement, "kendall_tau": result.kendall_tau}
                for name, value in values.items():
                    self.log(f"{stage}/{prefix}{name}", float(value), sync_dist=False)
                if stage == "val" and not prefix and self.blend > 0 and self._blend_sums:
                    sums = self.trainer.strategy.reduce(
                        torch.stack(self._blend_sums).sum(0), reduce_op="sum"
                    )
                    base = float(sums[0] / sums[1].clamp(min=1))
                    blended = (1 - self.blend) * base + self.blend * result.agreement
                    self.log("val/blend", blended, prog_bar=True)
        self._blend_sums = []

    def on_validation_epoch_end(self) -> None:
        self._log_agreement("val")

    # -- beyond accuracy (test, full ranking) ---------------------------------------------------
    def on_test_epoch_start(self) -> None:
        trainer = getattr(self, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        counts = getattr(datamodule, "item_counts", None)
        self._beyond = BeyondAccuracy(counts()).to(self.device) if callable(counts) else None

    def _log_beyond(self, scores: Tensor, size: int) -> None:
        """Per-row means of the top-K lists, taken from the masked scores the ranking metrics
        use: padding, known items and non-candidates (-inf) are never counted as recommended."""
        assert self._beyond is not None
        for k in self.ks:
            best = scores.topk(min(k, scores.shape[1]), dim=1)  # (B, K)
            valid = best.values > -torch.inf  # (B, K) fewer candidates than K: the rest is out
            for name, values in self._beyond.rows(best.indices, valid, k).items():
                self.log(f"test/{name}", values.mean(), batch_size=_rows(size), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_agreement("test")
        if self._beyond is not None:
            for k in self.ks:
                seen = self._beyond.seen.get(k)
                if seen is None:
                    continue
                union = self.trainer.strategy.reduce(seen.double(), reduce_op="sum") > 0
                self.log(f"test/coverage@{k}", self._beyond.coverage(k, union))
            self._beyond = None

    # -- optimisation ---------------------------------------------------------------------
    def _parameter_groups(self) -> Any:
        """Every parameter; the judgment head's (and its terms') in a group of their own when
        ``judgment.head.lr`` is set."""
        if self.head is None or self.head.spec.lr is None:
            return self.parameters()
        assert self.head_losses is not None
        own = [*self.head.parameters(), *self.head_losses.parameters()]
        ids = {id(p) for p in own}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest}, {"params": own, "lr": float(self.head.spec.lr)}]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self._parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["hybridrec_config"] = self.run_config
            # what rebuilds the model without the data folder (hybridrec.lit.load_model)
            maps = self.catalogue.id_maps if self.catalogue is not None else None
            checkpoint[PAYLOAD] = model_payload(self.model, self.run_config, maps)
        run_id = getattr(self._trainer.logger, "run_id", None) if self._trainer else None
        if isinstance(run_id, str):
            checkpoint[RUN_ID_KEY] = run_id


def _rows(n: int) -> int:
    """A row count for ``self.log(batch_size=...)``, as a float: Lightning 2.6 mean-syncs an
    integer count across DDP ranks and floors it (81 rows on 2 ranks counted as 80, every
    synced metric 1/80 too high; Lightning-AI/pytorch-lightning#21859). A float count is
    averaged exactly (tests/cli/test_ddp.py)."""
    return cast(int, float(n))


def _vector_size(model: nn.Module) -> int:
    """D of a factorised model's vectors (one item encoded; the random state is left as is)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        vector = model.item_vectors(torch.ones(1, dtype=torch.long))  # type: ignore[operator]
    return int(vector.shape[-1])
