"""What one training run produced: :class:`TrainResult` (the training job returns it,
the console script and the benchmarks read it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainResult:
    """What one training run produced (also recorded in MLflow under ``run_id``)."""

    metrics: dict[str, float]  # test/… metrics of the best checkpoint, best/<monitor>
    run_id: str | None
    best_checkpoint: str
    epochs: int  # epochs trained (early stopping may end before max_epochs)
    fit_seconds: float  # wall time of trainer.fit (training + validation)
    train_epoch_seconds: list[float]  # per epoch, training only (EpochTimer; empty without it)
