"""What a ``_target_`` takes: its keyword parameters, their annotations and defaults, read
from its signature (:func:`target_params`, cached per target).

A target that does not import, or that Hydra's target policy refuses, gives the reason as a
str instead. ``NODE_SCHEMAS`` names the class a node without ``_target_`` is read as, and
``KWARGS_GO_TO`` the target that a target's ``**kwargs`` go to.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hydra.utils import get_object

#: Keys Hydra reads itself, with their types.
RESERVED: dict[str, Any] = {
    "_target_": str,
    "_partial_": bool,
    "_recursive_": bool,
    "_convert_": Literal["none", "partial", "object", "all"],
    "_args_": list,
}
#: Targets whose ``**kwargs`` all go to another target: their extra keys are checked there.
KWARGS_GO_TO = {"hybridrec.nn.TextRec": "hybridrec.nn.TextItemTower"}
#: Nodes without a ``_target_`` that code reads as if they were this class's arguments.
NODE_SCHEMAS = {
    "data.text": "hybridrec.data.preparation.text.TextConfig",
    "data.judgments": "hybridrec.data.preparation.judgments.JudgmentConfig",
}
#: ``__init__`` methods that take ``*args, **kwargs`` but refuse any argument.
_CLOSED_INITS = {"builtins.object.__init__", "torch.nn.modules.module.Module.__init__"}


@dataclass(frozen=True)
class Params:
    """The keyword parameters of a target, as a config can give them."""

    target: str
    types: Mapping[str, Any]  # parameter -> annotation (Any: not annotated)
    required: frozenset[str]  # without a default
    none_default: frozenset[str]  # default None: null is fine whatever the annotation
    takes_kwargs: bool


@functools.cache
def target_params(target: str) -> Params | str:
    """The parameters of ``target`` (cached), or why it cannot be imported."""
    obj = load_target(target)
    if isinstance(obj, str):
        return obj
    params = _params_of(obj, target)
    forward = next((dst for src, dst in KWARGS_GO_TO.items() if load_target(src) is obj), None)
    if forward is None or not params.takes_kwargs:
        return params
    other = target_params(forward)
    if not isinstance(other, Params):
        return params
    return dataclasses.replace(  # its own parameters first, then those **kwargs go to
        params,
        target=f"{target} (**kwargs: {forward})",
        types={**other.types, **params.types},
        none_default=params.none_default | other.none_default,
        takes_kwargs=other.takes_kwargs,
    )


@functools.cache
def load_target(target: str) -> Any:
    """The object ``target`` names, or why not (a str): Hydra's target policy refuses it (as
    ``instantiate`` would, before importing anything), or it does not import."""
    hydra_log = logging.getLogger("hydra.utils")  # get_object logs each failure: we report it
    disabled, hydra_log.disabled = hydra_log.disabled, True
    try:
        _authorize(target)
        return get_object(target)
    except Exception as exc:  # refused, ImportError, AttributeError, what an import raises
        return " ".join(str(exc).split())[:300] or type(exc).__name__
    finally:
        hydra_log.disabled = disabled


def _authorize(target: str) -> None:
    """Hydra's own check of a ``_target_`` before instantiating it, where this Hydra has one
    (1.3.8's block list of targets such as ``os.remove`` or ``subprocess.run``)."""
    try:
        from hydra._internal.target_policy import _authorize_target_name
    except ImportError:  # an older Hydra: no policy
        return
    _authorize_target_name(target, target, "")


def same_target(a: str, b: str) -> bool:
    """Whether two target names name the same object (``hybridrec.nn.X`` and its module's)."""
    if a == b:
        return True
    loaded = load_target(a)
    return not isinstance(loaded, str) and loaded is load_target(b)


def _params_of(obj: Any, target: str) -> Params:
    """The keyword parameters of a loaded target, from its signature."""
    init = getattr(obj, "__init__", None)
    closed = _init_name(init) in _CLOSED_INITS and obj.__new__ is object.__new__
    if inspect.isclass(obj) and closed:
        return Params(target, {}, frozenset(), frozenset(), takes_kwargs=False)
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a signature: accept any key
        return Params(target, {}, frozenset(), frozenset(), takes_kwargs=True)
    named = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    hints = _hints(init if inspect.isclass(obj) else obj, signature)
    return Params(
        target=target,
        types={name: hints.get(name, Any) for name in named},
        required=frozenset(n for n, p in named.items() if p.default is p.empty),
        none_default=frozenset(n for n, p in named.items() if p.default is None),
        takes_kwargs=any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()),
    )


def _init_name(init: Any) -> str:
    """``module.qualname`` of an ``__init__``, to compare with ``_CLOSED_INITS``."""
    owner = getattr(init, "__objclass__", None)  # slot wrappers: object.__init__
    module = getattr(owner or init, "__module__", "")
    return f"{module}.{getattr(init, '__qualname__', '')}"


def _hints(func: Any, signature: inspect.Signature) -> dict[str, Any]:
    """Resolved annotations; where ``get_type_hints`` fails (a name only imported for type
    checkers), each annotation string on its own, and ``Any`` for those that do not resolve."""
    try:
        return typing.get_type_hints(func)
    except Exception:
        pass
    namespace = {**vars(typing), **getattr(inspect.unwrap(func), "__globals__", {})}
    hints: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        annotation = param.annotation
        if isinstance(annotation, str):
            try:  # what get_type_hints does, one annotation at a time
                annotation = eval(annotation, namespace)
            except Exception:
                annotation = Any
        hints[name] = Any if annotation is param.empty else annotation
    return hints
