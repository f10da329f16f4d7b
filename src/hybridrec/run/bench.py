"""The benchmark behind hybridrec-bench (:mod:`hybridrec.cli.bench`): a training run with
``hybridrec-train``'s own code for a fixed number of epochs, its figures read back from its MLflow
run (seconds per epoch, samples/s, memory, quality, FLOPs) and set against the device's peak (a
matrix product measured here, and the datasheet figure for known GPUs).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, open_dict

from hybridrec.overrides import UsageError, compose_checked

BENCH_TAG = "hybridrec.bench"

#: Dense datasheet peaks, TFLOP/s, by device-name fragment (NVIDIA's data sheets; SXM parts):
#: bf16 / fp16 tensor cores, tf32 tensor cores, plain fp32.
DATASHEET_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
}


@dataclass
class BenchReport:
    """What one ``hybridrec-bench`` run measured (also written with ``--json``)."""

    command: str
    run_id: str | None
    device: str
    threads: int
    precision: str
    epochs: int
    train_epoch_s: float
    train_samples_per_s: float
    train_step_ms: float
    val_epoch_s: float | None
    test_s: float | None
    peak_host_mb: float | None
    peak_device_mb: float | None
    flops_per_sample: float | None
    achieved_gflops: float | None
    peak_gflops: float | None
    peak_source: str
    quality: dict[str, float] = field(default_factory=dict)
    per_epoch_s: list[float] = field(default_factory=list)

    @property
    def share_of_peak(self) -> float | None:
        if self.achieved_gflops is None or not self.peak_gflops:
            return None
        return self.achieved_gflops / self.peak_gflops


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype matrix products run in under a Lightning ``precision`` setting."""
    if "bf16" in precision:
        return torch.bfloat16
    if "16" in precision:
        return torch.float16
    return torch.float32


def measured_peak_gflops(device: torch.device, dtype: torch.dtype, budget_s: float = 1.0) -> float:
    """The best GFLOP/s of a few matrix products on ``device`` in ``dtype`` with the current
    thread count: square ones and the (4095 x 256) @ (256 x 128) shape of an NCF step."""
    cuda = device.type == "cuda"
    sizes = [(8192, 8192, 8192), (4096, 4096, 4096)] if cuda else [(2048, 2048, 2048)]
    sizes.append((4095, 256, 128))
    best = 0.0
    for m, k, n in sizes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        a @ b  # warm-up: kernel choice, allocation
        repeats, start = 0, time.perf_counter()
        while True:
            a @ b
            repeats += 1
            if cuda:
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed > budget_s / len(sizes) or repeats >= 200:
                break
        best = max(best, 2 * m * k * n * repeats / elapsed / 1e9)
    return best


def datasheet_gflops(device: torch.device, dtype: torch.dtype) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    kind = "bf16" if dtype in (torch.bfloat16, torch.float16) else "fp32"
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        kind = "tf32"
    for fragment, peaks in DATASHEET_TFLOPS.items():  # "H100 PCIe" before "H100"
        if fragment in name:
            return peaks[kind] * 1000
    return None


def _device(cfg: DictConfig) -> torch.device:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model or platform.processor() or platform.machine()}"


def _history(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _median_after_first(values: list[float]) -> float | None:
    if not values:
        return None
    return statistics.median(values[1:] or values)


def configure(overrides: list[str], epochs: int, count_flops: bool) -> DictConfig:
    """The train config for a bench run: fixed epochs, FLOPs counted, tagged."""
    cfg = compose_checked("hybridrec-bench", overrides)
    with open_dict(cfg):
        cfg.trainer.max_epochs = epochs
        cfg.trainer.min_epochs = epochs
        cfg.refit_on_val = False
        if cfg.get("callbacks"):
            cfg.callbacks.early_stopping = None
            if cfg.callbacks.get("throughput") is None:
                raise UsageError(
                    "hybridrec-bench needs callbacks.throughput (it reads its figures)"
                )
            cfg.callbacks.throughput.count_flops = count_flops
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg.paths.output_dir = f"{cfg.paths.root_dir}/outputs/bench/{cfg.task_name}/{stamp}"
        cfg.logger.tags = {**(cfg.logger.get("tags") or {}), BENCH_TAG: "1"}
    return cfg


def bench(overrides: list[str], epochs: int = 3, count_flops: bool = True) -> BenchReport:
    """Train as hybridrec-train does for ``epochs`` epochs, then read the figures back."""
    from hybridrec.run.train import train

    cfg = configure(overrides, epochs, count_flops)
    result = train(cfg)
    device = _device(cfg)
    dtype = compute_dtype(str(cfg.trainer.get("precision", "32-true")))
    figures: dict[str, list[float]] = {}
    if result.run_id is not None:
        client = MlflowClient(tracking_uri=str(cfg.logger.tracking_uri))
        for key in (
            "time/train_epoch_s",
            "throughput/train_samples_per_s",
            "time/train_step_ms",
            "time/val_epoch_s",
            "time/test_s",
            "memory/peak_host_mb",
            "memory/peak_device_mb",
            "flops/train_per_sample",
        ):
            figures[key] = _history(client, result.run_id, key)
    epoch_s = figures.get("time/train_epoch_s") or result.train_epoch_seconds
    samples_per_s = _median_after_first(figures.get("throughput/train_samples_per_s", [])) or 0.0
    flops = figures.get("flops/train_per_sample") or []
    peak_measured = measured_peak_gflops(device, dtype)
    datasheet = datasheet_gflops(device, dtype)
    peak, source = peak_measured, f"measured matmul, {dtype}".replace("torch.", "")
    if datasheet is not None:
        peak, source = datasheet, f"datasheet {dtype} (measured matmul {peak_measured:.0f})"
    per_sample = flops[0] if flops else None
    quality = {k: v for k, v in result.metrics.items() if "@" in k or k.startswith("best/")}
    return BenchReport(
        command="hybridrec-bench " + " ".join(overrides),
        run_id=result.run_id,
        device=_device_name(device),
        threads=torch.get_num_threads(),
        precision=str(cfg.trainer.get("precision", "32-true")),
        epochs=len(epoch_s),
        train_epoch_s=_median_after_first(list(epoch_s)) or 0.0,
        train_samples_per_s=samples_per_s,
        train_step_ms=_median_after_first(figures.get("time/train_step_ms", [])) or 0.0,
        val_epoch_s=_median_after_first(figures.get("time/val_epoch_s", [])),
        test_s=figures["time/test_s"][-1] if figures.get("time/test_s") else None,
        peak_host_mb=max(figures.get("memory/peak_host_mb") or [0.0]) or None,
        peak_device_mb=max(figures.get("memory/peak_device_mb") or [0.0]) or None,
        flops_per_sample=per_sample,
        achieved_gflops=per_sample * samples_per_s / 1e9 if per_sample else None,
        peak_gflops=peak,
        peak_source=source,
        quality=quality,
        per_epoch_s=list(epoch_s),
    )


def format_report(report: BenchReport) -> str:
    def num(value: float | None, fmt: str, unit: str = "") -> str:
        return "-" if value is None else f"{value:{fmt}}{unit}"

    share = report.share_of_peak
    rows = [
        ("command", report.command),
        ("device", f"{report.device}, {report.threads} thread(s), {report.precision}"),
        ("train epoch", f"{num(report.train_epoch_s, '.2f', ' s')} (median of epochs 2..)"),
        ("epochs (s)", ", ".join(f"{s:.2f}" for s in report.per_epoch_s)),
        ("train samples/s", f"{report.train_samples_per_s:,.0f}"),
        ("train step", num(report.train_step_ms, ".2f", " ms")),
        ("validation pass", num(report.val_epoch_s, ".3f", " s")),
        ("test pass", num(report.test_s, ".3f", " s")),
        ("peak host memory", num(report.peak_host_mb, ",.0f", " MiB")),
        ("peak device memory", num(report.peak_device_mb, ",.0f", " MiB")),
        ("FLOPs / sample", num(report.flops_per_sample, ",.0f", " (fwd + bwd)")),
        ("achieved", num(report.achieved_gflops, ",.1f", " GFLOP/s")),
        ("peak", f"{num(report.peak_gflops, ',.1f', ' GFLOP/s')} ({report.peak_source})"),
        ("share of peak", "-" if share is None else f"{100 * share:.1f}%"),
        *((f"quality {k}", f"{v:.4f}") for k, v in sorted(report.quality.items())),
        ("MLflow run", str(report.run_id)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
