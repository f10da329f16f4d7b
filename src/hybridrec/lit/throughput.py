"""Throughput: what ``hybridrec-bench`` reads off a run — samples/s, evaluation time, memory,
FLOPs per training sample.

Logged to the run (step = epoch) as ``throughput/train_samples`` (per epoch),
``throughput/train_samples_per_s``, ``time/train_step_ms``,
``time/val_epoch_s``, ``time/test_s``, ``memory/peak_host_mb``, ``memory/peak_device_mb`` and,
once, ``flops/train_per_sample`` (forward + backward of the model and its loss on the first
training batch, counted by ``torch.utils.flop_counter``; the optimiser step and the human-rating
term are not counted).

A training *sample* is one scored (user, item) pair for the per-row layout (the positive and
each of its negatives: NVIDIA's NCF benchmark counts them so), one event for session-parallel
batches (each row's next item) and one target position for next-item windows. Clocks stop after
``torch.cuda.synchronize`` on a GPU, so queued kernels are counted where they ran.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning as L
import torch
from torch import Tensor

from hybridrec.data.batch import Batch, PairBatch, WindowBatch


def batch_samples(batch: Any) -> Tensor | int:
    """Training samples in a batch (see the module doc). A tensor where counting would need
    a device sync (the caller adds it up on the device)."""
    if isinstance(batch, dict):  # interactions + judgments (CombinedLoader)
        batch = batch["interactions"]
    match batch:
        case WindowBatch():  # one sample per target position
            return (batch.sequence_targets > 0).sum()
        case PairBatch():  # one per scored (user, item) pair
            return batch.items.numel()
        case Batch():  # SessionBatch: one per event (row)
            return len(batch)
    return 0


def peak_host_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _sync(module: L.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


def count_train_flops(module: Any, batch: Any) -> float:
    """FLOPs of one forward + backward of the model and its loss on ``batch`` (no optimiser
    step, no logging); the random state and the gradients are left as they were."""
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(batch, dict):
        batch = batch["interactions"]
    params = [p for p in module.parameters() if p.requires_grad]
    saved = [None if p.grad is None else p.grad.clone() for p in params]
    devices = [module.device] if module.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False) as counter:
        loss = module.loss(module(batch), batch)["loss"]
        loss.backward()
    for p, grad in zip(params, saved, strict=True):
        p.grad = grad
    return float(counter.get_total_flops())


class Throughput(L.Callback):
    """Times training epochs, validation and test and counts samples (see the module doc).

    Args:
        count_flops: count FLOPs per training sample on the first batch (one extra forward and
            backward, outside the timed epochs' medians that hybridrec-bench reports).
    """

    def __init__(self, count_flops: bool = True) -> None:
        self.count_flops = count_flops
        self.flops_per_sample: float | None = None
        self.train: list[dict[str, float]] = []  # per epoch: seconds, samples, steps
        self.val_seconds: list[float] = []
        self.test_seconds: list[float] = []
        self._clock: dict[str, float] = {}
        self._samples: Tensor | int = 0
        self._steps = 0

    def _log(self, trainer: L.Trainer, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.current_epoch)

    def _memory(self, module: L.LightningModule) -> dict[str, float]:
        out = {"memory/peak_host_mb": peak_host_mb()}
        if module.device.type == "cuda":
            out["memory/peak_device_mb"] = torch.cuda.max_memory_allocated(module.device) / 2**20
        return out

    # -- training ----------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module)
        self._samples, self._steps = 0, 0
        self._clock["train"] = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.count_flops and self.flops_per_sample is None:
            samples = batch_samples(batch)
            flops = count_train_flops(pl_module, batch)
            self.flops_per_sample = flops / max(float(samples), 1.0)
            self._log(trainer, {"flops/train_per_sample": self.flops_per_sample})
            _sync(pl_module)
            self._clock["train"] = time.perf_counter()  # the count is not training time

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._samples = self._samples + batch_samples(batch)
        self._steps += 1

    def _stop_train(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        start = self._clock.pop("train", None)
        if start is None:
            return
        _sync(pl_module)
        seconds = time.perf_counter() - start
        samples = float(self._samples)
        self.train.append({"seconds": seconds, "samples": samples, "steps": self._steps})
        metrics = {
            "throughput/train_samples": samples,
            "throughput/train_samples_per_s": samples / seconds,
            "time/train_step_ms": 1000 * seconds / max(self._steps, 1),
            **self._memory(pl_module),
        }
        self._log(trainer, metrics)

    # validation at the end of an epoch starts before on_train_epoch_end: stop the clock there
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop_train(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_train(trainer, pl_module)

    # -- evaluation --------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module)
        self._clock["val"] = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        start = self._clock.pop("val", None)
        if start is None or trainer.sanity_checking:
            return
        _sync(pl_module)
        seconds = time.perf_counter() - start
        self.val_seconds.append(seconds)
        self._log(trainer, {"time/val_epoch_s": seconds})

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module)
        self._clock["test"] = time.perf_counter()

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        start = self._clock.pop("test", None)
        if start is None:
            return
        _sync(pl_module)
        seconds = time.perf_counter() - start
        self.test_seconds.append(seconds)
        self._log(trainer, {"time/test_s": seconds, **self._memory(pl_module)})
