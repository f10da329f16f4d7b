"""Callbacks that hybridrec adds to every run."""

from __future__ import annotations

import time

import lightning as L


class EpochTimer(L.Callback):
    """Wall time of each training epoch, without its validation, logged as
    ``time/train_epoch_s`` and kept in ``train_seconds`` (one float per epoch)."""

    def __init__(self) -> None:
        self.train_seconds: list[float] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def _stop(self, trainer: L.Trainer) -> None:
        if self._start is None:
            return
        seconds = time.perf_counter() - self._start
        self._start = None
        self.train_seconds.append(seconds)
        for logger in trainer.loggers:
            logger.log_metrics({"time/train_epoch_s": seconds}, step=trainer.current_epoch)

    # validation at the end of an epoch starts before on_train_epoch_end: stop the clock there
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(trainer)
