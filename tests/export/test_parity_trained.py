"""Export parity on trained weights: a model trained for two epochs, exported as TorchScript
and ONNX, gives the eager model's full-ranking scores, and its top 5 — on scores far enough
apart that a wrong order would show (untrained scores sit within ~3e-5 of each other, under the
tolerance); ``--add-items``: a new product's exported score is the eager model's score of the
same text.

Tolerance: |exported - eager| <= 1e-5 absolute (float32; TorchScript, ONNX Runtime and eager
PyTorch sum in different orders), the same as tests/export/test_parity.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.data.readers import read_synthetic
from hybridrec.export import ExportedScorer, to_onnx, to_torchscript
from hybridrec.export.files import export_model
from hybridrec.lit import load_model
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.run.train import train

ATOL = 1e-5
SEQUENCE = ["datamodule=next_item", "loss=xe", "model.max_length=8"]
MODELS = {
    "mf": ["model=mf", "model.embedding_dim=16", "optimizer.lr=0.01"],
    "gmf": ["model=gmf", "optimizer.lr=0.01"],
    "neumf": ["model=neumf", "optimizer.lr=0.01"],
    "textrec": ["model=textrec", "model.dim=16", "optimizer.lr=0.01"],
    "sasrec": ["model=sasrec", "model.dim=16", *SEQUENCE, "optimizer.lr=0.01"],
    "seqtext": ["model=seqtext", "model.dim=16", *SEQUENCE, "optimizer.lr=0.01"],
    "hybrid-joint": [
        "model=hybrid",
        "model.combine=joint",
        "model.dim=16",
        *SEQUENCE,
        "optimizer.lr=0.01",
    ],
}
USERS = torch.tensor([0, 5, 17, 42, 79])


def _trained(compose: Callable[..., DictConfig], name: str) -> str:
    cfg = compose(*TINY_DATA, "protocol=loo_full", "trainer.max_epochs=2", *MODELS[name])
    return train(cfg).best_checkpoint


def _inputs(model: torch.nn.Module, scorer: ExportedScorer) -> tuple[torch.Tensor, ...]:
    width = scorer.fixed_width or 6
    history = torch.arange(1, 1 + len(USERS) * width).reshape(len(USERS), width) % 50 + 1
    history[1, : width - 2] = 0  # a short, left-padded history
    lengths = (history > 0).sum(1)
    return (USERS, history, lengths) if scorer.kind == "history" else (USERS,)


def _eager(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, FactorizedModel):
            return model.score_all(*inputs) if len(inputs) == 3 else model.score_all(inputs[0])
        return model.score_all(inputs[0])


def _exported(
    scorer: ExportedScorer, inputs: tuple[torch.Tensor, ...], folder: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(TorchScript scores, ONNX scores) for ``inputs``."""
    scripted = torch.jit.load(str(to_torchscript(scorer, folder / "scorer.pt")))
    with torch.no_grad():
        script_scores = scripted(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(to_onnx(scorer, folder / "scorer.onnx")))
    given = {k: v.numpy() for k, v in zip(scorer.inputs, inputs, strict=True)}
    (onnx_scores,) = session.run(["scores"], {i.name: given[i.name] for i in session.get_inputs()})
    return script_scores, onnx_scores


@pytest.mark.slow  # seven short trainings
@pytest.mark.parametrize("name", list(MODELS))
def test_exported_scores_are_the_trained_model_scores(
    compose_cfg: Callable[..., DictConfig], name: str, tmp_path: Path
) -> None:
    model = load_model(_trained(compose_cfg, name)).eval()
    scorer = ExportedScorer(model)
    inputs = _inputs(model, scorer)
    expected = _eager(model, inputs).numpy()
    real = expected[:, 1:]  # column 0: padding
    top = np.argsort(-real, axis=1)[:, :6]
    gaps = -np.diff(np.take_along_axis(real, top, axis=1), axis=1)  # (B, 5), >= 0
    decidable = gaps > 2 * ATOL  # a gap the tolerance cannot close
    # trained scores are spread: most of the top-5 boundaries are decidable (untrained GMF's
    # scores all lie within ~3e-5, where none is)
    assert decidable.mean() >= 0.8, (name, gaps)
    for got in _exported(scorer, inputs, tmp_path):
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
        # the top 5 is the eager model's at every rank both of whose boundaries are decidable
        # (a near-tie, < 2e-5 apart, may come out in either order)
        got_top = np.argsort(-got[:, 1:], axis=1, kind="stable")[:, :5]
        above = np.concatenate([np.ones((len(gaps), 1), dtype=bool), decidable[:, :4]], axis=1)
        fixed = above & decidable[:, :5]
        assert fixed.sum() >= 0.6 * fixed.size, (name, gaps)
        np.testing.assert_array_equal(got_top[fixed], top[:, :5][fixed])


@pytest.mark.slow  # two short trainings
@pytest.mark.parametrize("name", ["textrec", "seqtext"])
def test_added_products_score_as_the_model_scores_their_text(
    compose_cfg: Callable[..., DictConfig], name: str, tmp_path: Path
) -> None:
    """Models whose item vector is its text alone: a new product carrying catalogue item i's
    text must score exactly as item i does in the eager model, in the TorchScript and ONNX
    files hybridrec-export --add-items writes (the new products' columns come last)."""
    checkpoint = _trained(compose_cfg, name)
    table = read_synthetic(n_users=80, n_items=60).items
    assert table is not None
    copied = [5, 12, 33]
    new = table[table["item"].isin(copied)].assign(item=lambda t: "new-" + t["item"].astype(str))
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    out = tmp_path / "export"
    meta = export_model(Path(checkpoint), out, path)
    model = load_model(checkpoint).eval()
    items = [str(i) for i in json.loads((out / "items.json").read_text())]
    assert meta["n_new_items"] == 3 and items[-3:] == list(new["item"])
    columns = [items.index(i[4:]) for i in new["item"]]  # the copied items' columns
    scorer_inputs = ExportedScorer(model)
    inputs = _inputs(model, scorer_inputs)
    expected = _eager(model, inputs).numpy()  # (B, N + 1) without the new products
    scripted = torch.jit.load(str(out / "scorer.pt"))
    with torch.no_grad():
        script_scores = scripted(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(out / "scorer.onnx"))
    given = {k: v.numpy() for k, v in zip(scorer_inputs.inputs, inputs, strict=True)}
    (onnx_scores,) = session.run(["scores"], {i.name: given[i.name] for i in session.get_inputs()})
    n = expected.shape[1]
    for got in (script_scores, onnx_scores):
        assert got.shape == (len(USERS), n + 3)
        np.testing.assert_allclose(got[:, :n], expected, atol=ATOL, rtol=0)  # the catalogue
        np.testing.assert_allclose(got[:, n:], expected[:, columns], atol=ATOL, rtol=0)
    # the copies' scores differ between users and products: the check can see a wrong column
    assert np.ptp(expected[:, columns]) > 100 * ATOL
