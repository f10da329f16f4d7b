"""Two models on the same test rows: each one's HR@K / NDCG@K, their paired difference and its
standard error, per kind of row (cold / warm on the cold_items protocol, else all rows).

Is a gap between two runs — the composed hybrid and its best part, say — larger than one split's
noise? The runs' own metrics are means over the same rows; this script scores every row with
both models and reports the mean of the per-row differences with its standard error
(sd / sqrt(rows)), so "below by 0.0011" can be read against what a second draw of users would
move it by.

    HYBRIDREC_SHARED_DIR=../shared .venv/bin/python scripts/paired_rows.py RUN_A RUN_B \\
        [--split test|val] [--k 10] [--tracking-uri sqlite:///mlflow.db]

RUN_A / RUN_B: run ids (their best checkpoints) or checkpoint files. The rows are those of A's
config (the data prepared for it, as hybridrec-eval prepares it: a part trained on the whole
catalogue is measured on its parent's shelves); B must know the same users and items (the same
raw ids at the same indices). Run it from the folder the runs were trained in.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from torch import Tensor

from hybridrec.cli.common import prepare_from_config
from hybridrec.data.catalogue import read_id_maps
from hybridrec.export.source import resolve_checkpoint
from hybridrec.lit.adapter import scores_all
from hybridrec.lit.checkpoint import load_model, safe_load
from hybridrec.lit.ranking import top_k_ranks
from hybridrec.lit.validation_rows import drawn_rows, full_ranking_mask
from hybridrec.metrics import ranking_metrics
from hybridrec.run.eval_config import split_batches


@torch.no_grad()
def per_row(models: list[Any], batches: Any, k: int, ties: str) -> tuple[Tensor, Tensor]:
    """(M, R, 2) each model's HR@k and NDCG@k of every row; (R,) each row's kind (0: cold
    target, 1: warm, or 1 for every row without cold flags)."""
    values: list[Tensor] = []
    kinds: list[Tensor] = []
    for batch in drawn_rows(batches, max_rows=10**9):
        assert batch.targets is not None and batch.exclude is not None
        valid = batch.targets > 0
        row = []
        for model in models:
            scores = scores_all(model, batch)  # (B, N)
            masked = full_ranking_mask(batch, int(scores.shape[1]))
            scores = scores.masked_fill(masked, -torch.inf)
            metrics = ranking_metrics(top_k_ranks(scores, batch.targets, valid, k, ties), k)
            row.append(torch.stack([metrics.hr, metrics.ndcg], -1))  # (B, 2)
        values.append(torch.stack(row))  # (M, B, 2)
        cold = batch.cold
        kinds.append(torch.ones(len(batch), dtype=torch.long) if cold is None else (~cold).long())
    return torch.cat(values, 1), torch.cat(kinds)


def summary(values: Tensor, kinds: Tensor) -> list[dict[str, Any]]:
    """Per kind of row and metric: A's mean, B's mean, mean(A - B) and its standard error."""
    out = []
    names = {0: "cold", 1: "warm"} if bool((kinds == 0).any()) else {1: "all"}
    for kind, name in names.items():
        rows = kinds == kind
        n = int(rows.sum())
        for j, metric in enumerate(("HR", "NDCG")):
            a, b = values[0, rows, j], values[1, rows, j]
            diff = a - b
            se = float(diff.std()) / math.sqrt(n) if n > 1 else float("nan")
            out.append(
                {
                    "rows": name,
                    "n": n,
                    "metric": metric,
                    "a": float(a.mean()),
                    "b": float(b.mean()),
                    "diff": float(diff.mean()),
                    "se": se,
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    args = parser.parse_args()
    client = MlflowClient(args.tracking_uri)
    paths = [resolve_checkpoint(source, client)[0] for source in (args.a, args.b)]
    models = [load_model(path) for path in paths]
    cfg, folder, loader = split_batches(paths[0], args.split)
    other = prepare_from_config(OmegaConf.create(safe_load(paths[1])["hybridrec_config"]))[1]
    if other != folder and read_id_maps(other) != read_id_maps(folder):
        raise SystemExit(f"{args.b}: trained on other users or items than {args.a} ({folder})")
    values, kinds = per_row(models, loader, args.k, str(cfg.ties))
    k = args.k
    print(f"A = {args.a}\nB = {args.b}\n{args.split} rows of {folder.name}")
    print(f"| rows | n | metric@{k} | A | B | A - B | standard error | (A - B) / se |")
    print("|---|---|---|---|---|---|---|---|")
    for r in summary(values, kinds):
        ratio = r["diff"] / r["se"] if r["se"] > 0 else float("nan")
        print(
            f"| {r['rows']} | {r['n']} | {r['metric']} | {r['a']:.4f} | {r['b']:.4f} | "
            f"{r['diff']:+.4f} | {r['se']:.4f} | {ratio:+.2f} |"
        )


if __name__ == "__main__":
    main()
