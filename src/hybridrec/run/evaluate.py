"""The evaluation job behind hybridrec-eval (:mod:`hybridrec.cli.evaluate`): a run's checkpoint
tested under its config with the command line's overrides, on data prepared for it (the same
users and items as the model's), its metrics logged to MLflow; with ``lambdas``, once per
serving lambda and the accuracy-vs-agreement front written (docs/judgments.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.checks import check_config
from hybridrec.cli.common import prepare_from_config
from hybridrec.data.catalogue import read_id_maps
from hybridrec.data.spec import DataSpec
from hybridrec.export.source import resolve_checkpoint
from hybridrec.lit import RecLitModule
from hybridrec.lit.checkpoint import PAYLOAD, load_model
from hybridrec.run.eval_config import EvalError, apply_overrides, load_checkpoint
from hybridrec.run.eval_log import evaluate_and_log
from hybridrec.tracking import OVERRIDES_TAG
from hybridrec.tracking.lambda_front import (
    ARTIFACT_DIR,
    FRONT_KIND,
    FRONT_TAG,
    front_markdown,
    front_rows,
)
from hybridrec.tracking.lambda_front import write_front as write_lambda_front
from hybridrec.tracking.run_ids import run_or_path


def check_same_ids(trained: dict[str, Any], spec_sizes: dict[str, int], folder: Path) -> None:
    """Refuse prepared data whose users or items are not those the model was trained on:
    the raw id maps compared index by index (checkpoints without them: the counts)."""
    now = read_id_maps(folder)
    for side in ("users", "items"):
        if side in trained:
            before = [str(v) for v in trained[side]]
            after = [str(v) for v in now[side]]
            if len(before) == len(after):  # users erased since (hybridrec-data forget): None
                after = [b if v is None else a for a, b, v in zip(after, before, now[side])]
            if before == after:
                continue
            if len(before) != len(after):
                detail = f"{len(after)} {side} instead of {len(before)}"
            else:
                index = next(
                    i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b
                )
                detail = (
                    f"index {index + (side == 'items')} is {after[index]!r}, not {before[index]!r}"
                )
        elif side in spec_sizes and spec_sizes[side] != len(now[side]):
            detail = f"{len(now[side])} {side} instead of {spec_sizes[side]}"
        else:
            continue
        raise EvalError(
            f"the prepared data's {side} differ from those the model was trained on ({detail}): "
            f"its scores would be for other {side}; evaluate on data with the same {side}"
        )


def _module(checkpoint: Path, saved: dict[str, Any], cfg: DictConfig) -> RecLitModule:
    """The training task of the checkpoint: its model (rebuilt from the checkpoint alone), its
    loss and judgment term with their learned parts (context offsets), its metrics."""
    module = RecLitModule(
        model=load_model(checkpoint),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        ks=cfg.ks,
        ties=cfg.ties,
        judgment=instantiate(cfg.judgment) if cfg.get("judgment") else None,
    )
    rest = {k: v for k, v in saved["state_dict"].items() if not k.startswith("model.")}
    module.load_state_dict(rest, strict=False)
    return module.eval()


def protocol_label(spec: DataSpec) -> str:
    """The protocol as logged: its name, ``-unmasked`` when full ranking keeps known items in
    (session data never masks: its name alone)."""
    unmasked = spec.eval_mode == "full" and not spec.mask_known and spec.layout != "sessions"
    return f"{spec.protocol}-unmasked" if unmasked else spec.protocol


def evaluate(
    source: str,
    overrides: list[str],
    client: MlflowClient,
    same_run: bool = False,
    no_mask: bool = False,
    lambdas: list[float] | None = None,
) -> tuple[dict[str, float], str]:
    """Test ``source`` under the overridden config; returns (metrics, where they were logged).
    ``lambdas``: once per serving lambda (a run with a judgment head), the front written."""
    checkpoint, run_id = resolve_checkpoint(run_or_path(client, source), client)
    if same_run and run_id is None:
        raise EvalError("--same-run needs a run id, not a checkpoint file")
    saved = load_checkpoint(checkpoint)
    cfg = apply_overrides(OmegaConf.create(saved["hybridrec_config"]), overrides)
    check_config(cfg)  # the overridden values: types, ranges (e.g. ties=optimistic)
    spec, folder = prepare_from_config(cfg)
    payload = saved[PAYLOAD]
    trained_spec = payload.get("spec") or {}
    sizes = {s: int(trained_spec[f"n_{s}"]) for s in ("users", "items") if f"n_{s}" in trained_spec}
    check_same_ids(payload.get("id_maps") or {}, sizes, folder)
    with open_dict(cfg):
        cfg.datamodule.data_dir = str(folder)
    datamodule = instantiate(cfg.datamodule)
    if no_mask:  # the same split; only the batches stop masking the known items
        if spec.eval_mode != "full":
            raise EvalError(
                f"--no-mask: protocol {spec.protocol} ranks sampled candidates, where nothing is "
                "masked; use it with a full-ranking protocol (e.g. protocol=loo_full)"
            )
        datamodule.spec.mask_known = False
    module = _module(checkpoint, saved, cfg)
    if lambdas is not None and module.head is None:
        raise EvalError(
            "--lambdas: this run has no judgment head (its config's judgment.head is null); "
            "train one with judgment=head_bt (or head_pointwise) to choose lambda at serving time"
        )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    label = protocol_label(datamodule.spec)
    tags = {
        "protocol": spec.protocol,
        "dataset": spec.name,
        "data_fingerprint": spec.fingerprint,
        "ties": str(cfg.ties),
        "mask_known": str(datamodule.spec.mask_known).lower(),
        OVERRIDES_TAG: " ".join([*overrides, *(["--no-mask"] if no_mask else [])])[:5000],
    }
    if lambdas is None:
        return evaluate_and_log(
            client,
            run_id,
            same_run,
            label,
            tags,
            lambda: trainer.test(module, datamodule=datamodule, verbose=False),
        )
    per_lambda: dict[float, dict[str, float]] = {}

    def sweep() -> list[Mapping[str, float]]:
        for lam in lambdas:
            module.serving_lambda = lam
            (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
            per_lambda[lam] = {k: float(v) for k, v in metrics.items()}
        module.serving_lambda = 0.0
        return [{f"lambda_{lam:g}/{k}": v for lam, m in per_lambda.items() for k, v in m.items()}]

    accuracy = f"test/ndcg@{cfg.ks[0]}"
    out = Path(str(cfg.paths.root_dir)) / "outputs" / "lambda_fronts" / (run_id or checkpoint.stem)

    def artifacts(target: str) -> None:
        rows = front_rows(per_lambda, accuracy)
        files = write_lambda_front(rows, out, accuracy)
        for path in files:
            client.log_artifact(target, str(path), ARTIFACT_DIR)
        client.set_tag(target, FRONT_TAG, FRONT_KIND)
        print(front_markdown(rows), end="")
        print(f"front: {', '.join(str(p) for p in files)}")

    tags[FRONT_TAG] = FRONT_KIND
    return evaluate_and_log(client, run_id, same_run, f"{label}-lambdas", tags, sweep, artifacts)
