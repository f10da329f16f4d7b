"""hybridrec-data: prepare, validate, synthesize and describe datasets.

    hybridrec-data synthesize --out data/synthetic --format csv
    hybridrec-data validate data=ml100k
    hybridrec-data prepare data=ncf_ml1m protocol=loo_sampled
    hybridrec-data describe data/prepared/ncf_ml1m-loo_sampled-<hash>
    hybridrec-data forget USER... --folder data/prepared/<folder> --model exports/<run id>

``prepare`` / ``validate`` take the same Hydra overrides as hybridrec-train (data=…,
protocol=…, data.source.path=…), so a dataset is prepared exactly as training will use it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hydra.errors import (
    InstantiationException,
)
from omegaconf.errors import OmegaConfBaseException

from hybridrec.cli.checks import check_config
from hybridrec.config_errors import config_error
from hybridrec.data.spec import DataSpec
from hybridrec.errors import HybridrecError
from hybridrec.overrides import compose_checked
from hybridrec.run.data import forget_users, judgments_summary, train_summary


def cmd_synthesize(args: argparse.Namespace) -> int:
    from hybridrec.data import synthetic

    data = synthetic.generate(n_users=args.users, n_items=args.items, seed=args.seed)
    paths = synthetic.write(data, args.out, fmt=args.format)
    for path in paths:
        print(path)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hybridrec.cli.common import read_source

    cfg = compose_checked(f"hybridrec-data {args.command}", args.overrides)
    check_config(cfg)  # types, ranges, unknown keys: before any data is read
    start = time.perf_counter()
    raw = read_source(cfg)
    frame = raw.interactions
    print(
        f"{raw.name}: {len(frame):,} interactions, {frame['user'].nunique():,} users, "
        f"{frame['item'].nunique():,} items, read and validated in "
        f"{time.perf_counter() - start:.2f}s from {', '.join(map(str, raw.files))}"
    )
    if raw.ratings is not None and cfg.data.get("judgments") is not None:
        print(f"  judgments: {judgments_summary(cfg, raw)}")
    if raw.test is not None:
        print(f"  given test rows: {len(raw.test):,}")
    if raw.test_negatives is not None:
        width = len(raw.test_negatives["negatives"].iloc[0])
        print(f"  given negatives: {len(raw.test_negatives):,} rows x {width}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from hybridrec.cli.common import prepare_from_config

    cfg = compose_checked(f"hybridrec-data {args.command}", args.overrides)
    check_config(cfg)  # types, ranges, unknown keys: before any data is read
    start = time.perf_counter()
    spec, folder = prepare_from_config(cfg)
    print(f"prepared in {time.perf_counter() - start:.2f}s: {folder}")
    print(json.dumps(spec.summary(), indent=2))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    spec = DataSpec.load(folder)
    print(json.dumps(spec.summary() | {"counts": spec.counts, "files": spec.files}, indent=2))
    print(train_summary(folder, spec))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase users from prepared folders and exported models (docs/privacy.md)."""
    forget_users(args.users, args.folder, args.model, args.tracking_uri, tag=not args.no_tag)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrec-data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthesize", help="write the synthetic dataset as files")
    syn.add_argument("--out", required=True, help="output folder")
    syn.add_argument("--format", choices=("csv", "parquet"), default="csv")
    syn.add_argument("--users", type=int, default=500)
    syn.add_argument("--items", type=int, default=300)
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=cmd_synthesize)
    for name, func, text in (
        ("validate", cmd_validate, "read and check a source (Hydra overrides: data=...)"),
        ("prepare", cmd_prepare, "map ids, split by protocol, write parquet + spec.json"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ml100k")
        cmd.set_defaults(func=func)
    desc = sub.add_parser("describe", help="summarise a prepared folder")
    desc.add_argument("folder")
    desc.set_defaults(func=cmd_describe)
    forget = sub.add_parser(
        "forget", help="erase users from prepared folders and exported models (docs/privacy.md)"
    )
    forget.add_argument("users", nargs="+", metavar="USER", help="raw ids or pseudonyms")
    forget.add_argument("--folder", action="append", default=[], help="a prepared folder")
    forget.add_argument(
        "--model", action="append", default=[], help="an export folder or a served model folder"
    )
    forget.add_argument("--tracking-uri", default=None, help="where to tag the runs")
    forget.add_argument("--no-tag", action="store_true", help="tag no MLflow run")
    forget.set_defaults(func=cmd_forget)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (HybridrecError, FileNotFoundError) as exc:
        print(f"hybridrec-data: error: {exc}", file=sys.stderr)
        return 2
    except (InstantiationException, OmegaConfBaseException) as exc:
        print(f"hybridrec-data: error: {config_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
