"""hybridrec-eval: re-evaluate a trained model, on its own protocol or another one.

    hybridrec-eval RUN_ID|CHECKPOINT [protocol=NAME] [data=NAME] [key=value ...]
                   [--tracking-uri URI] [--same-run] [--no-mask] [--lambdas 0,0.3,1]

The checkpoint (a run's best one, or a file) carries the run's resolved config; overrides
change it (``protocol=cold_items`` takes configs/protocol/cold_items.yaml, ``ties=average`` or
``protocol.mask_known=false`` set one key), the data is prepared for the result (cached like
training's), and the model is tested on it with the run's own metrics and tie rule. The model
must see the same users and items: prepared data whose raw id maps differ from the checkpoint's
is refused (its scores would belong to other items). ``--no-mask`` ranks the user's known items
too (the official GRU4Rec evaluation) on the same prepared split, without preparing it again.

Results go to a new MLflow run in the original run's experiment (a bare checkpoint without a
run: an experiment named after the data), named ``eval-<run name>-<protocol>`` and tagged
``hybridrec.evaluates=<run id>``, ``protocol``, ``dataset``, ``data_fingerprint``; it ends
FINISHED, or FAILED when the evaluation raises. With ``--same-run`` they go into the original
run as ``eval/<protocol>/<metric>``. ``<protocol>`` reads ``<name>-unmasked`` when full ranking
keeps the known items in.

``--lambdas 0,0.1,0.3,1,3`` (a run trained with a judgment head, ``judgment=head_bt``): the
test once per lambda, ranking by ``z(s(u, i)) + lambda z(s_J(c, i))`` (each standardised per
row, docs/judgments.md), from the one checkpoint; metrics as ``lambda_<value>/test/…`` and the
accuracy-vs-agreement front (front.csv / .json / .md / .png, :mod:`hybridrec.tracking.
lambda_front`) under the eval run's ``front/`` artifacts, tagged ``hybridrec.front=lambda``.

Mistakes (unknown run, missing or foreign file, bad override, other ids) print one sentence and
exit 2; bad input data found while preparing it exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hybridrec.cli.checks import check_config
from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.cli.quiet import quiet_third_party
from hybridrec.config_errors import config_error
from hybridrec.data.catalogue import read_id_maps
from hybridrec.data.errors import DataError
from hybridrec.data.spec import DataSpec
from hybridrec.errors import CheckpointError, HybridrecError
from hybridrec.export.source import resolve_checkpoint
from hybridrec.lit import RecLitModule
from hybridrec.lit.checkpoint import PAYLOAD, load_model, safe_load
from hybridrec.tracking import OVERRIDES_TAG, default_tracking_uri, mlflow_key
from hybridrec.tracking.compare import EVALUATES_TAG
from hybridrec.tracking.lambda_front import (
    ARTIFACT_DIR,
    FRONT_KIND,
    FRONT_TAG,
    front_markdown,
    front_rows,
    parse_lambdas,
)
from hybridrec.tracking.lambda_front import write_front as write_lambda_front
from hybridrec.tracking.run_ids import run_or_path
from hybridrec.tracking.runs import check_tracking_uri, end_run, now_ms, start_run

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


def _lambdas(text: str) -> list[float]:
    """``--lambdas`` parsed; its plain ValueError (a parser of a command-line value) becomes
    ours, with the same sentence."""
    try:
        return parse_lambdas(text)
    except ValueError as exc:
        raise EvalError(str(exc)) from None


def _load(checkpoint: Path) -> dict[str, Any]:
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
    saved = _load(checkpoint)
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
        return _test_and_log(
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
    return _test_and_log(client, run_id, same_run, f"{label}-lambdas", tags, sweep, artifacts)


def _test_and_log(
    client: MlflowClient,
    run_id: str | None,
    same_run: bool,
    label: str,
    tags: dict[str, str],
    test: Callable[[], list[Mapping[str, float]]],
    artifacts: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], str]:
    """Run ``test()`` and log its metrics: into ``run_id`` as ``eval/<label>/…`` (same_run), or
    into a new run, created first so that a failing evaluation leaves a FAILED run.
    ``artifacts(run)`` then logs files to the run that got the metrics."""
    if same_run:
        assert run_id is not None
        (metrics,) = test()
        results = {key: float(value) for key, value in metrics.items()}
        for key, value in results.items():
            name = key.removeprefix("test/")
            client.log_metric(run_id, mlflow_key(f"eval/{label}/{name}"), value)
        if artifacts is not None:
            artifacts(run_id)
        return results, f"run {run_id} (as eval/{label}/...)"
    if run_id is not None:
        original = client.get_run(run_id)
        experiment = client.get_experiment(original.info.experiment_id).name
        name = f"eval-{original.info.run_name}-{label}"
        tags = {**tags, EVALUATES_TAG: run_id}
    else:
        experiment = tags["dataset"]
        name = f"eval-{tags['dataset']}-{label}"
    new_run = start_run(client, experiment, name, now_ms(), tags=tags)
    error: BaseException | None = None
    try:
        (metrics,) = test()
        results = {key: float(value) for key, value in metrics.items()}
        for key, value in results.items():
            client.log_metric(new_run, mlflow_key(key), value)
        if artifacts is not None:
            artifacts(new_run)
    except BaseException as exc:
        error = exc
        raise
    finally:
        end_run(client, new_run, error)
    return results, f"run {new_run} ({name}, experiment {experiment})"


def _table(results: dict[str, float]) -> str:
    """``metric  value`` lines, sorted, under MLflow's names (``test/hr10``)."""
    named = {mlflow_key(k): v for k, v in results.items()}
    width = max((len(k) for k in named), default=0)
    return "\n".join(f"  {k:<{width}}  {v:.4f}" for k, v in sorted(named.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybridrec-eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("source", help="an MLflow run id (or a unique prefix) or a .ckpt file")
    parser.add_argument(
        "overrides", nargs="*", help="protocol=NAME, data=NAME, key=value (e.g. ties=average)"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--same-run", action="store_true", help="log into the original run as eval/<protocol>/…"
    )
    parser.add_argument(
        "--no-mask", action="store_true", help="rank the user's known items too (full ranking)"
    )
    parser.add_argument(
        "--lambdas",
        default=None,
        help="serving lambdas, e.g. 0,0.1,0.3,1,3: the accuracy-vs-agreement front of a run "
        "with a judgment head, from its one checkpoint",
    )
    args = parser.parse_args(argv)
    from hybridrec.runtime import tune_allocator

    tune_allocator()
    quiet_third_party()
    # the checkpoint download's progress bar would bury the one-line errors on stderr
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = args.tracking_uri or default_tracking_uri()
    try:
        check_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri)
        lambdas = _lambdas(args.lambdas) if args.lambdas is not None else None
        results, where = evaluate(
            args.source,
            args.overrides,
            client,
            same_run=args.same_run,
            no_mask=args.no_mask,
            lambdas=lambdas,
        )
    except DataError as exc:  # bad input data: the message names the file, row and column
        print(f"hybridrec-eval: bad input data: {exc}", file=sys.stderr)
        return 1
    except (HybridrecError, FileNotFoundError) as exc:  # ours: one sentence; a bug: traceback
        print(f"hybridrec-eval: error: {exc}", file=sys.stderr)
        return 2
    except (InstantiationException, OmegaConfBaseException) as exc:
        print(f"hybridrec-eval: error: {config_error(exc)}", file=sys.stderr)
        return 2
    except MlflowException as exc:
        message = " ".join(str(exc).split())[:300]
        print(f"hybridrec-eval: error: MLflow store {uri}: {message}", file=sys.stderr)
        return 2
    print(_table(results))
    print(f"logged to {where} in {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
