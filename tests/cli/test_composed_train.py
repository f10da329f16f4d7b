"""The composed hybrid's job end to end, through the console script: its parts are nested MLflow
runs under its own, a second run reuses them, it is never below its best part on validation,
it logs its weights and its text student's fit, and its checkpoint exports — a new product
through the student, as a cold item of its text would be scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import TINY_DATA, run_train_cli
from hybridrec.data.readers import read_synthetic
from hybridrec.export.files import export_model
from hybridrec.lit.checkpoint import load_model
from hybridrec.nn.composed import ComposedHybrid

ARGS = ["experiment=hybrid_synthetic", *TINY_DATA, "trainer.max_epochs=2"]


def test_parts_are_nested_reused_and_never_better_than_the_hybrid(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = run_train_cli(tmp_path, *ARGS, uri=uri)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "| composed hybrid | this run |" in first.stdout
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("hybridrec.combine") == "composed"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    parts = dict(p.split("=") for p in parent.data.tags["hybridrec.parts"].split())
    assert set(parts) == {"ids", "text"}
    for name, run_id in parts.items():
        child = client.get_run(run_id)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["hybridrec.part"] == name
        assert child.info.status == "FINISHED"
    # on validation the combination is never below a part alone (the same rows, same loop)
    best_part = max(client.get_run(r).data.metrics["best/val/ndcg10"] for r in parts.values())
    assert parent.data.metrics["best/val/ndcg10"] >= best_part - 1e-6
    weights = {
        k: v
        for k, v in parent.data.metrics.items()
        if k.startswith("combiner/") and "/offset/" not in k and k != "combiner/repeat"
    }
    assert len(weights) == 2 * 4  # 2 parts x 4 buckets
    assert parent.data.metrics["combiner/repeat"] == 0.0  # known items masked: nothing to fit
    offsets = [k for k in parent.data.metrics if k.startswith("combiner/offset/")]
    assert len(offsets) == 4
    assert abs(sum(v for k, v in weights.items() if k.endswith("bucket1")) - 1.0) < 1e-6
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "combiner")}
    assert {"combiner/combiner.json", "combiner/combiner_weights.png"} <= artifacts
    # the second run takes both parts from their runs: no new part runs
    second = run_train_cli(tmp_path, *ARGS, uri=uri)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("(reused)") == 2
    again = [
        r
        for r in client.search_runs([parent.info.experiment_id])
        if "hybridrec.part" in r.data.tags
    ]
    assert len(again) == 2
    # the composed checkpoint exports (TorchScript, ONNX, item matrix)
    folder = Path(parent.data.tags["hybridrec.output_dir"])
    meta = export_model(folder / "checkpoints" / "composed.ckpt", tmp_path / "export")
    assert meta["model"] == "hybridrec.nn.composed.ComposedHybrid"
    assert {"torchscript", "onnx", "item_vectors"} <= set(meta["files"])
    fit = json.loads(
        Path(
            client.download_artifacts(parent.info.run_id, "combiner/combiner.json", str(tmp_path))
        ).read_text()
    )
    assert set(fit["weights"]) == {"ids", "text"} and fit["buckets"][0] == "cold"
    # the text student: fitted for the ID part, on the validation rows' users, logged
    assert fit["student"]["users"] > 0 and fit["student"]["holdout_items"] > 0
    assert 0.0 <= parent.data.metrics["student/holdout_pair_accuracy"] <= 1.0
    model = load_model(folder / "checkpoints" / "composed.ckpt")
    assert isinstance(model, ComposedHybrid) and model.student is not None
    # a new product with item 5's text: its ID block is the student's estimate from that text
    table = read_synthetic(n_users=80, n_items=60).items
    assert table is not None
    new = tmp_path / "new.csv"
    table[table["item"] == 5].assign(item="brand-new-5").to_csv(new, index=False)
    added = export_model(
        folder / "checkpoints" / "composed.ckpt", tmp_path / "export_new", add_items=new
    )
    assert added["n_new_items"] == 1
    vectors = torch.load(tmp_path / "export_new" / "new_items.pt", weights_only=True)["vectors"]
    items = [str(i) for i in json.loads((tmp_path / "export_new" / "items.json").read_text())]
    assert model.student_parts == [0]  # `ids` (item IDs); `text` is its source
    with torch.no_grad():
        estimate = model.student.blocks(model.text_features(torch.tensor([items.index("5")])))[0]
    size = model.block_sizes[0]
    torch.testing.assert_close(vectors[:, :size], model.weights[0, 0] * estimate)


def test_default_parts_need_item_text(tmp_path: Path) -> None:
    """model=hybrid's default parts (IDs + text) on data without item text: one sentence before
    any part trains, exit 2."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_train_cli(
        tmp_path, "model=hybrid", "datamodule=next_item", "data.text=null", *TINY_DATA, uri=uri
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "has no item text" in proc.stderr and "Traceback" not in proc.stderr


def test_a_refit_round_trains_the_parts_again_with_the_fitted_weights(tmp_path: Path) -> None:
    """model.combiner.refit: the weights are fitted on the first round's validation scores,
    the parts train again under the overrides (nested runs too) and the tested model is
    theirs with those weights; a bad override is refused before any part trains."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bad = run_train_cli(tmp_path, *ARGS, 'model.combiner.refit=["model.dim=3"]', uri=uri)
    assert bad.returncode == 2 and "model.combiner.refit" in bad.stderr
    assert "part ids: training" not in bad.stderr
    proc = run_train_cli(
        tmp_path,
        *ARGS,
        'model.combiner.refit=["protocol.mask_known=false"]',
        "model.combiner.student.enabled=false",
        uri=uri,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| part ids (refit) |" in proc.stdout and "| part text (refit) |" in proc.stdout
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("hybridrec.combine") == "composed")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    names = sorted(r.data.tags["mlflow.runName"].split("-synthetic")[0] for r in children)
    assert names == ["part-ids", "part-ids-refit", "part-text", "part-text-refit"]
    fit = json.loads(
        Path(
            client.download_artifacts(parent.info.run_id, "combiner/combiner.json", str(tmp_path))
        ).read_text()
    )
    model = load_model(
        Path(parent.data.tags["hybridrec.output_dir"]) / "checkpoints" / "composed.ckpt"
    )
    assert isinstance(model, ComposedHybrid)
    carried = {
        name: [round(float(w), 4) for w in model.weights[k]] for k, name in enumerate(model.names)
    }
    assert carried == fit["weights"]
    assert "test/hr10" in parent.data.metrics


@pytest.mark.slow
def test_a_shelf_of_its_own_reuses_the_parts_and_retests_them_on_it(tmp_path: Path) -> None:
    """protocol.candidates=slice (each cold_items row ranked among its own kind of items) is an
    evaluation setting: the parts trained on the whole catalogue are reused, the combiner (with
    user-history buckets here) is fitted on the new shelf, and the parts' rows of the table are
    tested on it too — not copied from their runs."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cold = [
        *ARGS,
        "protocol=cold_items",
        "trainer.max_epochs=1",
        "model.combiner.student.enabled=false",
    ]
    first = run_train_cli(tmp_path, *cold, uri=uri)
    assert first.returncode == 0, first.stderr[-3000:]
    shelf = run_train_cli(
        tmp_path, *cold, "protocol.candidates=slice", "model.combiner.user_buckets=2", uri=uri
    )
    assert shelf.returncode == 0, shelf.stderr[-3000:]
    assert shelf.stdout.count("(reused)") == 2
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if r.data.tags.get("hybridrec.combine") == "composed"]
    parts = {r.data.tags["hybridrec.part"]: r for r in runs if "hybridrec.part" in r.data.tags}
    assert len(parents) == 2 and set(parts) == {"ids", "text"}
    # the table's part rows: measured on the slice shelf, where a warm row no longer ranks
    # cold items, so the ID part's warm-only ranking is unchanged and the text part's moves
    rows = {
        line.split("|")[1].strip(): line for line in shelf.stdout.splitlines() if "| part " in line
    }
    text_run = parts["text"].data.metrics["test/hr10"]
    assert f"{text_run:.4f}" not in rows["part text"].split("|")[4]
    fit = json.loads(
        Path(
            client.download_artifacts(
                parents[1].info.run_id, "combiner/combiner.json", str(tmp_path)
            )
        ).read_text()
    )
    assert set(fit["user_weights"]) == {"ids", "text"} and len(fit["user_buckets"]) == 2


def test_the_side_by_side_table_shows_each_slice_on_cold_items() -> None:
    """cold_items runs: the table has each slice's HR / NDCG beside the overall ones, for the
    parts and the composed model alike."""
    from hybridrec.run.compose import side_by_side
    from hybridrec.run.parts import PartRun

    metrics = {"test/hr@10": 0.3, "test/ndcg@10": 0.1, "test/cold/hr@10": 0.44}
    metrics |= {"test/cold/ndcg@10": 0.1, "test/warm/hr@10": 0.23, "test/warm/ndcg@10": 0.13}
    part = PartRun("mf", "0123456789abcdef", "x.ckpt", {"test/warm/hr@10": 0.2}, True, 0.0)
    table = side_by_side([part], {**metrics, "val/ndcg@10": 0.14}, "val/ndcg@10", [10])
    header, _, mf, composed = table.splitlines()
    assert "test/cold/hr@10" in header and "test/warm/ndcg@10" in header
    assert mf.split("|")[-3].strip() == "0.2000" and "0.4400" in composed
