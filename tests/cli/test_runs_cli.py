"""hybridrec-runs on a tracking store built by hand: protocol groups, the selected epoch, seeds
pooled, only differing params, the formats, the plots, the errors."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hybridrec.cli.runs import main
from hybridrec.run.tags import run_tags
from hybridrec.tracking.compare import EVALUATES_TAG, FAST_DEV_RUN_TAG
from hybridrec.tracking.run_ids import resolve_run_id

SCRIPT = str(Path(sys.executable).parent / "hybridrec-runs")


def _run(
    client: MlflowClient,
    experiment: str,
    *,
    seed: int,
    protocol: str = "loo_full",
    dim: int = 64,
    val: list[float],
    test: float,
) -> str:
    """A finished run as hybridrec-train leaves it: params, protocol tags, val/ndcg10 per
    epoch (monitor val/ndcg@10), val/hr10 per epoch, best/ and test/ metrics."""
    run = client.create_run(
        experiment,
        tags={"protocol": protocol, "data_fingerprint": f"fp-{protocol}", "mlflow.runName": "r"},
    )
    rid = run.info.run_id
    params = {
        "seed": str(seed),
        "datamodule/seed": str(seed),
        "model/dim": str(dim),
        "monitor": "val/ndcg@10",
        "paths/output_dir": f"/tmp/out-{rid}",
    }
    for key, value in params.items():
        client.log_param(rid, key, value)
    for step, value in enumerate(val):
        client.log_metric(rid, "val/ndcg10", value, step=step)
        client.log_metric(rid, "val/hr10", 10 * step + seed, step=step)
    client.log_metric(rid, "best/val/ndcg10", max(val))
    client.log_metric(rid, "test/ndcg10", test)
    client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('runs') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("compare_me")
    ids = {
        "dim64_s1": _run(client, experiment, seed=1, val=[0.1, 0.3, 0.2], test=0.30),
        "dim64_s2": _run(client, experiment, seed=2, val=[0.2, 0.1, 0.4], test=0.20),
        "dim32_s1": _run(client, experiment, seed=1, dim=32, val=[0.5, 0.1, 0.1], test=0.10),
        "sampled": _run(
            client, experiment, seed=1, protocol="loo_sampled", val=[0.6, 0.7, 0.8], test=0.9
        ),
    }
    return uri, ids


def _csv(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, str]]:
    main([*args, "--format", "csv"])
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_compare_groups_by_protocol_pools_seeds_and_reads_the_selected_epoch(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids = store
    metrics = "best/val/ndcg@10,val/hr@10,test/ndcg@10"
    rows = _csv(capsys, "compare", "--tracking-uri", uri, "-e", "compare_me", "--metrics", metrics)
    # only the param that differs is a column (seed and its copy datamodule/seed are pooled)
    assert list(rows[0]) == [
        "protocol", "data", "model/dim",
        "best/val/ndcg10", "val/hr10", "test/ndcg10", "seeds", "runs",
    ]  # fmt: skip
    by_key = {(r["protocol"], r["model/dim"]): r for r in rows}
    # loo_sampled is its own group (listed apart, never ranked with the loo_full runs)
    assert [r["protocol"] for r in rows] == ["loo_full", "loo_full", "loo_sampled"]
    two_seeds = by_key[("loo_full", "64")]
    assert two_seeds["seeds"] == "1,2"
    assert two_seeds["test/ndcg10"] == "0.2500 ± 0.0500"
    # val/hr10 at each run's best val/ndcg10 epoch: seed 1 step 1 (11), seed 2 step 2 (22)
    assert two_seeds["val/hr10"] == "16.5000 ± 5.5000"
    assert by_key[("loo_full", "32")]["val/hr10"] == "1.0000"  # best at step 0
    # sorted by the first metric inside the loo_full group: dim 32 (0.5) before dim 64 (0.3)
    assert [r["model/dim"] for r in rows[:2]] == ["32", "64"]


def test_mix_ranks_every_protocol_together(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = store
    rows = _csv(
        capsys, "compare", "--tracking-uri", uri, "--metrics", "test/ndcg@10", "--mix",
        "--param", "model/dim=64",
    )  # fmt: skip
    assert [r["protocol"] for r in rows] == ["(mixed)"]
    assert rows[0]["test/ndcg10"] == "0.4667 ± 0.3091"  # 0.3, 0.2, 0.9


def test_markdown_out_and_list(
    store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    uri, ids = store
    out = tmp_path / "compare.md"
    main(["compare", "--tracking-uri", uri, "--format", "markdown", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("| protocol | data | model/dim | best/val/ndcg10 | test/ndcg10 |")
    main(["list", "--tracking-uri", uri, "--tag", "protocol=loo_sampled"])
    assert ids["sampled"] in capsys.readouterr().out  # whole, on one line


@pytest.mark.parametrize("columns", ["250", "60"])
def test_list_prints_every_run_id_whole_at_any_width(
    second_store: tuple[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: str,
) -> None:
    """The table is as wide as COLUMNS says (it was fixed at 120 and wrapped every id), and a
    run id is never broken, however narrow."""
    uri, ids = second_store
    monkeypatch.setenv("COLUMNS", columns)
    main(["list", "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    shown = [run_id for key, run_id in ids.items() if key != "smoke"]
    for run_id in shown:
        assert run_id in out
    if columns == "250":  # wide enough: one line per run
        assert sum(run_id in line for line in out.splitlines() for run_id in shown) == 4


def test_eval_runs_are_left_out_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hybridrec-eval run (tagged with the run it re-evaluates) is not a training run: it
    would be a second row for the same model."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("with_an_eval")
    trained = _run(client, experiment, seed=1, val=[0.1], test=0.1)
    evaluation = _run(client, experiment, seed=1, protocol="loo_sampled", val=[0.2], test=0.2)
    client.set_tag(evaluation, EVALUATES_TAG, trained)
    main(["compare", "--tracking-uri", uri, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["protocol"] for r in rows] == ["loo_full"]
    main(["compare", "--tracking-uri", uri, "--format", "csv", "--evals"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["protocol"] for r in rows) == ["loo_full", "loo_sampled"]


def test_plots_are_written_and_logged(
    store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = store
    main(["plot", "curves", "--tracking-uri", uri, "--out", str(tmp_path), "--mix"])
    # two protocols: a plot each, named after the protocol and data fingerprint
    main(["plot", "param", "--x", "model/dim", "--metrics", "test/ndcg@10", "--tracking-uri",
          uri, "--out", str(tmp_path)])  # fmt: skip
    per_group = ["test_ndcg10_vs_model_dim_loo_full_fp-loo_f.png",
                 "test_ndcg10_vs_model_dim_loo_sampled_fp-loo_s.png"]  # fmt: skip
    for name in ["curves_val_ndcg10.png", *per_group]:
        assert (tmp_path / name).stat().st_size > 0
    client = MlflowClient(tracking_uri=uri)
    plots = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.kind = 'runs_plot'"
    )
    logged = {a.path for r in plots for a in client.list_artifacts(r.info.run_id)}
    assert {"curves_val_ndcg10.png", "curves_val_ndcg10.csv", *per_group} <= logged
    # the plot runs never show up among the runs compared
    main(["list", "--tracking-uri", uri])
    assert "4 runs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "-e", "nope"], "no experiment named 'nope'"),
        (["compare", "--param", "model/dim"], "--param 'model/dim': expected KEY=VALUE"),
        (["compare", "--param", "model/dim=7"], "no run matches"),
        (["plot", "param", "--x", "model/width"], "param 'model/width' is not logged"),
    ],
)
def test_mistakes_get_one_line_and_exit_2(
    store: tuple[str, dict[str, str]], args: list[str], message: str
) -> None:
    uri, _ = store
    proc = subprocess.run(
        [SCRIPT, *args, "--tracking-uri", uri], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_defaults_to_the_newest_experiment_and_never_pools_hidden_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    old = client.create_experiment("old")
    _run(client, old, seed=1, val=[0.9], test=0.9)
    new = client.create_experiment("new")
    ids = [_run(client, new, seed=1, dim=d, val=[0.1 * d], test=0.1) for d in (1, 2)]
    for i, rid in enumerate(ids):  # ten more differing params: more than the table shows
        for p in range(10):
            client.log_param(rid, f"trainer/p{p}", str(i))
    main(["compare", "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert "experiment 'new' (that of the newest run)" in out
    assert "2 runs, 2 settings" in out and "3 more differing params not shown" in out
    assert "model/dim" in out  # model params are shown before trainer params
    main(["compare", "--tracking-uri", uri, "--all-experiments", "--format", "csv"])
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 3


def _lightning_run(
    client: MlflowClient,
    experiment: str,
    name: str,
    model: str,
    *,
    steps_per_epoch: int,
    val: list[float],
    params: dict[str, str],
    protocol: str = "loo_full",
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
) -> str:
    """A run logged as Lightning logs it: every metric at the global step, with an ``epoch``
    metric in the same call (same step and timestamp); ``time/train_epoch_s`` at step = epoch,
    as hybridrec's callback logs it."""
    run = client.create_run(
        experiment,
        run_name=name,
        tags={"protocol": protocol, "data_fingerprint": "fp", "model": model, **(tags or {})},
    )
    rid = run.info.run_id
    for key, value in {"seed": "1", "monitor": "val/ndcg@10", **params}.items():
        client.log_param(rid, key, value)
    stamp = int(time.time() * 1000)
    for epoch, value in enumerate(val):
        stamp += 10
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch - 1):
            client.log_batch(rid, [Metric("epoch", epoch, stamp, step)])  # a training step
            stamp += 10
        step = (epoch + 1) * steps_per_epoch - 1
        client.log_batch(
            rid,
            [Metric("val/ndcg10", value, stamp, step), Metric("epoch", epoch, stamp, step)],
        )
        client.log_batch(rid, [Metric("time/train_epoch_s", 1.5, stamp + 5, epoch)])
    client.log_metric(rid, "best/val/ndcg10", max(val))
    for key, value in (metrics or {}).items():
        client.log_metric(rid, key, value)
    client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture(scope="module")
def second_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A judgment sweep's store: an MF run and a hybrid run (different data paths), a sweep's
    ``'1'`` beside a config's ``'1.0'``, the two protocols, a fast_dev_run run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('runs2') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("synthetic_marketing")
    shared = {"data/source/path": "judgments_new.csv", "data/source/columns/item": "sku"}
    ids = {
        "mf": _lightning_run(
            client, experiment, "mf-synthetic_marketing-loo_full", "MF",
            steps_per_epoch=3, val=[0.1, 0.3, 0.2],
            params={**shared, "model/_target_": "hybridrec.nn.MF", "model/dim": "32",
                    "judgment/weight": "1"},
            metrics={"test/ndcg10": 0.2, "test/marketer_agreement": 0.60},
        ),
        "mf_seed2": _lightning_run(
            client, experiment, "mf-synthetic_marketing-loo_full", "MF",
            steps_per_epoch=3, val=[0.2, 0.2, 0.1],
            params={**shared, "model/_target_": "hybridrec.nn.MF", "model/dim": "32",
                    "judgment/weight": "1.0", "seed": "2"},
            metrics={"test/ndcg10": 0.3, "test/marketer_agreement": 0.62},
        ),
        "hybrid": _lightning_run(
            client, experiment, "my-own-name", "HybridRec",
            steps_per_epoch=1, val=[0.2, 0.4, 0.5],
            params={**shared, "data/source/path": "other.csv",
                    "model/_target_": "hybridrec.nn.HybridRec", "model/dim": "64",
                    "judgment/weight": "1.0"},
            metrics={"test/ndcg10": 0.3, "test/marketer_agreement": 0.70},
        ),
        "sampled": _lightning_run(
            client, experiment, "mf-synthetic_marketing-loo_sampled", "MF",
            steps_per_epoch=1, val=[0.5], protocol="loo_sampled",
            params={**shared, "model/_target_": "hybridrec.nn.MF", "model/dim": "32",
                    "judgment/weight": "0.3"},
            metrics={"test/ndcg10": 0.9, "test/marketer_agreement": 0.65},
        ),
        "smoke": _lightning_run(
            client, experiment, "mf-synthetic_marketing-loo_full", "MF",
            steps_per_epoch=1, val=[0.9],
            params={**shared, "model/_target_": "hybridrec.nn.MF", "model/dim": "32",
                    "judgment/weight": "1", "trainer/fast_dev_run": "True"},
            tags={FAST_DEV_RUN_TAG: "true"},
            metrics={"test/ndcg10": 0.99, "test/marketer_agreement": 0.99},
        ),
    }  # fmt: skip
    return uri, ids


def test_compare_pools_values_the_config_types_alike(
    second_store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """judgment.weight ``1`` (a sweep's override) and ``1.0`` (an experiment file) are one
    setting: the two MF seeds pool into one row, the weight is no column (it does not
    differ); --param matches every spelling."""
    uri, ids = second_store
    args = ["compare", "--tracking-uri", uri, "--metrics", "test/ndcg@10"]
    rows = _csv(capsys, *args, "--tag", "protocol=loo_full")
    assert "judgment/weight" not in rows[0]
    mf = next(r for r in rows if r["model/dim"] == "32")
    assert mf["seeds"] == "1,2" and mf["test/ndcg10"] == "0.2500 ± 0.0500"
    assert sorted(mf["runs"].split()) == sorted([ids["mf"], ids["mf_seed2"]])
    for spelling in ("1", "1.0", "1e0"):
        rows = _csv(capsys, *args, "--param", f"judgment/weight={spelling}")
        found = sorted(run for r in rows for run in r["runs"].split())
        assert found == sorted([ids["mf"], ids["mf_seed2"], ids["hybrid"]])


def test_curves_are_drawn_against_the_epoch_and_labelled_by_run_and_model(
    second_store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MF logs its epochs 0-2 at global steps 2, 5, 8, the hybrid at 0, 1, 2: both curves
    run over epochs 0-2. Legends name the run (its model first) and the settings that differ,
    model settings before data paths."""
    uri, ids = second_store
    main(["plot", "curves", "--tracking-uri", uri, "--tag", "protocol=loo_full", "--param",
          "seed=1", "--metrics", "val/ndcg@10,time/train_epoch_s", "--out", str(tmp_path),
          "--no-log"])  # fmt: skip
    with (tmp_path / "curves_val_ndcg10.csv").open() as handle:
        points = list(csv.DictReader(handle))
    by_run: dict[str, list[dict[str, str]]] = {}
    for point in points:
        by_run.setdefault(point["run_id"], []).append(point)
    assert set(by_run) == {ids["mf"], ids["hybrid"]}  # not the fast_dev_run run
    for run_points in by_run.values():
        assert [float(p["epoch"]) for p in run_points] == [0.0, 1.0, 2.0]
    assert [p["step"] for p in by_run[ids["mf"]]] == ["2", "5", "8"]
    assert [p["selected"] for p in by_run[ids["mf"]]] == ["False", "True", "False"]
    labels = {run_id: run_points[0]["label"] for run_id, run_points in by_run.items()}
    # judgment.weight 1 and 1.0 do not differ
    mf = "mf-synthetic_marketing-loo_full model.dim=32 data.source.path=judgments_new.csv"
    assert labels[ids["mf"]] == mf
    assert labels[ids["hybrid"]] == "HybridRec my-own-name model.dim=64 data.source.path=other.csv"
    # a metric logged with step = epoch keeps it
    with (tmp_path / "curves_time_train_epoch_s.csv").open() as handle:
        assert {p["epoch"] for p in csv.DictReader(handle)} == {"0.0", "1.0", "2.0"}


def test_front_never_mixes_protocols(
    second_store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = second_store
    main(["plot", "front", "--tracking-uri", uri, "--out", str(tmp_path / "apart"), "--no-log"])
    out = capsys.readouterr().out
    assert "2 groups (protocol, data fingerprint): one plot each, never mixed" in out
    written = sorted(p.name for p in (tmp_path / "apart").iterdir())
    assert written == ["front_loo_full_fp.png", "front_loo_sampled_fp.png"]
    main(["plot", "front", "--mix", "--tracking-uri", uri, "--out", str(tmp_path / "mixed"),
          "--no-log"])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == ["front.png"]


def test_fast_dev_runs_are_left_out_unless_asked(
    second_store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids = second_store
    main(["list", "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert "4 runs" in out and ids["smoke"] not in out
    assert "1 fast_dev_run run(s) left out (--fast-dev-runs shows them)" in out
    main(["list", "--tracking-uri", uri, "--fast-dev-runs"])
    assert ids["smoke"] in capsys.readouterr().out
    rows = _csv(capsys, "compare", "--tracking-uri", uri, "--fast-dev-runs")
    assert any(ids["smoke"] in r["runs"].split() for r in rows)
    with pytest.raises(SystemExit):
        main(["compare", "--tracking-uri", uri, "--param", "trainer/fast_dev_run=True"])
    assert "1 fast_dev_run run(s) left out" in capsys.readouterr().err


def test_train_tags_a_fast_dev_run(compose_cfg: Callable[..., DictConfig]) -> None:
    spec = SimpleNamespace(counts={})
    assert run_tags(compose_cfg("debug=fast_dev_run"), spec)[FAST_DEV_RUN_TAG] == "true"  # type: ignore[arg-type]
    assert FAST_DEV_RUN_TAG not in run_tags(compose_cfg(), spec)  # type: ignore[arg-type]


def test_compare_prints_ids_that_commands_take_back(
    second_store: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids = second_store
    main(["compare", "--tracking-uri", uri, "--format", "markdown"])
    lines = capsys.readouterr().out.splitlines()[2:]
    shown = [line.split("|")[-2].split() for line in lines]
    client = MlflowClient(tracking_uri=uri)
    resolved = {resolve_run_id(client, short) for cell in shown for short in cell}
    assert resolved == {ids["mf"], ids["mf_seed2"], ids["hybrid"], ids["sampled"]}
    assert all(8 <= len(short) < 32 for cell in shown for short in cell)
    main(["list", "--tracking-uri", uri, "--run", ids["hybrid"][:6]])
    out = capsys.readouterr().out
    assert "1 runs" in out and ids["hybrid"] in out
