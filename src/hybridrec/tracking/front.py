"""The accuracy-vs-marketer-agreement front of a lambda sweep: a table, a CSV and a plot.

A Hydra multirun over ``judgment.weight`` (and anything else) tags each job's MLflow run with
the sweep; :func:`write_front` reads those runs back through the MLflow client (any tracking
URI), groups them by the overrides that differ between jobs other than the seed (repeated seeds
become mean ± std), and writes

    front.md   one row per setting: lambda, test ranking metric, held-out agreement (by item,
               cold items, by rater) and Kendall tau, whether the row is on the Pareto front
    front.csv  the same numbers, one column per metric (mean and std)
    front.png  agreement (x) against the ranking metric (y), the front joined, lambda labelled

and logs the three files to a summary run (tag ``kind=judgment_front``) in the sweep's MLflow
experiment. The sweep callback calls it at the end of every multirun whose runs measured
agreement, so one ``hybridrec-train -m ... judgment.weight=0,0.3,1,3`` command gives the front;
``scripts/judgment_front.py`` redraws it for an earlier sweep. How a team picks lambda from it:
docs/judgments.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from hybridrec.tracking.sweep import JOB_TAG, OVERRIDES_TAG, SWEEP_TAG, parse_overrides

AGREEMENT = "test/marketer_agreement"
COLUMNS = [
    AGREEMENT,
    "test/kendall_tau",
    "test/cold/marketer_agreement",
    "test/by_rater/marketer_agreement",
]
SUMMARY_KIND = "judgment_front"


@dataclass
class FrontRow:
    """One setting of the sweep: its label (the differing overrides), lambda, its runs and the
    mean / std of each metric over them."""

    label: str
    weight: float
    runs: list[str]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    on_front: bool = False


def sweep_runs(client: MlflowClient, sweep: str) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments, filter_string=f"tags.{SWEEP_TAG} = '{sweep}'", max_results=10_000
    )
    return [r for r in runs if r.data.tags.get("kind") != SUMMARY_KIND]


def front_rows(runs: list[Any], accuracy: str) -> list[FrontRow]:
    """Group FINISHED runs by their differing overrides (seed aside); Pareto-flag the groups on
    (mean agreement, mean accuracy), both higher-is-better."""
    finished = [r for r in runs if r.info.status == "FINISHED" and AGREEMENT in r.data.metrics]
    overrides = [parse_overrides(r.data.tags.get(OVERRIDES_TAG, "")) for r in finished]
    keys = sorted({key for job in overrides for key in job})
    differing = [k for k in keys if k != "seed" and len({job.get(k) for job in overrides}) > 1]
    groups: dict[str, list[Any]] = {}
    for run, job in zip(finished, overrides, strict=True):
        label = " ".join(f"{k}={job.get(k, '-')}" for k in differing) or "(one setting)"
        groups.setdefault(label, []).append(run)
    rows = []
    for label, members in groups.items():
        weight = float(members[0].data.params.get("judgment/weight", "0") or 0)
        row = FrontRow(label, weight, [r.info.run_id for r in members])
        for metric in [accuracy, *COLUMNS]:
            values = [r.data.metrics[metric] for r in members if metric in r.data.metrics]
            values = [v for v in values if not math.isnan(v)]
            if values:
                row.mean[metric] = float(np.mean(values))
                row.std[metric] = float(np.std(values)) if len(values) > 1 else 0.0
        rows.append(row)
    rows.sort(key=lambda r: (r.weight, r.label))
    for row in rows:
        a, y = row.mean.get(AGREEMENT, -math.inf), row.mean.get(accuracy, -math.inf)
        row.on_front = not any(
            o.mean.get(AGREEMENT, -math.inf) >= a
            and o.mean.get(accuracy, -math.inf) >= y
            and (o.mean.get(AGREEMENT, -math.inf) > a or o.mean.get(accuracy, -math.inf) > y)
            for o in rows
        )
    return rows


def _cell(row: FrontRow, metric: str) -> str:
    if metric not in row.mean:
        return "-"
    text = f"{row.mean[metric]:.4f}"
    return text + (f" ± {row.std[metric]:.4f}" if len(row.runs) > 1 else "")


def front_table(rows: list[FrontRow], accuracy: str, sweep: str) -> str:
    header = ["setting", "lambda", accuracy, *COLUMNS, "front", "runs"]
    lines = [
        f"Accuracy vs marketer agreement, sweep `{sweep}` (test split; mean ± std over seeds "
        "where repeated)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = [_cell(row, m) for m in [accuracy, *COLUMNS]]
        runs = ", ".join(r[:8] for r in row.runs)
        front = "yes" if row.on_front else ""
        lines.append(
            f"| {row.label} | {row.weight:g} | " + " | ".join(cells) + f" | {front} | {runs} |"
        )
    return "\n".join(lines) + "\n"


def _plot(rows: list[FrontRow], accuracy: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    xs = [r.mean.get(AGREEMENT, math.nan) for r in rows]
    ys = [r.mean.get(accuracy, math.nan) for r in rows]
    xerr = [r.std.get(AGREEMENT, 0.0) for r in rows]
    yerr = [r.std.get(accuracy, 0.0) for r in rows]
    axis.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o", color="tab:blue", alpha=0.8)
    front = sorted((x, y) for x, y, r in zip(xs, ys, rows, strict=True) if r.on_front)
    if front:
        axis.plot(*zip(*front, strict=True), "-", color="tab:orange", label="Pareto front")
    for x, y, row in zip(xs, ys, rows, strict=True):
        axis.annotate(f"λ={row.weight:g}", (x, y), textcoords="offset points", xytext=(5, 5))
    axis.set_xlabel("held-out marketer agreement (by item, test)")
    axis.set_ylabel(accuracy)
    axis.set_title("Click accuracy vs agreement with marketers")
    axis.grid(alpha=0.3)
    if front:
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_front(
    client: MlflowClient, sweep: str, out: Path, accuracy: str = "test/ndcg10"
) -> tuple[list[Path], str | None]:
    """Write front.md / .csv / .png for ``sweep`` into ``out`` and log them to a summary run;
    returns (the files, the summary run id). No file when no run of the sweep measured
    agreement."""
    runs = sweep_runs(client, sweep)
    rows = front_rows(runs, accuracy)
    if not rows:
        return [], None
    out.mkdir(parents=True, exist_ok=True)
    table = front_table(rows, accuracy, sweep)
    markdown, csv, plot = out / "front.md", out / "front.csv", out / "front.png"
    markdown.write_text(table)
    records = []
    for row in rows:
        record: dict[str, Any] = {"setting": row.label, "lambda": row.weight}
        for metric in [accuracy, *COLUMNS]:
            record[metric] = row.mean.get(metric)
            record[f"{metric} std"] = row.std.get(metric)
        record["front"] = row.on_front
        record["runs"] = " ".join(row.runs)
        records.append(record)
    pd.DataFrame(records).to_csv(csv, index=False)
    _plot(rows, accuracy, plot)
    first = next(r for r in runs if r.info.run_id == rows[0].runs[0])
    summary = client.create_run(
        first.info.experiment_id,
        run_name="judgment-front",
        tags={SWEEP_TAG: sweep, "kind": SUMMARY_KIND, JOB_TAG: "summary"},
    )
    for path in (markdown, csv, plot):
        client.log_artifact(summary.info.run_id, str(path))
    client.set_terminated(summary.info.run_id, "FINISHED")
    return [markdown, csv, plot], summary.info.run_id
