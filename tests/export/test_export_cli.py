"""hybridrec-export on a trained run: the files, their agreement with the checkpoint's model,
the artifacts logged to the run, and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.lit import load_model
from hybridrec.run.train import train

SCRIPT = str(Path(sys.executable).parent / "hybridrec-export")


def test_export_a_run(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str, tmp_path: Path
) -> None:
    result = train(
        compose_cfg(
            *TINY_DATA,
            "experiment=hybrid_synthetic",
            "model.combine=joint",
            "model.dim=16",
            "trainer.max_epochs=1",
        )
    )
    out = tmp_path / "export"
    proc = subprocess.run(
        [SCRIPT, str(result.run_id), "--tracking-uri", mlflow_uri, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "export.json").read_text())
    assert meta["inputs"] == ["users", "history", "lengths"] and meta["history_width"] is None
    items = json.loads((out / "items.json").read_text())
    assert items[0] is None and len(items) == meta["n_items"] + 1
    vectors = np.load(out / "item_vectors.npy")
    assert vectors.shape[0] == meta["n_items"] + 1
    # the ONNX scorer gives the checkpoint's model's scores
    model = load_model(result.best_checkpoint)
    users, history = torch.tensor([0, 3]), torch.tensor([[0, 4, 9], [2, 7, 1]])
    lengths = (history > 0).sum(1)
    with torch.no_grad():
        expected = model.score_all(users, history, lengths).numpy()
    session = onnxruntime.InferenceSession(str(out / "scorer.onnx"))
    feed = {"users": users.numpy(), "history": history.numpy(), "lengths": lengths.numpy()}
    (scores,) = session.run(["scores"], feed)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    logged = {a.path for a in MlflowClient(mlflow_uri).list_artifacts(str(result.run_id), "export")}
    assert {"export/scorer.onnx", "export/scorer.pt", "export/export.json"} <= logged


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("0" * 32, "is not in the tracking store"),
        ("missing.ckpt", "neither a run id (32 hex characters) nor a checkpoint file"),
    ],
)
def test_export_errors_are_one_line(source: str, message: str, mlflow_uri: str) -> None:
    proc = subprocess.run(
        [SCRIPT, source, "--tracking-uri", mlflow_uri], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_new_products_are_added_without_retraining(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """--add-items: a new product carrying item 5's text gets item 5's text vector (what the
    model gives a cold item), becomes the last score column and a recommendable id."""
    from hybridrec.data.readers import read_synthetic
    from hybridrec.export.new_items import text_tower

    result = train(
        compose_cfg(
            *TINY_DATA,
            "experiment=hybrid_synthetic",
            "model.combine=joint",
            "model.dim=16",
            "trainer.max_epochs=1",
        )
    )
    table = read_synthetic(n_users=80, n_items=60).items
    assert table is not None
    new = table[table["item"] == 5].assign(item="brand-new-5")
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    out = tmp_path / "export"
    proc = subprocess.run(
        [SCRIPT, result.best_checkpoint, "--out", str(out), "--add-items", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "export.json").read_text())
    assert meta["n_new_items"] == 1
    items = json.loads((out / "items.json").read_text())
    assert items[-1] == "brand-new-5" and len(items) == meta["n_items"] + 1
    added = torch.load(out / "new_items.pt", weights_only=True)
    model = load_model(result.best_checkpoint)
    raw = [str(i) for i in items]
    with torch.no_grad():
        own = text_tower(model)(torch.tensor([raw.index("5")]))
    torch.testing.assert_close(added["vectors"], own, atol=1e-5, rtol=0)
    session = onnxruntime.InferenceSession(str(out / "scorer.onnx"))
    feed = {"users": np.array([0]), "history": np.array([[4, 9]]), "lengths": np.array([2])}
    (scores,) = session.run(["scores"], feed)
    assert scores.shape == (1, meta["n_items"] + 1)
    # an item already in the catalogue is refused, naming it
    clash = tmp_path / "clash.csv"
    table[table["item"] == 7].to_csv(clash, index=False)
    proc = subprocess.run(
        [SCRIPT, result.best_checkpoint, "--out", str(out), "--add-items", str(clash)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "item '7' is already in the catalogue" in proc.stderr


def test_new_products_in_the_training_item_tables_format(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trained with columns.item=sku and an item table keyed by sku: --add-items takes a table
    of new products in that same format (it once wanted an `item` column)."""
    from hybridrec.cli.export import main as export_main

    clicks = tmp_path / "clicks.csv"
    clicks.write_text(
        "customer,sku\n"
        + "".join(f"u{u},p{(u * 7 + k) % 30}\n" for u in range(30) for k in range(5))
    )
    words = ["red", "blue", "shoe", "hat", "wool", "silk"]
    items = tmp_path / "items.csv"
    items.write_text(
        "sku,title\n" + "".join(f"p{i},{words[i % 6]} {words[(i // 6) % 6]}\n" for i in range(30))
    )
    result = train(
        compose_cfg(
            "data=csv",
            f"data.source.path={clicks}",
            "data.source.columns.user=customer",
            "data.source.columns.item=sku",
            f"data.source.items_path={items}",
            "data.text={fields: {title: ''}}",
            "model=textrec",
            "model.dim=8",
            "model.vocab_size=64",
            "trainer.max_epochs=1",
            "test_after_fit=false",
        )
    )
    new = tmp_path / "newprods.csv"
    new.write_text("sku,title\nq1,red shoe\nq2,silk hat\n")
    out = tmp_path / "export"
    code = export_main(
        [str(result.best_checkpoint), "--out", str(out), "--add-items", str(new), "--no-log"]
    )
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "export.json").read_text())
    assert meta["n_new_items"] == 2
    assert json.loads((out / "items.json").read_text())[-2:] == ["q1", "q2"]
    # a table in neither format names what the run's format is
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\nq3,red hat\n")
    code = export_main(
        [str(result.best_checkpoint), "--out", str(out), "--add-items", str(bad), "--no-log"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no item id column: expected 'sku' (the run's item column" in err
    assert "did you mean" not in err
