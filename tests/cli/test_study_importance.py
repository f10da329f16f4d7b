"""A study's importance plot (``hybridrec-runs plot importance --study NAME``): each searched
setting's share of the objective's variance (eta²) over the finished trials, against hand
computations, from runs as the sweeper leaves them in MLflow."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from hybridrec.cli.runs import main as runs_main
from hybridrec.tracking.importance import param_importances, study_trials
from hybridrec.tracking.sweep import DIRECTION_TAG, OVERRIDES_TAG, STUDY_TAG


def test_eta_squared_by_hand() -> None:
    # y = 1, 2, 3, 6 (mean 3, total sum of squares 4 + 1 + 0 + 9 = 14)
    params = [
        {"lr": "0.01", "dim": "16", "opt": "adam"},
        {"lr": "0.01", "dim": "32", "opt": "adam"},
        {"lr": "0.1", "dim": "16", "opt": "adam"},
        {"lr": "0.1", "dim": "32", "opt": "sgd"},
    ]
    found = param_importances(params, [1.0, 2.0, 3.0, 6.0])
    # lr: groups {1, 2} and {3, 6}, means 1.5 and 4.5: 2 * 1.5² + 2 * 1.5² = 9 of 14
    assert found["lr"] == pytest.approx((9 / 14, 1 / 3))
    # dim: {1, 3} and {2, 6}, means 2 and 4: 2 * 1 + 2 * 1 = 4 of 14
    assert found["dim"] == pytest.approx((4 / 14, 1 / 3))
    # opt: {1, 2, 3} and {6}, means 2 and 6: 3 * 1 + 1 * 9 = 12 of 14
    assert found["opt"] == pytest.approx((12 / 14, 1 / 3))
    assert list(found) == ["opt", "lr", "dim"]  # largest first


def test_a_numeric_setting_with_many_values_is_binned_by_quantiles() -> None:
    # 8 learning rates, 4 quantile bins of 2: (1, 2) (3, 4) (5, 6) (7, 8) of y = 0 0 0 0 1 1 1 1
    params = [{"lr": str(v)} for v in (1, 2, 3, 4, 5, 6, 7, 8)]
    values = [0.0] * 4 + [1.0] * 4
    share, chance = param_importances(params, values)["lr"]
    assert share == pytest.approx(1.0)  # the bins never mix the two halves
    assert chance == pytest.approx(3 / 7)  # 4 groups over 8 trials


def _run(status: str, overrides: str, value: float | None, study: str = "s") -> SimpleNamespace:
    return SimpleNamespace(
        info=SimpleNamespace(status=status, run_id="r", experiment_id="1"),
        data=SimpleNamespace(
            tags={STUDY_TAG: study, OVERRIDES_TAG: overrides},
            params={"monitor": "val/ndcg@10"},
            metrics={} if value is None else {"best/val/ndcg10": value},
        ),
    )


def test_study_trials_are_the_finished_ones_and_the_settings_that_differ() -> None:
    runs = [
        _run("FINISHED", "optimizer.lr=0.01 model.dim=16 data=x", 0.2),
        _run("FINISHED", "optimizer.lr=0.1 model.dim=16 data=x", 0.3),
        _run("FINISHED", "optimizer.lr=0.1 model.dim=16 +scheduler.gamma=2 data=x", 0.4),
        _run("FAILED", "optimizer.lr=9 model.dim=64 data=x", None),
    ]
    params, values, metric = study_trials(runs)
    assert metric == "best/val/ndcg10" and values == [0.2, 0.3, 0.4]
    assert params == [
        {"optimizer.lr": "0.01", "scheduler.gamma": ""},
        {"optimizer.lr": "0.1", "scheduler.gamma": ""},
        {"optimizer.lr": "0.1", "scheduler.gamma": "2"},
    ]
    with pytest.raises(ValueError, match="2 finished trial"):
        study_trials(runs[1:])
    with pytest.raises(ValueError, match="one study"):
        study_trials([*runs, _run("FINISHED", "optimizer.lr=1", 0.1, study="other")])


def test_plot_importance_from_a_store(
    tmp_path: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = mlflow_uri  # the session's store: its migrations run once
    client = MlflowClient(uri)
    experiment_name = f"importance-{tmp_path.name}"
    experiment = client.create_experiment(experiment_name)
    study = f"study-{tmp_path.name}"  # no other test's runs carry it
    # the objective follows the learning rate; the dimension is noise
    trials = [("0.01", "16", 0.10), ("0.01", "32", 0.12), ("0.1", "16", 0.30), ("0.1", "32", 0.28)]
    for lr, dim, value in trials:
        run = client.create_run(
            experiment,
            tags={
                STUDY_TAG: study,
                DIRECTION_TAG: "maximize",
                OVERRIDES_TAG: f"optimizer.lr={lr} model.embedding_dim={dim} seed=1",
            },
        )
        client.log_param(run.info.run_id, "monitor", "val/ndcg@10")
        client.log_metric(run.info.run_id, "best/val/ndcg10", value)
        client.set_terminated(run.info.run_id, "FINISHED")
    # a composed hybrid's part, trained inside the first trial, carries the study tag too: it
    # is not a trial
    part = client.create_run(
        experiment,
        tags={STUDY_TAG: study, "hybridrec.part": "ids", OVERRIDES_TAG: "optimizer.lr=9"},
    )
    client.log_param(part.info.run_id, "monitor", "val/ndcg@10")
    client.log_metric(part.info.run_id, "best/val/ndcg10", 0.9)
    client.set_terminated(part.info.run_id, "FINISHED")
    out = tmp_path / "plots"
    args = ["plot", "importance", "--study", study, "--tracking-uri", uri, "-e", experiment_name]
    runs_main([*args, "--out", str(out), "--no-log"])
    printed = capsys.readouterr().out
    assert "best/val/ndcg10 over 4 finished trials" in printed
    # total: 4 trials around 0.2, deviations ±0.1, ±0.08, +0.1, +0.08 -> 2 * 0.01 + 2 * 0.0064
    # lr's groups (means 0.11, 0.29) explain 4 * 0.09² = 0.0324 of 0.0328
    rows = list(csv.DictReader((out / f"importance_{study}.csv").open()))
    assert [r["setting"] for r in rows] == ["optimizer.lr", "model.embedding_dim"]
    assert float(rows[0]["eta2"]) == pytest.approx(0.0324 / 0.0328, abs=1e-6)
    assert float(rows[1]["eta2"]) == pytest.approx(0.0, abs=1e-9)  # both dims average 0.2
    assert float(rows[0]["chance"]) == pytest.approx(1 / 3)
    assert (out / f"importance_{study}.png").stat().st_size > 0
    # without --study: one sentence, exit 2
    with pytest.raises(SystemExit) as stopped:
        runs_main(["plot", "importance", "--tracking-uri", uri, "--no-log"])
    assert stopped.value.code == 2
    assert "plot importance needs --study NAME" in capsys.readouterr().err
