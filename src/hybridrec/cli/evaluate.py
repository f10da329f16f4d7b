"""hybridrec-eval: re-evaluate a trained model, on its own protocol or another one.

    hybridrec-eval RUN_ID|CHECKPOINT [protocol=NAME] [data=NAME] [key=value ...]
                   [--tracking-uri URI] [--same-run]

The checkpoint (a run's best one, or a file) carries the run's resolved config; overrides
change it (``protocol=cold_items`` takes configs/protocol/cold_items.yaml, ``ties=average`` or
``protocol.mask_known=false`` set one key), the data is prepared for the result (cached like
training's), and the model is tested on it with the run's own metrics and tie rule. The model
must see the same users and items: prepared data whose raw id maps differ from the checkpoint's
is refused (its scores would belong to other items).

Results go to a new MLflow run in the original run's experiment, named
``eval-<run name>-<protocol>`` and tagged ``hybridrec.evaluates=<run id>``; with
``--same-run`` into the original run as ``eval/<protocol>/<metric>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.data.errors import DataError
from hybridrec.export.source import resolve_checkpoint
from hybridrec.lit import RecLitModule
from hybridrec.lit.checkpoint import PAYLOAD, id_maps, load_model
from hybridrec.tracking import default_tracking_uri, mlflow_key
from hybridrec.tracking.runs import end_run, now_ms, start_run

EVALUATES_TAG = "hybridrec.evaluates"


class EvalError(ValueError):
    """A request hybridrec-eval cannot carry out; the message says why."""


def _groups() -> set[str]:
    return {p.name for p in Path(config_dir()).iterdir() if p.is_dir()}


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``group=name`` replaces that node with configs/<group>/<name>.yaml (composed, resolved
    under the run's paths); ``a.b=value`` sets a key that exists (YAML-parsed value)."""
    groups = _groups()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise EvalError(f"{item!r}: expected key=value (e.g. protocol=loo_full)")
        if key in groups:
            options = sorted(p.stem for p in (Path(config_dir()) / key).glob("*.yaml"))
            if value not in options:
                raise EvalError(f"{key}={value}: no such option; options: {', '.join(options)}")
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                fresh = compose("train", [f"{key}={value}", f"paths.root_dir={cfg.paths.root_dir}"])
            GlobalHydra.instance().clear()
            node = OmegaConf.to_container(fresh[key], resolve=False)
            with open_dict(cfg):
                cfg[key] = node
            continue
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise EvalError(f"{key}: the run's config has no such key")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    return cfg


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


def evaluate(
    source: str, overrides: list[str], client: MlflowClient, same_run: bool = False
) -> tuple[dict[str, float], str]:
    """Test ``source`` under the overridden config; returns (metrics, where they were logged)."""
    checkpoint, run_id = resolve_checkpoint(source, client)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "hybridrec_config" not in saved or PAYLOAD not in saved:
        raise EvalError(f"{checkpoint}: not a checkpoint written by hybridrec-train")
    if same_run and run_id is None:
        raise EvalError("--same-run needs a run id, not a checkpoint file")
    cfg = apply_overrides(OmegaConf.create(saved["hybridrec_config"]), overrides)
    spec, folder = prepare_from_config(cfg)
    trained = saved[PAYLOAD].get("id_maps") or {}
    now = id_maps(folder)
    for side in ("users", "items"):
        if side in trained and [str(v) for v in trained[side]] != [str(v) for v in now[side]]:
            raise EvalError(
                f"the prepared data's {side} differ from those the model was trained on "
                f"({len(trained[side])} vs {len(now[side])}): its scores would be for other "
                f"{side}; evaluate on data with the same {side}"
            )
    with open_dict(cfg):
        cfg.datamodule.data_dir = str(folder)
    datamodule = instantiate(cfg.datamodule)
    module = _module(checkpoint, saved, cfg)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    results = {key: float(value) for key, value in metrics.items()}
    where = _log(client, run_id, cfg, spec, results, same_run)
    return results, where


def _log(
    client: MlflowClient,
    run_id: str | None,
    cfg: DictConfig,
    spec: Any,
    results: dict[str, float],
    same_run: bool,
) -> str:
    if same_run and run_id is not None:
        for key, value in results.items():
            name = key.removeprefix("test/")
            client.log_metric(run_id, mlflow_key(f"eval/{spec.protocol}/{name}"), value)
        return f"run {run_id} (eval/{spec.protocol}/...)"
    if run_id is not None:
        original = client.get_run(run_id)
        experiment = client.get_experiment(original.info.experiment_id).name
        name = f"eval-{original.info.run_name}-{spec.protocol}"
    else:
        experiment = str(spec.name)
        name = f"eval-{spec.name}-{spec.protocol}"
    tags = {"protocol": spec.protocol, "dataset": spec.name, "data_fingerprint": spec.fingerprint}
    if run_id is not None:
        tags[EVALUATES_TAG] = run_id
    new_run = start_run(client, experiment, name, now_ms(), tags=tags)
    error: BaseException | None = None
    try:
        for key, value in results.items():
            client.log_metric(new_run, mlflow_key(key), value)
    except BaseException as exc:
        error = exc
        raise
    finally:
        end_run(client, new_run, error)
    return f"run {new_run} ({name})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybridrec-eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("source", help="an MLflow run id or a checkpoint file")
    parser.add_argument("overrides", nargs="*", help="protocol=NAME, data=NAME, key=value")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--same-run", action="store_true", help="log into the original run")
    args = parser.parse_args(argv)
    client = MlflowClient(tracking_uri=args.tracking_uri or default_tracking_uri())
    try:
        results, where = evaluate(args.source, args.overrides, client, args.same_run)
    except (EvalError, LookupError, FileNotFoundError) as exc:
        print(f"hybridrec-eval: error: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"hybridrec-eval: bad input data: {exc}", file=sys.stderr)
        return 1
    width = max(len(k) for k in results) if results else 0
    for key, value in sorted(results.items()):
        print(f"  {key:<{width}}  {value:.4f}")
    print(f"logged to {where} in {client.tracking_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
