"""Batch types: pinned host copies, on the CPU: pinning is emulated the way ATen does it, since a
CPU-only torch cannot pin (the real transfer is tests/cli/test_gpu.py's, marked gpu)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from conftest import prepare_tiny
from hybridrec.data.batch import (
    PairBatch,
    PrefixEvalBatch,
    RowEvalBatch,
    SessionBatch,
    WindowBatch,
    _pinned,
)

PINNED: list[Tensor] = []


def _aten_pin_memory(self: Tensor) -> Tensor:
    """What ``Tensor.pin_memory`` does (ATen's ``_pin_memory``, aten/src/ATen/native/Memory.cpp):
    a storage for the source's sizes and strides, ``set_`` onto it, ``copy_`` into it. Only the
    allocator differs (pageable here)."""
    span = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride(), strict=True))
    storage = torch.empty(span if self.numel() else 0, dtype=self.dtype).untyped_storage()
    copy = torch.empty(0, dtype=self.dtype).set_(storage, 0, self.shape, self.stride())
    copy.copy_(self)
    PINNED.append(copy)
    return copy


@pytest.fixture
def emulated_pinning(monkeypatch: pytest.MonkeyPatch) -> list[Tensor]:
    PINNED.clear()
    monkeypatch.setattr(torch.Tensor, "pin_memory", _aten_pin_memory)
    return PINNED


def _host_training_batch(tmp_path: Path) -> PairBatch:
    from hybridrec.data import RecDataModule
    from hybridrec.data.preparation.protocols import LeaveOneOut

    folder = prepare_tiny(tmp_path / "d", LeaveOneOut(eval_mode="full"), n_users=60, n_items=40)
    datamodule = RecDataModule(folder, batch_size=32, data_on_device=False)
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader()))


def test_pinning_an_expanded_field_as_is_is_what_failed_on_the_gpu(
    emulated_pinning: list[Tensor], tmp_path: Path
) -> None:
    """The H200 run's error, here: the training labels are one row broadcast with stride 0,
    and a pinned copy with those strides cannot be written."""
    batch = _host_training_batch(tmp_path)
    assert batch.labels is not None and batch.labels.stride(0) == 0
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        batch.labels.pin_memory()


def test_pin_memory_pins_only_the_stored_elements(
    emulated_pinning: list[Tensor], tmp_path: Path
) -> None:
    batch = _host_training_batch(tmp_path)
    assert batch.labels is not None and batch.items is not None
    pinned = batch.pin_memory()
    assert pinned.labels is not None and pinned.items is not None
    assert torch.equal(pinned.labels, batch.labels) and torch.equal(pinned.items, batch.items)
    assert torch.equal(pinned.users, batch.users)
    # labels: the (1, 1 + K) stored row was pinned, then broadcast again to (B, 1 + K)
    assert pinned.labels.shape == batch.labels.shape and pinned.labels.stride(0) == 0
    assert any(p.shape == (1, batch.labels.shape[1]) for p in emulated_pinning)
    assert len(emulated_pinning) == 3  # users, items, labels: every tensor field once


def test_pinned_copy_to_a_device_keeps_the_broadcast_layout(emulated_pinning: list[Tensor]) -> None:
    """The per-field path of ``Batch.to(cuda, non_blocking=True)``, with the CPU as target."""
    labels = torch.zeros(1, 5)
    labels[0, 0] = 1.0
    wide = labels.expand(7, -1)
    moved = _pinned(wide, torch.device("cpu"))
    assert torch.equal(moved, wide) and moved.stride(0) == 0
    transposed = torch.arange(12.0).view(3, 4).t()  # not contiguous: pinned as one block
    moved = _pinned(transposed, torch.device("cpu"))
    assert torch.equal(moved, transposed) and emulated_pinning[-1].is_contiguous()


# -- each datamodule yields its batch type --------------------------------------------------
def test_rec_datamodule_yields_pair_batches_and_row_eval_batches(tmp_path: Path) -> None:
    from hybridrec.data import RecDataModule
    from hybridrec.data.preparation.protocols import LeaveOneOut

    for mode in ("full", "sampled"):
        folder = prepare_tiny(tmp_path / mode, LeaveOneOut(eval_mode=mode), n_users=30)
        datamodule = RecDataModule(folder, batch_size=16)
        datamodule.setup("fit")
        assert type(next(iter(datamodule.train_dataloader()))) is PairBatch
        for loader in (datamodule.val_dataloader(), datamodule.test_dataloader()):
            batch = next(iter(loader))
            assert type(batch) is RowEvalBatch and batch.sampled is (mode == "sampled")


def test_sequence_datamodule_yields_its_layouts(tmp_path: Path) -> None:
    from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
    from hybridrec.data.preparation.sessions import SessionSplit

    folder = prepare_tiny(
        tmp_path / "s", SessionSplit(min_item_support=1, test_days=30, val_days=30)
    )
    session = SequenceDataModule(folder, batch_size=4, n_negatives=3, prefix_cache=True)
    session.setup("fit")
    assert type(next(iter(session.train_dataloader()))) is SessionBatch
    prefixes = next(iter(session.val_dataloader()))
    assert type(prefixes) is PrefixEvalBatch
    rows = prefixes.with_row_histories()
    assert type(rows) is RowEvalBatch and torch.equal(rows.targets, prefixes.targets)  # type: ignore[arg-type]
    assert type(prefixes.to("cpu")) is PrefixEvalBatch
    windows = SequenceDataModule(folder, training="next_item", batch_size=4, max_length=5)
    windows.setup("fit")
    assert type(next(iter(windows.train_dataloader()))) is WindowBatch
    assert type(next(iter(windows.val_dataloader()))) is RowEvalBatch  # no prefix_cache
