"""hybridrec-eval: the same checkpoint on the same protocol gives the run's own test metrics;
another tie rule, masking or protocol is logged to a linked run or into the original; mistakes
get one sentence and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from conftest import CONFIG_DIR, TINY_DATA
from hybridrec.cli.evaluate import main
from hybridrec.run.eval_config import apply_overrides
from hybridrec.run.eval_log import evaluate_and_log
from hybridrec.run.result import TrainResult
from hybridrec.run.train import train
from hybridrec.tracking.compare import EVALUATES_TAG

RANKING = ("hr10", "ndcg10", "mrr10")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> TrainResult:
    """A tiny MF run under loo_full (1 epoch), logged to the session's store."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    root = tmp_path_factory.mktemp("eval")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            [
                f"paths.root_dir={root}",
                f"logger.tracking_uri={mlflow_uri}",
                *TINY_DATA,
                "model=mf",
                "protocol=loo_full",
                "trainer.max_epochs=1",
            ],
        )
    GlobalHydra.instance().clear()
    cwd = os.getcwd()
    os.chdir(root)  # MLflow puts artifacts under ./mlruns
    try:
        return train(cfg)
    finally:
        os.chdir(cwd)


def run_eval_cli(cwd: Path, *args: str, uri: str) -> subprocess.CompletedProcess[str]:
    """The ``hybridrec-eval`` console script as a user runs it, ``uri`` as MLFLOW_TRACKING_URI."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    script = Path(sys.executable).parent / "hybridrec-eval"
    return subprocess.run(
        [str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _eval_runs(client: MlflowClient, run_id: str) -> list[Run]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, f"tags.`{EVALUATES_TAG}` = '{run_id}'"))


def _bare_runs(client: MlflowClient) -> list[Run]:
    """Evaluations of checkpoint files (no run to link to), newest first."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "attributes.run_name LIKE 'eval-%'")
    return [r for r in runs if EVALUATES_TAG not in r.data.tags]


def test_a_run_id_through_the_console_script_reproduces_its_test_metrics(
    trained: TrainResult, mlflow_uri: str, tmp_path: Path
) -> None:
    done = run_eval_cli(tmp_path, str(trained.run_id), uri=mlflow_uri)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=mlflow_uri)
    (linked,) = _eval_runs(client, str(trained.run_id))
    original = client.get_run(str(trained.run_id))
    assert linked.info.status == "FINISHED"
    assert linked.info.experiment_id == original.info.experiment_id
    assert linked.info.run_name == f"eval-{original.info.run_name}-loo_full"
    tags = linked.data.tags
    assert tags["protocol"] == "loo_full" and tags["mask_known"] == "true"
    assert tags["data_fingerprint"] == original.data.tags.get(
        "data_fingerprint", tags["data_fingerprint"]
    )
    expected = {k: v for k, v in original.data.metrics.items() if k.startswith("test/")}
    assert {"test/hr10", "test/coverage10", "test/novelty10"} <= set(expected)
    for key, value in expected.items():
        assert linked.data.metrics[key] == pytest.approx(value, abs=1e-6), key
    assert linked.info.run_id in done.stdout and mlflow_uri in done.stdout
    assert "test/ndcg10" in done.stdout  # the table


def test_a_checkpoint_file_with_optimistic_ties_or_no_mask(
    trained: TrainResult, mlflow_uri: str
) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    original = client.get_run(str(trained.run_id)).data.metrics
    assert main([trained.best_checkpoint, "ties=optimistic", "--tracking-uri", mlflow_uri]) == 0
    (optimistic,) = _bare_runs(client)
    assert optimistic.data.tags["ties"] == "optimistic"
    assert optimistic.data.tags["dataset"] == "synthetic"
    assert optimistic.info.run_name == "eval-synthetic-loo_full"
    for key in RANKING:  # optimistic ties can only rank the held-out item higher
        assert optimistic.data.metrics[f"test/{key}"] >= original[f"test/{key}"] - 1e-9
    assert main([trained.best_checkpoint, "--no-mask", "--tracking-uri", mlflow_uri]) == 0
    unmasked = next(r for r in _bare_runs(client) if r.data.tags["mask_known"] == "false")
    assert unmasked.info.run_name == "eval-synthetic-loo_full-unmasked"
    for key in RANKING:  # the known items compete too: the held-out item can only drop
        assert unmasked.data.metrics[f"test/{key}"] <= original[f"test/{key}"] + 1e-9
    assert unmasked.data.metrics["test/hr10"] < original["test/hr10"] or (
        unmasked.data.metrics["test/cold_share10"] != original["test/cold_share10"]
    )


def test_same_run_logs_into_the_original(trained: TrainResult, mlflow_uri: str) -> None:
    args = [str(trained.run_id), "protocol=loo_sampled", "--same-run", "--tracking-uri", mlflow_uri]
    assert main(args) == 0
    client = MlflowClient(tracking_uri=mlflow_uri)
    logged = client.get_run(str(trained.run_id)).data.metrics
    assert 0 <= logged["eval/loo_sampled/hr10"] <= 1
    assert "eval/loo_sampled/coverage10" not in logged  # sampled ranking: no top-K lists
    assert not [r for r in _eval_runs(client, str(trained.run_id)) if "sampled" in r.info.run_name]


def test_a_failing_evaluation_leaves_a_failed_run(mlflow_uri: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)

    def broken() -> list[dict[str, float]]:
        raise RuntimeError("out of memory")

    tags = {"dataset": "toy", "protocol": "loo_full"}
    with pytest.raises(RuntimeError):
        evaluate_and_log(client, None, False, "loo_full", tags, broken)
    (run,) = [r for r in _bare_runs(client) if r.data.tags["dataset"] == "toy"]
    assert run.info.status == "FAILED"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["protocol=nope"], "protocol=nope: no such option; options: cold_items,"),
        (["trainer.max_epoch=3"], "trainer.max_epoch: the run's config has no such key"),
        (["loo_full"], "'loo_full': expected key=value"),
        (["model=gru4rec"], "model=gru4rec: hybridrec-eval swaps only data= and protocol="),
        (["ties=sideways"], "ties"),
        (["data.source.n_items=50"], "items differ from those the model was trained on"),
    ],
)
def test_bad_overrides_are_one_sentence(
    trained: TrainResult,
    mlflow_uri: str,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(trained.run_id), *args, "--tracking-uri", mlflow_uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hybridrec-eval: error: ") and message in err
    assert "Traceback" not in err


def test_bad_sources_are_one_sentence(
    trained: TrainResult, mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    cases = [
        (["0" * 32], f"run {'0' * 32} is not in the tracking store {mlflow_uri}"),
        ([str(tmp_path / "missing.ckpt")], "neither a run id (32 hex characters) nor a checkpoint"),
        ([str(text)], "notes.ckpt: not a checkpoint written by hybridrec-train"),
        ([str(foreign)], "foreign.ckpt: not a checkpoint written by hybridrec-train"),
        ([trained.best_checkpoint, "--same-run"], "--same-run needs a run id"),
        (
            [trained.best_checkpoint, "protocol=loo_sampled", "--no-mask"],
            "--no-mask: protocol loo_sampled ranks sampled candidates",
        ),
    ]
    for args, message in cases:
        assert main([*args, "--tracking-uri", mlflow_uri]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_overrides_swap_a_group_then_set_keys(compose_cfg: Callable[..., DictConfig]) -> None:
    """``protocol=NAME`` is that group's file, resolved under the run's paths; later keys
    apply to it, and a ``???`` key of a swapped-in node can be set."""
    cfg = apply_overrides(
        compose_cfg(*TINY_DATA),
        ["protocol=cold_items", "ties=average", "data=csv", "data.source.path=x.csv"],
    )
    assert cfg.protocol.name == "cold_items" and cfg.ties == "average"
    assert OmegaConf.select(cfg, "protocol._target_").endswith("ColdItems")
    assert cfg.data.source.path == "x.csv"
