"""Runs that learnt from erased users: tagged, so the team knows which ones to retrain."""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.tracking import MlflowClient

#: set on every run trained on a prepared folder that held users since erased; its value:
#: when the latest erasure that concerns it happened (UTC)
ERASED_TAG = "hybridrec.holds_erased_users"


def tag_runs_with_erased_users(
    client: MlflowClient, fingerprints: Sequence[str], when: str
) -> list[str]:
    """Tag the runs (every experiment) whose ``data_fingerprint`` is one of ``fingerprints``
    (the folder's fingerprints before each erasure); returns their run ids."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    tagged: list[str] = []
    for fingerprint in dict.fromkeys(fingerprints):
        if not experiments:
            break
        runs = client.search_runs(
            experiments, filter_string=f"tags.data_fingerprint = '{fingerprint}'", max_results=50000
        )
        for run in runs:
            client.set_tag(run.info.run_id, ERASED_TAG, when)
            tagged.append(run.info.run_id)
    return tagged
