"""hybridrec-bench and the Throughput callback: the figures are what the run did."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from mlflow.tracking import MlflowClient

from conftest import TINY_DATA
from hybridrec.cli import bench as bench_cli
from hybridrec.data.batch import PairBatch
from hybridrec.lit.throughput import batch_samples, count_train_flops
from hybridrec.losses import BCELoss
from hybridrec.nn import MLP
from hybridrec.run.bench import BENCH_TAG, measured_peak_gflops


def test_flops_per_step_are_the_linear_layers_forward_and_backward() -> None:
    """MLP (embedding 4, tower 8 -> 4) on 3 users x 5 candidates: per user the user projection
    (2*4*8), per pair the item projection (2*4*8), the 8 -> 4 layer (2*8*4) and the output
    (2*4*1); backward doubles each (input and weight gradients)."""
    from hybridrec.lit import RecLitModule

    model = MLP(10, 50, embedding_dim=4, hidden_dims=[8, 4])
    module = RecLitModule(model, BCELoss(), optimizer=lambda p: torch.optim.Adam(p))
    users, items = torch.tensor([0, 3, 7]), torch.randint(1, 51, (3, 5))
    labels = torch.zeros(3, 5)
    labels[:, 0] = 1
    batch = PairBatch(users=users, items=items, labels=labels)
    forward = 3 * (2 * 4 * 8) + 15 * (2 * 4 * 8 + 2 * 8 * 4 + 2 * 4 * 1)
    assert count_train_flops(module, batch) == 3 * forward
    assert all(p.grad is None for p in module.parameters())  # the count leaves no gradient
    assert batch_samples(batch) == 15


def test_bench_reports_what_the_run_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str
) -> None:
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    out = tmp_path / "bench.json"
    bench_cli.main(
        [
            "--epochs",
            "2",
            "--json",
            str(out),
            *TINY_DATA,
            f"paths.root_dir={tmp_path}",
            f"logger.tracking_uri={mlflow_uri}",
            "datamodule.batch_size=64",
        ]
    )
    report = json.loads(out.read_text())
    run = MlflowClient(mlflow_uri).get_run(report["run_id"])
    assert run.data.tags[BENCH_TAG] == "1"
    assert run.data.params["trainer/max_epochs"] == "2"
    assert report["epochs"] == 2 and report["train_epoch_s"] == report["per_epoch_s"][1]
    # samples per epoch = training pairs x (1 positive + 4 negatives)
    prepared = next((tmp_path / "data" / "prepared").glob("synthetic-*"))
    n_train = len(pd.read_parquet(prepared / "train.parquet"))
    history = MlflowClient(mlflow_uri).get_metric_history(
        run.info.run_id, "throughput/train_samples"
    )
    assert [m.value for m in history] == [n_train * 5] * 2
    assert report["val_epoch_s"] > 0 and report["test_s"] > 0
    assert report["peak_host_mb"] > 100 and report["peak_device_mb"] is None
    # NeuMF (configs/model/neumf.yaml) on the first batch, by hand: B = 64 rows x C = 5
    # candidates (1 + 4 negatives), N + 1 = 61 item rows. Matmuls only (2 * in * out per row,
    # forward; backward twice that: weights and inputs, the embeddings train): the MLP's first
    # layer is a user half (32 -> 32, once per row) plus an item half (32 -> 32, on the whole
    # table: 320 candidates > 61 rows), then 32 -> 16 -> 8, and the output layer's MLP half
    # (8 -> 1) per candidate; GMF's half is an elementwise product (no matmul)
    rows, candidates, table = 64, 5, 61
    forward = (
        2 * rows * candidates * (32 * 16 + 16 * 8 + 8 * 1)
        + 2 * rows * 32 * 32
        + 2 * table * 32 * 32
    )
    assert report["flops_per_sample"] == 3 * forward / (rows * candidates)  # 6,288
    assert report["peak_gflops"] > 0
    assert report["achieved_gflops"] == pytest.approx(
        report["flops_per_sample"] * report["train_samples_per_s"] / 1e9
    )
    assert 0 < report["share_of_peak"] < 1
    assert report["quality"]["test/hr@10"] == run.data.metrics["test/hr10"]  # MLflow drops @


def test_bench_refuses_a_bad_override(capsys: pytest.CaptureFixture[str]) -> None:
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_info:
        bench_cli.main(["model=nosuchmodel"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("hybridrec-bench: error:") and "model" in err
    assert "Traceback" not in err


def test_measured_peak_is_a_real_matmul_rate() -> None:
    torch.set_num_threads(1)
    gflops = measured_peak_gflops(torch.device("cpu"), torch.float32, budget_s=0.2)
    assert 1 < gflops < 5000
