"""The line per job a multirun ends with (:func:`hybridrec.tracking.sweep.summary_lines`): one
per job, in job order, with the overrides that differ; a composed hybrid's part runs, which
carry their job's sweep tags, are not jobs."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from hybridrec.tracking.sweep import JOB_TAG, OVERRIDES_TAG, SWEEP_TAG, summary_lines


def test_one_line_per_job_and_no_part_runs(tmp_path: Path, mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)  # the session's store: its migrations run once
    experiment = client.create_experiment(f"sweep-summary-{tmp_path.name}")
    sweep = str(tmp_path / "multirun" / "sweep")

    def run(job: int, overrides: str, value: float, **tags: str) -> str:
        made = client.create_run(
            experiment, tags={SWEEP_TAG: sweep, JOB_TAG: str(job), OVERRIDES_TAG: overrides, **tags}
        )
        client.log_metric(made.info.run_id, "best/val/ndcg10", value)
        client.set_terminated(made.info.run_id, "FINISHED")
        return str(made.info.run_id)

    second = run(1, "model.combiner.buckets=2 seed=1", 0.25)
    first = run(0, "model.combiner.buckets=4 seed=1", 0.2)
    run(0, "model.combiner.buckets=4 seed=1", 0.9, **{"hybridrec.part": "ids"})  # job 0's part
    lines = summary_lines(client, sweep, "val/ndcg@10")
    assert lines[0] == f"sweep {sweep}: 2 runs; best/val/ndcg10 is the best validation score"
    assert [line.split()[1:3] for line in lines[1:]] == [["0", first], ["1", second]]
    assert lines[1].endswith("best/val/ndcg10=0.2000  model.combiner.buckets=4")
