"""The accuracy-vs-agreement front of ONE checkpoint, over lambda chosen at serving time.

``hybridrec-eval RUN --lambdas 0,0.1,0.3,1,3`` tests a run trained with a judgment head once per
lambda, ranking by ``z(s(u, i)) + lambda z(s_J(c, i))`` (each standardised per row,
docs/judgments.md), and hands the results here:

    front.csv / front.json   one row per lambda: the test ranking metrics, held-out agreement
                             (by item, cold items, by rater), Kendall tau, the head's own
                             agreement (lambda -> infinity) and whether the row is on the front
    front.png                agreement (x) against the ranking metric (y), lambda labelled

The eval run carries the tag ``hybridrec.front=lambda`` and the files under ``front/``;
``hybridrec-runs plot front`` draws such a run's curve next to the one-run-per-lambda points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

FRONT_TAG = "hybridrec.front"
FRONT_KIND = "lambda"
ARTIFACT_DIR = "front"
AGREEMENT = "test/marketer_agreement"
#: the columns of a front row, after ``lambda`` (metric names as the test loop logs them)
COLUMNS = (
    "test/hr@10",
    "test/ndcg@10",
    AGREEMENT,
    "test/cold/marketer_agreement",
    "test/by_rater/marketer_agreement",
    "test/kendall_tau",
    "test/head/marketer_agreement",
    "test/head/cold/marketer_agreement",
)


def parse_lambdas(text: str) -> list[float]:
    """``"0,0.3,1"`` -> [0.0, 0.3, 1.0]; ValueError with one sentence for anything else."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(
                f"--lambdas {text!r}: expected numbers >= 0 separated by commas (e.g. 0,0.3,1)"
            ) from None
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"--lambdas {text!r}: {part} is not a finite number >= 0")
        values.append(value)
    return values


def front_rows(results: dict[float, dict[str, float]], accuracy: str) -> list[dict[str, Any]]:
    """lambda -> test metrics => rows (by lambda), Pareto-flagged on (agreement, accuracy)."""
    rows: list[dict[str, Any]] = []
    for lam in sorted(results):
        metrics = results[lam]
        row: dict[str, Any] = {"lambda": lam}
        for column in dict.fromkeys([accuracy, *COLUMNS]):
            row[column] = metrics.get(column, math.nan)
        rows.append(row)
    for row in rows:
        a, y = row[AGREEMENT], row[accuracy]
        row["front"] = not any(
            o[AGREEMENT] >= a and o[accuracy] >= y and (o[AGREEMENT] > a or o[accuracy] > y)
            for o in rows
        )
    return rows


def front_markdown(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            f"{v:.4f}" if isinstance(v, float) and k != "lambda" else str(v) for k, v in row.items()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_front(rows: list[dict[str, Any]], out: Path, accuracy: str) -> list[Path]:
    """front.csv, front.json, front.md and front.png for ``rows`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csv, as_json, markdown = out / "front.csv", out / "front.json", out / "front.md"
    pd.DataFrame(rows).to_csv(csv, index=False)
    as_json.write_text(json.dumps({"accuracy": accuracy, "rows": rows}, indent=1))
    markdown.write_text(front_markdown(rows))
    return [csv, as_json, markdown, plot_front(rows, out / "front.png", accuracy)]


def plot_front(
    rows: list[dict[str, Any]], path: Path, accuracy: str, axis: Any = None, label: str = ""
) -> Path:
    """Agreement (x) against ``accuracy`` (y), one point per lambda joined in lambda order;
    drawn on ``axis`` when given (the caller saves), else into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = None
    if axis is None:
        figure, axis = plt.subplots(figsize=(6.5, 4.5))
    xs = [r[AGREEMENT] for r in rows]
    ys = [r[accuracy] for r in rows]
    axis.plot(xs, ys, "o-", label=label or "one checkpoint, lambda at serving time")
    for x, y, row in zip(xs, ys, rows, strict=True):
        axis.annotate(f"λ={row['lambda']:g}", (x, y), textcoords="offset points", xytext=(4, 4))
    if figure is not None:
        axis.set_xlabel("held-out marketer agreement (by item, test)")
        axis.set_ylabel(accuracy)
        axis.set_title("Click accuracy vs agreement, one checkpoint over lambda", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
    return path


def read_front(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(accuracy metric, rows) from a front.json."""
    saved = json.loads(path.read_text())
    return str(saved["accuracy"]), list(saved["rows"])


def plot_lambda_runs(
    client: Any,
    runs: list[Any],
    out: Path,
    accuracy: str,
    points: list[tuple[str, float, float]] | None = None,
    suffix: str = "",
) -> list[Path]:
    """``front_lambda<suffix>.png``: the front of each ``hybridrec-eval --lambdas`` run (its
    ``front/front.json``), one curve each, with ``points`` (label, agreement, accuracy: the
    runs trained one per lambda) beside them. ``accuracy`` as MLflow names it (test/ndcg10)."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridrec.tracking import mlflow_key

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    drawn = 0
    for run in runs:
        with tempfile.TemporaryDirectory() as folder:
            local = client.download_artifacts(run.info.run_id, f"{ARTIFACT_DIR}/front.json", folder)
            _, rows = read_front(Path(local))
        named = [{mlflow_key(k): v for k, v in row.items()} for row in rows]
        if not named or accuracy not in named[0]:
            continue
        for row, original in zip(named, rows, strict=True):
            row["lambda"], row[AGREEMENT] = original["lambda"], original[AGREEMENT]
        label = f"{run.info.run_name or run.info.run_id[:8]} (one checkpoint)"
        plot_front(named, out / "unused.png", accuracy, axis=axis, label=label)
        drawn += 1
    if not drawn:
        plt.close(figure)
        return []
    for label, x, y in points or []:
        axis.plot([x], [y], "s", color="gray")
        axis.annotate(label[:40], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axis.set_xlabel("held-out marketer agreement (by item, test)")
    axis.set_ylabel(accuracy)
    axis.set_title("lambda at serving time (lines), one run per lambda (squares)", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / f"front_lambda{suffix}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [path]


def lambda_fronts(
    client: Any, runs: list[Any], records: list[Any], out: Path, accuracy: str
) -> list[Path]:
    """``hybridrec-runs plot front``'s part for the runs tagged ``hybridrec.front=lambda``
    among ``runs``, with the other runs' (agreement, accuracy) of ``records`` as points."""
    fronts = [r for r in runs if r.data.tags.get(FRONT_TAG) == FRONT_KIND]
    if not fronts:
        return []
    key = "test/marketer_agreement"
    points = [
        (r.name, r.metrics[key], r.metrics[accuracy])
        for r in records
        if key in r.metrics and accuracy in r.metrics
    ]
    return plot_lambda_runs(client, fronts, out, accuracy, points)
