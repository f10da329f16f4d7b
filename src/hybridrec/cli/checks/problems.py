"""Problems and how they read: :class:`Problem`, :class:`ConfigError`, the collector of one check
(:class:`Report`), and how a value shows in a problem line (:func:`show`, and
:func:`show_raw` for a value as written).

A problem line reads ``key: got <value> (<type>); expected <what>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from hybridrec.errors import HybridrecError


class _Marker:
    """A stand-in value with a fixed text (for a missing key or a node with ``_target_``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


ABSENT = _Marker("nothing")  # a required parameter no key gives
SKIP = _Marker("skip")  # a value that cannot be known before the run: not checked
OBJECT = _Marker("a node with _target_")  # instantiated by Hydra: not type-checked


@dataclass(frozen=True)
class Problem:
    """One problem: ``key: got <value> (<type>); expected <what>``."""

    key: str
    got: str
    expected: str

    def __str__(self) -> str:
        return f"{self.key}: got {self.got}; expected {self.expected}"


class ConfigError(HybridrecError, ValueError):
    """The config has problems; ``problems`` lists them, the message has one line each.

    ``ConfigError("refit_on_val=true: ...")``, a message alone, is for a problem found later
    (one that needs the prepared data); its ``problems`` is empty.
    """

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        count = len(self.problems)
        if count == 1:  # one sentence
            super().__init__(f"invalid config (nothing was run): {self.problems[0]}")
            return
        head = f"invalid config, {count} problems (nothing was run):"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


@dataclass
class Report:
    """One run of the checks: the whole config (cross-key rules read it) and the problems
    found so far, in the order the walk meets them."""

    cfg: DictConfig
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, key: str, got: str, expected: str) -> None:
        self.problems.append(Problem(key, got, expected))


def show(value: Any) -> str:
    """``'abc' (str)``, ``[0] (list)``, ``null``: a value as a problem line shows it."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    if value is None:
        return "null"
    if isinstance(value, _Marker):
        return value.text
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def show_raw(node: DictConfig, key: str) -> str:
    """The value as written (interpolations unresolved)."""
    child = node._get_node(key)
    if isinstance(child, (DictConfig, ListConfig)) and not child._is_interpolation():
        return show(child)
    raw = None if child is None else child._value()
    if OmegaConf.is_interpolation(node, key):
        return f"{raw!r} (interpolation)"
    if OmegaConf.is_missing(node, key):
        return "??? (missing)"
    return show(raw)
