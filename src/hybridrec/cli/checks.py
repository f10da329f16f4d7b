"""Early checks of the composed training config: unknown keys, wrong types, out-of-range values.

``check_config(cfg)`` looks at the config Hydra composed (``configs/train.yaml`` + overrides)
before any data is read, and raises :class:`ConfigError` listing every problem, one line each::

    trainer.max_epochs: got 'abc' (str); expected int or null (max_epochs of lightning.Trainer)
    ckpt_path: got 'x.ckpt' (str); expected a known top-level key: nothing reads 'ckpt_path' ...

What is checked:

* every node with a ``_target_`` (trainer, model, model.text, loss and its terms, optimizer,
  scheduler, datamodule, protocol, logger, callbacks.*, data.source, ...): the target imports;
  each key is a parameter of it (unless it takes ``**kwargs``); each value matches the
  parameter's annotation as far as a config value can (int, float, bool, str, null, Union,
  Literal, lists, dicts; tensors, callables and other classes are not type-checked); required
  parameters are present (not for ``_partial_`` nodes). ``data.text`` is checked the same way
  against :class:`hybridrec.data.text.TextConfig` (see ``NODE_SCHEMAS``).
* top-level keys against those the shipped configs define (``configs/train.yaml``, its groups,
  and whatever the ``experiment`` / ``debug`` options add), with the types in
  ``TOP_LEVEL_TYPES``; the keys of nodes without a ``_target_`` (``data``, ``paths``,
  ``callbacks``) against the keys that node has across every shipped option of its group.
* value ranges and cross-key rules from the declarative table ``RULES``.

Values that are ``???`` or interpolations that cannot be resolved yet (``${spec.n_items}``,
``${datamodule.data_dir}``: filled in at run time) are skipped; an interpolation to a key that
does not exist is a problem. A plain reference such as ``${seed}`` is checked where it is set.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import logging
import re
import types
import typing
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    MutableSequence,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal, Union

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, MissingMandatoryValue

from hybridrec.data.protocols import EVAL_MODES
from hybridrec.data.sequences import ORDERS, TRAININGS
from hybridrec.data.text import MISSING_MODES
from hybridrec.metrics import TIE_MODES, RankingMetrics
from hybridrec.nn.gru4rec import EMBEDDINGS
from hybridrec.nn.textrec import ADAPTORS, ENCODERS

__all__ = ["ConfigError", "Problem", "check_config"]


# -- problems -------------------------------------------------------------------------------
class _Marker:
    """A stand-in value with a fixed text (for a missing key or a node with ``_target_``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_ABSENT = _Marker("nothing")  # a required parameter no key gives
_SKIP = _Marker("skip")  # a value that cannot be known before the run: not checked
_OBJECT = _Marker("a node with _target_")  # instantiated by Hydra: not type-checked


@dataclass(frozen=True)
class Problem:
    """One problem: ``key: got <value> (<type>); expected <what>``."""

    key: str
    got: str
    expected: str

    def __str__(self) -> str:
        return f"{self.key}: got {self.got}; expected {self.expected}"


class ConfigError(ValueError):
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


def _show(value: Any) -> str:
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


# -- annotations: what a parameter accepts ---------------------------------------------------
class TargetNode:
    """Annotation for a key that takes a node with ``_target_`` (e.g. ``scheduler``)."""


_LIST_TYPES: tuple[Any, ...] = (list, tuple, set, frozenset, Sequence, MutableSequence)
_LIST_TYPES += (Collection, Iterable)
_DICT_TYPES: tuple[Any, ...] = (dict, Mapping, MutableMapping)
_SCALARS = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}


def _describe(tp: Any) -> str | None:
    """What ``tp`` accepts, in words; None where a config value cannot be checked against it
    (``Any``, tensors, callables, other classes)."""
    if tp is None or tp in _SCALARS:
        return _SCALARS[type(None) if tp is None else tp]
    if tp is TargetNode:
        return "a node with _target_"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):  # Literal arms merged: "one of 64, '64', ..."
        literals = [a for arm in args if typing.get_origin(arm) is Literal for a in arm.__args__]
        words = [_describe(Literal[tuple(literals)])] if literals else []
        words += [_describe(a) for a in args if typing.get_origin(a) is not Literal]
        return " or ".join(dict.fromkeys(w for w in words if w is not None)) or None
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} " + ", ".join(_describe(a) or "values" for a in args)
    if tp in _LIST_TYPES or origin in _LIST_TYPES:
        inner = _describe(args[0]) if args else None
        return f"a list of {inner}" if inner else "a list"
    if tp in _DICT_TYPES or origin in _DICT_TYPES:
        inner = _describe(args[1]) if len(args) == 2 else None
        return f"a dict of {inner}" if inner else "a dict"
    return None


def _is_object(value: Any) -> bool:
    return value is _OBJECT or (isinstance(value, dict) and "_target_" in value)


def _matches(value: Any, tp: Any) -> bool:
    """Whether a plain config value (scalars, lists, dicts) fits annotation ``tp``; anything
    that cannot be checked (see :func:`_describe`) fits."""
    if _is_object(value) or _describe(tp) is None:
        return True
    if tp is None or tp in _SCALARS:
        return _scalar_matches(value, type(None) if tp is None else tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (Union, types.UnionType):  # arms a config cannot hold (Tensor) are ignored
        return any(_matches(value, a) for a in args if _describe(a) is not None)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(args)
            and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        )
    if tp in _LIST_TYPES or origin in _LIST_TYPES:
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
    if tp in _DICT_TYPES or origin in _DICT_TYPES:
        values = args[1] if len(args) == 2 else Any
        return isinstance(value, dict) and all(_matches(v, values) for v in value.values())
    return False  # TargetNode, and a value that is no node with _target_


def _scalar_matches(value: Any, tp: type) -> bool:
    if tp is float:  # an int is fine for a float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


# -- targets: what a _target_ takes ----------------------------------------------------------
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
NODE_SCHEMAS = {"data.text": "hybridrec.data.text.TextConfig"}
#: ``__init__`` methods that take ``*args, **kwargs`` but refuse any argument.
_CLOSED_INITS = {"builtins.object.__init__", "torch.nn.modules.module.Module.__init__"}


@dataclass(frozen=True)
class _Params:
    """The keyword parameters of a target, as a config can give them."""

    target: str
    types: Mapping[str, Any]  # parameter -> annotation (Any: not annotated)
    required: frozenset[str]  # without a default
    none_default: frozenset[str]  # default None: null is fine whatever the annotation
    takes_kwargs: bool


@functools.cache
def _load(target: str) -> Any:
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


@functools.cache
def _params(target: str) -> _Params | str:
    """The parameters of ``target`` (cached), or why it cannot be imported."""
    obj = _load(target)
    if isinstance(obj, str):
        return obj
    params = _params_of(obj, target)
    forward = next((dst for src, dst in KWARGS_GO_TO.items() if _load(src) is obj), None)
    if forward is not None and params.takes_kwargs:
        other = _params(forward)
        if isinstance(other, _Params):
            params = dataclasses.replace(
                params,
                target=f"{target} (**kwargs: {forward})",
                types={**other.types, **params.types},
                none_default=params.none_default | other.none_default,
                takes_kwargs=other.takes_kwargs,
            )
    return params


def _params_of(obj: Any, target: str) -> _Params:
    init = getattr(obj, "__init__", None)
    closed = _init_name(init) in _CLOSED_INITS and obj.__new__ is object.__new__
    if inspect.isclass(obj) and closed:
        return _Params(target, {}, frozenset(), frozenset(), takes_kwargs=False)
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a signature: accept any key
        return _Params(target, {}, frozenset(), frozenset(), takes_kwargs=True)
    named = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    hints = _hints(init if inspect.isclass(obj) else obj, signature)
    return _Params(
        target=target,
        types={name: hints.get(name, Any) for name in named},
        required=frozenset(n for n, p in named.items() if p.default is p.empty),
        none_default=frozenset(n for n, p in named.items() if p.default is None),
        takes_kwargs=any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()),
    )


def _init_name(init: Any) -> str:
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


def _same_target(a: str, b: str) -> bool:
    if a == b:
        return True
    loaded = _load(a)
    return not isinstance(loaded, str) and loaded is _load(b)


# -- rules: ranges and cross-key checks -----------------------------------------------------
#: A check takes the value and the whole config; returns None, or what was expected.
Check = Callable[[Any, DictConfig], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rule(expected: str, ok: Callable[[Any], bool]) -> Check:
    def check(value: Any, cfg: DictConfig) -> str | None:
        return None if ok(value) else expected

    return check


def _int_min(low: int, note: str = "") -> Check:
    return _rule(f"an int >= {low}{note}", lambda v: _is_int(v) and v >= low)


def _number_min(low: float) -> Check:
    return _rule(f"a number >= {low}", lambda v: _is_number(v) and v >= low)


def _number_above(low: float) -> Check:
    return _rule(f"a number > {low}", lambda v: _is_number(v) and v > low)


def _share(low_open: bool = False, high_open: bool = True) -> Check:
    """A number in [0, 1), (0, 1), [0, 1] ..."""
    text = f"a number in {'(' if low_open else '['}0, 1{')' if high_open else ']'}"

    def ok(v: Any) -> bool:
        above = v > 0 if low_open else v >= 0
        below = v < 1 if high_open else v <= 1
        return _is_number(v) and above and below

    return _rule(text, ok)


def _one_of(options: Iterable[str], note: str = "") -> Check:
    options = tuple(options)
    return _rule(f"one of {', '.join(options)}{note}", lambda v: v in options)


def _or_null(check: Check) -> Check:
    def checked(value: Any, cfg: DictConfig) -> str | None:
        expected = check(value, cfg)
        return None if value is None or expected is None else f"{expected}, or null"

    return checked


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) and v >= 1 for v in value)


def _devices_ok(value: Any) -> bool:
    if _is_int(value):
        return value >= 1 or value == -1
    if isinstance(value, str):
        return value == "auto" or re.fullmatch(r"-1|\d+(,\s*\d+)*,?", value.strip()) is not None
    return isinstance(value, list) and bool(value) and all(_is_int(v) and v >= 0 for v in value)


def _batches_ok(value: Any) -> bool:
    return (_is_int(value) and value >= 0) or (isinstance(value, float) and 0 <= value <= 1)


def _valid_ks(cfg: DictConfig) -> list[int] | None:
    ks = cfg.get("ks") if isinstance(cfg, DictConfig) else None
    plain = OmegaConf.to_container(ks) if isinstance(ks, ListConfig) else None
    return plain if _int_list(plain) else None  # type: ignore[return-value]


_MONITOR = re.compile(r"val/(?:(?P<slice>cold|warm)/)?(?P<metric>[^/@]+)@(?P<k>\d+)")


def _check_monitor(value: Any, cfg: DictConfig) -> str | None:
    """``val/<metric>@<k>``: a metric the module logs, at a cut-off in ``ks``."""
    metrics = [f.name for f in dataclasses.fields(RankingMetrics)]
    ks = _valid_ks(cfg)
    expected = f"val/<metric>@<k> with <metric> one of {', '.join(metrics)}"
    if ks is not None:
        expected += f" and <k> in ks {ks}"
    match = _MONITOR.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["metric"] not in metrics:
        return expected
    if ks is not None and int(match["k"]) not in ks:
        return f"{expected} (add {match['k']} to ks, or monitor a k in ks)"
    protocol = OmegaConf.select(cfg, "protocol._target_", default=None)
    if match["slice"] and not (
        isinstance(protocol, str) and _same_target(protocol, "hybridrec.data.protocols.ColdItems")
    ):
        return f"{expected}; val/{match['slice']}/... only with protocol=cold_items"
    return None


@dataclass(frozen=True)
class Rule:
    """``check`` applies to every key whose dotted path matches ``pattern`` (fnmatch: ``*``
    spans dots), under a node whose ``_target_`` is ``target`` when one is given. The first
    matching rule applies."""

    pattern: str
    check: Check
    target: str | None = None


_SIZE = _int_min(1)
RULES: tuple[Rule, ...] = (
    # the run
    Rule("seed", _int_min(0)),
    Rule("*.seed", _int_min(0)),
    Rule("threads", _or_null(_int_min(1))),
    Rule("ks", _rule("a non-empty list of ints >= 1", _int_list)),
    Rule("ties", _one_of(TIE_MODES)),
    Rule("monitor", _check_monitor),
    Rule("embedding_l2", _number_min(0)),
    # trainer
    Rule(
        "trainer.max_epochs",
        _or_null(
            _rule("an int >= 1, or -1 for no limit", lambda v: _is_int(v) and (v >= 1 or v == -1))
        ),
    ),
    Rule("trainer.min_epochs", _or_null(_int_min(0))),
    Rule(
        "trainer.devices",
        _rule("an int >= 1 (or -1: all), 'auto', or a list of device indices", _devices_ok),
    ),
    Rule("trainer.num_nodes", _SIZE),
    Rule("trainer.check_val_every_n_epoch", _or_null(_SIZE)),
    Rule("trainer.accumulate_grad_batches", _SIZE),
    Rule(
        "trainer.*_batches",
        _or_null(_rule("an int >= 0 (batches) or a float in [0, 1] (a share)", _batches_ok)),
    ),
    # optimizer
    Rule("optimizer.lr", _number_above(0)),
    Rule("optimizer.weight_decay", _number_min(0)),
    Rule("optimizer.momentum", _share()),
    Rule("optimizer.eps", _number_above(0)),
    # datamodule
    Rule("datamodule.*batch_size", _SIZE),
    Rule("datamodule.num_negatives", _int_min(0)),
    Rule("datamodule.n_negatives", _int_min(0)),
    Rule("datamodule.sample_alpha", _share(high_open=False)),
    Rule("datamodule.max_history", _int_min(0, " (0: all)")),
    Rule("datamodule.max_length", _SIZE),
    Rule("datamodule.order", _one_of(ORDERS)),
    Rule("datamodule.training", _one_of(TRAININGS)),
    # protocol
    Rule("protocol.eval_mode", _one_of(EVAL_MODES)),
    Rule("protocol.n_negatives", _int_min(0)),
    Rule("protocol.cold_share", _share(low_open=True)),
    Rule("protocol.val_share", _share()),
    Rule("protocol.candidates", _one_of(("all", "cold"))),
    Rule("protocol.*_fraction", _share(low_open=True)),
    Rule("protocol.test_days", _number_above(0)),
    Rule("protocol.val_days", _number_min(0)),
    Rule("protocol.min_session_length", _SIZE),
    Rule("protocol.min_item_support", _SIZE),
    # data
    Rule("data.name", _rule("a non-empty str", lambda v: isinstance(v, str) and bool(v))),
    Rule("data.min_*_interactions", _int_min(0, " (0: keep all)")),
    Rule("data.text.missing", _one_of(MISSING_MODES)),
    # model (and its sub-nodes such as model.text)
    Rule("*dropout*", _share()),
    Rule(
        "model.embedding_dim",
        _int_min(0, " (0: none, unless embedding=separate)"),
        target="hybridrec.nn.GRU4Rec",
    ),
    Rule("*ffn_dim", _int_min(0, " (0: 4 * dim)")),
    Rule("*_dim", _SIZE),  # embedding_dim, gmf_dim, mlp_embedding_dim
    Rule("*.dim", _SIZE),
    Rule("*hidden_dims", _rule("a non-empty list of ints >= 1", _int_list)),
    Rule(
        "model.layers",
        _rule(
            "an int >= 1 or a non-empty list of ints >= 1",
            lambda v: (_is_int(v) and v >= 1) or _int_list(v),
        ),
    ),
    Rule("*heads", _SIZE),
    Rule("*transformer_layers", _SIZE),
    Rule("*trainable_layers", _int_min(0, " (0: frozen)")),
    Rule("*experts", _SIZE),
    Rule("*vocab_size", _SIZE),
    Rule("model*.max_length", _SIZE),
    Rule("model*.init_std", _number_min(0)),
    Rule("model.temperature", _or_null(_number_above(0))),
    Rule("model.neighbours", _SIZE),
    Rule("model.lam", _number_min(0)),
    Rule("model.alpha", _share(high_open=False)),
    Rule("model.embedding", _one_of(EMBEDDINGS)),
    Rule("model*.encoder", _one_of(ENCODERS)),
    Rule("model*.adaptor", _one_of(ADAPTORS)),
    # loss
    Rule("loss.weights.*", _number_min(0)),
    Rule("loss.terms.*.score_reg", _number_min(0)),
    Rule("loss.terms.*.elu", _number_min(0)),
    Rule("loss.terms.*.logq", _number_min(0)),
    # callbacks
    Rule("callbacks.*.patience", _int_min(0)),
    Rule("callbacks.*.mode", _one_of(("max",), " (every val/ metric is higher-is-better)")),
    Rule("callbacks.*.save_top_k", _int_min(-1, " (-1: all)")),
    Rule("callbacks.*.refresh_rate", _int_min(0)),
)


@functools.lru_cache(maxsize=4096)
def _rule_for(path: str, target: str | None) -> Rule | None:
    for rule in RULES:
        if fnmatchcase(path, rule.pattern) and (
            rule.target is None or (target is not None and _same_target(rule.target, target))
        ):
            return rule
    return None


# -- known keys: what the shipped configs define --------------------------------------------
#: Types of the top-level keys of configs/train.yaml (its comments say the same).
TOP_LEVEL_TYPES: dict[str, Any] = {
    "task_name": str,
    "seed": int,
    "threads": int | None,
    "ks": list[int],
    "ties": str,
    "monitor": str,
    "test_after_fit": bool,
    "refit_on_val": bool,
    "scheduler": TargetNode | None,
    "embedding_l2": float,
    "required": list[str],
}
#: Top-level nodes not checked: filled in at run time, or Hydra's own.
UNCHECKED = {"spec", "hydra"}
#: Why a key people try is not read (added to its problem line).
UNREAD_HINTS = {
    "ckpt_path": "resuming a run is not supported yet",
    "resume": "resuming a run is not supported yet",
}


@dataclass(frozen=True)
class _Keys:
    """Keys the shipped configs use: top-level (``""``) and in each node without a target."""

    nodes: Mapping[str, frozenset[str]]
    collections: frozenset[str]  # nodes whose entries are all target nodes (callbacks)
    scan: tuple[str, ...]  # groups whose options may add keys: nodes without target, globals


@contextmanager
def _hydra_session() -> Iterator[None]:
    """Compose in the running Hydra app (hybridrec-train) or, outside one, in ``configs/``."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    from hybridrec.cli.common import config_dir  # here: common may import this module

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield


def _node_keys(cfg: DictConfig, names: Iterable[str]) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {"": {str(k) for k in cfg.keys()} - {"hydra"}}
    for name in names:
        node = cfg._get_node(name) if name in cfg else None
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
            keys[name] = {str(k) for k in node.keys()}
    return keys


@functools.lru_cache(maxsize=1)
def _default_keys() -> _Keys:
    """Keys of the default composition (one compose, cached)."""
    with _hydra_session():
        cfg = compose(config_name="train", return_hydra_config=True)
    groups = [str(g) for g in cfg.hydra.runtime.choices if "/" not in str(g)]
    plain = [
        g
        for g in groups
        if isinstance(cfg.get(g), DictConfig) and "_target_" not in cfg[g] and g not in UNCHECKED
    ]
    keys = _node_keys(cfg, plain)
    keys[""] |= set(groups)
    collections = [g for g in plain if all(_is_target_or_none(cfg[g], k) for k in keys[g])]
    scan = [*plain, *(g for g in groups if g not in cfg and g not in UNCHECKED)]
    return _Keys(
        nodes={name: frozenset(k) for name, k in keys.items()},
        collections=frozenset(collections),
        scan=tuple(scan),
    )


@functools.cache
def _group_keys(group: str) -> Mapping[str, frozenset[str]]:
    """The union of the keys over every option of ``group`` (composed once each, cached)."""
    names = list(_default_keys().nodes)
    union: dict[str, set[str]] = {name: set() for name in names}
    with _hydra_session():
        loader = GlobalHydra.instance().config_loader()
        for option in loader.get_group_options(group, results_filter=ObjectType.CONFIG):
            cfg = compose(config_name="train", overrides=[f"{group}={option}"])
            for name, keys in _node_keys(cfg, names).items():
                union[name] |= keys
    return {name: frozenset(k) for name, k in union.items()}


def _is_known(node_path: str, key: str) -> bool:
    """Whether a shipped config has ``key`` in node ``node_path``; the default composition
    first, then (only for a key it lacks) every option of the groups that may add it."""
    default = _default_keys()
    if key in default.nodes[node_path]:
        return True
    own = [node_path] if node_path in default.scan else []
    global_groups = [g for g in default.scan if g not in default.nodes]
    return any(key in _group_keys(g).get(node_path, ()) for g in own + global_groups)


def _is_target_or_none(node: DictConfig, key: str) -> bool:
    child = node._get_node(key)
    if isinstance(child, DictConfig):
        return child._is_none() or (not child._is_missing() and "_target_" in child)
    return child is not None and child._is_none()


# -- the walk --------------------------------------------------------------------------------
_REFERENCE = re.compile(r"\$\{\.*[\w-]+(\.[\w-]+)*\}")  # ${seed}, ${model.max_length}, ${..dim}


@dataclass
class _Walk:
    cfg: DictConfig
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, key: str, got: str, expected: str) -> None:
        self.problems.append(Problem(key, got, expected))


def check_config(cfg: DictConfig) -> None:
    """Check the composed train config without reading data; raise :class:`ConfigError`
    listing every problem (unknown keys, wrong types, out-of-range values)."""
    walk = _Walk(cfg)
    _check_node(walk, cfg, "")
    _check_required(walk, cfg)
    if walk.problems:
        raise ConfigError(walk.problems)


def _check_required(walk: _Walk, cfg: DictConfig) -> None:
    """Keys an experiment lists under ``required`` must be given a value: OmegaConf cannot
    make a key ``???`` again once a group default set it (``null`` wins the merge)."""
    for key in cfg.get("required") or []:
        try:
            value = OmegaConf.select(cfg, str(key), throw_on_missing=True, default=_NO_KEY)
        except MissingMandatoryValue:
            value = None
        if value is _NO_KEY:
            walk.add(f"required.{key}", "a key", "an existing key (nothing has this name)")
        elif value is None:
            walk.add(str(key), "null", "a value: this experiment needs it (required)")


_NO_KEY = object()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_node(walk: _Walk, node: DictConfig, path: str) -> None:
    """Check the keys and values of one node, then the nodes inside it."""
    target = _target_of(node, path)
    params = _check_target(walk, node, path, target) if target is not None else None
    key_checked = path == "" or (params is None and path in _default_keys().nodes)
    for raw_key in node.keys():
        key = str(raw_key)
        child_path = _join(path, key)
        if path == "" and key in UNCHECKED:
            continue
        if key in RESERVED and target is not None:
            _check_value(walk, node, key, child_path, RESERVED[key], f"{key} of a target node")
            _descend(walk, node, key, child_path)
            continue
        if params is not None and not _accepts(params, key):
            _unknown_parameter(walk, node, key, child_path, params)
            continue
        if key_checked and not _key_allowed(node, path, key):
            _unknown_key(walk, node, key, path)
            continue
        if params is not None:
            where = f"{key} of {params.target}"
            annotation = params.types.get(key, Any)  # Any: a key **kwargs takes
            none_ok = key in params.none_default
            _check_value(walk, node, key, child_path, annotation, where, target, none_ok)
        elif path == "" and key in TOP_LEVEL_TYPES:
            _check_value(walk, node, key, child_path, TOP_LEVEL_TYPES[key], "top-level key")
        else:
            _check_value(walk, node, key, child_path, Any, "", target)
        _descend(walk, node, key, child_path)


def _descend(walk: _Walk, node: DictConfig, key: str, path: str) -> None:
    """Into a child node (and the nodes of a child list), unless it is null, ??? or ${...}."""
    child = node._get_node(key)
    if not isinstance(child, (DictConfig, ListConfig)):
        return
    if child._is_none() or child._is_missing() or child._is_interpolation():
        return
    if isinstance(child, DictConfig):
        _check_node(walk, child, path)
        return
    for index in range(len(child)):
        item = child._get_node(index)
        if isinstance(item, DictConfig) and not (item._is_none() or item._is_interpolation()):
            _check_node(walk, item, f"{path}[{index}]")


def _target_of(node: DictConfig, path: str) -> str | None:
    if "_target_" in node:
        target = node._get_node("_target_")
        value = None if target is None else target._value()
        return value if isinstance(value, str) else None
    return NODE_SCHEMAS.get(path)


def _check_target(walk: _Walk, node: DictConfig, path: str, target: str) -> _Params | None:
    """The target's parameters; a problem if it does not import or a required one is absent."""
    params = _params(target)
    if isinstance(params, str):
        walk.add(
            _join(path, "_target_"),
            _show(target),
            f"a class or function Hydra can import and instantiate ({params})",
        )
        return None
    partial = node.get("_partial_", False) is True if "_target_" in node else False
    if not partial and "_args_" not in node:
        for name in sorted(params.required - {str(k) for k in node.keys()}):
            walk.add(_join(path, name), _show(_ABSENT), f"a value: {params.target} requires it")
    return params


def _accepts(params: _Params, key: str) -> bool:
    return key in params.types or params.takes_kwargs


def _key_allowed(node: DictConfig, path: str, key: str) -> bool:
    if _is_known(path, key):
        return True
    # a new entry of a collection is fine: callbacks.my_callback: {_target_: ...}
    return path in _default_keys().collections and _is_target_or_none(node, key)


def _either(words: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _suggest(key: str, choices: Collection[str], list_all: bool = True) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=3, cutoff=0.6)
    if close:
        return f" (did you mean {_either(close)}?)"
    if list_all and len(choices) <= 30:
        return f"; valid: {', '.join(sorted(choices))}"
    return ""


def _unknown_parameter(walk: _Walk, node: DictConfig, key: str, path: str, params: _Params) -> None:
    names = [n for n in params.types if not n.startswith("_")]
    walk.add(
        path,
        _show_raw(node, key),
        f"a parameter of {params.target}, which has no {key!r}{_suggest(key, names)}",
    )


def _unknown_key(walk: _Walk, node: DictConfig, key: str, path: str) -> None:
    hint = f" ({UNREAD_HINTS[key]})" if key in UNREAD_HINTS and path == "" else ""
    where = "top-level key" if path == "" else f"key of {path}"
    known = _default_keys().nodes[path] - UNCHECKED
    walk.add(
        _join(path, key),
        _show_raw(node, key),
        f"a known {where}: nothing reads {key!r}{hint}{_suggest(key, known)}",
    )


def _show_raw(node: DictConfig, key: str) -> str:
    """The value as written (interpolations unresolved)."""
    child = node._get_node(key)
    if isinstance(child, (DictConfig, ListConfig)) and not child._is_interpolation():
        return _show(child)
    raw = None if child is None else child._value()
    if OmegaConf.is_interpolation(node, key):
        return f"{raw!r} (interpolation)"
    if OmegaConf.is_missing(node, key):
        return "??? (missing)"
    return _show(raw)


def _value(walk: _Walk, node: DictConfig, key: str, path: str) -> Any:
    """The resolved plain value, ``_OBJECT`` for a node with ``_target_``, or ``_SKIP`` for a
    value that is not known yet (``???``, ``${spec.n_items}``) or is checked where it is set
    (``${seed}``). A reference to a key that does not exist is a problem."""
    if OmegaConf.is_missing(node, key):
        return _SKIP
    child = node._get_node(key)
    if OmegaConf.is_interpolation(node, key):
        raw = child._value() if child is not None else None
        try:
            value = node[key]
        except InterpolationKeyError as exc:
            reason = str(exc).splitlines()[0]
            walk.add(
                path, f"{raw!r} (interpolation)", f"a reference to a key that exists ({reason})"
            )
            return _SKIP
        except Exception:  # ??? behind it, or a resolver that needs the run: not known yet
            return _SKIP
        if isinstance(raw, str) and _REFERENCE.fullmatch(raw):
            return _SKIP
        return _plain(value)
    if isinstance(child, DictConfig) and not child._is_none() and "_target_" in child:
        return _OBJECT
    return _plain(node[key])


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
        except Exception:  # something inside is ??? or not resolvable yet
            return _SKIP
    return value


def _check_value(
    walk: _Walk,
    node: DictConfig,
    key: str,
    path: str,
    annotation: Any,
    where: str,
    target: str | None = None,
    none_ok: bool = False,
) -> None:
    """The value's type against ``annotation``, then (if that passed) its rule, if any."""
    rule = _rule_for(path, target)
    if rule is None and _describe(annotation) is None and not OmegaConf.is_interpolation(node, key):
        return  # nothing to check (a node is checked key by key)
    value = _value(walk, node, key, path)
    if value is _SKIP:
        return
    if not (none_ok and value is None) and not _matches(value, annotation):
        walk.add(path, _show(value), f"{_describe(annotation)} ({where})")
        return
    if value is None and (none_ok or (_describe(annotation) and _matches(None, annotation))):
        return  # null where the parameter takes null: no range to check
    if rule is not None and not _is_object(value):
        expected = rule.check(value, walk.cfg)
        if expected is not None:
            walk.add(path, _show(value), expected)
