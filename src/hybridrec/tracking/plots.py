"""Plots a run logs to MLflow (PNG, with the numbers behind them as CSV).

``gate_by_popularity``: the hybrid's explanation of its item side — for items grouped by how
often they were trained on (never; then quartiles of the others), the distribution of the
gate g, the share of an item's vector that comes from its ID embedding (the rest comes from
its text). A healthy hybrid leans on text for rare items and on IDs for popular ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def popularity_buckets(counts: np.ndarray) -> np.ndarray:
    """(N,) training counts -> (N,) labels: ``cold (0)``, then quartiles of the warm items'
    counts, each labelled with the counts it holds (``3-7``)."""
    labels = np.full(counts.shape[0], "cold (0)", dtype=object)
    warm = counts > 0
    if warm.any():
        bins = pd.qcut(counts[warm], 4, duplicates="drop")  # intervals (left, right]
        labels[warm] = [f"{int(np.floor(b.left)) + 1}-{int(b.right)}" for b in bins]
    return labels


def gate_table(gates: np.ndarray, counts: np.ndarray) -> pd.DataFrame:
    """Per popularity bucket: items, mean / quartiles of the gate (ID share)."""
    frame = pd.DataFrame({"bucket": popularity_buckets(counts), "gate": gates, "count": counts})
    grouped = frame.groupby("bucket", sort=False)
    table = grouped.agg(
        items=("gate", "size"),
        min_count=("count", "min"),
        mean_gate=("gate", "mean"),
        q25=("gate", lambda g: float(np.quantile(g, 0.25))),
        median=("gate", "median"),
        q75=("gate", lambda g: float(np.quantile(g, 0.75))),
    )
    return table.sort_values("min_count").reset_index()


def gate_by_popularity(gates: np.ndarray, counts: np.ndarray, folder: Path) -> list[Path]:
    """Write ``gate_by_popularity.png`` and ``.csv`` into ``folder``; returns both paths."""
    table = gate_table(gates, counts)
    buckets = popularity_buckets(counts)
    figure, axis = plt.subplots(figsize=(7, 4))
    data = [gates[buckets == label] for label in table["bucket"]]
    axis.boxplot(data, showmeans=True)
    axis.set_xticks(range(1, len(data) + 1))
    axis.set_xticklabels([f"{b}\n{n} items" for b, n in zip(table["bucket"], table["items"])])
    axis.set_xlabel("training interactions per item")
    axis.set_ylabel("gate g: ID share of the item vector")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title("Hybrid item side: ID vs text by item popularity")
    figure.tight_layout()
    png, csv = folder / "gate_by_popularity.png", folder / "gate_by_popularity.csv"
    figure.savefig(png, dpi=120)
    plt.close(figure)
    table.to_csv(csv, index=False)
    return [png, csv]


def log_gate_by_popularity(
    client: MlflowClient, run_id: str, gates: np.ndarray, counts: np.ndarray
) -> None:
    """Log the plot and its table under the run's ``explanations/`` artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        for path in gate_by_popularity(gates, counts, Path(tmp)):
            client.log_artifact(run_id, str(path), artifact_path="explanations")
