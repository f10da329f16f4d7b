"""hybridrec-train: the Hydra training app.

hybridrec-train                                   # NeuMF on the embedded synthetic data
hybridrec-train model=mf data=ml100k protocol=loo_full
hybridrec-train experiment=ncf_neumf_ml1m
hybridrec-train --multirun model=mf,gmf,mlp,neumf
hybridrec-train resume=RUN_ID                     # continue a killed/failed run where it stopped

The job itself is :func:`hybridrec.run.train.train` (resume, refit, the run's tags, plots and
summary beside it in :mod:`hybridrec.run`); this module maps a user's mistake to one sentence
and an exit code. Importing it loads the job's modules (Lightning among them).
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

from omegaconf import DictConfig

from hybridrec.cli.checks import ConfigError
from hybridrec.data.errors import DataError
from hybridrec.lit.callbacks import DivergenceError
from hybridrec.run.train import train
from hybridrec.tracking import TrackingError

log = logging.getLogger("hybridrec.train")


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (``hybridrec-train: error: …``), the same in the job's log file
    (not on Hydra's console handler, which writes to stdout), then exit with ``code``."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(f"hybridrec-train: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_job(cfg: DictConfig) -> float | None:
    """One Hydra job (:mod:`hybridrec.cli.train_app`, the console script, calls it): train, a
    user's mistake as one sentence and an exit code, else the best validation score."""
    try:
        result = train(cfg)
    except DataError as exc:  # bad input: the message says where; no traceback from pandas
        _fail(f"bad input data: {exc}", 2)
    except ConfigError as exc:
        _fail(f"bad config: {exc}", 2)
    except TrackingError as exc:
        _fail(str(exc), 2)
    except DivergenceError as exc:  # the run is FAILED, its last good checkpoint kept
        _fail(str(exc), 1)
    # the job's log file (train.log) ends with the run, its status and final metrics (not on
    # the console: the summary above printed them); a failed run's status is logged by train()
    lines = [f"MLflow run {result.run_id} FINISHED after {result.epochs} epochs"]
    lines += [f"  {k} {v:.4f}" for k, v in sorted(result.metrics.items())]
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, "\n".join(lines), (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    # the value Hydra sweepers optimise: the best validation score
    return result.metrics.get(f"best/{cfg.monitor}")


if __name__ == "__main__":  # python -m hybridrec.cli.train (torchrun): the console script
    from hybridrec.cli.train_app import main

    main()
