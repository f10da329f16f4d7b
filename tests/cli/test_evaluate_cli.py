"""hybridrec-eval: the same checkpoint on the same protocol gives the run's own test metrics;
another tie rule or protocol is logged to a linked run or into the original; mistakes get one
sentence and exit 2."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.cli.evaluate import EVALUATES_TAG, main
from hybridrec.cli.train import TrainResult, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> TrainResult:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from conftest import CONFIG_DIR

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
                "trainer.max_epochs=2",
            ],
        )
    GlobalHydra.instance().clear()
    return train(cfg)


def _eval_runs(client: MlflowClient, run_id: str) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.`{EVALUATES_TAG}` = '{run_id}'")


def test_same_protocol_reproduces_the_runs_test_metrics(
    trained: TrainResult, mlflow_uri: str
) -> None:
    assert main([str(trained.run_id), "--tracking-uri", mlflow_uri]) == 0
    client = MlflowClient(tracking_uri=mlflow_uri)
    (linked,) = _eval_runs(client, str(trained.run_id))
    assert linked.info.status == "FINISHED" and linked.data.tags["protocol"] == "loo_full"
    original = client.get_run(str(trained.run_id)).data.metrics
    for key in ("test/hr10", "test/ndcg10", "test/mrr10"):
        assert linked.data.metrics[key] == pytest.approx(original[key], abs=1e-6)


def test_a_checkpoint_with_other_ties_and_the_same_run_option(
    trained: TrainResult, mlflow_uri: str
) -> None:
    assert main([trained.best_checkpoint, "ties=optimistic", "--tracking-uri", mlflow_uri]) == 0
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.protocol = 'loo_full'")
    bare = [
        r for r in runs if r.info.run_name.startswith("eval-") and EVALUATES_TAG not in r.data.tags
    ]
    assert bare, "a bare checkpoint's evaluation is logged to a run of its own"
    original = client.get_run(str(trained.run_id)).data.metrics
    # optimistic ties can only rank the held-out item higher
    assert bare[0].data.metrics["test/hr10"] >= original["test/hr10"]
    assert main([str(trained.run_id), "protocol=loo_sampled", "--same-run", "--tracking-uri",
                 mlflow_uri]) == 0  # fmt: skip
    logged = client.get_run(str(trained.run_id)).data.metrics
    assert 0 <= logged["eval/loo_sampled/hr10"] <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["protocol=nope"], "protocol=nope: no such option"),
        (["trainer.max_epoch=3"], "trainer.max_epoch: the run's config has no such key"),
        (["loo_full"], "expected key=value"),
        (["data.source.n_items=50"], "items differ from those the model was trained on"),
    ],
)
def test_mistakes_are_one_sentence(
    trained: TrainResult,
    mlflow_uri: str,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(trained.run_id), *args, "--tracking-uri", mlflow_uri]) == 2
    assert message in capsys.readouterr().err


def test_same_run_needs_a_run(trained: TrainResult, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([trained.best_checkpoint, "--same-run"]) == 2
    assert "--same-run needs a run id" in capsys.readouterr().err


def test_compose(compose_cfg: Callable[..., DictConfig]) -> None:
    """The evaluated config keeps every key of a composed one (overrides apply to it)."""
    from omegaconf import OmegaConf

    from hybridrec.cli.evaluate import apply_overrides

    cfg = apply_overrides(compose_cfg(*TINY_DATA), ["protocol=cold_items", "ties=average"])
    assert cfg.protocol.name == "cold_items" and cfg.ties == "average"
    assert OmegaConf.select(cfg, "protocol._target_").endswith("ColdItems")
