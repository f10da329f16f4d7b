"""The composed hybrid's parts (``model.parts``): each a list of hybridrec-train overrides (its
own model, datamodule, loss, optimiser: the part's best recipe), trained on THIS run's data and
protocol as a nested MLflow run under the parent — or taken from an earlier run of the same
config on the same data (``model.reuse_parts``: the part key, :func:`part_key`) — then loaded
for the combiner and retested on the parent's shelves. The combiner and the composed model are
:mod:`hybridrec.run.compose`; the job that runs them in order is :mod:`hybridrec.run.composed`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.checks import ConfigError
from hybridrec.cli.common import without_later_defaults
from hybridrec.lit import RecLitModule
from hybridrec.lit.checkpoint import load_model
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.gru4rec import GRU4Rec, gru4rec_factorized

log = logging.getLogger("hybridrec.compose")

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nested-run tag: the UI draws the tree
PART_KEY_TAG = "hybridrec.part_key"
PARTS_TAG = "hybridrec.parts"
#: parent overrides typed on the command line that carry over to every part (where it trains,
#: how long, how seeded), and the parent's values that always do
INHERITED = ("seed=", "threads=", "trainer=", "trainer.", "debug=", "logger.tracking_uri=")
INHERITED_VALUES = (
    "seed",
    "threads",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.precision",
    "trainer.fast_dev_run",
)
#: the parts of ``model=hybrid`` when ``model.parts`` is null (an experiment lists its own: a
#: config merge would add to a default dict, never replace it): the joint hybrid's ID-only and
#: text-only settings, each trained alone by next-item cross-entropy; inside an experiment
#: (``task_name`` names one), with that experiment's values
DEFAULT_PARTS = {
    "ids": ["model=hybrid", "model.combine=joint", "ablation=both_id"],
    "text": ["model=hybrid", "model.combine=joint", "ablation=both_text"],
}
_SEQUENCE_TRAINING = ["datamodule=next_item", "loss=xe"]


def default_parts(cfg: DictConfig) -> dict[str, list[str]]:
    """:data:`DEFAULT_PARTS` for ``cfg``: after ``experiment=<task_name>`` when an experiment
    of that name exists (its data, optimiser and epochs for the parts too), else with the
    next-item datamodule and cross-entropy."""
    from hybridrec.cli.common import config_dir

    if not (cfg.get("data") or {}).get("text"):
        raise ConfigError(
            f"model=hybrid: its default parts are an ID model and a text model, and data="
            f"{cfg.data.get('name', '?')} has no item text (data.text); list the parts "
            "(e.g. model.parts={gru4rec: [experiment=gru4rec_beauty_bprmax], sasrec: "
            "[experiment=sasrec_beauty]} in an experiment), or train the joint hybrid "
            "without text: model.combine=joint model.text=null"
        )
    name = str(cfg.get("task_name") or "")
    if name and (Path(config_dir()) / "experiment" / f"{name}.yaml").is_file():
        return {k: [f"experiment={name}", *v] for k, v in DEFAULT_PARTS.items()}
    return {k: [*v, *_SEQUENCE_TRAINING] for k, v in DEFAULT_PARTS.items()}


#: config keys that do not change what a part learns (left out of its reuse key)
VOLATILE = ("paths", "logger", "spec", "part", "callbacks/progress_bar", "required")


def is_composed(cfg: DictConfig) -> bool:
    model = cfg.get("model") or {}
    return str(model.get("combine", "joint")) == "composed"


@dataclass
class PartRun:
    """One trained part: its run, best checkpoint and metrics (test/…, best/…)."""

    name: str
    run_id: str | None
    checkpoint: str  # the tested one (a refit on train + validation, where the part refits)
    metrics: dict[str, float]
    reused: bool
    seconds: float
    stage: str = ""  # " (refit)": a part of the refit round (model.combiner.refit)

    @property
    def selection_checkpoint(self) -> str:
        """The checkpoint chosen on validation, before any refit: what the combiner is fitted
        on (a refit model has trained on the validation items)."""
        path = Path(self.checkpoint)
        if not path.name.startswith("refit_"):
            return self.checkpoint
        chosen = sorted(path.parent.glob("epoch_*.ckpt")) or sorted(
            path.parent.glob("part_last.ckpt")  # no validation checkpoint (fast_dev_run)
        )
        if not chosen:
            raise ConfigError(
                f"model.parts.{self.name}: the refit part's selection checkpoint (epoch_*.ckpt "
                f"beside {path.name}) is gone; retrain the part (model.reuse_parts=false)"
            )
        return str(chosen[-1])

    @property
    def refit(self) -> bool:
        return self.selection_checkpoint != self.checkpoint


def part_config(
    cfg: DictConfig, name: str, overrides: list[str], inherited: list[str]
) -> DictConfig:
    """The part's train config: its overrides (+ the parent's inherited ones) composed from
    train.yaml, with the parent's data and protocol (the same prepared data by construction)."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    from hybridrec.overrides import UsageError, compose_checked

    given = [str(o) for o in overrides] + inherited
    try:
        if GlobalHydra.instance().is_initialized():
            part = compose(config_name="train", overrides=given)
        else:
            part = compose_checked("hybridrec-train", given)
    except UsageError as exc:
        raise ConfigError(f"model.parts.{name}: {exc}") from None
    except Exception as exc:  # Hydra's composition errors
        raise ConfigError(f"model.parts.{name}: {str(exc).splitlines()[0]}") from None
    if is_composed(part):
        raise ConfigError(
            f"model.parts.{name}: a part cannot itself be a composed hybrid (add "
            "model.combine=joint to train the joint hybrid as a part)"
        )
    with open_dict(part):
        if part.get("judgment") is not None and not any(
            str(o).lstrip("+~").startswith("judgment") for o in overrides
        ):
            # the parts learn from the interactions alone: the parent's judgments train its
            # head on the composed model (an experiment's judgment term stays out of them);
            # without judgments the node stays as it was (part keys of earlier runs still match)
            part.judgment = None
        part.data = copy.deepcopy(cfg.data)
        part.protocol = copy.deepcopy(cfg.protocol)
        for key, value in SHELF_DEFAULTS.items():  # parts train on the whole catalogue
            if key in part.protocol:
                part.protocol[key] = value
        part.paths = copy.deepcopy(cfg.paths)
        part.logger.experiment_name = cfg.logger.experiment_name
        part.logger.tracking_uri = cfg.logger.tracking_uri
        for key in INHERITED_VALUES:
            value = OmegaConf.select(cfg, key, default=None)
            if value is not None or key == "threads":
                OmegaConf.update(part, key, value, force_add=True)
    return part


#: cold_items settings of what a row ranks among (evaluation only: the same split, the same
#: training data). The parts are trained and their epochs chosen on the default, the whole
#: catalogue; the combiner is fitted, and every row of the side-by-side table tested, on the
#: composed run's own (retest_parts).
SHELF_DEFAULTS = {"candidates": "all", "other_slice": "keep"}


def own_shelf(cfg: DictConfig) -> bool:
    """True when the run's protocol ranks rows among other items than its parts did."""
    return any(str(cfg.protocol.get(key, value)) != value for key, value in SHELF_DEFAULTS.items())


def part_key(part: DictConfig, fingerprint: str) -> str:
    """What a part's result depends on: its resolved config without where things go and how
    they are reported, and the data fingerprint."""
    tree = cast(dict[str, Any], OmegaConf.to_container(part, resolve=False))
    for key in VOLATILE:
        node: Any = tree
        *path, last = key.split("/")
        for step in path:
            node = node.get(step, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    tree.get("datamodule", {}).pop("data_dir", None)
    without_later_defaults(tree.get("data", {}), tree.get("protocol", {}))
    model = tree.get("model", {})
    for key in ("data_dir", "catalogue", "parts", "combiner", "reuse_parts"):  # not config
        model.pop(key, None)
    for node in model.values():  # a text tower named the folder before the Catalogue: keys
        if isinstance(node, dict) and "catalogue" in node:  # of parts trained then still match
            node["data_dir"] = "${datamodule.data_dir}"
            del node["catalogue"]
    text = json.dumps(tree, sort_keys=True, default=str) + fingerprint
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reusable(client: MlflowClient, experiment: str, key: str) -> PartRun | None:
    """The newest FINISHED run tagged with ``key`` whose best checkpoint is still on disk."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{PART_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    for run in runs:
        folder = run.data.tags.get("hybridrec.output_dir")
        name = run.data.tags.get("best_checkpoint")
        if not folder or not name:
            continue
        path = Path(folder) / "checkpoints" / name
        if path.is_file():
            metrics = {k: float(v) for k, v in run.data.metrics.items()}
            return PartRun("", run.info.run_id, str(path), metrics, True, 0.0)
    return None


def train_parts(
    cfg: DictConfig,
    parent_id: str | None,
    fingerprint: str,
    output_dir: Path,
    train: Any,
    stage: str = "",
) -> list[PartRun]:
    """Train (or reuse) every part in ``cfg.model.parts``, in order (``stage``: a suffix of
    the parts' run names and folders, e.g. ``refit``)."""
    from hydra.core.hydra_config import HydraConfig

    parts = cfg.model.get("parts")
    if parts is None:
        parts = default_parts(cfg)
    if not parts:
        raise ConfigError("model.parts: a composed hybrid needs at least one part")
    inherited: list[str] = []
    if HydraConfig.initialized():
        inherited = [o for o in HydraConfig.get().overrides.task if o.startswith(INHERITED)]
    client = MlflowClient(str(cfg.logger.tracking_uri))
    reuse = bool(cfg.model.get("reuse_parts", True))
    out = []
    for name, overrides in parts.items():
        part = part_config(cfg, str(name), list(overrides), inherited)
        key = part_key(part, fingerprint)
        found = _reusable(client, str(cfg.logger.experiment_name), key) if reuse else None
        if found is not None:
            log.info("part %s: reusing run %s (same config and data)", name, found.run_id)
            found.name = str(name)
            out.append(found)
            continue
        with open_dict(part):
            label = f"{name}-{stage}" if stage else str(name)
            part.paths.output_dir = str(output_dir / "parts" / label)
            part.part = {"name": str(name), "parent": parent_id, "key": key}
            if not part.logger.get("run_name"):
                part.logger.run_name = f"part-{label}-{cfg.data.name}-{cfg.protocol.name}"
        log.info("part %s: training (%s)", name, " ".join(str(o) for o in overrides))
        start = time.perf_counter()
        result = train(part)
        if not result.best_checkpoint:
            raise ConfigError(f"model.parts.{name}: the part's run saved no checkpoint")
        out.append(
            PartRun(
                str(name),
                result.run_id,
                result.best_checkpoint,
                dict(result.metrics),
                False,
                time.perf_counter() - start,
            )
        )
    for run in out:
        run.stage = f" ({stage})" if stage else ""
    return out


def load_part(cfg: DictConfig, part: PartRun, selection: bool = False) -> FactorizedModel:
    """A part's tested model (``selection``: the one chosen on validation, before any refit)
    as a factorised model."""
    model = load_model(part.selection_checkpoint if selection else part.checkpoint)
    if isinstance(model, GRU4Rec):  # its evaluation encoder and output table: factorised
        model = gru4rec_factorized(model, int(cfg.spec.n_users))
    if not isinstance(model, FactorizedModel):
        raise ConfigError(
            f"model.parts.{part.name}: {type(model).__name__} is not a factorised model; "
            "parts are MF, TextRec, SASRec, SeqText or a joint hybrid (model.combine=joint)"
        )
    return model


def retest_parts(cfg: DictConfig, parts: list[PartRun], datamodule: Any) -> None:
    """Each part's test metrics on the run's own datamodule (its shelf: ``own_shelf``), in
    place of the ones its run measured on the whole catalogue, so that the side-by-side table
    compares like with like."""
    for part in parts:
        module = RecLitModule(
            model=load_part(cfg, part),
            loss=instantiate(cfg.loss),
            optimizer=instantiate(cfg.optimizer),
            ks=cfg.ks,
            ties=cfg.ties,
        )
        trainer: L.Trainer = instantiate(
            cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False
        )
        tested = trainer.test(module, datamodule=datamodule, verbose=False)
        metrics = {k: v for k, v in part.metrics.items() if not k.startswith("test/")}
        metrics.update({k: float(v) for k, v in (tested[0] if tested else {}).items()})
        metrics.pop(f"best/{cfg.monitor}", None)  # chosen on the whole catalogue's validation
        part.metrics = metrics
