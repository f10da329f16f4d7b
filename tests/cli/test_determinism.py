"""Determinism on CPU: the same seed, data and config give identical metrics, to the last bit;
another seed gives other metrics (so the comparison can fail)."""

from __future__ import annotations

from collections.abc import Callable

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.run.train import train

#: NeuMF with dropout: the global generator (dropout masks), shuffling and negative sampling
ARGS = [*TINY_DATA, "model.dropout=0.2", "trainer.max_epochs=3"]


def _val_history(uri: str, run_id: str | None) -> list[tuple[int, float]]:
    assert run_id is not None
    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "val/ndcg10")
    return sorted((m.step, m.value) for m in history)


def test_same_seed_same_metrics_other_seed_other_metrics(
    compose_cfg: Callable[..., DictConfig], mlflow_uri: str
) -> None:
    first = train(compose_cfg(*ARGS, "seed=7"))
    again = train(compose_cfg(*ARGS, "seed=7"))
    other = train(compose_cfg(*ARGS, "seed=8"))
    assert first.metrics and first.metrics == again.metrics  # exact, every test/ and best/ value
    assert _val_history(mlflow_uri, first.run_id) == _val_history(mlflow_uri, again.run_id)
    assert len(_val_history(mlflow_uri, first.run_id)) == 3
    assert other.metrics != first.metrics
    assert _val_history(mlflow_uri, other.run_id) != _val_history(mlflow_uri, first.run_id)
