"""hybridrec-data: prepare, validate, synthesize and describe datasets.

    hybridrec-data synthesize --out data/synthetic --format csv
    hybridrec-data validate data=ml100k
    hybridrec-data prepare data=ncf_ml1m protocol=loo_sampled
    hybridrec-data describe data/prepared/ncf_ml1m-loo_sampled-<hash>

``prepare`` / ``validate`` take the same Hydra overrides as hybridrec-train (data=…,
protocol=…, data.source.path=…), so a dataset is prepared exactly as training will use it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from hybridrec.data.errors import DataError
from hybridrec.data.spec import DataSpec

#: file suffixes the ``csv`` data config reads (a bare path with one suggests ``data=csv``)
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


class UsageError(Exception):
    """A bad command line (override): printed as one ``hybridrec-data: error:`` line, exit 2."""


def _compose_raw(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from hybridrec.cli.common import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _compose(command: str, overrides: list[str]) -> DictConfig:
    """The train config with ``overrides``; a bad override raises UsageError saying what to do."""
    _check_bare_words(command, overrides)
    try:
        return _compose_raw(overrides)
    except (ConfigCompositionException, OverrideParseException) as exc:
        raise UsageError(_composition_error(exc, overrides)) from None


def _data_options() -> list[str]:
    from hybridrec.cli.common import config_dir

    return sorted(p.stem for p in (Path(config_dir()) / "data").glob("*.yaml"))


def _check_bare_words(command: str, overrides: list[str]) -> None:
    """A word without ``=`` (``clicks.csv``, ``ml100k``) is not an override: say what is."""
    for word in overrides:
        if "=" in word or word.startswith("~"):  # ~key deletes a key: no value needed
            continue
        options = _data_options()
        given = [o for o in overrides if "=" in o]
        if word in options:
            example = ["data=" + word]
        else:
            data = [] if any(o.startswith("data=") for o in given) else ["data=<dataset>"]
            if data and Path(word).suffix.lower() in _TABLE_SUFFIXES:
                data = ["data=csv"]
            example = [*data, f"data.source.path={word}"]
        example = [o for o in given if not o.startswith("data.source.path=")] + example
        choices = f" (datasets: {', '.join(options)})" if "data=<dataset>" in example else ""
        raise UsageError(
            f"{word!r} is not an override: overrides look like key=value, e.g. "
            f"hybridrec-data {command} {' '.join(example)}{choices}"
        )


def _keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a (plain) config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            yield path
            yield from _keys(value, path + ".")


def _composition_error(exc: Exception, overrides: list[str]) -> str:
    """One line for a Hydra composition error: the override, what is wrong, what to do."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse the override {exc.override!r} ({first}); overrides look like "
            "key=value, e.g. data=csv or data.source.path=clicks.csv; quote a value that "
            "holds spaces, brackets or commas: 'key=\"a value\"'"
        )
    if isinstance(exc, MissingConfigException):
        found = re.search(r"Could not (?:find|load) '([^'/]+)/([^']+)'", str(exc))
        if found is not None:
            group, name = found.groups()
            options = ", ".join(exc.options or [])
            return f"{group}={name}: there is no {group} config {name!r}; choose one of {options}"
        return first
    found = re.search(r"Could not override '([^']+)'", str(exc))
    if found is None:
        return " ".join(str(exc).split())
    key = found.group(1)
    override = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") == key), key)
    return f"{override}: {_unknown_key_hint(key, override, overrides)}"


def _unknown_key_hint(key: str, override: str, overrides: list[str]) -> str:
    """Why ``key`` cannot be overridden and which key the user may have meant."""
    value = override.split("=", 1)[1] if "=" in override else "..."
    try:  # the config the other overrides make, to look for the key the user meant
        cfg = _compose_raw([o for o in overrides if o != override])
        tree = OmegaConf.to_container(cfg, resolve=False)
    except (ConfigCompositionException, OverrideParseException):
        tree = {}
    keys = [k for k in _keys(tree) if not k.startswith("hydra.")]
    parent, _, leaf = key.rpartition(".")
    # the same name elsewhere (data.source.<leaf> first), else a close name next to it
    same_leaf = [k for k in keys if k.rpartition(".")[2] == leaf]
    meant = [k for k in same_leaf if k == f"data.source.{leaf}"] or same_leaf[:3]
    if not meant:
        siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
        close = difflib.get_close_matches(leaf, siblings, n=2, cutoff=0.75)
        meant = [f"{parent}.{name}" if parent else name for name in close]
    if meant:
        return (
            f"{key!r} is not a config key; did you mean "
            f"{' or '.join(f'{k}={value}' for k in meant)}?"
        )
    if key.startswith("data.source."):
        return (
            f"{key!r} is not a key of this data config; to pass another argument to its "
            f"reader (data.source._target_), add it with +{key}={value}"
        )
    return f"{key!r} is not a config key; check its spelling against configs/"


def cmd_synthesize(args: argparse.Namespace) -> int:
    from hybridrec.data import synthetic

    data = synthetic.generate(n_users=args.users, n_items=args.items, seed=args.seed)
    paths = synthetic.write(data, args.out, fmt=args.format)
    for path in paths:
        print(path)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hybridrec.cli.common import read_source

    cfg = _compose(args.command, args.overrides)
    start = time.perf_counter()
    raw = read_source(cfg)
    frame = raw.interactions
    print(
        f"{raw.name}: {len(frame):,} interactions, {frame['user'].nunique():,} users, "
        f"{frame['item'].nunique():,} items, read and validated in "
        f"{time.perf_counter() - start:.2f}s from {', '.join(map(str, raw.files))}"
    )
    if raw.test is not None:
        print(f"  given test rows: {len(raw.test):,}")
    if raw.test_negatives is not None:
        width = len(raw.test_negatives["negatives"].iloc[0])
        print(f"  given negatives: {len(raw.test_negatives):,} rows x {width}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from hybridrec.cli.common import prepare_from_config

    cfg = _compose(args.command, args.overrides)
    start = time.perf_counter()
    spec, folder = prepare_from_config(cfg)
    print(f"prepared in {time.perf_counter() - start:.2f}s: {folder}")
    print(json.dumps(spec.summary(), indent=2))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    spec = DataSpec.load(folder)
    print(json.dumps(spec.summary() | {"counts": spec.counts, "files": spec.files}, indent=2))
    train = pd.read_parquet(folder / spec.files["train"])
    per_user = train.groupby("user").size()
    per_item = train.groupby("item").size()
    density = len(train) / (spec.n_users * spec.n_items)
    print(
        f"train: {len(train):,} pairs, density {density:.4%}; per user min/median/max "
        f"{per_user.min()}/{int(per_user.median())}/{per_user.max()}; per item "
        f"{per_item.min()}/{int(per_item.median())}/{per_item.max()}; items never trained on: "
        f"{spec.n_items - per_item.size}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthesize", help="write the synthetic dataset as files")
    syn.add_argument("--out", required=True, help="output folder")
    syn.add_argument("--format", choices=("csv", "parquet"), default="csv")
    syn.add_argument("--users", type=int, default=500)
    syn.add_argument("--items", type=int, default=300)
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=cmd_synthesize)
    for name, func, text in (
        ("validate", cmd_validate, "read and check a source (Hydra overrides: data=...)"),
        ("prepare", cmd_prepare, "map ids, split by protocol, write parquet + spec.json"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ml100k")
        cmd.set_defaults(func=func)
    desc = sub.add_parser("describe", help="summarise a prepared folder")
    desc.add_argument("folder")
    desc.set_defaults(func=cmd_describe)
    return parser


def _config_error(exc: Exception) -> str:
    """One line for an error in a composed config's values (a missing value, a bad argument)."""
    if isinstance(exc, MissingMandatoryValue):
        key = exc.full_key or "a key"
        return f"{key} is not set (??? in the config); add {key}=... to the overrides"
    if isinstance(exc, InstantiationException):
        where = re.search(r"full_key: (\S+)", str(exc))
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if isinstance(cause, OmegaConfBaseException):
            return _config_error(cause)
        prefix = f"{where.group(1)}: " if where is not None else ""
        return prefix + " ".join(str(cause).split())
    if isinstance(exc, OmegaConfBaseException) and getattr(exc, "full_key", None):
        return f"{exc.full_key}: {' '.join(str(exc).splitlines()[0].split())}"
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (DataError, FileNotFoundError, UsageError) as exc:
        print(f"hybridrec-data: error: {exc}", file=sys.stderr)
        return 2
    except (InstantiationException, OmegaConfBaseException) as exc:
        print(f"hybridrec-data: error: {_config_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
