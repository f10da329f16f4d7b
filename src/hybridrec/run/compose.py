"""The composed hybrid's parts, combiner and table (``model=hybrid``, ``model.combine=composed``);
the job that runs them in order is :mod:`hybridrec.run.composed`.

    parts      each ``model.parts.<name>`` is a list of hybridrec-train overrides (its own
               model, datamodule, loss, optimiser: the part's best recipe), trained on THIS
               run's data and protocol as a nested MLflow run under this one — or taken from an
               earlier run of the same config on the same data (``model.reuse_parts``)
    combiner   the parts' standardised validation scores, weights per part and popularity
               bucket chosen on validation NDCG (:mod:`hybridrec.lit.combiner`)
    model      :class:`~hybridrec.nn.composed.ComposedHybrid`, validated and tested by the
               same RecLitModule loops as any model, saved as one self-contained checkpoint
               (the parts' weights and catalogues inside) that export and serving read

The parent run logs the combiner's weights and offsets (metrics ``combiner/<part>/bucket<g>``,
``combiner/offset/bucket<g>``, ``combiner/repeat``, a plot, ``combiner.json``), the parts' run
ids (tag ``hybridrec.parts``) and the side-by-side table the job prints (``parts.md``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import pandas as pd
import torch
import yaml
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.checks import ConfigError
from hybridrec.cli.common import without_later_defaults
from hybridrec.data.catalogue import Catalogue
from hybridrec.lit import RecLitModule
from hybridrec.lit.checkpoint import PAYLOAD, load_model, safe_load
from hybridrec.lit.combiner import fit_combiner
from hybridrec.lit.student import StudentOptions, collect_users, fit_student
from hybridrec.lit.validation_rows import collect_validation
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.gru4rec import GRU4Rec, gru4rec_factorized
from hybridrec.tracking.mlflow_run import mlflow_key

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


def build_composed(
    cfg: DictConfig, parts: list[PartRun], catalogue: Catalogue, selection: bool = False
) -> ComposedHybrid:
    """The composed model over the parts' tested checkpoints (``selection``: the ones chosen
    on validation, before any refit), weights uniform until fitted."""
    models = [load_part(cfg, part, selection) for part in parts]
    user_buckets = int(cfg.model.combiner.get("user_buckets", 1))
    by_user = torch.cat([catalogue.user_counts, torch.zeros(1)])  # (U + 1,): the last row unknown
    composed = ComposedHybrid(
        models,
        [p.name for p in parts],
        catalogue.item_counts,
        int(cfg.model.combiner.buckets),
        user_counts=by_user if user_buckets > 1 else None,
        n_user_buckets=user_buckets,
    )
    composed.part_payloads = [
        safe_load(p.selection_checkpoint if selection else p.checkpoint)[PAYLOAD] for p in parts
    ]
    return composed


def student_options(cfg: DictConfig) -> StudentOptions | None:
    """``model.combiner.student`` as options; None when it is off."""
    node = cfg.model.combiner.get("student")
    if node is None or not node.get("enabled", True):
        return None
    values = {str(k): v for k, v in cast(dict[Any, Any], OmegaConf.to_container(node)).items()}
    values.pop("enabled", None)
    known = {f.name for f in dataclasses.fields(StudentOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"model.combiner.student.{unknown[0]}: not a student option (expected enabled, "
            f"{', '.join(sorted(known))})"
        )
    values.setdefault("seed", int(cfg.get("seed", 0)))
    if cfg.trainer.get("fast_dev_run"):  # one batch, as every stage of such a run
        values.update(max_epochs=1, pairs_per_epoch=int(values.get("batch_size", 1024)))
    return StudentOptions(**values)


def fit_text_student(
    cfg: DictConfig, composed: ComposedHybrid, datamodule: Any, data_dir: Path
) -> dict[str, Any] | None:
    """The text student fitted and attached (:mod:`hybridrec.lit.student`) when the options
    ask for one and the parts allow one (a text part and a part that reads no text)."""
    options = student_options(cfg)
    if options is None or not composed.student_parts:
        return None
    datamodule.setup("fit")
    users, vectors = collect_users(
        composed, datamodule.val_dataloader(), options.max_users, seed=options.seed
    )
    train = pd.read_parquet(data_dir / "train.parquet", columns=["user", "item"])
    pairs = torch.tensor(train[["user", "item"]].to_numpy(), dtype=torch.long)  # (P, 2)
    student, fit = fit_student(composed, users, vectors, pairs, options)
    composed.set_student(student)
    return fit.as_dict()


def fit_weights(
    cfg: DictConfig, composed: ComposedHybrid, datamodule: Any, data_dir: Path | None = None
) -> dict[str, Any]:
    """The text student (when there is one; needs ``data_dir``), then the combiner fitted on
    the validation split (the composed model's weights are set)."""
    options = cfg.model.combiner
    student = fit_text_student(cfg, composed, datamodule, data_dir) if data_dir else None
    datamodule.setup("fit")
    fit_data = collect_validation(composed, datamodule.val_dataloader(), int(options.max_rows))
    fit = fit_combiner(
        composed,
        fit_data,
        k=int(cfg.ks[0]),
        step=float(options.step),
        min_gain=float(options.min_gain),
        ties=str(cfg.ties),
        search=str(options.get("search", "auto")),
    )
    out = fit.as_dict(composed.names)
    if student is not None:
        out["student"] = student
    return out


def refit_config(cfg: DictConfig) -> DictConfig | None:
    """The parent config of the refit round (``model.combiner.refit``: overrides such as
    ``protocol.val_days=0``), or None. Its parts are trained again under it and take the
    weights fitted on this round's validation split: the parts of the session protocol, which
    has no per-user validation item to add back, retrain on every training day this way."""
    overrides = cfg.model.combiner.get("refit")
    if not overrides:
        return None
    refit = copy.deepcopy(cfg)
    for override in overrides:
        key, sep, value = str(override).partition("=")
        if not sep or not key or key.startswith(("model.", "+", "~")):
            raise ConfigError(
                f"model.combiner.refit: {override!r}: expected key=value of the data or "
                "protocol (e.g. protocol.val_days=0); the parts' own settings go in model.parts"
            )
        if OmegaConf.select(refit, key, default=None) is None:
            raise ConfigError(f"model.combiner.refit: {key} is not a key of this run's config")
        with open_dict(refit):
            OmegaConf.update(refit, key, yaml.safe_load(value), merge=False)
    return refit


def carry_weights(
    cfg: DictConfig,
    parts: list[PartRun],
    catalogue: Catalogue,
    data_dir: Path,
    fitted: ComposedHybrid,
) -> ComposedHybrid:
    """A composed model over ``parts`` taking ``fitted``'s weights and offsets (fitted on
    validation scores of other checkpoints of the same recipes); the text student, when
    ``fitted`` had one, is fitted again to these parts."""
    composed = build_composed(cfg, parts, catalogue)
    if fitted.student is not None:
        fit_text_student(cfg, composed, instantiate(cfg.datamodule), data_dir)
    composed.set_weights(fitted.weights.clone())
    composed.set_offsets(fitted.offsets.clone())
    composed.set_repeat(float(fitted.repeat))
    if fitted.n_user_buckets > 1:  # the buckets the multipliers were fitted on
        composed.user_edges.copy_(fitted.user_edges)
        composed.set_user_weights(fitted.user_weights.clone())
    return composed


def refit_composed(
    cfg: DictConfig,
    parts: list[PartRun],
    catalogue: Catalogue,
    data_dir: Path,
    fitted: ComposedHybrid,
) -> ComposedHybrid:
    """The composed model over the parts refit on train + validation, with the weights and
    offsets ``fitted`` chose on their selection checkpoints (and, when it had one, a text
    student fitted again to the refit teachers, with the same options)."""
    return carry_weights(cfg, parts, catalogue, data_dir, fitted)


def evaluate_composed(
    cfg: DictConfig,
    composed: ComposedHybrid,
    datamodule: Any,
    catalogue: Catalogue,
    logger: Any,
    output_dir: Path,
    validate: bool = True,
) -> tuple[dict[str, float], str]:
    """The project's own validation (unless a part was refit on the validation items) and test
    loops; the composed model saved as one checkpoint. Returns (test + val metrics, path)."""
    module = RecLitModule(
        model=composed,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        ks=cfg.ks,
        ties=cfg.ties,
    )
    module.run_config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    module.catalogue = catalogue
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=logger, callbacks=[], enable_checkpointing=False
    )
    validated = trainer.validate(module, datamodule=datamodule) if validate else []
    tested = trainer.test(module, datamodule=datamodule) if cfg.get("test_after_fit", True) else []
    results = {key: float(v) for key, v in (tested[0] if tested else {}).items()}
    results.update({key: float(v) for key, v in (validated[0] if validated else {}).items()})
    path = output_dir / "checkpoints" / "composed.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(str(path), weights_only=True)
    return results, str(path)


def fit_composed_head(
    cfg: DictConfig, composed: ComposedHybrid, datamodule: Any, checkpoint: str
) -> dict[str, float]:
    """The judgment head (``cfg.judgment.head``) fitted on the fitted, frozen composed model
    (:mod:`hybridrec.lit.judgment_fit`), written into ``checkpoint`` beside the model
    (``head.*``, where export and serving read a head); returns its fit and its held-out
    agreement (``val/head/…``, ``test/head/…``) and the model's own (``…/marketer_agreement``)."""
    from hybridrec.lit.judgment_fit import fit_head, head_agreement, model_agreement

    datamodule.setup("fit")
    data = getattr(datamodule, "judgments", None)
    if data is None:
        raise ConfigError(
            "judgment: the prepared data holds no judgments (data.judgments, docs/judgments.md)"
        )
    judgment = instantiate(cfg.judgment)
    epochs = 1 if cfg.trainer.get("fast_dev_run") else None
    composed.eval()
    head, losses, fit = fit_head(composed, judgment, data, instantiate(cfg.optimizer), epochs)
    histories = None
    if composed.history is not None and hasattr(datamodule, "user_histories"):
        histories = datamodule.user_histories()
    out = fit.metrics()
    for stage in ("val", "test"):
        out.update(head_agreement(head, composed, data, stage))
        out.update(model_agreement(composed, data, stage, histories))
    saved = safe_load(checkpoint)
    # as a plain run's checkpoint holds them: the head and its terms' learned parts
    saved["state_dict"].update({f"head.{k}": v for k, v in head.state_dict().items()})
    saved["state_dict"].update({f"head_losses.{k}": v for k, v in losses.state_dict().items()})
    torch.save(saved, checkpoint)
    return out


def log_combiner(client: Any, run_id: str, composed: ComposedHybrid, fit: dict[str, Any]) -> None:
    """The weights as metrics and a plot, the fit as combiner.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = composed.weights.cpu()
    for k, name in enumerate(composed.names):
        for g in range(weights.shape[1]):
            client.log_metric(
                run_id, f"combiner/{mlflow_key(name)}/bucket{g}", float(weights[k, g])
            )
    for g, offset in enumerate(composed.offsets.cpu().tolist()):
        client.log_metric(run_id, f"combiner/offset/bucket{g}", float(offset))
    client.log_metric(run_id, "combiner/repeat", float(composed.repeat))
    for key, value in (fit.get("student") or {}).items():  # the text student's fit
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            client.log_metric(run_id, f"student/{key}", float(value))
    for h in range(composed.n_user_buckets if composed.n_user_buckets > 1 else 0):
        for k, name in enumerate(composed.names):
            value = float(composed.user_weights[k, h])
            client.log_metric(run_id, f"combiner/{mlflow_key(name)}/users{h}", value)
    labels = bucket_labels(composed)
    fit = {**fit, "buckets": labels}
    if composed.n_user_buckets > 1:
        fit["user_buckets"] = user_bucket_labels(composed)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "combiner.json").write_text(json.dumps(fit, indent=2))
        figure, axes = plt.subplots(figsize=(6, 3.2))
        bottom = torch.zeros(weights.shape[1])
        for k, name in enumerate(composed.names):
            axes.bar(labels, weights[k], bottom=bottom, label=name)
            bottom += weights[k]
        axes.set_ylabel("weight")
        axes.set_title("composed hybrid: each part's weight by item popularity")
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(Path(tmp) / "combiner_weights.png", dpi=110)
        plt.close(figure)
        client.log_artifact(run_id, str(Path(tmp) / "combiner.json"), artifact_path="combiner")
        client.log_artifact(
            run_id, str(Path(tmp) / "combiner_weights.png"), artifact_path="combiner"
        )


def bucket_labels(composed: ComposedHybrid) -> list[str]:
    """'cold' and each warm bucket's training-count range, e.g. '1-3', '4-12', '13-583'."""
    counts, bucket = composed.counts.cpu(), composed.item_bucket.cpu()
    labels = []
    for g in range(composed.n_buckets):
        members = counts[1:][bucket[1:] == g]
        if g == 0:
            labels.append("cold")
        elif len(members):
            labels.append(f"{int(members.min())}-{int(members.max())}")
        else:
            labels.append(f"bucket {g} (empty)")
    return labels


def user_bucket_labels(composed: ComposedHybrid) -> list[str]:
    """Each user-history bucket's range of history lengths, e.g. '<5', '5-11', '>=12'."""
    edges = [round(float(e), 2) for e in composed.user_edges.cpu()]
    labels = [f"<{edges[0]:g}"] if edges else ["all"]
    labels += [f"{a:g}-<{b:g}" for a, b in zip(edges, edges[1:])]
    return labels + ([f">={edges[-1]:g}"] if edges else [])


def side_by_side(
    parts: list[PartRun], composed: dict[str, float], monitor: str, ks: list[int]
) -> str:
    """The parts' and the composed hybrid's metrics, one row each (markdown)."""
    k = ks[0]
    keys = [f"best/{monitor}", f"test/hr@{k}", f"test/ndcg@{k}"]
    if any(key.startswith("test/cold/") for key in composed):  # cold_items: each slice too
        keys += [f"test/{s}/{m}@{k}" for s in ("cold", "warm") for m in ("hr", "ndcg")]
    shown = [monitor if key.startswith("best/") else key for key in keys]

    def value(metrics: dict[str, float], key: str) -> str:
        for candidate in (key, mlflow_key(key)):
            if candidate in metrics and math.isfinite(metrics[candidate]):
                return f"{metrics[candidate]:.4f}"
        return "-"

    lines = [
        "| model | run | " + " | ".join(shown) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for part in parts:
        how = "reused" if part.reused else f"{part.seconds:.0f} s"
        run = f"{part.run_id[:8]} ({how})" if part.run_id else how
        lines.append(
            f"| part {part.name}{part.stage} | {run} | "
            + " | ".join(value(part.metrics, k) for k in keys)
            + " |"
        )
    best = {f"best/{monitor}": composed.get(monitor, math.nan), **composed}
    lines.append(
        "| composed hybrid | this run | " + " | ".join(value(best, k) for k in keys) + " |"
    )
    return "\n".join(lines)
