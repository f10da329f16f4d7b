"""Override replay: ``hybridrec-train resume=RUN_ID`` alone is enough, the overrides the run
was started with are given again (read before Hydra composes the config)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from hybridrec.run.resume import run_output_dir
from hybridrec.tracking import default_tracking_uri
from hybridrec.tracking.run_ids import resolve_run_id


def with_recorded_overrides(args: list[str]) -> list[str]:
    """``resume=RUN_ID`` alone is enough: the overrides the run was started with (its first
    job's ``.hydra/overrides.yaml``) come first, those typed now win. Anything not found is
    left to ``train``, which says what is missing."""
    refs = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not refs or any(a.startswith("-") for a in args):
        return args
    given_uri = [a.split("=", 1)[1] for a in args if a.startswith("logger.tracking_uri=")]
    uri = given_uri[-1] if given_uri else default_tracking_uri()
    try:
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(resolve_run_id(client, refs[-1]))
        folder = run_output_dir(run)
        recorded_file = Path(str(folder)) / ".hydra" / "overrides.yaml"
        recorded = yaml.safe_load(recorded_file.read_text()) if folder else None
    except Exception:  # no such run, store or file: train() reports it
        return args
    if not isinstance(recorded, list):
        return args

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    given = {key(a) for a in args}
    kept = [
        str(o)
        for o in recorded
        if key(str(o)) not in given and key(str(o)) not in ("resume", "ckpt_path")
    ]
    if kept:
        print(f"resume={refs[-1]}: with the run's overrides {' '.join(kept)}", file=sys.stderr)
    return [*kept, *args]
