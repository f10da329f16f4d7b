"""The walk over the config tree: :func:`check_config` checks each node, top to bottom.

A node with ``_target_`` (or one named in ``NODE_SCHEMAS``) is checked against the target's
parameters: each key must be one (unless it takes ``**kwargs``), required ones must be given.
The top level and nodes without a target are checked against the keys the shipped configs
define. Each value is then checked by :func:`~hybridrec.cli.checks.values.check_value`.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from hybridrec.cli.checks.keys import UNCHECKED, default_keys, is_known, is_target_or_none
from hybridrec.cli.checks.problems import ABSENT, ConfigError, Report, show, show_raw
from hybridrec.cli.checks.rules import TOP_LEVEL_TYPES, UNREAD_HINTS
from hybridrec.cli.checks.targets import NODE_SCHEMAS, RESERVED, Params, target_params
from hybridrec.cli.checks.values import check_value


def check_config(cfg: DictConfig) -> None:
    """Check the composed train config without reading data; raise :class:`ConfigError`
    listing every problem (unknown keys, wrong types, out-of-range values)."""
    report = Report(cfg)
    _check_node(report, cfg, "")
    _check_required(report, cfg)
    if report.problems:
        raise ConfigError(report.problems)


def _check_required(report: Report, cfg: DictConfig) -> None:
    """Keys an experiment lists under ``required`` must be given a value: OmegaConf cannot
    make a key ``???`` again once a group default set it (``null`` wins the merge)."""
    for key in cfg.get("required") or []:
        try:
            value = OmegaConf.select(cfg, str(key), throw_on_missing=True, default=_NO_KEY)
        except MissingMandatoryValue:
            value = None
        if value is _NO_KEY:
            report.add(f"required.{key}", "a key", "an existing key (nothing has this name)")
        elif value is None:
            report.add(str(key), "null", "a value: this experiment needs it (required)")


_NO_KEY = object()


# -- one node --------------------------------------------------------------------------------
def _check_node(report: Report, node: DictConfig, path: str) -> None:
    """Check the keys and values of one node, then the nodes inside it."""
    target = _target_of(node, path)
    params = _check_target(report, node, path, target) if target is not None else None
    # the top level and nodes without a target: their keys against the shipped configs'
    keys_checked = path == "" or (params is None and path in default_keys().nodes)
    for raw_key in node.keys():
        key = str(raw_key)
        child_path = _join(path, key)
        if path == "" and key in UNCHECKED:
            continue
        if key in RESERVED and target is not None:  # _target_, _partial_, ...
            check_value(report, node, key, child_path, RESERVED[key], f"{key} of a target node")
        elif params is not None and not _accepts(params, key):
            _unknown_parameter(report, node, key, child_path, params)
            continue  # reported: neither its value nor what is inside it is checked
        elif keys_checked and not _key_allowed(node, path, key):
            _unknown_key(report, node, key, path)
            continue
        else:
            _check_known_key(report, node, path, key, target, params)
        _descend(report, node, key, child_path)


def _check_known_key(
    report: Report,
    node: DictConfig,
    path: str,
    key: str,
    target: str | None,
    params: Params | None,
) -> None:
    """The value of a key the node may have: against the target's parameter, the top-level
    type, or (a key of a node without a target) only its rule."""
    child_path = _join(path, key)
    if params is not None:
        annotation = params.types.get(key, Any)  # Any: a key **kwargs takes
        where = f"{key} of {params.target}"
        none_ok = key in params.none_default
        check_value(report, node, key, child_path, annotation, where, target, none_ok)
    elif path == "" and key in TOP_LEVEL_TYPES:
        check_value(report, node, key, child_path, TOP_LEVEL_TYPES[key], "top-level key")
    else:
        check_value(report, node, key, child_path, Any, "", target)


def _descend(report: Report, node: DictConfig, key: str, path: str) -> None:
    """Into a child node (and the nodes of a child list), unless it is null, ??? or ${...}."""
    child = node._get_node(key)
    if not isinstance(child, (DictConfig, ListConfig)):
        return
    if child._is_none() or child._is_missing() or child._is_interpolation():
        return
    if isinstance(child, DictConfig):
        _check_node(report, child, path)
        return
    for index in range(len(child)):
        item = child._get_node(index)
        if isinstance(item, DictConfig) and not (item._is_none() or item._is_interpolation()):
            _check_node(report, item, f"{path}[{index}]")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- targets ---------------------------------------------------------------------------------
def _target_of(node: DictConfig, path: str) -> str | None:
    """The node's ``_target_`` (None where it is not a str), or the class it is read as."""
    if "_target_" in node:
        target = node._get_node("_target_")
        value = None if target is None else target._value()
        return value if isinstance(value, str) else None
    return NODE_SCHEMAS.get(path)


def _check_target(report: Report, node: DictConfig, path: str, target: str) -> Params | None:
    """The target's parameters; a problem if it does not import or a required one is absent."""
    params = target_params(target)
    if isinstance(params, str):
        report.add(
            _join(path, "_target_"),
            show(target),
            f"a class or function Hydra can import and instantiate ({params})",
        )
        return None
    partial = node.get("_partial_", False) is True if "_target_" in node else False
    if not partial and "_args_" not in node:
        for name in sorted(params.required - {str(k) for k in node.keys()}):
            report.add(_join(path, name), show(ABSENT), f"a value: {params.target} requires it")
    return params


def _accepts(params: Params, key: str) -> bool:
    return key in params.types or params.takes_kwargs


# -- unknown keys ----------------------------------------------------------------------------
def _key_allowed(node: DictConfig, path: str, key: str) -> bool:
    if is_known(path, key):
        return True
    # a new entry of a collection is fine: callbacks.my_callback: {_target_: ...}
    return path in default_keys().collections and is_target_or_none(node, key)


def _unknown_parameter(
    report: Report, node: DictConfig, key: str, path: str, params: Params
) -> None:
    names = [n for n in params.types if not n.startswith("_")]
    report.add(
        path,
        show_raw(node, key),
        f"a parameter of {params.target}, which has no {key!r}{_suggest(key, names)}",
    )


def _unknown_key(report: Report, node: DictConfig, key: str, path: str) -> None:
    hint = f" ({UNREAD_HINTS[key]})" if key in UNREAD_HINTS and path == "" else ""
    where = "top-level key" if path == "" else f"key of {path}"
    known = default_keys().nodes[path] - UNCHECKED
    report.add(
        _join(path, key),
        show_raw(node, key),
        f"a known {where}: nothing reads {key!r}{hint}{_suggest(key, known)}",
    )


def _suggest(key: str, choices: Collection[str], list_all: bool = True) -> str:
    """`` (did you mean a or b?)`` for close names; else, for a short list, all of them."""
    close = difflib.get_close_matches(key, sorted(choices), n=3, cutoff=0.6)
    if close:
        return f" (did you mean {_either(close)}?)"
    if list_all and len(choices) <= 30:
        return f"; valid: {', '.join(sorted(choices))}"
    return ""


def _either(words: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
