"""Plots of compared runs (PNG, matplotlib): learning curves, a metric against a swept param,
and the accuracy-vs-marketer-agreement front. Used by ``hybridrec-runs plot``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mlflow.tracking import MlflowClient

from hybridrec.tracking.compare import RunRecord, differing, rows
from hybridrec.tracking.front import AGREEMENT


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(rec: RunRecord, keys: Sequence[str]) -> str:
    shown = " ".join(f"{k.rsplit('/', 1)[-1]}={rec.params.get(k, '-')}" for k in keys[:3])
    return f"{rec.run_id[:8]} {shown}".strip()


def _safe(metric: str) -> str:
    return metric.replace("/", "_").replace("@", "")


def plot_curves(
    client: MlflowClient, records: Sequence[RunRecord], metrics: Sequence[str], out: Path
) -> list[Path]:
    """One PNG per metric: its per-epoch history in every run (x = step as logged), the step
    each run selected marked."""
    plt = _pyplot()
    keys = differing(records)
    paths = []
    for metric in metrics:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        drawn = 0
        for rec in records:
            history = sorted(client.get_metric_history(rec.run_id, metric), key=lambda m: m.step)
            if not history:
                continue
            steps = [m.step for m in history]
            line = axis.plot(steps, [m.value for m in history], label=_label(rec, keys))
            if rec.best_step is not None and rec.best_step in steps:
                value = history[steps.index(rec.best_step)].value
                axis.plot([rec.best_step], [value], "o", color=line[0].get_color())
            drawn += 1
        if drawn == 0:
            plt.close(figure)
            continue
        axis.set_xlabel("step")
        axis.set_ylabel(metric)
        axis.set_title(f"{metric} per epoch (dot: the epoch each run selected)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = out / f"curves_{_safe(metric)}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    if not paths:
        raise LookupError(f"none of the runs logged {', '.join(metrics)}")
    return paths


def plot_param(
    records: Sequence[RunRecord], param: str, metrics: Sequence[str], out: Path
) -> list[Path]:
    """Each metric against ``param`` (numeric when every value is), mean ± std over seeds,
    one line per protocol / dataset group."""
    plt = _pyplot()
    missing = [r.run_id[:8] for r in records if param not in r.params]
    if missing:
        known = sorted({k for r in records for k in r.params})
        hint = [k for k in known if param.split("/")[-1] in k][:5]
        raise ValueError(
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
        axis.set_title(f"{metric} against {param} (mean ± std over seeds)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = out / f"{_safe(metric)}_vs_{_safe(param)}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def plot_front(
    records: Sequence[RunRecord], out: Path, accuracy: str = "test/ndcg10"
) -> list[Path]:
    """Accuracy against held-out marketer agreement, one point per setting (mean over
    seeds), labelled by its differing params."""
    plt = _pyplot()
    found = [r for r in rows(records, [accuracy, AGREEMENT]) if AGREEMENT in r.mean]
    if not found:
        raise LookupError(f"no run logged {AGREEMENT} (runs on data with judgments do)")
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for row in found:
        x, y = row.mean[AGREEMENT], row.mean.get(accuracy, math.nan)
        axis.errorbar(
            [x], [y], xerr=[row.std[AGREEMENT]], yerr=[row.std.get(accuracy, 0.0)], fmt="o"
        )
        label = " ".join(f"{k.rsplit('/', 1)[-1]}={v}" for k, v in row.setting.items())
        axis.annotate(label[:40], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set_xlabel("held-out marketer agreement (by item, test)")
    axis.set_ylabel(accuracy)
    axis.set_title("Click accuracy vs agreement with marketers")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path = out / "front.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [path]


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
