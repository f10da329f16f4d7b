"""Time GRU4Rec's evaluation pass before and after the prefix cache (docs/perf_eval_cache.md).

    .venv/bin/python scripts/time_prefix_eval.py --experiment gru4rec_beauty_xe --reference c79995c
    .venv/bin/python scripts/time_prefix_eval.py --experiment gru4rec_rsc15_xe --stage test \\
        --reference c79995c

Two variants of one untrained model (the same weights), each run through Lightning's
validation (or test) loop on the CPU, one warm-up pass each, then A B A B ... ``--repeats``
times:
    A  the per-row layout (``datamodule.prefix_cache=false``: every prefix encoded anew), with
       GRU4Rec as in commit ``--reference`` when given (the code before this change), else
       with this tree's GRU4Rec
    B  the experiment's datamodule as configured (``prefix_cache: true`` for
       datamodule=sequence) and this tree's GRU4Rec
Prints each pass's wall-clock and CPU seconds (this process's: steadier than wall-clock on a
shared machine), the medians, B's speed-up, and both variants' metrics (they must agree).
Extra arguments are Hydra overrides. The RSC15 experiments have no validation split
(``protocol.val_days: 0``): time their test pass, the same code.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf, open_dict

from hybridrec.cli.common import config_dir, prepare_from_config
from hybridrec.lit import RecLitModule

MODEL_FILE = "src/hybridrec/nn/gru4rec.py"


def _model_class_at(commit: str, folder: Path) -> Any:
    """GRU4Rec as ``commit`` had it (its module loaded from ``git show``)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{MODEL_FILE}"], check=True, capture_output=True, text=True
    ).stdout
    path = folder / "gru4rec_reference.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("gru4rec_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GRU4Rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    parser.add_argument("--experiment", default="gru4rec_beauty_xe")
    parser.add_argument("--stage", choices=("val", "test"), default="val")
    parser.add_argument("--repeats", type=int, default=3, help="A B pairs timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", help="commit whose GRU4Rec variant A runs")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir(), version_base=None):
        cfg = compose("train", overrides=[f"experiment={args.experiment}", *args.overrides])
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(kwargs, dict)
    current = get_class(str(kwargs.pop("_target_")))
    with tempfile.TemporaryDirectory() as tmp:
        reference = _model_class_at(args.reference, Path(tmp)) if args.reference else current
    torch.manual_seed(0)
    models = {"A": reference(**kwargs), "B": current(**kwargs)}
    models["A"].load_state_dict(models["B"].state_dict())
    modules = {
        name: RecLitModule(
            model=model,
            loss=instantiate(cfg.loss),
            optimizer=instantiate(cfg.optimizer),
            ks=cfg.ks,
            ties=cfg.ties,
        )
        for name, model in models.items()
    }
    datamodules = {
        "A": instantiate(cfg.datamodule, prefix_cache=False),
        "B": instantiate(cfg.datamodule),
    }
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    run = trainer.validate if args.stage == "val" else trainer.test

    def timed(name: str) -> tuple[float, float, dict[str, Any]]:
        start, cpu = time.perf_counter(), time.process_time()
        (metrics,) = run(modules[name], datamodule=datamodules[name], verbose=False)
        return time.perf_counter() - start, time.process_time() - cpu, metrics

    results = {name: timed(name)[2] for name in ("A", "B")}  # warm-up (and setup)
    for name, dm in datamodules.items():
        batches = dm._val if args.stage == "val" else dm._test
        layout = "prefix" if batches.prefix_cache else "per-row"
        where = args.reference if name == "A" and args.reference else "this tree"
        print(f"{name}: {layout} layout, {len(batches.users)} rows, GRU4Rec of {where}")
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for name in ("A", "B"):
            wall, cpu, results[name] = timed(name)
            seconds.setdefault(("wall", name), []).append(wall)
            seconds.setdefault(("cpu", name), []).append(cpu)
    for clock in ("wall", "cpu"):
        for name in ("A", "B"):
            runs = " ".join(f"{s:.2f}" for s in seconds[clock, name])
            median = statistics.median(seconds[clock, name])
            print(f"{name} {args.stage} pass {clock:4s} s: {runs}  median {median:.2f}")
        a, b = (statistics.median(seconds[clock, name]) for name in ("A", "B"))
        print(f"speed-up ({clock}, median A / median B): {a / b:.2f}x")
    for key in sorted(results["A"]):
        a, b = float(results["A"][key]), float(results["B"][key])
        print(f"{key:30s} A {a:.6f}  B {b:.6f}  |A - B| {abs(a - b):.1e}")


if __name__ == "__main__":
    main()
