"""hybridrec-train's console script: the Hydra app around :func:`hybridrec.run.train.train`.

Only Hydra loads here. torch, Lightning, MLflow and the data layer load when a job runs (in
:func:`_hydra_main`) or a resumed run's overrides are read; a mistyped override is answered from
the composed config alone, and ``--help`` from the configs folder (Hydra's own help composes
every group: ~1.5 s). Before, each of these took ~8 s of imports (docs/benchmarks.md, "Start-up
time"; ``tests/cli/test_startup.py`` holds it)."""

from __future__ import annotations

import logging
import re
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hybridrec.cli.locate import config_dir
from hybridrec.cli.quiet import quiet_third_party
from hybridrec.overrides import UsageError, compose_checked

USAGE = """usage:
  hybridrec-train                                   # NeuMF on the embedded synthetic data
  hybridrec-train model=mf data=ml100k protocol=loo_full
  hybridrec-train experiment=hybrid_ml100k          # a whole benchmark setup
  hybridrec-train --multirun model=mf,gmf,mlp,neumf
  hybridrec-train hparams_search=mf_optuna          # an Optuna search
  hybridrec-train resume=RUN_ID                     # continue a killed/failed run
"""


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    from hybridrec.cli.train import run_job
    from hybridrec.tracking.sweep import record_failed_trial, study_tags

    if not study_tags():
        # the value Hydra sweepers optimise: the best validation score
        return run_job(cfg)
    # a trial of a hyperparameter search that fails as a single run would (a bad config, bad
    # data, a diverging loss: run_job said why) is a failed trial, not the end of the study:
    # its MLflow run ends FAILED (one is made for a trial refused before its run started) and
    # None makes the Optuna sweeper record the trial FAIL and go on. Anything else (a bug)
    # still ends the study, with its traceback.
    try:
        return run_job(cfg)
    except SystemExit as exc:
        if exc.code in (0, None) or not isinstance(exc.code, int):
            raise
        log = logging.getLogger("hybridrec.train")
        try:
            record_failed_trial(
                str(cfg.logger.tracking_uri), str(cfg.logger.experiment_name), exc.code
            )
        except Exception as error:  # the store itself failed: the study still goes on
            log.warning("the failed trial could not be recorded in MLflow: %s", error)
        log.warning(
            "trial %s failed (exit %s, the reason above); the study goes on",
            HydraConfig.get().job.num,
            exc.code,
        )
        return None


def main() -> None:
    if sys.argv[1:] in (["--help"], ["-h"]):  # Hydra's own help composes every group: ~1.5 s
        print(_help())
        return
    quiet_third_party()
    if any(arg.startswith("resume=") for arg in sys.argv[1:]):  # reads the run's store
        from hybridrec.run.replay import with_recorded_overrides

        sys.argv[1:] = with_recorded_overrides(sys.argv[1:])
    _check_search_plugin(sys.argv[1:])
    _check_overrides(sys.argv[1:])
    # SIGTERM (a scheduler, `kill`) ends a run like Ctrl-C: Lightning shuts down gracefully and
    # the MLflow run is marked KILLED instead of staying RUNNING forever
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    # a job runs: the job's modules load before Hydra sets up logging, as they always did —
    # Lightning imported under Hydra's logging adds its own stderr handler ("INFO: Seed set")
    import hybridrec.cli.train  # noqa: F401

    _hydra_main()


def _help() -> str:
    """The usage lines above and every config group with its options, read from the folder."""
    root = Path(config_dir())
    groups = sorted(
        folder.relative_to(root).as_posix()
        for folder in root.rglob("*")
        if folder.is_dir()
        and any(folder.glob("*.yaml"))
        and folder.name != "hydra"
        and not folder.relative_to(root).as_posix().startswith("hydra/")
    )
    lines = [USAGE, "config groups (group=option; a nested group: model/text=bag):"]
    for group in groups:
        options = ", ".join(sorted(f.stem for f in (root / group).glob("*.yaml")))
        lines += textwrap.wrap(
            options, 98, initial_indent=f"  {group:<15}", subsequent_indent=" " * 17
        )
    lines += [
        "",
        "any key: key=value (trainer.max_epochs=5); the composed config: --cfg job;",
        "a sweep: --multirun a=1,2 or hparams_search=NAME; Hydra's own flags: --hydra-help;",
        f"the files: {root}; more in README.md",
    ]
    return "\n".join(lines)


def _check_overrides(args: list[str]) -> None:
    """A bad override (unknown key, missing option, a bare file name) as one sentence that
    says what to type, instead of Hydra's hint (``+duplicates=drop`` adds a key nothing
    reads). Multiruns and Hydra's own flags go to Hydra as they are."""
    if any(arg.startswith("-") for arg in args):
        return
    try:
        compose_checked("hybridrec-train", args)
    except UsageError as exc:
        print(f"hybridrec-train: error: {exc}", file=sys.stderr)
        sys.exit(2)


def _check_search_plugin(args: list[str]) -> None:
    """``hparams_search=…`` (or ``hydra/sweeper=optuna``) without Hydra's Optuna sweeper
    installed: one sentence with the install command, exit 2, instead of Hydra's "Could not
    find 'hydra/sweeper/optuna'" and its search path (``-m`` included)."""
    wanted = [
        a for a in args if re.fullmatch(r"\+?(hparams_search=(?!null$).+|hydra/sweeper=optuna)", a)
    ]
    if not wanted:
        return
    try:
        import hydra_plugins.hydra_optuna_sweeper.optuna_sweeper  # noqa: F401
    except ImportError as exc:
        print(
            f"hybridrec-train: error: {wanted[-1]} needs Hydra's Optuna sweeper, which does not "
            f"load here ({exc}); install it with: pip install -c requirements.lock -e '.[search]' "
            "(in a checkout; else pip install hydra-optuna-sweeper)",
            file=sys.stderr,
        )
        sys.exit(2)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    main()
