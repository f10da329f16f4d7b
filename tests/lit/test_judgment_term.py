"""The human-rating term inside training: lambda 0 is exactly the base loss, a judgment on a
cold item trains the text tower, the held-out agreement reaches MLflow, Crowd-BT logs eta."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import SMALL_JUDGMENTS, TINY_DATA, built_task, run_train_cli
from hybridrec.cli.checks import ConfigError
from hybridrec.data.batching.judgments import JudgmentBatch
from hybridrec.run.train import train


def _pair_batch(items: list[list[int]], kind: int = 0) -> JudgmentBatch:
    n = len(items)
    long = torch.zeros(n, dtype=torch.long)
    return JudgmentBatch(
        pair_kind=torch.full((n,), kind),
        pair_context=long,
        pair_items=torch.tensor(items),
        pair_weight=torch.ones(n),
        pair_rater=long,
        row_kind=torch.zeros(0, dtype=torch.long),
        row_context=torch.zeros(0, dtype=torch.long),
        row_items=torch.zeros(0, dtype=torch.long),
        row_targets=torch.zeros(0),
        row_weight=torch.zeros(0),
        row_rater=torch.zeros(0, dtype=torch.long),
        population=torch.arange(8),
    )


def test_a_judgment_on_a_cold_item_trains_the_text_tower(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    module, datamodule = built_task(compose_cfg)
    items = module.model.items  # the hybrid's fused item tower
    cold = torch.nonzero(items.counts == 0).squeeze(1)
    cold = cold[cold > 0]  # item 0 is padding
    assert cold.numel() >= 2, "the catalogue-only products are items, cold by definition"
    module.model.train()
    out = module._judgment_term(_pair_batch([[int(cold[0]), int(cold[1])]]))
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    text_grads = [p.grad for n, p in items.text.named_parameters() if p.grad is not None]
    assert any(g.abs().sum() > 0 for g in text_grads), "the text tower got no gradient"
    id_grad = items.ids.table.weight.grad
    # a cold item's gate is 0: its ID row plays no part, only its text does
    assert id_grad is None or id_grad[cold[:2]].abs().sum() == 0


def test_lambda_zero_trains_exactly_as_without_the_term(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    """Same seed, same data: judgment=null and judgment.weight=0 give the same losses and
    metrics; both measure agreement with the held-out judgments."""
    runs = {}
    for name, extra in {"none": ["~judgment"], "zero": ["judgment.weight=0"]}.items():
        result = train(compose_cfg(*SMALL_JUDGMENTS, "trainer.max_epochs=2", *extra))
        runs[name] = result
    client = MlflowClient(tracking_uri=mlflow_uri)
    histories = {
        name: [m.value for m in client.get_metric_history(str(r.run_id), "train/loss_epoch")]
        for name, r in runs.items()
    }
    assert histories["none"] == histories["zero"] and len(histories["none"]) == 2
    assert runs["none"].metrics == runs["zero"].metrics
    assert 0 <= runs["none"].metrics["test/marketer_agreement"] <= 1


def test_a_run_with_the_term_logs_it_and_the_rater_weights(
    compose_cfg: Callable[..., DictConfig],
    mlflow_uri: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hybridrec")
    blended = ["judgment_blend=0.25", "monitor=val/blend"]  # early stopping weighs both
    result = train(
        compose_cfg(*SMALL_JUDGMENTS, "trainer.max_epochs=2", "judgment.weight=1.0", *blended)
    )
    metrics = result.metrics
    for name in ("marketer_agreement", "kendall_tau", "by_rater/marketer_agreement"):
        assert -1 <= metrics[f"test/{name}"] <= 1, name
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(str(result.run_id))
    assert run.data.metrics["train/judgment/pairwise_epoch"] > 0
    weights = {
        key.rsplit("/", 1)[1]: value
        for key, value in run.data.metrics.items()
        if key.startswith("judgments/weight/")
    }
    assert len(weights) == 5
    assert min(weights, key=weights.__getitem__) == "rater_4"  # the unreliable one
    # every rater's weight as an artifact, least reliable first (the log prints a summary)
    folder = client.download_artifacts(str(result.run_id), "judgments/raters.csv", str(tmp_path))
    table = pd.read_csv(folder)
    assert table["rater"].tolist()[0] == "rater_4" and len(table) == 5
    assert dict(zip(table["rater"], table["weight"], strict=True)) == pytest.approx(weights)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("judgments:"))
    assert "5 raters, weights min" in line and "least reliable rater_4" in line
    # val/blend = 0.75 val/ndcg@10 + 0.25 val/marketer_agreement, every epoch; the monitor
    history = {
        key: [m.value for m in client.get_metric_history(str(result.run_id), key)]
        for key in ("val/blend", "val/ndcg10", "val/marketer_agreement")
    }
    assert len(history["val/blend"]) == 2
    for blend, ndcg, agree in zip(*history.values(), strict=True):
        assert blend == pytest.approx(0.75 * ndcg + 0.25 * agree, abs=1e-5)
    assert run.data.metrics["best/val/blend"] == pytest.approx(max(history["val/blend"]))


def test_crowd_bt_learns_and_logs_a_reliability_per_rater(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    result = train(
        compose_cfg(
            *SMALL_JUDGMENTS, "trainer.max_epochs=1", "judgment=crowd_bt", "test_after_fit=false"
        )
    )
    metrics = MlflowClient(tracking_uri=mlflow_uri).get_run(str(result.run_id)).data.metrics
    etas = [v for k, v in metrics.items() if k.startswith("judgment/eta/")]
    assert len(etas) == 5 and all(0 < v < 1 for v in etas)


def test_a_model_without_user_vectors_is_refused_with_the_reason(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    cfg = compose_cfg(*TINY_DATA, "data=synthetic_marketing", "model=neumf", "judgment=bt")
    with pytest.raises(ConfigError, match="tower contract"):
        train(cfg)
    assert not Path(cfg.paths.data_dir).exists()  # refused from the config: no data prepared


COLUMNS = "{rater: editor, item: sku, score: stars}"


def test_a_bad_judgments_file_stops_the_cli_with_file_row_and_column(tmp_path: Path) -> None:
    clicks = tmp_path / "clicks.csv"
    clicks.write_text(
        "user,item\n" + "".join(f"u{u},i{(u * 7 + k) % 30}\n" for u in range(20) for k in range(6))
    )
    judgments = tmp_path / "judgments.csv"
    judgments.write_text("editor,sku,stars\nann,i1,5\nann,i2,4\nann,i999,3\n")
    proc = run_train_cli(
        tmp_path,
        "data=csv",
        f"data.source.path={clicks}",
        "protocol=loo_full",
        "model=mf",
        "judgment=bt",
        f"data.judgments={{path: '{judgments}', columns: {COLUMNS}}}",
        "trainer.max_epochs=1",
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"file {judgments}, row 4, column 'item'" in output
    assert "neither the interactions nor the item table" in output
    assert "Traceback" not in output


def test_a_lambda_sweep_writes_the_front(tmp_path: Path) -> None:
    """One multirun command: two lambdas -> front.md / .csv / .png in the sweep folder and a
    summary run in MLflow holding them."""
    proc = run_train_cli(
        tmp_path,
        "-m",
        *SMALL_JUDGMENTS,
        "judgment.weight=0,1",
        "trainer.max_epochs=1",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fronts = list((tmp_path / "multirun").glob("*/front/front.md"))
    assert len(fronts) == 1
    table = fronts[0].read_text()
    assert "| judgment.weight=0 | 0 |" in table and "| judgment.weight=1 | 1 |" in table
    for name in ("front.csv", "front.png"):
        assert (fronts[0].parent / name).stat().st_size > 0
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    summaries = client.search_runs(experiments, filter_string="tags.kind = 'judgment_front'")
    assert len(summaries) == 1
    logged = {a.path for a in client.list_artifacts(summaries[0].info.run_id)}
    assert logged == {"front.md", "front.csv", "front.png"}
