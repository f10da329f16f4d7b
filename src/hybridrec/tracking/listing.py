"""``hybridrec-runs list`` and ``compare`` (:mod:`hybridrec.cli.runs`): the runs as a rich
table on the terminal, or markdown / csv; what "compare" computes is in
:mod:`hybridrec.tracking.compare`. MLflow and rich load when a command runs, not on import.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from hybridrec.tracking.selection import records, select_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: differing params the terminal table shows at most (csv / markdown show them all)
MAX_TABLE_PARAMS = 8

DEFAULT_METRICS = (
    "test/hr@10",
    "test/ndcg@10",
    "test/marketer_agreement",
    "test/coverage@10",
)


def print_table(
    header: list[str], body: list[list[str]], title: str, ids: tuple[str, ...] = ()
) -> None:
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


def list_runs(args: argparse.Namespace, client: MlflowClient) -> None:
    """``list``: one line per run, newest first, its id in full."""
    found = select_runs(args, client)
    recs = records(client, found, [])
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
    print_table(header, body, f"{len(body)} runs", ids=("run",))


def compare_runs(args: argparse.Namespace, client: MlflowClient) -> None:
    """``compare``: one row per setting (seeds as mean ± std), ranked within each group."""
    from hybridrec.tracking.compare import differing, markdown, rows, shown_params, sort_rows, table
    from hybridrec.tracking.mlflow_run import mlflow_key
    from hybridrec.tracking.run_ids import short_ids
    from hybridrec.tracking.sweep import DIRECTION_TAG

    if args.metrics:
        metrics = [mlflow_key(m.strip()) for m in args.metrics.split(",") if m.strip()]
    else:
        metrics = [mlflow_key(m) for m in DEFAULT_METRICS]
    found = select_runs(args, client)
    if not args.metrics:  # the monitor each run selected on, then the defaults it logged
        monitors = sorted({f"best/{mlflow_key(r.data.params.get('monitor', ''))}" for r in found})
        present = {k for r in found for k in r.data.metrics}
        metrics = [m for m in monitors if m in present] + [m for m in metrics if m in present]
    recs = records(client, found, metrics)
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
        print_table(header, body, f"{n_runs} runs, {len(settings)} settings; {note}", ids=("runs",))
    text = as_text(header, body, args.format)
    if args.format != "table":
        print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text if args.format != "table" else markdown(header, body))
        print(f"wrote {args.out}")


def as_text(header: list[str], body: list[list[str]], fmt: str) -> str:
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
