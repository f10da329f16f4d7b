"""The summary a finished run prints: its test and best metrics read back from the store,
where its outputs are, and a command that opens it in the MLflow UI."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from hybridrec.tracking import DEFAULT_URI
from hybridrec.tracking.runs import UI_VIEW


def print_summary(client: MlflowClient, run_id: str, uri: str, output_dir: str) -> None:
    """Print what the run holds, read back from the store: test and best metrics under their
    MLflow names, where the outputs are, and a command that opens the run as typed."""
    run = client.get_run(run_id)
    experiment_id = run.info.experiment_id
    metrics = {k: v for k, v in run.data.metrics.items() if k.startswith(("test/", "best/"))}
    # MLflow 3's UI opens on its GenAI view in a fresh browser (mlflow/mlflow#24498): the
    # link asks for the Model training view
    link = f"#/experiments/{experiment_id}/runs/{run_id}?{UI_VIEW}"
    if uri.startswith(("http://", "https://")):
        open_it = f"Open it: {uri.rstrip('/')}/{link}"
    else:
        open_it = f"Open it: {_ui_command(uri)}  (then http://127.0.0.1:5000/{link})"
    lines = [
        "",
        f"MLflow run {run_id} ({run.info.run_name}, experiment {experiment_id}, "
        f"{run.info.status}) in {uri}",
        *(f"  {k:<22} {v:.4f}" for k, v in sorted(metrics.items()) if math.isfinite(v)),
        f"Outputs (checkpoints, Hydra config and log): {shown_path(output_dir)}",
        open_it,
    ]
    print("\n".join(lines), flush=True)


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def _ui_command(uri: str) -> str:
    """A command that starts the MLflow UI on ``uri`` as typed: ``make ui`` for the default
    store in a checkout, else the ``mlflow`` of this environment by its path (it is not on
    PATH unless the virtualenv is active)."""
    makefile = Path("Makefile")
    if uri == DEFAULT_URI and makefile.is_file() and "\nui:" in makefile.read_text():
        return "make ui"
    mlflow_bin = shown_path(Path(sys.executable).parent / "mlflow")
    if "/" not in mlflow_bin:
        mlflow_bin = f"./{mlflow_bin}"
    return f"{mlflow_bin} server --backend-store-uri {uri} --workers 1 --port 5000"
