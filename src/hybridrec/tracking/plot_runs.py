"""``hybridrec-runs plot`` (:mod:`hybridrec.cli.runs`): curves, a param sweep, the
accuracy-vs-agreement front or a study's importances, as PNG files written to a folder and
logged to a summary MLflow run; the drawing is :mod:`hybridrec.tracking.run_plots` and
:mod:`hybridrec.tracking.importance`. MLflow loads when a plot is made, not on import.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hybridrec.errors import NotFoundError, QueryError
from hybridrec.tracking.selection import records, select_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking.compare import RunRecord


def plot_runs(args: argparse.Namespace, client: MlflowClient) -> None:
    """``plot KIND``: one plot per (protocol, data) group unless ``--mix``; the paths printed."""
    from hybridrec.tracking.front import AGREEMENT
    from hybridrec.tracking.lambda_front import lambda_fronts
    from hybridrec.tracking.mlflow_run import mlflow_key
    from hybridrec.tracking.run_plots import plot_curves, plot_front, plot_param

    if args.kind == "importance":
        plot_study_importance(args, client)
        return
    args.metrics_given = args.metrics is not None
    args.metrics = args.metrics or "val/ndcg@10"
    metrics = [mlflow_key(m.strip()) for m in args.metrics.split(",") if m.strip()]
    if args.kind == "front":
        metrics = [AGREEMENT, *metrics] if args.metrics_given else [AGREEMENT, "test/ndcg10"]
    found = select_runs(args, client)
    recs = records(client, found, metrics)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "param" and not args.x_param:
        raise QueryError("plot param needs --x KEY (e.g. --x judgment/weight)")
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for rec in recs:  # never two protocols or datasets on one plot, unless --mix
        groups.setdefault(("(mixed)", "(mixed)") if args.mix else rec.group, []).append(rec)
    if len(groups) > 1:
        print(
            f"{len(groups)} groups (protocol, data fingerprint): one plot each, never mixed; "
            "--mix draws them on one"
        )
    paths = []
    for group, members in sorted(groups.items()):
        several = len(groups) > 1
        suffix = f"_{group[0]}_{group[1][:8]}" if several else ""
        where = "" if args.mix else f"protocol {group[0]}, data {group[1][:8]}"
        if args.kind == "curves":
            paths += plot_curves(client, members, metrics, args.out, where, suffix)
        elif args.kind == "param":
            paths += plot_param(members, args.x_param, metrics, args.out, where, suffix)
        else:
            accuracy = metrics[1] if len(metrics) > 1 else "test/ndcg10"
            drawn = plot_front(members, args.out, accuracy, where, suffix)
            if not drawn and several:
                print(f"{group[0]}, data {group[1][:8]}: no run logged {AGREEMENT}; no front")
            paths += drawn
    if args.kind == "front":  # with --evals: hybridrec-eval --lambdas runs, one checkpoint each
        paths += lambda_fronts(client, found, recs, args.out, metrics[1])
    if not paths:
        raise NotFoundError(
            f"no run logged {AGREEMENT} (runs on data with judgments do)"
            if args.kind == "front"
            else f"none of the runs logged {', '.join(metrics)}"
        )
    for path in paths:
        print(f"wrote {path}")
    if not args.no_log:
        first = client.get_run(recs[0].run_id)
        summary = client.create_run(
            first.info.experiment_id, run_name=f"plot-{args.kind}", tags={"kind": "runs_plot"}
        )
        for path in paths:
            client.log_artifact(summary.info.run_id, str(path))
        client.set_terminated(summary.info.run_id, "FINISHED")
        print(f"logged to MLflow run {summary.info.run_id}")


def plot_study_importance(args: argparse.Namespace, client: MlflowClient) -> None:
    """``plot importance --study NAME``: each searched setting's share of the variance of the
    study's objective over its finished trials (:mod:`hybridrec.tracking.importance`)."""
    from hybridrec.tracking.importance import param_importances, plot_importance, study_trials

    if not args.study:
        raise QueryError("plot importance needs --study NAME (an hparams_search study)")
    found = select_runs(args, client)
    params, values, metric = study_trials(found, args.metrics)
    importances = param_importances(params, values)
    width = max(len(k) for k in importances)
    print(f"study {args.study}: {metric} over {len(values)} finished trials")
    print(f"  {'setting':<{width}}  eta²    chance")
    for key, (share, chance) in importances.items():
        print(f"  {key:<{width}}  {share:.3f}   {chance:.3f}")
    paths = plot_importance(importances, args.study, metric, len(values), args.out)
    for path in paths:
        print(f"wrote {path}")
    if not args.no_log:
        summary = client.create_run(
            found[0].info.experiment_id, run_name="plot-importance", tags={"kind": "runs_plot"}
        )
        for path in paths:
            client.log_artifact(summary.info.run_id, str(path))
        client.set_terminated(summary.info.run_id, "FINISHED")
        print(f"logged to MLflow run {summary.info.run_id}")
