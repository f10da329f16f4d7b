"""What mattered in a hyperparameter search: each searched setting's importance for the
study's objective, computed from the trials as MLflow holds them
(``hybridrec-runs plot importance --study NAME``).

The Optuna sweeper keeps its study in memory (``storage: null``; optuna 2.10's database
storage does not open under SQLAlchemy 2, and its fANOVA evaluator fails on scikit-learn
1.9's trees), so the importance is computed here from the study's runs:

- the searched settings are the overrides (run tag ``overrides``) whose values differ between
  the trials; each finished trial's value is the objective the sweeper optimised,
  ``best/<monitor>`` (failed trials have none and are left out);
- a setting's importance is the share of the objective's variance that its main effect
  explains, eta² = Σ_g n_g (ȳ_g − ȳ)² / Σ_i (y_i − ȳ)², the trials grouped by the setting's
  value (a numeric setting with more than ``BINS`` values tried: by quantile bins of them).
  This is the first-order term of a functional ANOVA (fANOVA's main effect) taken on the trials
  themselves, without a surrogate model: exact for a grid, rough for a few random trials;
- by chance alone a setting with k groups over n trials gets (k − 1) / (n − 1) on average:
  that level is shown beside each bar, and only what stands above it means anything.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridrec.errors import NotFoundError, QueryError
from hybridrec.tracking.mlflow_run import mlflow_key
from hybridrec.tracking.sweep import OVERRIDES_TAG, STUDY_TAG, parse_overrides
from hybridrec.tracking.tags import PART_TAG

#: fewer finished trials than this cannot say anything about importance
MIN_TRIALS = 3
#: a numeric setting with more values tried than this is grouped into this many quantile bins
BINS = 4


def study_trials(
    runs: Sequence[Any], metric: str | None = None
) -> tuple[list[dict[str, str]], list[float], str]:
    """(searched settings per finished trial, their objective values, the objective's MLflow
    name) from a study's runs. ``metric``: the objective (default ``best/<monitor>``)."""
    runs = [r for r in runs if PART_TAG not in r.data.tags]  # a hybrid's parts
    if not runs:
        raise NotFoundError("no run of this study (tag hybridrec.study) was found")
    studies = sorted({str(r.data.tags.get(STUDY_TAG, "")) for r in runs})
    if len(studies) != 1 or not studies[0]:
        raise QueryError(f"importance is computed for one study (--study NAME); got {studies}")
    if metric is None:
        monitors = {r.data.params.get("monitor") for r in runs} - {None}
        if len(monitors) != 1:
            raise QueryError(
                f"study {studies[0]}: trials with monitors {sorted(monitors)}; give --metrics"
            )
        metric = f"best/{monitors.pop()}"
    key = mlflow_key(metric)
    finished = [
        r
        for r in runs
        if r.info.status == "FINISHED" and math.isfinite(r.data.metrics.get(key, math.nan))
    ]
    if len(finished) < MIN_TRIALS:
        raise QueryError(
            f"study {studies[0]}: {len(finished)} finished trial(s) with {key}; importance "
            f"needs at least {MIN_TRIALS}"
        )
    overrides = [
        {k.lstrip("+~"): v for k, v in parse_overrides(r.data.tags.get(OVERRIDES_TAG, "")).items()}
        for r in finished
    ]
    keys = sorted({k for trial in overrides for k in trial})
    searched = [k for k in keys if len({trial.get(k) for trial in overrides}) > 1]
    if not searched:
        raise QueryError(f"study {studies[0]}: no setting differs between its finished trials")
    params = [{k: trial.get(k, "") for k in searched} for trial in overrides]
    return params, [float(r.data.metrics[key]) for r in finished], key


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _groups(values: Sequence[str]) -> list[int]:
    """The group of each trial: its value, or for a numeric setting with more than ``BINS``
    values tried, the quantile bin of its value (ties share a bin)."""
    if len(set(values)) <= BINS or not all(_is_number(v) for v in values):
        index = {v: i for i, v in enumerate(sorted(set(values)))}
        return [index[v] for v in values]
    order = sorted(float(v) for v in values)
    edges = [order[min(len(order) - 1, (len(order) * b) // BINS)] for b in range(1, BINS)]
    return [sum(float(v) >= e for e in edges) for v in values]


def param_importances(
    params: Sequence[dict[str, str]], values: Sequence[float]
) -> dict[str, tuple[float, float]]:
    """Per setting (largest importance first): (eta², the level chance alone gives), for
    ``values`` (one per trial) and ``params`` (one dict per trial, the same keys)."""
    n = len(values)
    mean = sum(values) / n
    total = sum((y - mean) ** 2 for y in values)
    found: dict[str, tuple[float, float]] = {}
    for key in params[0]:
        groups = _groups([p[key] for p in params])
        members: dict[int, list[float]] = {}
        for group, y in zip(groups, values, strict=True):
            members.setdefault(group, []).append(y)
        between = sum(len(ys) * (sum(ys) / len(ys) - mean) ** 2 for ys in members.values())
        found[key] = (between / total if total > 0 else 0.0, (len(members) - 1) / (n - 1))
    return dict(sorted(found.items(), key=lambda item: -item[1][0]))


def plot_importance(
    importances: dict[str, tuple[float, float]], study: str, metric: str, n_trials: int, out: Path
) -> list[Path]:
    """A bar per setting (most important on top), the chance level marked on it, and the same
    numbers as CSV: ``importance_<study>.png`` and ``.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = list(importances)[::-1]  # barh draws bottom-up
    figure, axis = plt.subplots(figsize=(6.5, 1.4 + 0.45 * len(names)))
    axis.barh(names, [importances[n][0] for n in names], color="tab:blue")
    for y, name in enumerate(names):
        share, chance = importances[name]
        axis.plot([chance, chance], [y - 0.4, y + 0.4], color="black", linestyle="--")
        axis.annotate(
            f"{share:.2f}", (share, y), xytext=(3, -3), textcoords="offset points", fontsize=8
        )
    axis.set_xlim(0, 1.08)
    axis.set_xlabel("eta²: share of the objective's variance; dashed: chance level", fontsize=9)
    axis.set_title(
        f"study {study}: what moved {metric}\n(main effects over {n_trials} finished trials)",
        fontsize=10,
    )
    axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    png = out / f"importance_{study}.png"
    figure.savefig(png, dpi=120)
    plt.close(figure)
    table = out / f"importance_{study}.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["setting", "eta2", "chance"])
        writer.writerows([k, f"{v[0]:.6f}", f"{v[1]:.6f}"] for k, v in importances.items())
    return [png, table]
