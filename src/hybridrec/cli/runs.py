"""hybridrec-runs: list, compare and plot MLflow runs, protocol-aware.

    hybridrec-runs list [-e EXPERIMENT] [--param KEY=VALUE] [--tag KEY=VALUE] [--filter MLFLOW]
                        [--run ID] [--fast-dev-runs] [--evals]
    hybridrec-runs compare [filters] [--metrics test/ndcg@10,...] [--sort METRIC] [--mix]
                           [--format table|markdown|csv] [--out FILE]
    hybridrec-runs plot curves|param|front [filters] [--metrics ...] [--x KEY] [--mix]
                        [--out DIR]
    hybridrec-runs compare --study mf_optuna   # an hparams_search study's trials, best first
    hybridrec-runs plot importance --study mf_optuna   # what moved its objective
    hybridrec-runs upload --from sqlite:///outputs/…/mlflow-fallback.db --to http://host:5000

Reads any tracking store through the MLflow client (``--tracking-uri``, else
MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db``). What "compare" adds to MLflow's UI is in
:mod:`hybridrec.tracking.compare`; the plots in :mod:`hybridrec.tracking.run_plots`. A run id
is printed in full by ``list`` and as its shortest unique prefix (8 digits or more) elsewhere;
every command takes any unique prefix back (:mod:`hybridrec.tracking.run_ids`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hybridrec.errors import HybridrecError, NotFoundError, QueryError
from hybridrec.tracking.tags import PART_TAG

if TYPE_CHECKING:  # MLflow and the comparison code load after the arguments parse (fast --help)
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking.compare import RunRecord

#: differing params the terminal table shows at most (csv / markdown show them all)
MAX_TABLE_PARAMS = 8

DEFAULT_METRICS = (
    "test/hr@10",
    "test/ndcg@10",
    "test/marketer_agreement",
    "test/coverage@10",
)


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise QueryError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", "--experiment", action="append", help="experiment name (repeat)")
    parser.add_argument("--param", action="append", help="KEY=VALUE, e.g. model/dim=64 (repeat)")
    parser.add_argument("--tag", action="append", help="KEY=VALUE, e.g. sweep_job=3 (repeat)")
    parser.add_argument(
        "--study",
        default=None,
        metavar="NAME",
        help="the trials of one hparams_search study (tag hybridrec.study); compare: best first",
    )
    parser.add_argument("--filter", default="", help="an MLflow search filter, for the rest")
    parser.add_argument(
        "--status", default="FINISHED", help="FINISHED (default), FAILED, KILLED or all"
    )
    parser.add_argument("--limit", type=int, default=1000, help="runs read at most")
    parser.add_argument(
        "--all-experiments",
        action="store_true",
        help="compare / plot: every experiment (default: -e, else the newest run's)",
    )
    parser.add_argument(
        "--run",
        action="append",
        metavar="ID",
        help="only this run: its id or any unique prefix of it (repeat)",
    )
    parser.add_argument(
        "--evals", action="store_true", help="also the hybridrec-eval runs (left out by default)"
    )
    parser.add_argument(
        "--fast-dev-runs",
        action="store_true",
        help="also the trainer.fast_dev_run smoke runs (left out by default)",
    )
    parser.add_argument("--tracking-uri", default=None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-runs",
        description="List, compare and plot hybridrec's MLflow runs (protocol-aware).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="one line per run, newest first")
    _common(listing)
    compare = sub.add_parser("compare", help="settings side by side; seeds as mean ± std")
    _common(compare)
    compare.add_argument(
        "--metrics",
        default=None,
        help="comma-separated (default: best/<monitor>, test HR/NDCG@10, agreement, coverage)",
    )
    compare.add_argument("--sort", default=None, help="metric to sort each group by")
    compare.add_argument("--ascending", action="store_true")
    compare.add_argument(
        "--mix", action="store_true", help="rank runs of different protocols / data together"
    )
    compare.add_argument(
        "--params",
        default=None,
        help="comma-separated params to show (default: those that differ; the terminal "
        f"table shows at most {MAX_TABLE_PARAMS}, model, loss and data params first)",
    )
    compare.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    compare.add_argument("--out", type=Path, help="also write the markdown / csv here")
    plot = sub.add_parser("plot", help="PNG plots, written to a folder and logged to MLflow")
    plot.add_argument("kind", choices=("curves", "param", "front", "importance"))
    _common(plot)
    plot.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metrics (curves: val/ndcg@10; front: the accuracy axis, "
        "test/ndcg@10)",
    )
    plot.add_argument("--x", dest="x_param", help="param on the x axis (kind=param)")
    plot.add_argument(
        "--mix",
        action="store_true",
        help="draw runs of different protocols / data on one plot (default: one plot each)",
    )
    plot.add_argument("--out", type=Path, default=Path("bench/plots"))
    plot.add_argument("--no-log", action="store_true", help="do not log the plot to MLflow")
    upload = sub.add_parser(
        "upload",
        help="copy runs (params, metrics with steps, tags, artifacts) into another store, "
        "e.g. a job's fallback store into the server that stopped answering",
    )
    upload.add_argument("--from", dest="source", required=True, help="store to copy from")
    upload.add_argument("--to", dest="target", required=True, help="store (server) to copy into")
    upload.add_argument(
        "--run-id", action="append", help="only this run: its id or a unique prefix (repeat)"
    )
    upload.add_argument("--force", action="store_true", help="copy runs uploaded before too")
    return parser


def _upload(args: argparse.Namespace) -> None:
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking.run_ids import resolve_run_id
    from hybridrec.tracking.store import redact_uri
    from hybridrec.tracking.upload import upload

    target = redact_uri(args.target)
    run_ids = None
    if args.run_id:  # prefixes name runs of the store copied from
        source = MlflowClient(tracking_uri=args.source)
        run_ids = [resolve_run_id(source, ref, "--run-id") for ref in args.run_id]
    for done in upload(args.source, args.target, run_ids, force=args.force):
        if done.skipped:
            print(f"run {done.source_run_id}: uploaded before, as run {done.target_run_id}")
            continue
        into = "into its run" if done.merged else "as new run"
        print(
            f"run {done.source_run_id} -> {target} {into} {done.target_run_id}: "
            f"{done.metrics} metric entries, {done.artifacts} artifact files"
        )


def _note(args: argparse.Namespace, text: str) -> None:
    """A line about what is shown: on stdout beside a table, on stderr when stdout carries
    csv / markdown for a file."""
    data = getattr(args, "format", "table") != "table"
    print(text, file=sys.stderr if data else sys.stdout)


def _runs(args: argparse.Namespace, client: MlflowClient) -> list[Run]:
    from hybridrec.tracking.compare import is_fast_dev_run, search
    from hybridrec.tracking.run_ids import resolve_run_id
    from hybridrec.tracking.sweep import STUDY_TAG

    status = None if args.status.lower() == "all" else args.status.upper()
    every = search(
        client,
        args.experiment,
        args.filter,
        tags={**_pairs(args.tag, "--tag"), **({STUDY_TAG: args.study} if args.study else {})},
        params=_pairs(args.param, "--param"),
        status=status,
        limit=args.limit,
        evaluations=args.evals,
        fast_dev_runs=True,
        run_ids=[resolve_run_id(client, ref, "--run") for ref in args.run or []],
    )
    if args.study:  # a composed hybrid's parts train inside its first trial: not trials
        every = [r for r in every if PART_TAG not in r.data.tags]
    found = [r for r in every if args.fast_dev_runs or not is_fast_dev_run(r)]
    smoke = len(every) - len(found)
    left_out = f"{smoke} fast_dev_run run(s) left out (--fast-dev-runs shows them)"
    if not found:
        hint = f"; {left_out}" if smoke else ""
        raise NotFoundError(f"no run matches (check -e/--param/--tag/--filter/--status){hint}")
    if smoke:
        _note(args, left_out)
    one_experiment = args.command != "list" and not args.experiment and not args.all_experiments
    if one_experiment and len({r.info.experiment_id for r in found}) > 1:
        newest = found[0].info.experiment_id  # newest first
        name = client.get_experiment(newest).name
        found = [r for r in found if r.info.experiment_id == newest]
        _note(
            args,
            f"experiment {name!r} (that of the newest run); -e NAME to choose, "
            "--all-experiments for every one",
        )
    return found


def _records(client: MlflowClient, found: list[Run], metrics: list[str]) -> list[RunRecord]:
    from hybridrec.tracking.compare import record

    names = {e.experiment_id: e.name for e in client.search_experiments()}
    return [record(client, run, metrics, names) for run in found]


def _print(header: list[str], body: list[list[str]], title: str, ids: tuple[str, ...] = ()) -> None:
    """A rich table as wide as the terminal (COLUMNS where set); into a file or a pipe, as wide
    as its cells. The ``ids`` columns (run ids) are never broken inside an id, so an id can be
    copied from any width."""
    from rich.console import Console
    from rich.table import Table

    view = Table(title=title, title_justify="left")
    for k, name in enumerate(header):
        if name in ids:
            longest = max((len(w) for cells in body for w in cells[k].split()), default=0)
            view.add_column(name, min_width=max(longest, len(name)), overflow="fold")
        else:
            view.add_column(name, overflow="fold")
    for cells in body:
        view.add_row(*cells)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:  # a file has no width
        natural = sum(max([len(h), *(len(c[k]) for c in body)]) + 3 for k, h in enumerate(header))
        console = Console(width=max(80, natural + 1))
    console.print(view)


def _list(args: argparse.Namespace, client: MlflowClient) -> None:
    found = _runs(args, client)
    recs = _records(client, found, [])
    header = ["run", "name", "experiment", "status", "protocol", "data", "seed", "best"]
    body = []
    for rec, run in zip(recs, found, strict=True):
        best = {k: v for k, v in run.data.metrics.items() if k.startswith("best/")}
        shown = ", ".join(f"{k.removeprefix('best/')}={v:.4f}" for k, v in best.items())
        body.append(
            [
                rec.run_id,  # in full: the one place that prints it whole
                rec.name,
                rec.experiment,
                rec.status,
                rec.protocol,
                rec.fingerprint[:8],
                rec.seed,
                shown or "-",
            ]
        )
    _print(header, body, f"{len(body)} runs", ids=("run",))


def _compare(args: argparse.Namespace, client: MlflowClient) -> None:
    from hybridrec.tracking.compare import differing, markdown, rows, shown_params, sort_rows, table
    from hybridrec.tracking.mlflow_run import mlflow_key
    from hybridrec.tracking.run_ids import short_ids
    from hybridrec.tracking.sweep import DIRECTION_TAG

    if args.metrics:
        metrics = [mlflow_key(m.strip()) for m in args.metrics.split(",") if m.strip()]
    else:
        metrics = [mlflow_key(m) for m in DEFAULT_METRICS]
    found = _runs(args, client)
    if not args.metrics:  # the monitor each run selected on, then the defaults it logged
        monitors = sorted({f"best/{mlflow_key(r.data.params.get('monitor', ''))}" for r in found})
        present = {k for r in found for k in r.data.metrics}
        metrics = [m for m in monitors if m in present] + [m for m in metrics if m in present]
    recs = _records(client, found, metrics)
    sort = mlflow_key(args.sort) if args.sort else (metrics[0] if metrics else None)
    if args.study and not args.sort and not args.ascending:  # best trial first
        args.ascending = found[0].data.tags.get(DIRECTION_TAG) == "minimize"
    hidden = 0
    if args.params:
        params = [p.strip() for p in args.params.split(",") if p.strip()]
    else:
        params = differing(recs)
        if args.format == "table" and len(params) > MAX_TABLE_PARAMS:
            hidden = len(params) - MAX_TABLE_PARAMS
            params = shown_params(recs, params, MAX_TABLE_PARAMS)
    settings = sort_rows(rows(recs, metrics, mix=args.mix, params=params), sort, args.ascending)
    groups = sorted({row.group for row in settings})
    if len(groups) > 1:
        note = (
            f"{len(groups)} groups (protocol, data fingerprint) ranked apart; --mix ranks them "
            "together"
        )
    else:
        note = "one protocol and dataset"
    # csv: full ids (for scripts); table / markdown: each id's shortest unique prefix
    ids = None if args.format == "csv" else short_ids(r.info.run_id for r in found)
    header, body = table(settings, metrics, ids)
    if args.format == "table":
        n_runs = sum(len(row.runs) for row in settings)
        if hidden:
            note += (
                f"; {hidden} more differing params not shown (--params KEY,… to choose, "
                "--format csv for all)"
            )
        _print(header, body, f"{n_runs} runs, {len(settings)} settings; {note}", ids=("runs",))
    text = _as_text(header, body, args.format)
    if args.format != "table":
        print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text if args.format != "table" else markdown(header, body))
        print(f"wrote {args.out}")


def _as_text(header: list[str], body: list[list[str]], fmt: str) -> str:
    from hybridrec.tracking.compare import markdown

    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(body)
        return buffer.getvalue()
    return markdown(header, body)


def _plot(args: argparse.Namespace, client: MlflowClient) -> None:
    from hybridrec.tracking.front import AGREEMENT
    from hybridrec.tracking.lambda_front import lambda_fronts
    from hybridrec.tracking.mlflow_run import mlflow_key
    from hybridrec.tracking.run_plots import plot_curves, plot_front, plot_param

    if args.kind == "importance":
        _plot_importance(args, client)
        return
    args.metrics_given = args.metrics is not None
    args.metrics = args.metrics or "val/ndcg@10"
    metrics = [mlflow_key(m.strip()) for m in args.metrics.split(",") if m.strip()]
    if args.kind == "front":
        metrics = [AGREEMENT, *metrics] if args.metrics_given else [AGREEMENT, "test/ndcg10"]
    found = _runs(args, client)
    recs = _records(client, found, metrics)
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


def _plot_importance(args: argparse.Namespace, client: MlflowClient) -> None:
    """``plot importance --study NAME``: each searched setting's share of the variance of the
    study's objective over its finished trials (:mod:`hybridrec.tracking.importance`)."""
    from hybridrec.tracking.importance import param_importances, plot_importance, study_trials

    if not args.study:
        raise QueryError("plot importance needs --study NAME (an hparams_search study)")
    found = _runs(args, client)
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


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking.mlflow_run import default_tracking_uri

    try:
        if args.command == "upload":
            _upload(args)
            return
        client = MlflowClient(tracking_uri=args.tracking_uri or default_tracking_uri())
        {"list": _list, "compare": _compare, "plot": _plot}[args.command](args, client)
    except HybridrecError as exc:  # ours (TrackingError included): one sentence; a bug: traceback
        print(f"hybridrec-runs: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
