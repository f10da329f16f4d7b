"""End to end: train on synthetic data, then read the MLflow run back from its store."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA, run_train_cli
from hybridrec.run.train import train


def test_fast_dev_run_default_config(compose_cfg: Callable[..., DictConfig]) -> None:
    results = train(compose_cfg(*TINY_DATA, "debug=fast_dev_run")).metrics
    assert set(results) >= {"test/hr@10", "test/ndcg@10", "test/mrr@10", "test/recall@10"}


def test_training_run_is_recorded_in_mlflow(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    cfg = compose_cfg(
        *TINY_DATA,
        "trainer.max_epochs=3",
        "model=mf",
        "optimizer.lr=0.01",
        "datamodule.batch_size=64",
        "logger.run_name=e2e-mf",
    )
    results = train(cfg).metrics

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'e2e-mf'"
    )
    assert len(runs) == 1
    run = runs[0]
    # params: the flattened resolved config
    assert run.data.params["model/_target_"] == "hybridrec.nn.MF"
    assert run.data.params["spec/n_users"] == str(cfg.spec.n_users)
    # tags: protocol, data fingerprint, git commit
    assert run.data.tags["protocol"] == "loo_sampled"
    assert re.fullmatch(r"[0-9a-f]{64}", run.data.tags["data_fingerprint"])
    assert "mlflow.source.git.commit" in run.data.tags
    # per-epoch validation metrics, and test metrics equal to what train() returned
    history = client.get_metric_history(run.info.run_id, "val/ndcg10")
    assert len(history) == 3
    assert run.data.metrics["test/hr10"] == pytest.approx(results["test/hr@10"])
    timings = client.get_metric_history(run.info.run_id, "time/train_epoch_s")
    assert [m.step for m in timings] == [0, 1, 2]
    assert all(m.value > 0 for m in timings)
    assert run.data.metrics["best/val/ndcg10"] == pytest.approx(max(m.value for m in history))
    # artifacts: resolved config, data spec, best checkpoint
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=mlflow_uri)
    )
    assert (local / "config.yaml").is_file()
    assert (local / "data" / "spec.json").is_file()
    assert list((local / "checkpoints").glob("*.ckpt"))
    # trained on learnable data, the model beats chance (10/100 with 99 negatives) clearly
    assert results["test/hr@10"] > 0.2


def test_console_script_prints_run_and_metrics(tmp_path: Path) -> None:
    """What `make train` runs: the console script, on the embedded synthetic data."""
    proc = run_train_cli(
        tmp_path,
        *TINY_DATA,
        "trainer.max_epochs=1",
        f"paths.root_dir={tmp_path}",
        uri=f"sqlite:///{tmp_path}/mlflow.db",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"MLflow run [0-9a-f]{32}", proc.stdout)
    assert re.search(r"^  test/ndcg10\s+\d\.\d{4}$", proc.stdout, re.M)  # as stored
    # the printed command works as typed, with the virtualenv not active (no Makefile here)
    open_it = re.search(r"^Open it: (\S+) server --backend-store-uri (\S+) ", proc.stdout, re.M)
    assert open_it, proc.stdout[-2000:]
    assert (tmp_path / open_it.group(1)).is_file()
    assert open_it.group(2) == f"sqlite:///{tmp_path}/mlflow.db"
    # the job's log file is train.log and ends with the run, its status and final metrics
    run_id = re.search(r"MLflow run ([0-9a-f]{32})", proc.stdout).group(1)  # type: ignore[union-attr]
    folder = re.search(r"^Outputs \(.*\): (\S+)$", proc.stdout, re.M).group(1)  # type: ignore[union-attr]
    log_text = (tmp_path / folder / "train.log").read_text()
    assert f"MLflow run {run_id} FINISHED after 1 epochs" in log_text
    printed = re.search(r"^  test/ndcg10\s+(\d\.\d{4})$", proc.stdout, re.M).group(1)  # type: ignore[union-attr]
    assert re.search(rf"^  test/ndcg@10 {printed}$", log_text, re.M), log_text
    assert re.search(r"^  best/val/ndcg@10 \d\.\d{4}$", log_text, re.M), log_text


def test_unreachable_server_is_one_line_in_seconds(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_URI naming a server that is not running: exit 2 within seconds (the
    client's own retries take minutes), one line naming the URI, no traceback."""
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    start = time.perf_counter()
    proc = run_train_cli(tmp_path, *TINY_DATA, f"paths.root_dir={tmp_path}", uri=uri)
    assert time.perf_counter() - start < 60  # mostly the imports; the check itself is < 5 s
    assert proc.returncode == 2
    output = proc.stdout + proc.stderr
    assert f"MLflow tracking server {uri} does not answer" in output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()


def test_bad_data_path_exits_with_clear_message(tmp_path: Path) -> None:
    proc = run_train_cli(
        tmp_path,
        "data=ml100k",
        f"data.source.path={tmp_path}/nowhere",
        f"paths.root_dir={tmp_path}",
        uri=f"sqlite:///{tmp_path}/mlflow.db",
    )
    assert proc.returncode == 2
    output = proc.stdout + proc.stderr
    assert f"{tmp_path}/nowhere/u.data" in output
    assert "Traceback" not in output
    # the job's train.log says why it ended
    (log_file,) = (tmp_path / "outputs").glob("*/*/train.log")
    assert "bad input data: " in log_file.read_text()


def test_multirun_sweeps_models(tmp_path: Path) -> None:
    """`hybridrec-train --multirun model=mf,gmf` runs one job per value, each its own run."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_train_cli(
        tmp_path,
        "--multirun",
        "model=mf,gmf",
        *TINY_DATA,
        "trainer.max_epochs=1",
        f"paths.root_dir={tmp_path}",
        uri=uri,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(re.findall(r"MLflow run [0-9a-f]{32}", proc.stdout)) == 2
    runs = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("synthetic").experiment_id]
    )
    assert sorted(r.data.tags["model"] for r in runs) == ["GMF", "MF"]
    # each job: its best checkpoint and last.ckpt (what resume= continues from)
    assert len(list((tmp_path / "multirun").glob("*/*/checkpoints/epoch_*.ckpt"))) == 2
    assert len(list((tmp_path / "multirun").glob("*/*/checkpoints/last.ckpt"))) == 2
    # each job: a distinct name from its model choice and job number, tagged with its sweep
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    by_job = {r.data.tags["sweep_job"]: r for r in runs}
    assert {r.data.tags["sweep"] for r in runs} == {str(sweep_dir.resolve())}
    assert by_job["0"].info.run_name == "mf-synthetic-loo_sampled-job0"
    assert by_job["1"].info.run_name == "gmf-synthetic-loo_sampled-job1"
    assert all(r.info.status == "FINISHED" for r in runs)
    # the sweep's summary: one line per job with its run id, the override that differs and
    # the monitored metric as stored
    for job, run in by_job.items():
        best = run.data.metrics["best/val/ndcg10"]
        model = "mf" if job == "0" else "gmf"
        line = (
            f"job {job:>3}  {run.info.run_id}  FINISHED  best/val/ndcg10={best:.4f}  model={model}"
        )
        assert line in proc.stdout, proc.stdout[-2000:]


def test_refit_on_val_retrains_for_the_chosen_epochs(
    compose_cfg: Callable[..., DictConfig],
    data_files: dict[str, str],
    tmp_path: Path,
    mlflow_uri: str,
) -> None:
    """GRU4Rec on user sequences: select the epoch on validation, retrain on train +
    validation for best epoch + 1 epochs, test the refit model (saved next to the selection)
    and store its test metrics in the run."""
    from conftest import data_overrides

    cfg = compose_cfg(
        "experiment=gru4rec_beauty_bprmax",
        *data_overrides("beauty", data_files)[1:],
        "trainer.max_epochs=3",
        "model.layers=[8]",
        "datamodule.n_negatives=16",
        "refit_on_val=true",
        f"paths.output_dir={tmp_path}",
    )
    result = train(cfg)
    refit = Path(result.best_checkpoint)
    assert refit.is_file()
    (selected,) = (tmp_path / "checkpoints").glob("epoch_*.ckpt")
    best_epoch = int(torch.load(selected, map_location="cpu", weights_only=False)["epoch"])
    # the refit trains for the epochs validation chose: best epoch (0-based) + 1
    assert refit.name == f"refit_epochs_{best_epoch + 1:03d}.ckpt"
    refit_state = torch.load(refit, map_location="cpu", weights_only=False)
    assert refit_state["epoch"] == best_epoch + 1
    # the refit model's test metrics are the ones stored in the run
    assert result.run_id is not None
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    for key in ("hr", "ndcg", "mrr"):
        assert run.data.metrics[f"test/{key}10"] == pytest.approx(result.metrics[f"test/{key}@10"])


def test_refit_training_sequences_end_with_the_validation_item(
    compose_cfg: Callable[..., DictConfig], data_files: dict[str, str]
) -> None:
    """train_on_val (what the refit trains on): each user's training sequence followed by
    that user's validation item, nothing else changed."""
    import pandas as pd

    from conftest import data_overrides
    from hybridrec.cli.common import prepare_from_config
    from hybridrec.data.batching.sequence_datamodule import SequenceDataModule

    cfg = compose_cfg("experiment=gru4rec_beauty_bprmax", *data_overrides("beauty", data_files)[1:])
    spec, folder = prepare_from_config(cfg)
    plain = SequenceDataModule(str(folder), training="session_parallel")
    refit = SequenceDataModule(str(folder), training="session_parallel", train_on_val=True)
    items, offsets = (t.tolist() for t in plain.train_sequences())
    refit_items, refit_offsets = (t.tolist() for t in refit.train_sequences())
    val = pd.read_parquet(folder / spec.files["val"]).set_index("user")["item"]
    checked = 0
    for user in range(spec.n_users):
        before = items[offsets[user] : offsets[user + 1]]
        after = refit_items[refit_offsets[user] : refit_offsets[user + 1]]
        expected = before + ([int(val[user])] if user in val.index else [])
        assert after == expected, user
        checked += user in val.index
    assert checked == len(val) > 0


def test_debug_overfit_drives_the_training_loss_down(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    """debug=overfit trains on 2 batches for 50 epochs: the loss must fall far."""
    result = train(compose_cfg(*TINY_DATA, "debug=overfit", "model=mf", "optimizer.lr=0.05"))
    assert result.run_id is not None
    history = MlflowClient(tracking_uri=mlflow_uri).get_metric_history(
        result.run_id, "train/loss_epoch"
    )
    losses = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert len(losses) == 50
    assert losses[-1] < 0.2 * losses[0], losses[::10]


def test_cold_items_report_cold_warm_and_all(compose_cfg: Callable[..., DictConfig]) -> None:
    """cold_items: test metrics per slice. Ranking cold targets among the cold items only
    (candidates=cold) removes competitors, so with the same model (one epoch, same seed) it can
    only raise the cold slice, and leaves the warm slice exactly as it was."""
    common = (*TINY_DATA, "protocol=cold_items", "trainer.max_epochs=1", "model=mf")
    among_all = train(compose_cfg(*common)).metrics
    among_cold = train(compose_cfg(*common, "protocol.candidates=cold")).metrics
    for results in (among_all, among_cold):
        for slice_ in ("", "cold/", "warm/"):
            assert 0.0 <= results[f"test/{slice_}ndcg@10"] <= 1.0
    assert among_cold["test/warm/ndcg@10"] == pytest.approx(among_all["test/warm/ndcg@10"])
    assert among_cold["test/cold/hr@10"] >= among_all["test/cold/hr@10"]
    assert among_cold["test/cold/mrr@10"] > among_all["test/cold/mrr@10"]


def test_sequence_text_model_on_cold_items(compose_cfg: Callable[..., DictConfig]) -> None:
    """The text-only sequence model trains under cold_items and reports every slice; ranked
    among the cold items only, its cold targets get a positive hit rate from text alone."""
    cfg = compose_cfg(
        *TINY_DATA,
        "protocol=cold_items",
        "protocol.candidates=cold",
        "model=seqtext",
        "model.dim=16",
        "model.text.vocab_size=300",
        "datamodule=next_item",
        "loss=xe",
        "trainer.max_epochs=2",
    )
    results = train(cfg).metrics
    for slice_ in ("", "cold/", "warm/"):
        assert 0.0 <= results[f"test/{slice_}ndcg@10"] <= 1.0
    assert results["test/cold/hr@10"] > 0.0


def test_gru_user_tower_trains_end_to_end(compose_cfg: Callable[..., DictConfig]) -> None:
    """model.encoder=gru: the SeqRec user tower is a GRU over the window, trained next-item."""
    cfg = compose_cfg(
        *TINY_DATA,
        "protocol=loo_full",
        "model=sasrec",
        "model.encoder=gru",
        "model.dim=16",
        "datamodule=next_item",
        "loss=xe",
        "trainer.max_epochs=2",
    )
    result = train(cfg)
    state = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False)
    assert any(key.startswith("model.history.gru.") for key in state["state_dict"])
    assert 0.0 <= result.metrics["test/ndcg@10"] <= result.metrics["test/hr@10"] <= 1.0


ABLATIONS = ["id_id", "id_text", "id_both", "seq_id", "seq_text", "seq_both"]
ABLATIONS += ["both_id", "both_text", "both_both"]


def test_hybrid_ablation_grid_and_its_table(tmp_path: Path) -> None:
    """The README's ablation multirun (every user side × every item side of the hybrid) trains
    each part alone, the pairs and all of them; scripts/ablation_table.py turns the sweep into
    a markdown table + bar plot, logged to a summary run."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_train_cli(
        tmp_path,
        "--multirun",
        "model=hybrid",
        "model.combine=joint",
        "model.dim=16",
        "datamodule=next_item",
        "loss=xe",
        "protocol=loo_full",
        f"ablation={','.join(ABLATIONS)}",
        *TINY_DATA,
        "trainer.max_epochs=1",
        f"paths.root_dir={tmp_path}",
        uri=uri,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    script = Path(__file__).resolve().parents[2] / "scripts" / "ablation_table.py"
    out = tmp_path / "ablation"
    table = subprocess.run(
        [
            sys.executable,
            str(script),
            "--sweep",
            str(sweep),
            "--tracking-uri",
            uri,
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr[-3000:]
    rows = [
        line for line in (out / "ablation.md").read_text().splitlines() if line.startswith("| ")
    ]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]] == ABLATIONS
    assert (out / "ablation.png").stat().st_size > 0
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    trained = [r for r in runs if r.data.tags.get("kind") != "ablation_summary"]
    assert len(trained) == 9 and all(r.info.status == "FINISHED" for r in trained)
    (summary,) = [r for r in runs if r.data.tags.get("kind") == "ablation_summary"]
    logged = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert logged == {"ablation.md", "ablation.png"}
