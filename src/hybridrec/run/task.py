"""The training task: a :class:`~hybridrec.lit.RecLitModule` around a model, as the config
describes it (loss, optimiser, judgment term), with the resolved config and the catalogue that
checkpoints carry."""

from __future__ import annotations

from typing import Any, cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hybridrec.data.catalogue import Catalogue
from hybridrec.lit import RecLitModule


def build_task(cfg: DictConfig, model: Any, catalogue: Catalogue | None) -> RecLitModule:
    """The training task for ``model`` as the config describes it (resolved config and the
    run's catalogue attached, so checkpoints carry them)."""
    module = RecLitModule(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        ks=cfg.ks,
        ties=cfg.ties,
        embedding_l2=float(cfg.get("embedding_l2", 0.0)),
        judgment=instantiate(cfg.judgment) if cfg.get("judgment") else None,
        blend=float(cfg.get("judgment_blend", 0.0)),
        blend_metric=f"ndcg@{cfg.ks[0]}",
        compile_scores=bool(cfg.get("compile", False)),
    )
    run_config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    model_config = run_config.get("model") or {}
    if model_config.get("combine") == "joint":  # the composed hybrid's keys: not this model's
        for key in ("parts", "combiner", "reuse_parts"):
            model_config.pop(key, None)
    module.run_config = run_config
    module.catalogue = catalogue
    return module
