"""Bad command-line overrides as one sentence: which override, what is wrong, what to type.

Shared by hybridrec-data and hybridrec-train, so a mistake reads the same in both and every
suggestion works as typed (``duplicates=drop`` -> ``data.source.duplicates=drop``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from hybridrec.errors import HybridrecError

#: file suffixes the ``csv`` data config reads (a bare path with one suggests ``data=csv``)
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


class UsageError(HybridrecError):
    """A bad command line (override): printed as one ``hybridrec-data: error:`` line, exit 2."""


def _compose_raw(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from hybridrec.cli.locate import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def compose_checked(command: str, overrides: list[str]) -> DictConfig:
    """The train config with ``overrides``; a bad override raises UsageError saying what to do."""
    _check_bare_words(command, overrides)
    try:
        return _compose_raw(overrides)
    except (ConfigCompositionException, OverrideParseException) as exc:
        raise UsageError(_composition_error(exc, overrides)) from None
    except ValueError as exc:  # Hydra's defaults list, e.g. ``~protocol=0``
        if not _raised_by_hydra(exc):
            raise  # a bug (ours, or in a resolver): its traceback, not a usage error
        found = re.search(r"input_line='([^']*)'", str(exc))
        override = found.group(1) if found is not None else " ".join(overrides)
        reason = str(exc).split(" : ")[0].strip()
        raise UsageError(
            f"{override}: {reason}; a config group is chosen with group=name (data=csv) and "
            "removed with ~group"
        ) from None


def _raised_by_hydra(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside Hydra itself (its parser of the command line)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return str(module).startswith("hydra.")


def _data_options() -> list[str]:
    from hybridrec.cli.locate import config_dir

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
            f"{command} {' '.join(example)}{choices}"
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
            "holds spaces, brackets, commas or semicolons: 'key=\"a value\"', 'key=\";\"'"
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


def _value_at(tree: Any, dotted: str) -> Any:
    """The value at a dotted key of a plain config tree (None where the path ends early)."""
    node = tree
    for step in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


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
    if parent in keys and _value_at(tree, parent) is None:  # a null node that takes a mapping
        return (
            f"{parent} is null, so it has no key {leaf!r} yet; set it as a whole: "
            f"'{parent}={{{leaf}: {value}}}'"
        )
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
