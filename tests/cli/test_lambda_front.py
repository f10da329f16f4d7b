"""lambda at serving time: the front's rows and files (hand values), and one checkpoint of a
run with a judgment head through ``hybridrec-eval --lambdas`` and ``hybridrec-runs plot
front --evals`` (slow)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, open_dict

from conftest import TINY_DATA, TINY_JUDGMENTS, train_config
from hybridrec.cli.evaluate import main as eval_main
from hybridrec.cli.runs import main as runs_main
from hybridrec.export.judgment import served_judgment
from hybridrec.export.source import resolve_checkpoint
from hybridrec.lit.checkpoint import load_model, safe_load
from hybridrec.run.train import train
from hybridrec.tracking.lambda_front import (
    AGREEMENT,
    FRONT_TAG,
    front_rows,
    parse_lambdas,
    write_front,
)


def test_lambdas_parse_and_bad_ones_are_one_sentence() -> None:
    assert parse_lambdas("0,0.3,1") == [0.0, 0.3, 1.0]
    for bad in ("0,x", "-1", "inf"):
        with pytest.raises(ValueError, match="--lambdas"):
            parse_lambdas(bad)


def test_front_rows_flag_the_pareto_front_and_write_four_files(tmp_path: Path) -> None:
    results = {
        0.0: {"test/ndcg@10": 0.30, AGREEMENT: 0.50},
        1.0: {"test/ndcg@10": 0.20, AGREEMENT: 0.80},
        0.3: {"test/ndcg@10": 0.25, AGREEMENT: 0.45},  # worse on both than lambda 0
    }
    rows = front_rows(results, "test/ndcg@10")
    assert [r["lambda"] for r in rows] == [0.0, 0.3, 1.0]
    assert [r["front"] for r in rows] == [True, False, True]
    files = write_front(rows, tmp_path, "test/ndcg@10")
    assert sorted(p.name for p in files) == ["front.csv", "front.json", "front.md", "front.png"]
    saved = json.loads((tmp_path / "front.json").read_text())
    assert saved["accuracy"] == "test/ndcg@10" and saved["rows"][2][AGREEMENT] == 0.8


@pytest.mark.slow
def test_one_checkpoint_gives_the_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = train_config(
        tmp_path,
        uri,
        "experiment=judgment_synthetic",
        *TINY_DATA,
        *TINY_JUDGMENTS,
        "model.dim=16",
        "judgment=head_pointwise",
        "trainer.max_epochs=1",
    )
    cwd = os.getcwd()
    os.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns
    try:
        trained = train(cfg)
        run_id = str(trained.run_id)
        assert eval_main([run_id, "--lambdas", "0,1", "--tracking-uri", uri]) == 0
        client = MlflowClient(tracking_uri=uri)
        own = client.get_run(run_id).data.metrics
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], f"tags.`{FRONT_TAG}` = 'lambda'"
        )
        assert len(runs) == 1
        metrics = runs[0].data.metrics
        # lambda 0: exactly the recommender's own test metrics
        assert metrics["lambda_0/test/ndcg10"] == pytest.approx(own["test/ndcg10"])
        assert metrics["lambda_0/test/marketer_agreement"] == pytest.approx(
            own["test/marketer_agreement"]
        )
        logged = {a.path for a in client.list_artifacts(runs[0].info.run_id, "front")}
        assert "front/front.json" in logged and "front/front.png" in logged
        # the served head, rebuilt from the checkpoint alone: the run's segments, every item
        checkpoint, _ = resolve_checkpoint(run_id, client)
        model = load_model(checkpoint)
        served = served_judgment(safe_load(checkpoint), model)
        assert served is not None and served.phi.shape[0] == model.n_items + 1
        assert sorted(served.segments) == sorted(cfg.data.judgments.segments)
        # a run without a head: one sentence, exit 2
        plain = train(_without_head(cfg))
        capsys.readouterr()
        assert eval_main([str(plain.run_id), "--lambdas", "0,1", "--tracking-uri", uri]) == 2
        assert "no judgment head" in capsys.readouterr().err
        runs_main(["plot", "front", "--evals", "--tracking-uri", uri, "--out", str(tmp_path)])
        assert (tmp_path / "front_lambda.png").stat().st_size > 0
    finally:
        os.chdir(cwd)


def _without_head(cfg: DictConfig) -> DictConfig:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.judgment.head = None
    return cfg
