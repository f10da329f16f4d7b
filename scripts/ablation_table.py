"""The hybrid's ablation grid as a markdown table and a bar plot, logged to MLflow.

    .venv/bin/hybridrec-train --multirun model=hybrid model.combine=joint \\
        datamodule=next_item loss=xe protocol=loo_full \\
        ablation=id_id,id_text,id_both,seq_id,seq_text,seq_both,both_id,both_text,both_both
    .venv/bin/python scripts/ablation_table.py            # the newest sweep under multirun/
    .venv/bin/python scripts/ablation_table.py --sweep multirun/2026-11-26_13-00-00

Reads the sweep's runs through the MLflow client (tags ``sweep`` and ``overrides`` written by
hybridrec-train; any tracking URI: ``--tracking-uri`` or MLFLOW_TRACKING_URI, default the local
SQLite store), one row per ablation: the user side, the item side, the best validation score
the run selected on, and the test metrics of that checkpoint (per cold / warm slice too under
cold_items). Writes ``ablation.md`` and ``ablation.png`` (test metrics per ablation) into
``--out`` and logs both to a summary run (tag ``kind=ablation_summary``) in the sweep's MLflow
experiment.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from hybridrec.tracking import JOB_TAG, OVERRIDES_TAG, SWEEP_TAG, sweep_id  # noqa: E402

USER_SIDES = {"id": "user ID", "seq": "GRU history", "both": "user ID + GRU"}
ITEM_SIDES = {"id": "item ID", "text": "text", "both": "ID + text (gate)"}
ORDER = [f"{u}_{i}" for u in USER_SIDES for i in ITEM_SIDES]
METRICS = ["test/hr10", "test/ndcg10", "test/cold/hr10", "test/warm/hr10"]


def newest_sweep(root: Path) -> Path:
    sweeps = sorted(p for p in (root / "multirun").glob("*") if p.is_dir())
    if not sweeps:
        raise SystemExit(f"no sweep folder under {root / 'multirun'}: run the multirun first")
    return sweeps[-1]


def ablation_of(overrides: str) -> str:
    for item in overrides.split(" "):
        if item.startswith("ablation="):
            return item.split("=", 1)[1]
    return "(default: both_both)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", type=Path, help="the sweep folder (default: the newest)")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
    )
    parser.add_argument("--out", type=Path, default=Path("bench/ablation"))
    args = parser.parse_args()
    sweep = sweep_id(args.sweep or newest_sweep(Path.cwd()))
    client = MlflowClient(tracking_uri=args.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.{SWEEP_TAG} = '{sweep}'")
    runs = [r for r in runs if r.data.tags.get("kind") != "ablation_summary"]
    if not runs:
        raise SystemExit(f"no MLflow run in {args.tracking_uri} is tagged with sweep {sweep}")
    monitor = next((k for k in runs[0].data.metrics if k.startswith("best/")), "best/?")
    rows = []
    for run in runs:
        name = ablation_of(run.data.tags.get(OVERRIDES_TAG, ""))
        rows.append((name, run))
    rows.sort(key=lambda row: ORDER.index(row[0]) if row[0] in ORDER else len(ORDER))
    shown = [m for m in METRICS if any(m in run.data.metrics for _, run in rows)]
    protocols = {run.data.tags.get("protocol", "?") for _, run in rows}
    header = ["ablation", "user side", "item side", monitor, *shown, "job", "run"]
    lines = [
        f"Ablation sweep `{sweep}` ({len(rows)} runs, protocol {', '.join(sorted(protocols))})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, run in rows:
        user, _, item = name.partition("_")
        values = [run.data.metrics.get(m) for m in [monitor, *shown]]
        cells = [f"{v:.4f}" if v is not None else "-" for v in values]
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    USER_SIDES.get(user, "?"),
                    ITEM_SIDES.get(item, "?"),
                    *cells,
                    run.data.tags.get(JOB_TAG, "?"),
                    run.info.run_id[:8],
                ]
            )
            + " |"
        )
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    markdown, plot = args.out / "ablation.md", args.out / "ablation.png"
    markdown.write_text(table)

    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    width = 0.8 / len(shown)
    for k, metric in enumerate(shown):
        heights = [run.data.metrics.get(metric, 0.0) for _, run in rows]
        positions = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(rows))]
        axis.bar(positions, heights, width, label=metric)
    axis.set_xticks(range(len(rows)))
    axis.set_xticklabels([name for name, _ in rows], rotation=30, ha="right")
    axis.set_ylabel("test metric")
    axis.set_title("Hybrid ablation: user side _ item side")
    axis.legend()
    figure.tight_layout()
    figure.savefig(plot, dpi=120)
    plt.close(figure)

    summary = client.create_run(
        runs[0].info.experiment_id,
        run_name="ablation-summary",
        tags={SWEEP_TAG: sweep, "kind": "ablation_summary"},
    )
    for path in (markdown, plot):
        client.log_artifact(summary.info.run_id, str(path))
    client.set_terminated(summary.info.run_id, "FINISHED")
    print(table)
    print(f"wrote {markdown} and {plot}; logged to MLflow run {summary.info.run_id}")


if __name__ == "__main__":
    main()
