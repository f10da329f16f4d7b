"""Device evaluation (RecLitModule + RecDataModule under trainer.validate / trainer.test)
equals a naive loop over users on a small case.

The reference reads the prepared parquet files itself (not the datamodule's tensors), scores
every candidate of a user with the model's pair path (``model.score``, not the ``score_all``
matrix product the full ranking uses), ranks each held-out item in Python with pessimistic ties
(a candidate scoring equal to the held-out item ranks above it), and averages per user:

    HR@K    1 if a held-out item is in the top K
    Recall@K  hits / held-out items
    NDCG@K  sum over hits of 1 / log2(rank + 2), over the ideal DCG of min(held-out, K) hits
    MRR@K   1 / (best rank + 1) when that is in the top K

Full ranking ranks among every item but padding and the user's known items (train for
validation; train + validation for test); the sampled protocol ranks the held-out item among its
row of negatives (a padding 0, or a negative equal to the held-out item, is not a candidate).

Two weight settings: ``random`` (normal init, few exact ties) and ``quantised`` (every weight a
multiple of 1/8 in [-1, 1], item 2 a copy of item 1): every score is then an exact float32 sum
whatever order a kernel adds in, and ties are everywhere, so the tie rule itself is checked.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from conftest import prepare_tiny
from hybridrec.data.batching.pairs import RecDataModule
from hybridrec.data.preparation.protocols import LeaveOneOut, TemporalSplit
from hybridrec.data.preparation.staging import read_negatives
from hybridrec.lit import RecLitModule
from hybridrec.losses import BCELoss, LossSum
from hybridrec.nn import MF

KS = (1, 5, 10)
TOL = 1e-6

PROTOCOLS = {
    "loo_sampled": LeaveOneOut(n_negatives=20),  # 40 items: some rows are short of negatives
    "loo_full": LeaveOneOut(eval_mode="full", name="loo_full"),
    "temporal": TemporalSplit(test_fraction=0.2, val_fraction=0.1),  # several items per user
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval_reference")
    return {
        name: prepare_tiny(root / name, protocol, n_users=60, n_items=40)
        for name, protocol in PROTOCOLS.items()
    }


def _model(folder: Path, weights: str) -> MF:
    spec = RecDataModule(folder).spec
    torch.manual_seed(0)
    model = MF(spec.n_users, spec.n_items, embedding_dim=8, init_std=0.3)
    if weights == "quantised":
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_((parameter * 8).round().clamp(-8, 8) / 8)
                if parameter.dim() == 2 and parameter.shape[0] == spec.n_items + 1:
                    parameter[2] = parameter[1]  # an item table (or bias) row: a tied pair
    return model.eval()


def _reference_rank(scores: dict[int, float], target: int, candidates: list[int]) -> int:
    """0-based pessimistic rank of ``target`` among ``candidates`` (the target included)."""
    mine = scores[target]
    return sum(1 for item in candidates if item != target and scores[item] >= mine)


def _reference_metrics(ranks: list[int], k: int) -> dict[str, float]:
    hits = [rank for rank in ranks if rank < k]
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(ranks), k)))
    best = min(ranks)
    return {
        f"hr@{k}": float(bool(hits)),
        f"recall@{k}": len(hits) / len(ranks),
        f"ndcg@{k}": sum(1 / math.log2(rank + 2) for rank in hits) / ideal,
        f"mrr@{k}": 1 / (best + 1) if best < k else 0.0,
    }


def _user_scores(model: MF, user: int, items: list[int]) -> dict[int, float]:
    with torch.no_grad():
        scores = model.score(torch.tensor([user]), torch.tensor([items]))  # (1, C)
    return dict(zip(items, scores[0].tolist()))


def _frame(folder: Path, role: str) -> pd.DataFrame:
    spec = RecDataModule(folder).spec
    return pd.read_parquet(folder / spec.files[role])


def reference(folder: Path, model: MF, stage: str) -> dict[str, float]:
    """The naive loop: per-user metric values, averaged over the stage's users (rows)."""
    spec = RecDataModule(folder).spec
    held_out = _frame(folder, stage)
    per_row: list[dict[str, float]] = []
    if spec.eval_mode == "sampled":
        negatives = read_negatives(folder / spec.files[f"{stage}_negatives"])
        for (user, target), row in zip(zip(held_out["user"], held_out["item"]), negatives):
            candidates = [target] + [int(n) for n in row if n != 0 and n != target]
            scores = _user_scores(model, int(user), candidates)
            rank = _reference_rank(scores, int(target), candidates)
            for k in KS:
                per_row.append({"k": k, **_reference_metrics([rank], k)})
    else:
        known_frames = [_frame(folder, "train")] + (
            [_frame(folder, "val")] if stage == "test" else []
        )
        known = pd.concat(known_frames).groupby("user")["item"].apply(set).to_dict()
        every_item = list(range(1, spec.n_items + 1))
        for user, targets in held_out.groupby("user")["item"].apply(list).items():
            seen = known.get(user, set())
            assert not seen & set(targets)  # a held-out item is never also a known one here
            candidates = [item for item in every_item if item not in seen]
            scores = _user_scores(model, int(user), candidates)
            ranks = [_reference_rank(scores, int(t), candidates) for t in targets]
            for k in KS:
                per_row.append({"k": k, **_reference_metrics(ranks, k)})
    out: dict[str, float] = {}
    for k in KS:
        rows = [r for r in per_row if r["k"] == k]
        for name in ("hr", "recall", "ndcg", "mrr"):
            out[f"{stage}/{name}@{k}"] = sum(r[f"{name}@{k}"] for r in rows) / len(rows)
    return out


def device(folder: Path, model: MF, stage: str) -> dict[str, float]:
    module = RecLitModule(
        model,
        LossSum({"ranking": BCELoss()}),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        ks=KS,
        ties="pessimistic",
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    datamodule = RecDataModule(folder, eval_batch_size=7, seed=0)  # ragged batches
    run = trainer.validate if stage == "val" else trainer.test
    (metrics,) = run(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in metrics.items()}


@pytest.mark.parametrize("weights", ["random", "quantised"])
@pytest.mark.parametrize("stage", ["val", "test"])
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_device_evaluation_equals_the_naive_loop(
    folders: dict[str, Path], protocol: str, stage: str, weights: str
) -> None:
    folder = folders[protocol]
    model = _model(folder, weights)
    expected = reference(folder, model, stage)
    got = device(folder, model, stage)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=TOL), name
    # the case is not trivial: the model ranks some held-out items first and misses others
    assert 0.0 < expected[f"{stage}/hr@10"] < 1.0
    assert expected[f"{stage}/hr@1"] > 0.0


def test_quantised_weights_make_ties_that_the_rule_decides(folders: dict[str, Path]) -> None:
    """The quantised case has ties at the held-out item's score, so an optimistic rule would
    have scored higher there: the comparison above checks the pessimistic rule, not luck."""
    folder = folders["loo_full"]
    model = _model(folder, "quantised")
    pessimistic = reference(folder, model, "test")["test/hr@10"]
    module_optimistic = RecLitModule(
        model,
        LossSum({"ranking": BCELoss()}),
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        ks=KS,
        ties="optimistic",
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (optimistic,) = trainer.test(
        module_optimistic, datamodule=RecDataModule(folder, eval_batch_size=7), verbose=False
    )
    assert optimistic["test/hr@10"] > pessimistic
