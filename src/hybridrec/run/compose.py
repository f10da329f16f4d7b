"""The composed hybrid's combiner, model and table (``model=hybrid``, ``model.combine=composed``);
its parts are :mod:`hybridrec.run.parts`, the job that runs them in order
:mod:`hybridrec.run.composed`.

    parts      trained or reused by :mod:`hybridrec.run.parts`
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
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, cast

import lightning as L
import pandas as pd
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.checks import ConfigError
from hybridrec.data.catalogue import Catalogue
from hybridrec.lit import RecLitModule
from hybridrec.lit.checkpoint import PAYLOAD, safe_load
from hybridrec.lit.combiner import fit_combiner
from hybridrec.lit.student import StudentOptions, collect_users, fit_student
from hybridrec.lit.validation_rows import collect_validation
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.run.parts import (
    PartRun,
    load_part,
)
from hybridrec.tracking.mlflow_run import mlflow_key

log = logging.getLogger("hybridrec.compose")


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
    """A composed model over ``parts`` taking ``fitted``'s weights, offsets and repeat offset
    (fitted on validation scores of other checkpoints of the same recipes: the selection
    checkpoints, before a refit on train + validation or a second round); the text student,
    when ``fitted`` had one, is fitted again to these parts, with the same options."""
    composed = build_composed(cfg, parts, catalogue)
    if fitted.student is not None:
        fit_text_student(cfg, composed, instantiate(cfg.datamodule), data_dir)
    composed.set_weights(fitted.weights.clone())
    composed.set_offsets(fitted.offsets.clone())
    composed.set_repeat(fitted.repeat_value)
    if fitted.n_user_buckets > 1:  # the buckets the multipliers were fitted on
        composed.user_edges.copy_(fitted.user_edges)
        composed.set_user_weights(fitted.user_weights.clone())
    return composed


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
    client.log_metric(run_id, "combiner/repeat", composed.repeat_value)
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
