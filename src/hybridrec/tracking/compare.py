"""Comparing runs: what ``hybridrec-runs`` shows, read through the MLflow client API.

MLflow's UI lists runs; recommender work needs three more things, done here:

* **protocol-aware**: a number is only comparable to numbers under the same protocol and data
  fingerprint. Runs are split into groups by (protocol, fingerprint) and never ranked across
  groups unless asked (``mix``); every row names its protocol.
* **the selected epoch**: ``val/…`` metrics are read at the epoch the run selected (the best
  value of its monitor, as its checkpoint callback did), not the last epoch; ``test/…``
  metrics are the tested checkpoint's, ``best/…`` as logged.
* **seeds**: runs that differ only in ``seed`` are one setting, shown as mean ± std.

Only the params that differ between the shown runs are columns. Any tracking URI works (an
SQLite file or a server); nothing opens the SQLite file directly.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hybridrec.errors import QueryError
from hybridrec.tracking.mlflow_run import mlflow_key

#: params that differ between any two runs without being a choice (paths, sizes filled in)
NOISE_PARAMS = (
    "paths/",
    "datamodule/data_dir",
    "model/data_dir",
    "model/text/data_dir",
    "trainer/default_root_dir",
    "callbacks/model_checkpoint/dirpath",
    "spec/",
    "logger/",
)
SUMMARY_KINDS = ("ablation_summary", "judgment_front", "runs_plot")
#: the tag hybridrec-eval puts on a run that re-evaluates another (its value: that run's id)
EVALUATES_TAG = "hybridrec.evaluates"
#: the tag hybridrec-train puts on a ``trainer.fast_dev_run`` run (value ``true``)
FAST_DEV_RUN_TAG = "hybridrec.fast_dev_run"


@dataclass
class RunRecord:
    """One run as compared: where it belongs and the metrics it selected."""

    run_id: str
    name: str
    experiment: str
    status: str
    protocol: str
    fingerprint: str
    seed: str
    params: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    model: str = ""  # the model's class (tag ``model``), e.g. ``MF``

    @property
    def group(self) -> tuple[str, str]:
        return self.protocol, self.fingerprint


@dataclass
class Row:
    """A setting: runs with the same differing params (seed aside) in one group."""

    group: tuple[str, str]
    setting: dict[str, str]
    runs: list[RunRecord]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)


def experiment_ids(client: MlflowClient, names: Sequence[str] | None) -> list[str]:
    """Ids of the named experiments (all of them when ``names`` is empty); an unknown name is a
    ValueError listing the known ones."""
    experiments = client.search_experiments()
    if not names:
        return [e.experiment_id for e in experiments]
    by_name = {e.name: e.experiment_id for e in experiments}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise QueryError(
            f"no experiment named {', '.join(map(repr, unknown))} in this tracking store; "
            f"experiments: {', '.join(sorted(by_name)) or '(none)'}"
        )
    return [by_name[n] for n in names]


def search(
    client: MlflowClient,
    experiments: Sequence[str] | None = None,
    filter_string: str = "",
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    status: str | None = "FINISHED",
    limit: int = 1000,
    evaluations: bool = False,
    fast_dev_runs: bool = False,
    run_ids: Sequence[str] | None = None,
) -> list[Run]:
    """Training runs of ``experiments`` matching the filters, newest first: summary runs left
    out, hybridrec-eval runs and ``fast_dev_run`` smoke runs too unless ``evaluations`` /
    ``fast_dev_runs``. ``tags`` are exact matches; ``params`` match as the config types them
    (``{"judgment/weight": "1"}`` finds ``1.0`` too); ``run_ids``: only these (full ids);
    ``filter_string`` is MLflow's own search syntax, for the rest."""
    clauses = [filter_string] if filter_string else []
    for key, value in (tags or {}).items():
        clauses.append(f"tags.`{key}` = '{value}'")
    for key in params or {}:  # the value is compared below, typed
        clauses.append(f"params.`{key}` IS NOT NULL")
    if run_ids:
        clauses.append("attributes.run_id IN (" + ", ".join(f"'{r}'" for r in run_ids) + ")")
    if status:
        clauses.append(f"attributes.status = '{status}'")
    found = client.search_runs(
        experiment_ids(client, experiments),
        filter_string=" and ".join(clauses),
        max_results=limit,
        order_by=["attributes.start_time DESC"],
    )
    wanted = {key: typed(value) for key, value in (params or {}).items()}
    return [
        r
        for r in found
        if r.data.tags.get("kind") not in SUMMARY_KINDS
        and (evaluations or EVALUATES_TAG not in r.data.tags)
        and (fast_dev_runs or not is_fast_dev_run(r))
        and all(typed(r.data.params.get(k)) == v for k, v in wanted.items())
    ]


def is_fast_dev_run(run: Run) -> bool:
    """Whether ``run`` is a ``fast_dev_run`` smoke run (one batch per stage: its numbers mean
    nothing): tagged so by hybridrec-train, or, for runs from before that tag, by its
    ``debug`` tag or its ``trainer/fast_dev_run`` param."""
    tags = run.data.tags
    if tags.get(FAST_DEV_RUN_TAG) == "true" or tags.get("debug", "").startswith("fast_dev_run"):
        return True
    flag = typed(run.data.params.get("trainer/fast_dev_run"))
    return flag not in (None, ("const", False), ("const", None), ("number", 0))


def _monitor_key(run: Run) -> str:
    return mlflow_key(run.data.params.get("monitor", "val/ndcg@10"))


def record(
    client: MlflowClient,
    run: Run,
    metrics: Iterable[str],
    experiment_names: dict[str, str] | None = None,
) -> RunRecord:
    """The run with ``metrics`` (MLflow keys) at the epoch it selected: the step where its
    monitor was best; ``test/…``, ``best/…`` and other keys as last logged."""
    names = experiment_names or {}
    tags, params = run.data.tags, run.data.params
    rec = RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name or tags.get("mlflow.runName", ""),
        experiment=names.get(run.info.experiment_id, run.info.experiment_id),
        status=run.info.status,
        protocol=tags.get("protocol", params.get("protocol/name", "?")),
        fingerprint=tags.get("data_fingerprint", "?"),
        seed=params.get("seed", "?"),
        params=dict(params),
        model=tags.get("model", ""),
    )
    wanted = list(dict.fromkeys(metrics))
    val_keys = [m for m in wanted if m.startswith("val/")]
    if val_keys:
        monitor = client.get_metric_history(rec.run_id, _monitor_key(run))
        if monitor:
            best = max(monitor, key=lambda m: (m.value, -m.step))  # first best, as "max" mode
            rec.best_step = best.step
    for key in wanted:
        if key.startswith("val/") and rec.best_step is not None:
            history = client.get_metric_history(rec.run_id, key)
            at = [m.value for m in history if m.step == rec.best_step]
            if at:
                rec.metrics[key] = at[-1]
        elif key in run.data.metrics:
            rec.metrics[key] = run.data.metrics[key]
    return rec


@lru_cache(maxsize=1 << 16)  # one store repeats the same few values over thousands of runs
def typed(value: str | None) -> Hashable:
    """A logged param as the config typed it, for comparing: MLflow stores ``str(value)``, so
    ``judgment.weight=1`` from a sweep is ``'1'`` and ``weight: 1.0`` from a config file is
    ``'1.0'``; both are the number 1. Numbers compare by value (``1 == 1.0 == 1e0``), booleans,
    None, lists and dicts by their typed items; anything else as the string it is."""
    if value is None:
        return None
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    return _canonical(parsed, value)


def _canonical(parsed: object, text: str) -> Hashable:
    if isinstance(parsed, bool) or parsed is None:
        return ("const", parsed)
    if isinstance(parsed, int | float):
        if math.isnan(parsed):
            return ("number", "nan")
        if isinstance(parsed, float) and parsed.is_integer():
            return ("number", int(parsed))
        return ("number", parsed)
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, list | tuple):
        return ("list", tuple(_canonical(item, text) for item in parsed))
    if isinstance(parsed, dict):
        items = sorted((repr(k), _canonical(v, text)) for k, v in parsed.items())
        return ("dict", tuple(items))
    return text  # sets, complex, bytes: as written


def _values(records: Sequence[RunRecord], key: str) -> set[Hashable]:
    return {typed(r.params.get(key)) for r in records}


def differing(records: Sequence[RunRecord]) -> list[str]:
    """Params whose values differ between the records, compared as typed (:func:`typed`; the
    seed, params that copy it, e.g. ``datamodule/seed: ${seed}``, and path-like params
    aside)."""
    keys = sorted({k for r in records for k in r.params})
    out = []
    for key in keys:
        if key == "seed" or key.startswith(NOISE_PARAMS):
            continue
        if all(typed(r.params.get(key)) == typed(r.seed) for r in records):  # the seed again
            continue
        if len(_values(records, key)) > 1:
            out.append(key)
    return out


#: param prefixes shown first when not every differing param fits: what a setting is about
PARAM_PRIORITY = ("model/", "loss/", "optimizer/", "judgment/", "datamodule/", "data/")


def ranked_params(records: Sequence[RunRecord], keys: Sequence[str]) -> list[str]:
    """``keys`` in the order a reader wants them: the model, loss, optimiser, judgment and data
    params before the rest (callbacks, trainer, paths), and within each the fewest distinct
    values first (a sweep's axes)."""
    count = {k: len(_values(records, k)) for k in keys}

    def rank(key: str) -> tuple[int, int, str]:
        prefix = next((i for i, p in enumerate(PARAM_PRIORITY) if key.startswith(p)), 99)
        return (prefix, count[key], key)

    return sorted(keys, key=rank)


def shown_params(records: Sequence[RunRecord], keys: Sequence[str], limit: int) -> list[str]:
    """At most ``limit`` of ``keys``, the first of :func:`ranked_params`, in their own order."""
    kept = set(ranked_params(records, keys)[:limit])
    return [k for k in keys if k in kept]


def rows(
    records: Sequence[RunRecord],
    metrics: Sequence[str],
    mix: bool = False,
    params: Sequence[str] | None = None,
) -> list[Row]:
    """Settings, each the runs that share every differing param (seeds pooled: mean ± std),
    per (protocol, fingerprint) group unless ``mix``. ``params``: the params a row shows
    (default: every differing one); runs are never pooled over a param left unshown. Values
    are compared as typed (``'1'`` and ``'1.0'`` are one setting, shown as the first run
    logged it)."""
    every = differing(records)
    shown = list(params) if params is not None else every
    out: dict[tuple[Any, ...], Row] = {}
    for rec in records:
        group = ("(mixed)", "(mixed)") if mix else rec.group
        setting = {k: rec.params.get(k, "-") for k in shown}
        identity = tuple((k, typed(rec.params.get(k))) for k in sorted({*every, *shown}))
        key = (group, identity)
        out.setdefault(key, Row(group=group, setting=setting, runs=[])).runs.append(rec)
    for row in out.values():
        for metric in metrics:
            values = [r.metrics[metric] for r in row.runs if metric in r.metrics]
            values = [v for v in values if not math.isnan(v)]
            if values:
                row.mean[metric] = float(np.mean(values))
                row.std[metric] = float(np.std(values)) if len(values) > 1 else 0.0
    return list(out.values())


def sort_rows(found: list[Row], metric: str | None, ascending: bool = False) -> list[Row]:
    """By group, then by ``metric`` (rows without it last)."""
    if metric is None:
        return sorted(found, key=lambda r: r.group)

    def key(row: Row) -> tuple[Any, ...]:
        value = row.mean.get(metric)
        missing = value is None
        score = 0.0 if value is None else (value if ascending else -value)
        return (row.group, missing, score)

    return sorted(found, key=key)


def cell(row: Row, metric: str) -> str:
    if metric not in row.mean:
        return "-"
    text = f"{row.mean[metric]:.4f}"
    return text + (f" ± {row.std[metric]:.4f}" if len(row.runs) > 1 else "")


def table(
    found: Sequence[Row], metrics: Sequence[str], ids: dict[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """(header, cells): protocol, data fingerprint, the differing params, the metrics, seeds,
    runs. One header for all rows (their settings share the keys). ``ids``: how each run id is
    printed (default: in full); every command that takes a run id takes a unique prefix."""
    settings = list(found[0].setting) if found else []
    header = ["protocol", "data", *settings, *metrics, "seeds", "runs"]
    shown = ids or {}
    body = []
    for row in found:
        seeds = sorted({r.seed for r in row.runs})
        body.append(
            [
                row.group[0],
                row.group[1][:8],
                *[row.setting[k] for k in settings],
                *[cell(row, m) for m in metrics],
                ",".join(seeds),
                " ".join(shown.get(r.run_id, r.run_id) for r in row.runs),
            ]
        )
    return header, body


def markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"
