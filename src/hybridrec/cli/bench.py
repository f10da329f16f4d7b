"""hybridrec-bench: how fast one model trains and evaluates on one dataset, and how far from the
hardware's limit it runs.

    hybridrec-bench experiment=ncf_neumf_ml1m datamodule.batch_size=4096
    hybridrec-bench experiment=ncf_neumf_ml1m trainer.precision=bf16-mixed --epochs 4
    hybridrec-bench model=mf protocol=loo_full --json bench/mf.json

Trains with ``hybridrec-train``'s own code and config (every override it takes), for
``--epochs`` epochs without early stopping, tests the best checkpoint, and records one MLflow run
like any other (tag ``hybridrec.bench``). Then prints, read back from that run:

- training: seconds per epoch and samples/s (median over the epochs after the first, which
  pays for warm-up and the FLOP count), milliseconds per step;
- evaluation: seconds of one validation pass (median) and of the test pass;
- memory: peak host RSS and, on a GPU, peak allocated device memory;
- quality: the monitor's best validation value and the test metrics;
- FLOPs: forward + backward per training sample (torch's FLOP counter on the first batch),
  the achieved FLOP/s that implies, and that as a share of the device's peak: a matrix product
  measured here, in the run's precision and thread count (and, for known GPUs, the datasheet
  figure too).

A model far below the measured peak is bound by something other than its matrix products
(memory traffic, the input pipeline, Python): ``scripts/profile_step.py --profile`` shows what.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hybridrec.cli.quiet import quiet_third_party
from hybridrec.overrides import UsageError
from hybridrec.run.bench import bench, format_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="hybridrec-bench",
        description=__doc__.split("\n\n")[0],
        epilog="Every other argument is a hybridrec-train override (key=value, group=option).",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-flops", action="store_true", help="do not count FLOPs")
    args, overrides = parser.parse_known_args(argv)
    unknown = [o for o in overrides if o.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.epochs < 1:
        parser.error("--epochs: expected >= 1")
    quiet_third_party()
    try:
        report = bench(overrides, args.epochs, count_flops=not args.no_flops)
    except UsageError as exc:
        print(f"hybridrec-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # config, data, tracking: the same one-line errors as training
        from hybridrec.cli.checks import ConfigError
        from hybridrec.data.errors import DataError

        if not isinstance(exc, ConfigError | DataError):
            raise
        print(f"hybridrec-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = asdict(report)
        data["share_of_peak"] = report.share_of_peak
        args.json.write_text(json.dumps(data, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
