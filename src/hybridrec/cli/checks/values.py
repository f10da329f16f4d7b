"""The check of one value: its type against the annotation it must fit, then its rule.

Values that cannot be known before the run are skipped: ``???``, and interpolations that do not
resolve yet (``${spec.n_items}``, filled in from the prepared data). A plain reference such as
``${seed}`` is checked where it is set; an interpolation to a key that does not exist is a
problem.
"""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from hybridrec.cli.checks.annotations import describe, is_object, matches
from hybridrec.cli.checks.problems import OBJECT, SKIP, Report, show
from hybridrec.cli.checks.rules import rule_for

_REFERENCE = re.compile(r"\$\{\.*[\w-]+(\.[\w-]+)*\}")  # ${seed}, ${model.max_length}, ${..dim}


def check_value(
    report: Report,
    node: DictConfig,
    key: str,
    path: str,
    annotation: Any,
    where: str,
    target: str | None = None,
    none_ok: bool = False,
) -> None:
    """The value's type against ``annotation``, then (if that passed) its rule, if any.

    ``where`` says whose annotation it is (``lr of torch.optim.Adam``), ``target`` is the
    ``_target_`` of the node (rules may be for one target only), ``none_ok`` lets null pass
    whatever the annotation (a parameter whose default is None)."""
    rule = rule_for(path, target)
    if rule is None and describe(annotation) is None and not OmegaConf.is_interpolation(node, key):
        return  # nothing to check (a node is checked key by key)
    value = _value(report, node, key, path)
    if value is SKIP:
        return
    if not (none_ok and value is None) and not matches(value, annotation):
        report.add(path, show(value), f"{describe(annotation)} ({where})")
        return
    if value is None and (none_ok or (describe(annotation) and matches(None, annotation))):
        return  # null where the parameter takes null: no range to check
    if rule is not None and not is_object(value):
        expected = rule.check(value, report.cfg)
        if expected is not None:
            report.add(path, show(value), expected)


def _value(report: Report, node: DictConfig, key: str, path: str) -> Any:
    """The resolved plain value, ``OBJECT`` for a node with ``_target_``, or ``SKIP`` for a
    value that is not known yet (``???``, ``${spec.n_items}``) or is checked where it is set
    (``${seed}``). A reference to a key that does not exist is a problem."""
    if OmegaConf.is_missing(node, key):
        return SKIP
    child = node._get_node(key)
    if OmegaConf.is_interpolation(node, key):
        raw = child._value() if child is not None else None
        try:
            value = node[key]
        except InterpolationKeyError as exc:
            reason = str(exc).splitlines()[0]
            report.add(
                path, f"{raw!r} (interpolation)", f"a reference to a key that exists ({reason})"
            )
            return SKIP
        except Exception:  # ??? behind it, or a resolver that needs the run: not known yet
            return SKIP
        if isinstance(raw, str) and _REFERENCE.fullmatch(raw):
            return SKIP
        return _plain(value)
    if isinstance(child, DictConfig) and not child._is_none() and "_target_" in child:
        return OBJECT
    return _plain(node[key])


def _plain(value: Any) -> Any:
    """A node as plain lists and dicts, resolved; ``SKIP`` where part of it is not known yet."""
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
        except Exception:  # something inside is ??? or not resolvable yet
            return SKIP
    return value
