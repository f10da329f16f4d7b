"""The CUDA path: batches made on the GPU (data_on_device), bf16-mixed training, full ranking.
Skipped without CUDA (CI has none); run on a GPU machine with `pytest -m gpu`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import DictConfig

from conftest import TINY_DATA
from hybridrec.run.train import train


@pytest.mark.gpu
@pytest.mark.parametrize("protocol", ["loo_sampled", "loo_full"])
def test_gpu_training_bf16(compose_cfg: Callable[..., DictConfig], protocol: str) -> None:
    result = train(
        compose_cfg(*TINY_DATA, "trainer=gpu", f"protocol={protocol}", "trainer.max_epochs=2")
    )
    assert 0.0 <= result.metrics["test/hr@10"] <= 1.0
    assert len(result.train_epoch_seconds) == 2


@pytest.mark.gpu
def test_gpu_judgment_term(compose_cfg: Callable[..., DictConfig]) -> None:
    """The human-rating term on CUDA: judgment batches and held-out sets on the device, bf16."""
    from conftest import TINY_JUDGMENTS

    result = train(
        compose_cfg(
            "experiment=judgment_synthetic",
            *TINY_DATA,
            *TINY_JUDGMENTS,
            "trainer=gpu",
            "trainer.max_epochs=2",
        )
    )
    assert 0.0 <= result.metrics["test/marketer_agreement"] <= 1.0
    assert 0.0 <= result.metrics["test/hr@10"] <= 1.0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
def test_gpu_batches_are_made_on_the_device(tmp_path: Path) -> None:
    """data_on_device: the datamodule's tensors move once, at setup, and every batch (training
    negatives included) is built there."""
    from conftest import prepare_tiny
    from hybridrec.data import RecDataModule
    from hybridrec.data.preparation.protocols import LeaveOneOut

    folder = prepare_tiny(tmp_path / "d", LeaveOneOut(eval_mode="full"), n_users=60, n_items=40)
    datamodule = RecDataModule(folder, batch_size=32)
    trainer = L.Trainer(accelerator="gpu", devices=1, logger=False, max_epochs=1)
    datamodule.trainer = trainer
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.users.is_cuda and batch.items.is_cuda and batch.labels.is_cuda
    evaluation = next(iter(datamodule.val_dataloader()))
    assert evaluation.targets.is_cuda and evaluation.exclude.is_cuda


@pytest.mark.gpu
@cuda
def test_gpu_row_gather_matches_the_cpu_one() -> None:
    from hybridrec.nn.rows import rows

    table = torch.randn(50, 8, requires_grad=True)
    index = torch.randint(0, 50, (16, 5))
    rows(table, index).pow(2).sum().backward()
    gpu_table = table.detach().cuda().requires_grad_()
    out = rows(gpu_table, index.cuda())
    out.pow(2).sum().backward()
    assert torch.allclose(out.cpu(), table[index])
    assert table.grad is not None and gpu_table.grad is not None
    assert torch.allclose(gpu_table.grad.cpu(), table.grad, atol=1e-5)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("eval_mode", ["sampled", "full"])
def test_gpu_evaluation_equals_the_cpu_evaluation(tmp_path: Path, eval_mode: str) -> None:
    """One checkpoint tested on the GPU (fp32) and on the CPU: the same ranking metrics."""
    import functools

    from conftest import prepare_tiny
    from hybridrec.data import RecDataModule
    from hybridrec.data.preparation.protocols import LeaveOneOut
    from hybridrec.lit import RecLitModule
    from hybridrec.losses import BCELoss, LossSum
    from hybridrec.nn import MF

    protocol = LeaveOneOut(eval_mode=eval_mode, n_negatives=20 if eval_mode == "sampled" else 0)
    folder = prepare_tiny(tmp_path / eval_mode, protocol, n_users=80, n_items=50)
    spec = RecDataModule(folder).spec
    module = RecLitModule(
        MF(spec.n_users, spec.n_items, embedding_dim=8),
        LossSum({"ranking": BCELoss()}),
        optimizer=functools.partial(torch.optim.Adam, lr=0.02),
        ks=(5, 10),
    )
    options = dict(devices=1, logger=False, enable_progress_bar=False, precision="32-true")
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, enable_checkpointing=False, **options)
    trainer.fit(module, datamodule=RecDataModule(folder, batch_size=64))
    checkpoint = str(tmp_path / "one.ckpt")
    trainer.save_checkpoint(checkpoint)
    metrics = {}
    for accelerator in ("cpu", "gpu"):
        (metrics[accelerator],) = L.Trainer(accelerator=accelerator, **options).test(
            module, datamodule=RecDataModule(folder), ckpt_path=checkpoint, weights_only=True
        )
    assert metrics["cpu"].keys() == metrics["gpu"].keys()
    for name, value in metrics["cpu"].items():
        assert metrics["gpu"][name] == pytest.approx(value, abs=1e-5), name


@pytest.mark.gpu
@cuda
def test_gpu_bench_reports_device_memory_and_flops(tmp_path: Path, mlflow_uri: str) -> None:
    from hybridrec.run.bench import bench

    report = bench(
        [
            *TINY_DATA,
            "trainer=gpu",
            f"paths.root_dir={tmp_path}",
            f"logger.tracking_uri={mlflow_uri}",
        ],
        epochs=2,
    )
    assert report.peak_device_mb is not None and report.peak_device_mb > 0
    assert report.flops_per_sample and report.peak_gflops and report.peak_gflops > 1000
    assert "datasheet" in report.peak_source or "measured" in report.peak_source


@pytest.mark.gpu
@cuda
def test_gpu_batches_made_on_the_host_arrive_through_pinned_copies(tmp_path: Path) -> None:
    """data_on_device=false: batches stay on the host and move per step, non-blocking."""
    from conftest import prepare_tiny
    from hybridrec.data import RecDataModule
    from hybridrec.data.preparation.protocols import LeaveOneOut

    folder = prepare_tiny(tmp_path / "d", LeaveOneOut(eval_mode="full"), n_users=60, n_items=40)
    datamodule = RecDataModule(folder, batch_size=32, data_on_device=False)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert not batch.users.is_cuda
    moved = datamodule.transfer_batch_to_device(batch, torch.device("cuda", 0), 0)
    torch.cuda.synchronize()
    assert moved.users.is_cuda and torch.equal(moved.items.cpu(), batch.items)
