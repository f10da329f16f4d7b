"""The runs a ``hybridrec-runs`` command is about (:mod:`hybridrec.cli.runs`): its filters
(experiment, params, tags, study, status, run ids) through
:func:`hybridrec.tracking.compare.search`, smoke runs left out, one experiment unless asked for
more; and their records.

The functions take the parsed command line (``argparse.Namespace``). MLflow loads when they
run, not on import (``hybridrec-runs --help`` stays fast).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from hybridrec.errors import NotFoundError, QueryError
from hybridrec.tracking.tags import PART_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from hybridrec.tracking.compare import RunRecord


def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise QueryError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def note(args: argparse.Namespace, text: str) -> None:
    """A line about what is shown: on stdout beside a table, on stderr when stdout carries
    csv / markdown for a file."""
    data = getattr(args, "format", "table") != "table"
    print(text, file=sys.stderr if data else sys.stdout)


def select_runs(args: argparse.Namespace, client: MlflowClient) -> list[Run]:
    from hybridrec.tracking.compare import is_fast_dev_run, search
    from hybridrec.tracking.run_ids import resolve_run_id
    from hybridrec.tracking.sweep import STUDY_TAG

    status = None if args.status.lower() == "all" else args.status.upper()
    every = search(
        client,
        args.experiment,
        args.filter,
        tags={**pairs(args.tag, "--tag"), **({STUDY_TAG: args.study} if args.study else {})},
        params=pairs(args.param, "--param"),
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
        note(args, left_out)
    one_experiment = args.command != "list" and not args.experiment and not args.all_experiments
    if one_experiment and len({r.info.experiment_id for r in found}) > 1:
        newest = found[0].info.experiment_id  # newest first
        name = client.get_experiment(newest).name
        found = [r for r in found if r.info.experiment_id == newest]
        note(
            args,
            f"experiment {name!r} (that of the newest run); -e NAME to choose, "
            "--all-experiments for every one",
        )
    return found


def records(client: MlflowClient, found: list[Run], metrics: list[str]) -> list[RunRecord]:
    from hybridrec.tracking.compare import record

    names = {e.experiment_id: e.name for e in client.search_experiments()}
    return [record(client, run, metrics, names) for run in found]
