"""What a parameter accepts: an annotation in words (:func:`describe`) and whether a plain
config value fits it (:func:`matches`).

Config values are scalars, lists and dicts, so only the annotations they can meet are checked:
int, float, bool, str, None, Union, Literal, lists, tuples, dicts. Anything else (``Any``,
tensors, callables, other classes) cannot be checked and accepts every value.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any, Literal, Union

from hybridrec.cli.checks.problems import OBJECT


class TargetNode:
    """Annotation for a key that takes a node with ``_target_`` (e.g. ``scheduler``)."""


_LIST_TYPES: tuple[Any, ...] = (list, tuple, set, frozenset, Sequence, MutableSequence)
_LIST_TYPES += (Collection, Iterable)
_DICT_TYPES: tuple[Any, ...] = (dict, Mapping, MutableMapping)
_SCALARS = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}


def describe(tp: Any) -> str | None:
    """What ``tp`` accepts, in words; None where a config value cannot be checked against it
    (``Any``, tensors, callables, other classes)."""
    if tp is None or tp in _SCALARS:
        return _SCALARS[type(None) if tp is None else tp]
    if tp is TargetNode:
        return "a node with _target_"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return _describe_union(args)
    if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[float, float]
        return f"a list of {len(args)} " + ", ".join(describe(a) or "values" for a in args)
    if tp in _LIST_TYPES or origin in _LIST_TYPES:
        inner = describe(args[0]) if args else None
        return f"a list of {_grouped(inner)}" if inner else "a list"
    if tp in _DICT_TYPES or origin in _DICT_TYPES:
        inner = describe(args[1]) if len(args) == 2 else None
        return f"a dict of {_grouped(inner)}" if inner else "a dict"
    return None


def _grouped(words: str) -> str:
    """``(str or null)`` inside a list or dict, so "a dict of (str or null) or null" reads
    one way only."""
    return f"({words})" if " or " in words else words


def _describe_union(arms: tuple[Any, ...]) -> str | None:
    """The arms joined by "or", Literal arms merged into one: "one of 64, '64', ... or null";
    None where no arm can be checked."""
    literals = [a for arm in arms if typing.get_origin(arm) is Literal for a in arm.__args__]
    words = [describe(Literal[tuple(literals)])] if literals else []
    words += [describe(a) for a in arms if typing.get_origin(a) is not Literal]
    return " or ".join(dict.fromkeys(w for w in words if w is not None)) or None


def is_object(value: Any) -> bool:
    """Whether ``value`` stands for a node with ``_target_`` (Hydra builds it: not checked)."""
    return value is OBJECT or (isinstance(value, dict) and "_target_" in value)


def matches(value: Any, tp: Any) -> bool:
    """Whether a plain config value (scalars, lists, dicts) fits annotation ``tp``; anything
    that cannot be checked (see :func:`describe`) fits."""
    if is_object(value) or describe(tp) is None:
        return True
    if tp is None or tp in _SCALARS:
        return _scalar_matches(value, type(None) if tp is None else tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:  # the type too: True is no match for Literal[1]
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (Union, types.UnionType):  # arms a config cannot hold (Tensor) are ignored
        return any(matches(value, a) for a in args if describe(a) is not None)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(args)
            and all(matches(v, a) for v, a in zip(value, args, strict=True))
        )
    if tp in _LIST_TYPES or origin in _LIST_TYPES:
        element = args[0] if args else Any  # a bare `list` holds anything
        return isinstance(value, (list, tuple)) and all(matches(v, element) for v in value)
    if tp in _DICT_TYPES or origin in _DICT_TYPES:
        values = args[1] if len(args) == 2 else Any
        return isinstance(value, dict) and all(matches(v, values) for v in value.values())
    return False  # TargetNode, and a value that is no node with _target_


def _scalar_matches(value: Any, tp: type) -> bool:
    if tp is float:  # an int is fine for a float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)
