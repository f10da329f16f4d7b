"""hybridrec-runs on a tracking store built by hand: protocol groups, the selected epoch, seeds
pooled, only differing params, the formats, the plots, the errors."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hybridrec.cli.runs import main
from hybridrec.tracking.compare import EVALUATES_TAG

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
    shown = capsys.readouterr().out
    assert ids["sampled"] in shown.replace("\n", "").replace("│", "").replace(" ", "")


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
    main(["plot", "curves", "--tracking-uri", uri, "--out", str(tmp_path)])
    main(["plot", "param", "--x", "model/dim", "--metrics", "test/ndcg@10", "--tracking-uri",
          uri, "--out", str(tmp_path)])  # fmt: skip
    assert (tmp_path / "curves_val_ndcg10.png").stat().st_size > 0
    assert (tmp_path / "test_ndcg10_vs_model_dim.png").stat().st_size > 0
    client = MlflowClient(tracking_uri=uri)
    plots = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.kind = 'runs_plot'"
    )
    logged = {a.path for r in plots for a in client.list_artifacts(r.info.run_id)}
    assert {"curves_val_ndcg10.png", "test_ndcg10_vs_model_dim.png"} <= logged
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
