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
