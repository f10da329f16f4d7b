"""Which keys exist: those the shipped configs define, at the top level and in each node
without a ``_target_`` (``data``, ``paths``, ``callbacks``).

The default composition of ``configs/train.yaml`` is read once (:func:`default_keys`); only
for a key it lacks are the options of the groups that may add keys composed, each group once
(:func:`group_keys`). Both are cached: tests clear the caches to compose again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from omegaconf import DictConfig

#: Top-level nodes not checked: filled in at run time, or Hydra's own.
UNCHECKED = {"spec", "hydra"}


@dataclass(frozen=True)
class Keys:
    """Keys the shipped configs use: top-level (``""``) and in each node without a target."""

    nodes: Mapping[str, frozenset[str]]
    collections: frozenset[str]  # nodes whose entries are all target nodes (callbacks)
    scan: tuple[str, ...]  # groups whose options may add keys: nodes without target, globals


def is_known(node_path: str, key: str) -> bool:
    """Whether a shipped config has ``key`` in node ``node_path``; the default composition
    first, then (only for a key it lacks) every option of the groups that may add it."""
    default = default_keys()
    if key in default.nodes[node_path]:
        return True
    own = [node_path] if node_path in default.scan else []
    global_groups = [g for g in default.scan if g not in default.nodes]  # experiment, debug
    return any(key in group_keys(g).get(node_path, ()) for g in own + global_groups)


@functools.lru_cache(maxsize=1)
def default_keys() -> Keys:
    """Keys of the default composition (one compose, cached)."""
    with _hydra_session():
        cfg = compose(config_name="train", return_hydra_config=True)
    groups = [str(g) for g in cfg.hydra.runtime.choices if "/" not in str(g)]
    plain = [  # group nodes without a target: their keys are checked
        g
        for g in groups
        if isinstance(cfg.get(g), DictConfig) and "_target_" not in cfg[g] and g not in UNCHECKED
    ]
    keys = _node_keys(cfg, plain)
    keys[""] |= set(groups)
    collections = [g for g in plain if all(is_target_or_none(cfg[g], k) for k in keys[g])]
    # groups with no node of their own (experiment, debug) may add keys anywhere
    scan = [*plain, *(g for g in groups if g not in cfg and g not in UNCHECKED)]
    return Keys(
        nodes={name: frozenset(k) for name, k in keys.items()},
        collections=frozenset(collections),
        scan=tuple(scan),
    )


@functools.cache
def group_keys(group: str) -> Mapping[str, frozenset[str]]:
    """The union of the keys over every option of ``group`` (composed once each, cached)."""
    names = list(default_keys().nodes)
    union: dict[str, set[str]] = {name: set() for name in names}
    with _hydra_session():
        loader = GlobalHydra.instance().config_loader()
        for option in loader.get_group_options(group, results_filter=ObjectType.CONFIG):
            cfg = compose(config_name="train", overrides=[f"{group}={option}"])
            for name, keys in _node_keys(cfg, names).items():
                union[name] |= keys
    return {name: frozenset(k) for name, k in union.items()}


@contextmanager
def _hydra_session() -> Iterator[None]:
    """Compose in the running Hydra app (hybridrec-train) or, outside one, in ``configs/``."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    from hybridrec.cli.common import config_dir  # here: common may import this package

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield


def _node_keys(cfg: DictConfig, names: Iterable[str]) -> dict[str, set[str]]:
    """The top-level keys (``""``, without ``hydra``) and those of each named node."""
    keys: dict[str, set[str]] = {"": {str(k) for k in cfg.keys()} - {"hydra"}}
    for name in names:
        node = cfg._get_node(name) if name in cfg else None
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
            keys[name] = {str(k) for k in node.keys()}
    return keys


def is_target_or_none(node: DictConfig, key: str) -> bool:
    """Whether ``node[key]`` is a node with ``_target_``, or null."""
    child = node._get_node(key)
    if isinstance(child, DictConfig):
        return child._is_none() or (not child._is_missing() and "_target_" in child)
    return child is not None and child._is_none()
