"""RecLitModule end to end: training step, sampled and full-ranking evaluation wiring.

The oracle models read the true held-out items from the prepared parquet files (not from the
batch), so a perfect score proves that the batches carry the right items to the right users and
that the metrics rank them as intended.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from conftest import prepare_tiny
from hybridrec.data.batch import (
    BatchLayoutError,
    EvalBatch,
    PairBatch,
    RowEvalBatch,
    SessionBatch,
)
from hybridrec.data.batching.pairs import RecDataModule
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.lit import RecLitModule
from hybridrec.lit.adapter import scores
from hybridrec.losses import BCELoss, LossSum
from hybridrec.nn import MF

N_USERS, N_ITEMS = 60, 40
METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@10")


@pytest.fixture(scope="module")
def sampled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_tiny(tmp_path_factory.mktemp("lit") / "sampled", LeaveOneOut(n_negatives=30))


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    protocol = LeaveOneOut(eval_mode="full", name="loo_full")
    return prepare_tiny(tmp_path_factory.mktemp("lit") / "full", protocol)


def _dm(folder: Path) -> RecDataModule:
    return RecDataModule(folder, batch_size=128, num_negatives=4, eval_batch_size=25, seed=0)


def _trainer(**kwargs: object) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _lit(model: nn.Module, ties: str = "pessimistic") -> RecLitModule:
    return RecLitModule(
        model,
        LossSum({"ranking": BCELoss()}),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        ks=(10,),
        ties=ties,
    )


def _metrics(trainer: L.Trainer, stage: str) -> dict[str, float]:
    return {
        name: float(trainer.callback_metrics[f"{stage}/{name}"])
        for name in METRICS
        if f"{stage}/{name}" in trainer.callback_metrics
    }


class Oracle(nn.Module):
    """Scores the user's true held-out items (read from a parquet file) 1, everything else 0;
    ``train_bonus`` scores the user's training items even higher (masked in full ranking)."""

    def __init__(self, held_out: pd.DataFrame, train: pd.DataFrame, train_bonus: float = 0.0):
        super().__init__()
        truth = torch.zeros(N_USERS, N_ITEMS + 1)
        truth[held_out["user"].to_numpy(), held_out["item"].to_numpy()] = 1.0
        truth[train["user"].to_numpy(), train["item"].to_numpy()] = train_bonus
        self.register_buffer("truth", truth)

    def forward(self, batch: EvalBatch) -> Tensor:
        assert batch.items is not None
        return torch.gather(self.truth[batch.users], 1, batch.items)

    def score_all(self, batch: EvalBatch) -> Tensor:
        return self.truth[batch.users]


class Constant(nn.Module):
    def forward(self, batch: EvalBatch) -> Tensor:
        assert batch.items is not None
        return torch.zeros(batch.items.shape)

    def score_all(self, batch: EvalBatch) -> Tensor:
        return torch.zeros(len(batch), N_ITEMS + 1)


def _frames(folder: Path) -> dict[str, pd.DataFrame]:
    return {r: pd.read_parquet(folder / f"{r}.parquet") for r in ("train", "val", "test")}


# --- training + sampled validation --------------------------------------------------------------


def test_fast_dev_run_logs_train_loss_and_val_metrics(sampled_dir: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(_lit(MF(N_USERS, N_ITEMS, embedding_dim=8)), datamodule=_dm(sampled_dir))
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/ranking/loss"} <= set(metrics)
    assert float(metrics["train/loss"]) == pytest.approx(0.6931, abs=0.05)  # loss at init
    values = _metrics(trainer, "val")
    assert set(values) == set(METRICS)
    assert all(0.0 <= v <= 1.0 for v in values.values()), values


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_step_returns_the_loss(sampled_dir: Path) -> None:
    torch.manual_seed(0)
    dm = _dm(sampled_dir)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    lit = _lit(MF(N_USERS, N_ITEMS, embedding_dim=8))
    loss = lit._step(batch, "train")
    assert loss is not None and loss.requires_grad and loss.ndim == 0
    expected = BCELoss()(scores(lit.model, batch), batch)["loss"]
    assert loss.item() == pytest.approx(expected.item())


def test_sampled_oracle_scores_perfectly(sampled_dir: Path) -> None:
    frames = _frames(sampled_dir)
    trainer = _trainer()
    trainer.validate(_lit(Oracle(frames["val"], frames["train"])), datamodule=_dm(sampled_dir))
    assert _metrics(trainer, "val") == {m: 1.0 for m in METRICS}
    trainer.test(_lit(Oracle(frames["test"], frames["train"])), datamodule=_dm(sampled_dir))
    assert _metrics(trainer, "test") == {m: 1.0 for m in METRICS}


def test_sampled_oracle_of_the_wrong_split_scores_zero(sampled_dir: Path) -> None:
    # knowing the test items does not help on validation: each val positive scores 0 and ties
    # with its 30 negatives (none of them a known item), so under pessimistic ties it ranks 30
    frames = _frames(sampled_dir)
    trainer = _trainer()
    trainer.validate(_lit(Oracle(frames["test"], frames["train"])), datamodule=_dm(sampled_dir))
    assert _metrics(trainer, "val") == {m: 0.0 for m in METRICS}


@pytest.mark.parametrize(("ties", "expected"), [("pessimistic", 0.0), ("optimistic", 1.0)])
def test_sampled_constant_model(sampled_dir: Path, ties: str, expected: float) -> None:
    trainer = _trainer()
    trainer.validate(_lit(Constant(), ties=ties), datamodule=_dm(sampled_dir))
    assert _metrics(trainer, "val") == {m: expected for m in METRICS}


# --- full ranking -------------------------------------------------------------------------------


def test_full_ranking_mf_logs_metrics(full_dir: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer()
    trainer.validate(_lit(MF(N_USERS, N_ITEMS, embedding_dim=8)), datamodule=_dm(full_dir))
    values = _metrics(trainer, "val")
    assert set(values) == set(METRICS)
    assert all(0.0 <= v <= 1.0 for v in values.values()), values


def test_full_ranking_oracle_scores_perfectly_with_known_items_masked(full_dir: Path) -> None:
    frames = _frames(full_dir)
    # training items score 5 > held-out 1: only the exclusion mask lets the oracle win
    trainer = _trainer()
    oracle = Oracle(frames["val"], frames["train"], train_bonus=5.0)
    trainer.validate(_lit(oracle), datamodule=_dm(full_dir))
    assert _metrics(trainer, "val") == {m: 1.0 for m in METRICS}

    # for test, validation items are known too: give them the bonus as well
    known = pd.concat([frames["train"], frames["val"]])
    trainer.test(_lit(Oracle(frames["test"], known, train_bonus=5.0)), datamodule=_dm(full_dir))
    assert _metrics(trainer, "test") == {m: 1.0 for m in METRICS}


def test_full_ranking_constant_model_scores_zero(full_dir: Path) -> None:
    trainer = _trainer()
    trainer.validate(_lit(Constant()), datamodule=_dm(full_dir))
    assert _metrics(trainer, "val") == {m: 0.0 for m in METRICS}


# --- epoch metrics are row-weighted means, overall and per cold / warm slice -------------------

# Full ranking over items 1..6 (0 = padding); items 4, 5, 6 are the cold ones: a cold row
# ranks among them only. K = 2, pessimistic ties. One row per user, scores by hand:
SLICE_SCORES = torch.tensor(
    [
        # item: 0  1  2  3  4  5  6
        [0, 9, 9, 9, 1, 2, 3],  # u0 cold, target 4: among 4, 5, 6 below 3 and 2 -> rank 2
        [0, 9, 0, 0, 0, 5, 1],  # u1 cold, target 5: first among 4, 5, 6 -> rank 0
        [0, 9, 5, 6, 1, 1, 1],  # u2 warm, target 2, item 1 excluded: below 6 -> rank 1
        [0, 0, 0, 0, 1, 5, 3],  # u3 cold, target 6: below 5 among 4, 5, 6 -> rank 1
        [0, 4, 2, 8, 3, 1, 7],  # u4 warm, targets 3 (rank 0) and 1 (below 8, 7 -> rank 2)
        [0, 2, 7, 2, 4, 1, 0],  # u5 warm, target 1, item 2 excluded: below 4, tied 2 -> rank 2
    ],
    dtype=torch.float32,
)
G = 1 / math.log2(3)  # NDCG@2 of a single target at rank 1
# per row (HR@2, NDCG@2): rank 0 -> (1, 1), rank 1 -> (1, G), rank 2 -> (0, 0); u4 has two
# targets, one hit at rank 0: HR 1, NDCG = DCG 1 / ideal DCG of 2 hits (1 + G)
#   u0 (0, 0)   u1 (1, 1)   u2 (1, G)   u3 (1, G)   u4 (1, 1 / (1 + G))   u5 (0, 0)


class FixedScores(nn.Module):
    """score_all = the hand-written score table row of each user."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", SLICE_SCORES.clone())

    def score_all(self, batch: EvalBatch) -> Tensor:
        return self.table[batch.users]


def _slice_batches() -> list[RowEvalBatch]:
    """Batches of 3, 1 and 2 rows: cold rows per batch 2, 1, 0 and warm rows 1, 0, 2."""
    restrict_to = torch.tensor([False, False, False, False, True, True, True])

    def batch(
        users: list[int], targets: list[list[int]], exclude: list[list[int]], cold: list[bool]
    ) -> RowEvalBatch:
        return RowEvalBatch(
            users=torch.tensor(users),
            targets=torch.tensor(targets),
            exclude=torch.tensor(exclude, dtype=torch.long),  # (2, E) (row, item) pairs
            cold=torch.tensor(cold),
            restrict_to=restrict_to,
        )

    return [
        batch([0, 1, 2], [[4, 0], [5, 0], [2, 0]], [[2], [1]], [True, True, False]),
        batch([3], [[6, 0]], [[], []], [True]),
        batch([4, 5], [[3, 1], [1, 0]], [[1], [2]], [False, False]),
    ]


@pytest.mark.parametrize("stage", ["val", "test"])
def test_epoch_metrics_are_row_weighted_means_per_slice(stage: str) -> None:
    lit = RecLitModule(
        FixedScores(),
        LossSum({"ranking": BCELoss()}),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        ks=(2,),
    )
    # batch_size=None: each hand-built RowEvalBatch is one batch, as the data modules yield them
    loader = DataLoader(_slice_batches(), batch_size=None, collate_fn=lambda b: b)
    trainer = _trainer()
    run = trainer.validate if stage == "val" else trainer.test
    run(lit, dataloaders=loader)
    got = {k: float(v) for k, v in trainer.callback_metrics.items()}
    expected = {
        # all 6 rows: HR (0 + 1 + 1 + 1 + 1 + 0) / 6 = 2/3, not the mean of the batch means
        # (2/3 + 1/1 + 1/2) / 3 = 0.722
        f"{stage}/hr@2": 4 / 6,
        f"{stage}/ndcg@2": (0 + 1 + G + G + 1 / (1 + G) + 0) / 6,
        # cold rows u0, u1 (batch 1), u3 (batch 2): HR 2/3, not (1/2 + 1/1) / 2 = 0.75
        f"{stage}/cold/hr@2": 2 / 3,
        f"{stage}/cold/ndcg@2": (0 + 1 + G) / 3,
        # warm rows u2 (batch 1), u4, u5 (batch 3): HR 2/3, not (1/1 + 1/2) / 2 = 0.75
        f"{stage}/warm/hr@2": 2 / 3,
        f"{stage}/warm/ndcg@2": (G + 1 / (1 + G) + 0) / 3,
    }
    assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_compiled_training_scores_equal_eager_ones() -> None:
    """compile=true: the same scores and gradients as eager (torch.compile, CPU inductor)."""
    from hybridrec.data.batch import PairBatch
    from hybridrec.lit import RecLitModule
    from hybridrec.losses import BCELoss
    from hybridrec.nn import NeuMF

    torch.manual_seed(0)
    model = NeuMF(30, 40, gmf_dim=8, mlp_embedding_dim=8, hidden_dims=[16, 8])
    labels = torch.zeros(16, 5)
    labels[:, 0] = 1
    batch = PairBatch(
        users=torch.randint(0, 30, (16,)), items=torch.randint(1, 41, (16, 5)), labels=labels
    )
    out = {}
    for flag in (False, True):
        module = RecLitModule(model, BCELoss(), optimizer=torch.optim.Adam, compile_scores=flag)
        model.zero_grad(set_to_none=True)
        scores = module._training_scores()(model, batch)
        scores.sum().backward()
        out[flag] = (scores.detach(), model.mlp.user_proj.weight.grad.clone())
    assert torch.allclose(out[True][0], out[False][0], atol=1e-5)
    assert torch.allclose(out[True][1], out[False][1], atol=1e-5)


def test_each_step_refuses_a_batch_of_the_wrong_layout() -> None:
    """A training step reads a training batch, an evaluation step an EvalBatch; a model reads
    the layouts it knows: each error names the types it expected."""
    lit = RecLitModule(MF(N_USERS, N_ITEMS), LossSum({"ranking": BCELoss()}), torch.optim.Adam)
    rows = RowEvalBatch(users=torch.tensor([0, 1]), items=torch.tensor([[1, 2], [3, 4]]))
    with pytest.raises(BatchLayoutError, match="PairBatch or SessionBatch or WindowBatch"):
        lit._step(rows, "train")
    pairs = PairBatch(
        users=rows.users, items=torch.tensor([[1, 2], [3, 4]]), labels=torch.zeros(2, 2)
    )
    with pytest.raises(
        BatchLayoutError,
        match="a val step reads a batch of type EvalBatch, but was given a PairBatch",
    ):
        lit._step(pairs, "val")
    session = SessionBatch(
        users=torch.tensor([0, 1]),
        items=torch.tensor([[3], [7]]),
        negatives=torch.tensor([5]),
        column_logq=torch.zeros(3),
        session_inputs=torch.tensor([2, 4]),
        session_slots=torch.tensor([0, 1]),
        session_starts=torch.tensor([True, True]),
    )
    with pytest.raises(
        BatchLayoutError, match="MF reads a batch of type PairBatch or WindowBatch or RowEvalBatch"
    ):
        scores(lit.model, session)
