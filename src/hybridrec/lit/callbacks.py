"""Callbacks that hybridrec adds to every run (configs/callbacks/default.yaml)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from hybridrec.errors import HybridrecError


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


class DivergenceError(HybridrecError, RuntimeError):
    """Training produced a NaN or infinite loss; the message says where and what to try."""


class StopOnDivergence(L.Callback):
    """Stop the run at the first NaN or infinite training loss, before any checkpoint holds
    weights trained on it.

    Each step's loss is checked on the device (no host sync); the flag is read every
    ``check_every_n_steps`` steps, at the end of each training epoch and before any checkpoint
    is written, so the last checkpoint on disk is always from a good epoch. The error names the
    epoch, the step and that checkpoint, and suggests what to change.
    """

    def __init__(self, check_every_n_steps: int = 20) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps={check_every_n_steps}: expected >= 1")
        self.check_every_n_steps = int(check_every_n_steps)
        # (first bad global step, its epoch, its loss) on the device; step -1: none yet
        self._first_bad: torch.Tensor | None = None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach().float().reshape(())
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.tensor([-1.0, -1.0, 0.0], device=loss.device)
        # global_step has already counted this step's optimiser step: the step that made it
        step, epoch = float(trainer.global_step - 1), float(trainer.current_epoch)
        first = self._first_bad
        new = (~torch.isfinite(loss)) & (first[0] < 0)
        here = torch.stack([loss.new_tensor(step), loss.new_tensor(epoch), loss])
        self._first_bad = torch.where(new, here, first)
        if trainer.global_step % self.check_every_n_steps == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)  # the end-of-epoch validation (and its checkpoint) comes first

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._check(trainer)  # raising here keeps the bad weights out of the file

    def _check(self, trainer: L.Trainer) -> None:
        # rank-local on purpose: under DDP Lightning's launcher ends the other processes when
        # one raises (a collective here would have to run at exactly the same hooks on all)
        if self._first_bad is None:
            return
        step, epoch, loss = self._first_bad.tolist()
        if step < 0:
            return
        self._first_bad = None
        raise DivergenceError(divergence_message(trainer, int(epoch), int(step), loss))


def divergence_message(trainer: L.Trainer, epoch: int, step: int, loss: float) -> str:
    """One paragraph: where the loss went non-finite, which checkpoint is the last good one,
    what to change."""
    last_good = _last_checkpoint(trainer)
    lr = _learning_rate(trainer)
    kept = (
        f"The last good checkpoint is kept: {last_good}."
        if last_good
        else "No checkpoint was saved before it (it diverged in the first epoch)."
    )
    return (
        f"training diverged: the loss became {loss} at epoch {epoch}, step {step}; stopped "
        f"before any checkpoint could hold those weights. {kept} Try a lower learning rate"
        f"{f' (optimizer.lr={lr:g} now)' if lr else ' (optimizer.lr=)'}, a scheduler that does "
        "not raise it, "
        "gradient clipping (trainer.gradient_clip_val=1.0) or precision 32-true instead of "
        "16/bf16, and check the data for extreme values."
    )


def _last_checkpoint(trainer: L.Trainer) -> str:
    """The newest checkpoint written by the run's ModelCheckpoint callbacks ("" if none)."""
    found: list[tuple[float, str]] = []
    for callback in trainer.checkpoint_callbacks:
        for path in (
            getattr(callback, "last_model_path", ""),
            getattr(callback, "best_model_path", ""),
        ):
            if path and Path(path).is_file():
                found.append((Path(path).stat().st_mtime, str(path)))
    return max(found)[1] if found else ""


def _learning_rate(trainer: L.Trainer) -> float:
    try:
        return float(trainer.optimizers[0].param_groups[0]["lr"])
    except (IndexError, KeyError, AttributeError, TypeError, ValueError):
        return 0.0


class EpochSeed(L.Callback):
    """Seed torch, numpy and ``random`` at the start of every training epoch from (seed,
    epoch, rank): whatever draws from the global generators during an epoch (dropout, random
    masks) draws the same numbers whether the run went straight through or was resumed from a
    checkpoint. (Shuffling and negative sampling already seed themselves per epoch.)"""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = np.random.SeedSequence([self.seed, trainer.current_epoch, trainer.global_rank])
        value = int(state.generate_state(1)[0])
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)
