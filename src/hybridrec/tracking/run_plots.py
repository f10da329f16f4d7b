"""Plots of compared runs (PNG, matplotlib): learning curves per epoch, a metric against a
swept param, and the accuracy-vs-marketer-agreement front. Used by ``hybridrec-runs plot``,
which draws each (protocol, data fingerprint) group on plots of its own: numbers measured under
different protocols or on different data are never put side by side unless asked."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path

from mlflow.tracking import MlflowClient

from hybridrec.errors import QueryError
from hybridrec.tracking.compare import RunRecord, differing, ranked_params, rows
from hybridrec.tracking.front import AGREEMENT

#: the metric Lightning logs beside every other one, holding the epoch it was logged in
EPOCH_KEY = "epoch"
#: settings a curve's label names at most
LABEL_PARAMS = 3


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_title(rec: RunRecord) -> str:
    """The run's name, with its model's class in front when the name does not start with the
    model (``mf-synthetic-loo_full`` names it; a custom ``logger.run_name`` may not)."""
    name = rec.name or rec.run_id[:8]
    model, first = rec.model.lower(), re.split(r"[-_ .]", name.lower())[0]
    if model and not (first.startswith(model) or model.startswith(first)):
        return f"{rec.model} {name}"
    return name


def curve_labels(records: Sequence[RunRecord]) -> dict[str, str]:
    """Run id -> legend label: the run (model first, :func:`run_title`), then the settings that
    differ between ``records`` as overrides (``model.dim=64``), model settings first, at most
    ``LABEL_PARAMS``; the short run id added where two labels would read the same."""
    keys = [k for k in differing(records) if k != "model/_target_"]  # the title names it
    keys = ranked_params(records, keys)[:LABEL_PARAMS]
    labels = {}
    for rec in records:
        settings = [f"{k.replace('/', '.')}={rec.params[k]}" for k in keys if k in rec.params]
        labels[rec.run_id] = " ".join([run_title(rec), *settings])
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {
        run_id: label if seen[label] == 1 else f"{label} ({run_id[:8]})"
        for run_id, label in labels.items()
    }


def epoch_points(client: MlflowClient, run_id: str, metric: str) -> list[tuple[float, float, int]]:
    """(epoch, value, step) of every logged value of ``metric``, by epoch. Lightning logs at
    its global step, with an ``epoch`` metric in the same call (same step and timestamp): that
    is the entry's epoch. Entries without one (``time/…`` and throughput metrics, logged with
    step = epoch; runs logged by hand) keep their step."""
    history = client.get_metric_history(run_id, metric)
    if not history:
        return []
    epochs = {(m.step, m.timestamp): m.value for m in client.get_metric_history(run_id, EPOCH_KEY)}
    points = [
        (float(epochs.get((m.step, m.timestamp), m.step)), m.value, m.step, m.timestamp)
        for m in history
    ]
    points.sort(key=lambda p: (p[0], p[3], p[2]))
    return [(epoch, value, step) for epoch, value, step, _ in points]


def _safe(metric: str) -> str:
    return metric.replace("/", "_").replace("@", "")


def _titled(title: str, where: str) -> str:
    return f"{title}\n{where}" if where else title


def plot_curves(
    client: MlflowClient,
    records: Sequence[RunRecord],
    metrics: Sequence[str],
    out: Path,
    where: str = "",
    suffix: str = "",
) -> list[Path]:
    """Per metric, its history in every run against the epoch (:func:`epoch_points`), the epoch
    each run selected marked: ``curves_<metric><suffix>.png`` and the points behind it as
    ``.csv``. ``where``: a second title line (the protocol and data). Metrics no run logged
    get no file."""
    plt = _pyplot()
    labels = curve_labels(records)
    paths = []
    for metric in metrics:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        table: list[dict[str, object]] = []
        for rec in records:
            points = epoch_points(client, rec.run_id, metric)
            if not points:
                continue
            epochs = [epoch for epoch, _, _ in points]
            values = [value for _, value, _ in points]
            line = axis.plot(epochs, values, marker=".", label=labels[rec.run_id])
            selected = [(e, v) for e, v, step in points if step == rec.best_step]
            if selected:
                axis.plot(*selected[-1], "o", color=line[0].get_color())
            for epoch, value, step in points:
                table.append(
                    {
                        "run_id": rec.run_id,
                        "label": labels[rec.run_id],
                        "epoch": epoch,
                        "step": step,
                        "value": value,
                        "selected": step == rec.best_step,
                    }
                )
        if not table:
            plt.close(figure)
            continue
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(
            _titled(f"{metric} per epoch (dot: the epoch each run selected)", where), fontsize=10
        )
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = out / f"curves_{_safe(metric)}{suffix}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        with path.with_suffix(".csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        paths += [path, path.with_suffix(".csv")]
    return paths


def plot_param(
    records: Sequence[RunRecord],
    param: str,
    metrics: Sequence[str],
    out: Path,
    where: str = "",
    suffix: str = "",
) -> list[Path]:
    """Each metric against ``param`` (numeric when every value is), mean ± std over seeds,
    one line per protocol / dataset group: ``<metric>_vs_<param><suffix>.png``."""
    plt = _pyplot()
    missing = [r.run_id[:8] for r in records if param not in r.params]
    if missing:
        known = sorted({k for r in records for k in r.params})
        hint = [k for k in known if param.split("/")[-1] in k][:5]
        raise QueryError(
            f"param {param!r} is not logged by run(s) {', '.join(missing)}"
            + (f"; did you mean {', '.join(hint)}?" if hint else "")
        )
    paths = []
    for metric in metrics:
        figure, axis = plt.subplots(figsize=(6.5, 4.5))
        by_group: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
        for row in rows(records, [metric]):
            if metric not in row.mean:
                continue
            value = row.runs[0].params[param]
            by_group.setdefault(row.group, []).append((value, row.mean[metric], row.std[metric]))
        for group, points in by_group.items():
            numeric = all(_is_float(v) for v, _, _ in points)
            points.sort(key=lambda p: float(p[0]) if numeric else p[0])
            xs: list[float] | list[str] = (
                [float(v) for v, _, _ in points] if numeric else [v for v, _, _ in points]
            )
            axis.errorbar(
                xs,
                [m for _, m, _ in points],
                yerr=[s for _, _, s in points],
                fmt="o-",
                label=f"{group[0]} ({group[1][:8]})",
            )
        axis.set_xlabel(param)
        axis.set_ylabel(metric)
        axis.set_title(
            _titled(f"{metric} against {param} (mean ± std over seeds)", where), fontsize=10
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = out / f"{_safe(metric)}_vs_{_safe(param)}{suffix}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def plot_front(
    records: Sequence[RunRecord],
    out: Path,
    accuracy: str = "test/ndcg10",
    where: str = "",
    suffix: str = "",
) -> list[Path]:
    """Accuracy against held-out marketer agreement, one point per setting (mean over
    seeds), labelled by its differing params (model first): ``front<suffix>.png``. No file
    when no run measured agreement."""
    plt = _pyplot()
    found = [r for r in rows(records, [accuracy, AGREEMENT]) if AGREEMENT in r.mean]
    if not found:
        return []
    keys = ranked_params(records, list(found[0].setting))[:LABEL_PARAMS]
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for row in found:
        x, y = row.mean[AGREEMENT], row.mean.get(accuracy, math.nan)
        axis.errorbar(
            [x], [y], xerr=[row.std[AGREEMENT]], yerr=[row.std.get(accuracy, 0.0)], fmt="o"
        )
        label = " ".join(f"{k.replace('/', '.')}={row.setting[k]}" for k in keys)
        label = label or run_title(row.runs[0])
        axis.annotate(label[:60], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set_xlabel("held-out marketer agreement (by item, test)")
    axis.set_ylabel(accuracy)
    axis.set_title(_titled("Click accuracy vs agreement with marketers", where), fontsize=10)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path = out / f"front{suffix}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [path]


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
