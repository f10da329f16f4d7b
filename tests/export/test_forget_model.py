"""Erasure in an exported model (export folder and served model folder) and the export without
per-user state (--no-user-table): the user is gone, everything else is identical."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from conftest import TINY_DATA, train_config
from hybridrec.cli.data import main as data_main
from hybridrec.cli.export import main as export_main
from hybridrec.export.files import export_model
from hybridrec.export.pyfunc import save_recommender
from hybridrec.export.pyfunc_model import HybridrecRecommender
from hybridrec.lit.checkpoint import PAYLOAD, safe_load
from hybridrec.run.train import train

pytestmark = pytest.mark.slow
USER_TABLE = "model.user_id.table.weight"


def _trained(root: Path, mlflow_uri: str, *overrides: str) -> Path:
    cfg = train_config(root, mlflow_uri, *TINY_DATA, "trainer.max_epochs=1", *overrides)
    return Path(str(train(cfg).best_checkpoint))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Path:
    return _trained(tmp_path_factory.mktemp("forget_model"), mlflow_uri, "model=mf")


def _served(folder: Path) -> Any:
    """The pyfunc model of a saved model folder, loaded as `mlflow models serve` loads it."""
    artifacts = {
        "checkpoint" if path.suffix == ".ckpt" else path.stem: str(path)
        for path in folder.glob("artifacts/*")
    }
    model = HybridrecRecommender()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    return model.recommender


def _arrays(folder: Path) -> dict[str, Any]:
    with np.load(folder / "seen.npz") as seen:
        indptr, items = seen["indptr"], seen["items"]
    onnx_model = onnx.load(str(folder / "scorer.onnx"))
    return {
        "users": json.loads((folder / "users.json").read_text()),
        "seen": [items[indptr[u] : indptr[u + 1]].tolist() for u in range(len(indptr) - 1)],
        "torchscript": torch.jit.load(str(folder / "scorer.pt")).state_dict()[USER_TABLE].clone(),
        "onnx": next(
            numpy_helper.to_array(t) for t in onnx_model.graph.initializer if t.name == USER_TABLE
        ),
    }


def test_forget_in_an_export_and_a_served_model(checkpoint: Path, tmp_path: Path) -> None:
    out, served = tmp_path / "export", tmp_path / "served"
    export_model(checkpoint, out)
    save_recommender(checkpoint, out, served)
    before, answer_before = _arrays(out), _served(served).recommend(user="6", k=5)
    user = before["users"].index(5)  # synthetic ids are numbers

    assert data_main(["forget", "5", "--model", str(out), "--model", str(served)]) == 0
    after = _arrays(out)
    others = [u for u in range(len(before["users"])) if u != user]
    assert after["users"][user] is None
    assert [after["users"][u] for u in others] == [before["users"][u] for u in others]
    assert after["seen"][user] == [] and before["seen"][user]
    assert [after["seen"][u] for u in others] == [before["seen"][u] for u in others]
    assert not after["torchscript"][user].any() and not after["onnx"][user].any()
    assert torch.equal(after["torchscript"][others], before["torchscript"][others])
    assert np.array_equal(after["onnx"][others], before["onnx"][others])

    recommender = _served(served)
    assert recommender.recommend(user="5", k=5)["source"] == "popularity"  # an unknown user
    assert recommender.recommend(user="6", k=5) == answer_before  # the others as before
    saved = safe_load(next(served.glob("artifacts/*.ckpt")))
    assert saved[PAYLOAD]["id_maps"]["users"][user] is None
    assert not saved["state_dict"][USER_TABLE][user].any() and "optimizer_states" not in saved
    for folder in (out, served):
        record = json.loads((folder / "erasures.json").read_text())
        assert record[0]["users"] == [{"index": user, "pseudonym": None}]


def test_export_without_user_table(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "anonymous"
    assert export_main([str(checkpoint), "--out", str(out), "--no-log", "--no-user-table"]) == 0
    meta = json.loads((out / "export.json").read_text())
    assert meta["user_table"] is False and "users" not in meta["files"]
    assert not (out / "users.json").exists()
    stripped = safe_load(out / "served.ckpt")
    assert "users" not in stripped[PAYLOAD]["id_maps"]
    assert not stripped["state_dict"][USER_TABLE].any()
    assert not stripped["state_dict"]["model.scorer.user_bias.weight"].any()
    assert not torch.jit.load(str(out / "scorer.pt")).state_dict()[USER_TABLE].any()
    served = tmp_path / "served"
    save_recommender(out / "served.ckpt", out, served, user_table=False)
    assert not (out / "seen.npz").exists() and not list(served.glob("artifacts/seen*"))
    recommender = _served(served)
    known = recommender.recommend(user="5", k=5)  # MF reads no history: popularity
    assert known["source"] == "popularity"
    # what to leave out comes from the request
    masked = recommender.recommend(user="5", k=5, exclude=known["items"][:2])
    assert not set(masked["items"]) & set(known["items"][:2])


def test_without_user_table_a_history_model_serves_known_users_by_their_recent_items(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """The joint hybrid reads a user ID and a history: with the table a known user with recent
    items is answered from both; without it from the recent items alone, which the answer
    leaves out (the request's masking: the run's evaluation masked known items)."""
    checkpoint = _trained(
        tmp_path / "run",
        mlflow_uri,
        "model=hybrid",
        "model.combine=joint",
        "protocol=loo_full",
        "datamodule=next_item",
        "loss=xe",
        "model.dim=16",
    )
    full, anonymous = tmp_path / "full", tmp_path / "anonymous"
    (tmp_path / "files").mkdir()
    save_recommender(checkpoint, tmp_path / "files", full)
    out = tmp_path / "export"
    assert export_main([str(checkpoint), "--out", str(out), "--no-log", "--no-user-table"]) == 0
    save_recommender(out / "served.ckpt", out, anonymous, user_table=False)
    recent = ["3", "8"]
    with_table = _served(full).recommend(user="5", recent_items=recent, k=5)
    without = _served(anonymous).recommend(user="5", recent_items=recent, k=5)
    assert with_table["source"] == "user+session" and without["source"] == "session"
    assert not set(without["items"]) & set(recent)
    assert _served(anonymous).recommend(user="5", k=5)["source"] == "popularity"
