"""Every exportable model type: the TorchScript and ONNX scorers give the model's own
full-ranking scores within 1e-5, on a batch size and history width they were not traced with;
the MLflow pyfunc model (saved, loaded back by MLflow) answers with the model's own scores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import TINY_DATA, model_of
from hybridrec.cli.common import prepare_from_config
from hybridrec.data.catalogue import read_id_maps
from hybridrec.export import ExportedScorer, item_matrix, to_onnx, to_torchscript
from hybridrec.export.pyfunc import save_recommender
from hybridrec.lit.checkpoint import PAYLOAD, model_payload
from hybridrec.nn.factorized import FactorizedModel

SMALL = ["model.dim=16"]
MODELS = {
    "mf": ["model=mf", "model.embedding_dim=16"],
    "gmf": ["model=gmf"],
    "neumf": ["model=neumf"],
    "textrec": ["model=textrec", "model.dim=16"],
    "sasrec": ["model=sasrec", *SMALL, "model.max_length=8"],
    "seqtext": ["model=seqtext", *SMALL, "model.max_length=8"],
    "hybrid-gru": ["model=hybrid", "model.combine=joint", *SMALL, "model.max_length=8"],
    "hybrid-attention": [
        "model=hybrid",
        "model.combine=joint",
        *SMALL,
        "model.max_length=8",
        "model.history=attention",
    ],
    "hybrid-ids-neumf-head": [
        "model=hybrid",
        "model.combine=joint",
        *SMALL,
        "model.history=null",
        "model.head=neumf",
    ],
}


def _built(
    compose: Callable[..., DictConfig], overrides: list[str]
) -> tuple[torch.nn.Module, DictConfig]:
    cfg = compose(*TINY_DATA, "protocol=loo_full", *overrides)
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)
    torch.manual_seed(0)
    return model_of(cfg).eval(), cfg


def _model(compose: Callable[..., DictConfig], overrides: list[str]) -> torch.nn.Module:
    return _built(compose, overrides)[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_torchscript_and_onnx_match_the_model(
    compose_cfg: Callable[..., DictConfig], name: str, tmp_path: Path
) -> None:
    model = _model(compose_cfg, MODELS[name])
    scorer = ExportedScorer(model)
    # a batch of 3 and a width of 6 (traced with 2 rows of width 4, or max_length)
    users = torch.tensor([5, 0, 7])
    width = scorer.fixed_width or 6
    history = torch.randint(1, 40, (3, width))
    history[1, : width - 2] = 0  # a short, left-padded history
    lengths = (history > 0).sum(1)
    with torch.no_grad():
        if isinstance(model, FactorizedModel):
            expected = model.score_all(users, history, lengths)
        else:
            expected = model.score_all(users)
    inputs = (users, history, lengths) if scorer.kind == "history" else (users,)

    scripted = torch.jit.load(str(to_torchscript(scorer, tmp_path / "scorer.pt")))
    with torch.no_grad():
        got = scripted(*inputs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    session = onnxruntime.InferenceSession(str(to_onnx(scorer, tmp_path / "scorer.onnx")))
    given = {k: v.numpy() for k, v in zip(scorer.inputs, inputs, strict=True)}
    # a model without a user ID tower ignores `users`: the ONNX graph has no such input
    names = [i.name for i in session.get_inputs()]
    assert set(names) <= set(scorer.inputs)
    assert "history" in names or "users" in names
    feed = {k: given[k] for k in names}
    (onnx_scores,) = session.run(["scores"], feed)
    np.testing.assert_allclose(onnx_scores, expected.numpy(), atol=1e-5, rtol=0)

    matrix = item_matrix(scorer)
    if isinstance(model, FactorizedModel):
        assert matrix is not None and matrix.shape[0] == expected.shape[1]
    else:
        assert matrix is None


def test_models_without_the_tower_contract_are_refused(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    model = _model(compose_cfg, ["model=gru4rec", "datamodule=sequence", "loss=bprmax"])
    with pytest.raises(ValueError, match="only models with the tower contract"):
        ExportedScorer(model)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_pyfunc_model_answers_with_the_model_scores(
    compose_cfg: Callable[..., DictConfig], name: str, tmp_path: Path
) -> None:
    """A checkpoint as hybridrec-train writes it, saved as the pyfunc model and loaded back by
    MLflow: a known user's (and, with a history tower, a session's) top 5 carry the model's
    own scores, in order."""
    import mlflow

    model, cfg = _built(compose_cfg, MODELS[name])
    folder = cfg.datamodule.data_dir
    maps = read_id_maps(folder)
    config = OmegaConf.to_container(cfg, resolve=True)
    checkpoint = tmp_path / "best.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            PAYLOAD: model_payload(model, config, maps),
            "hybridrec_config": config,
        },
        checkpoint,
    )
    served = mlflow.pyfunc.load_model(
        str(save_recommender(checkpoint, tmp_path, tmp_path / "pyfunc"))
    )
    user, session = 4, [3, 9, 12]  # indices; the request names their raw ids
    items = [str(i) for i in maps["items"]]
    request: dict[str, Any] = {"user": str(maps["users"][user]), "k": 5}
    users = torch.tensor([user])
    with torch.no_grad():
        if getattr(model, "history", None) is not None:  # a user with a session
            request["recent_items"] = [items[i - 1] for i in session]
            expected = model.score_all(users, torch.tensor([session]), torch.tensor([3]))
        else:  # a known user (a pair scorer reads no history)
            expected = model.score_all(users)
    # include_seen and exclude_recent false: every item competes, as in the model's own ranking
    every_item = {**request, "include_seen": True, "exclude_recent": False}
    answer = served.predict(pd.DataFrame([every_item, request]))
    scores = expected[0]
    every, unseen = answer.iloc[0], answer.iloc[1]
    want = [float(scores[items.index(i) + 1]) for i in every["items"]]
    np.testing.assert_allclose(every["scores"], want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(every["scores"], torch.topk(scores[1:], 5).values, atol=1e-5)
    # by default the user's known items (every split of the prepared data) are left out, and
    # the session's own items too (this run's protocol, loo_full, masks known items)
    known = set(session) if "recent_items" in request else set()
    for split in ("train", "val", "test"):
        frame = pd.read_parquet(Path(folder) / f"{split}.parquet")
        known |= set(frame.loc[frame["user"] == user, "item"])
    assert known and not known & {items.index(i) + 1 for i in unseen["items"]}
    masked = scores.clone()
    masked[sorted(known)] = -torch.inf
    np.testing.assert_allclose(unseen["scores"], torch.topk(masked[1:], 5).values, atol=1e-5)
