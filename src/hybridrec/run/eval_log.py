"""Where hybridrec-eval's metrics go: a new MLflow run beside the evaluated one (FINISHED, or
FAILED when the test raises), or the evaluated run itself as ``eval/<protocol>/<metric>``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlflow.tracking import MlflowClient

from hybridrec.tracking import mlflow_key
from hybridrec.tracking.compare import EVALUATES_TAG
from hybridrec.tracking.runs import end_run, now_ms, start_run


def evaluate_and_log(
    client: MlflowClient,
    run_id: str | None,
    same_run: bool,
    label: str,
    tags: dict[str, str],
    test: Callable[[], list[Mapping[str, float]]],
    artifacts: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], str]:
    """Run ``test()`` and log its metrics: into ``run_id`` as ``eval/<label>/…`` (same_run), or
    into a new run, created first so that a failing evaluation leaves a FAILED run.
    ``artifacts(run)`` then logs files to the run that got the metrics."""
    if same_run:
        assert run_id is not None
        (metrics,) = test()
        results = {key: float(value) for key, value in metrics.items()}
        for key, value in results.items():
            name = key.removeprefix("test/")
            client.log_metric(run_id, mlflow_key(f"eval/{label}/{name}"), value)
        if artifacts is not None:
            artifacts(run_id)
        return results, f"run {run_id} (as eval/{label}/...)"
    if run_id is not None:
        original = client.get_run(run_id)
        experiment = client.get_experiment(original.info.experiment_id).name
        name = f"eval-{original.info.run_name}-{label}"
        tags = {**tags, EVALUATES_TAG: run_id}
    else:
        experiment = tags["dataset"]
        name = f"eval-{tags['dataset']}-{label}"
    new_run = start_run(client, experiment, name, now_ms(), tags=tags)
    error: BaseException | None = None
    try:
        (metrics,) = test()
        results = {key: float(value) for key, value in metrics.items()}
        for key, value in results.items():
            client.log_metric(new_run, mlflow_key(key), value)
        if artifacts is not None:
            artifacts(new_run)
    except BaseException as exc:
        error = exc
        raise
    finally:
        end_run(client, new_run, error)
    return results, f"run {new_run} ({name}, experiment {experiment})"
