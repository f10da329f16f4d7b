"""hybridrec-eval's inputs: a run's checkpoint, loaded as plain data, and its config under the
command line's overrides (a swapped ``data=`` / ``protocol=`` group, single keys).

:class:`EvalError` is what hybridrec-eval answers with one sentence and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.errors import CheckpointError, HybridrecError
from hybridrec.lit.checkpoint import PAYLOAD, safe_load

#: groups whose option may be swapped (the model, loss and optimiser are the checkpoint's)
SWAPPABLE_GROUPS = ("data", "protocol")


class EvalError(HybridrecError, ValueError):
    """A request hybridrec-eval cannot carry out; the message says why."""


def _groups() -> set[str]:
    return {p.name for p in Path(config_dir()).iterdir() if p.is_dir()}


def _has_key(cfg: DictConfig, key: str) -> bool:
    """Whether the dotted ``key`` exists in ``cfg`` (a ``???`` value counts: it waits for one)."""
    parent_key, _, last = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    return isinstance(parent, DictConfig) and last in parent.keys()


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``data=NAME`` / ``protocol=NAME`` replace that node with configs/<group>/<NAME>.yaml
    (composed by Hydra, its interpolations resolved against the run's config, e.g. its
    paths); ``a.b=value`` sets a key that exists (the value parsed as YAML). Applied in order,
    so ``data=csv data.source.path=x.csv`` works."""
    groups = _groups()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EvalError(f"{item!r}: expected key=value (e.g. protocol=loo_full)")
        if key in groups:
            if key not in SWAPPABLE_GROUPS:
                raise EvalError(
                    f"{key}={value}: hybridrec-eval swaps only "
                    f"{' and '.join(g + '=' for g in SWAPPABLE_GROUPS)} (the model, loss and "
                    f"optimiser are the checkpoint's); set single keys as {key}.<key>=<value>"
                )
            options = sorted(p.stem for p in (Path(config_dir()) / key).glob("*.yaml"))
            if value not in options:
                raise EvalError(f"{key}={value}: no such option; options: {', '.join(options)}")
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                fresh = compose("train", [f"{key}={value}", f"paths.root_dir={cfg.paths.root_dir}"])
            GlobalHydra.instance().clear()
            with open_dict(cfg):
                cfg[key] = OmegaConf.to_container(fresh[key], resolve=False)
            continue
        if not _has_key(cfg, key):
            raise EvalError(f"{key}: the run's config has no such key (in {item!r})")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    return cfg


def load_checkpoint(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded with ``weights_only`` (tensors and plain values only)."""
    try:
        saved = safe_load(checkpoint)
    except CheckpointError as exc:  # not a torch file, or one holding objects beyond plain data
        raise EvalError(str(exc)) from None
    if not isinstance(saved, dict) or "hybridrec_config" not in saved or PAYLOAD not in saved:
        raise EvalError(
            f"{checkpoint}: not a checkpoint written by hybridrec-train (it has no "
            f"hybridrec_config / {PAYLOAD} entries)"
        )
    return saved


def split_batches(checkpoint: Path, split: str) -> tuple[DictConfig, Path, Any]:
    """(the checkpoint's run config, its prepared folder, the ``split``'s evaluation batches:
    ``val`` or ``test``), the data prepared from the config as hybridrec-eval prepares it —
    what the analysis scripts (cold_frontier, paired_rows, repeat_sweep) score."""
    cfg = OmegaConf.create(load_checkpoint(checkpoint)["hybridrec_config"])
    _, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.datamodule.data_dir = str(folder)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit" if split == "val" else "test")
    batches = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    return cfg, folder, batches
