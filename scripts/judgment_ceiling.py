"""How much agreement the held-out judgments allow: the hidden rule itself, and a ridge
regression on the items' bag-of-words text fitted to the training judgments.

    .venv/bin/python scripts/judgment_ceiling.py data/prepared/synthetic_marketing-loo_full-<hash>

Works on a folder prepared from ``data=synthetic_marketing`` (the generator's rule is known);
prints test agreement per slice (by item, cold, by rater) for both scorers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hybridrec.data.batching.judgments import stage_sets
from hybridrec.data.synthetic import generate
from hybridrec.metrics import agreement


def ridge_scores(texts: list[str], rows: pd.DataFrame, alpha: float = 3.0) -> np.ndarray:
    """Binary bag of words (N, V), ridge with an intercept on the everyone-context training
    judgments' normalised scores -> a score per item."""
    vocab = sorted({w for t in texts for w in re.findall(r"[A-Za-z0-9']+", t.lower())})
    index = {w: i for i, w in enumerate(vocab)}
    features = np.zeros((len(texts), len(vocab) + 1))
    features[:, -1] = 1.0
    for i, text in enumerate(texts):
        for word in re.findall(r"[A-Za-z0-9']+", text.lower()):
            features[i, index[word]] = 1.0
    x, y = features[rows["item"].to_numpy()], rows["z"].to_numpy()
    penalty = alpha * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    weights = np.linalg.solve(x.T @ x + penalty, x.T @ y)
    return features @ weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    spec = json.loads((args.folder / "spec.json").read_text())
    source = spec["source"]["data"]["source"]
    keys = (
        "n_users",
        "n_items",
        "seed",
        "n_raters",
        "ratings_per_rater",
        "n_new_items",
        "set_size",
    )
    data = generate(**{k: source[k] for k in keys if k in source})
    items = pd.read_parquet(args.folder / "items.parquet")
    rule = np.zeros(len(items) + 1)
    rule[items["index"]] = data.item_quality[items["raw_id"].astype(int)]
    frame = pd.read_parquet(args.folder / "judgments.parquet")
    texts = pd.read_parquet(args.folder / "item_text.parquet").sort_values("index")["text"]
    train = frame[(frame["part"] == "train") & (frame["context_kind"] == 0)]
    ridge = ridge_scores(texts.tolist(), train)
    for name, scores in (("the hidden rule", rule), ("ridge on item text", ridge)):
        cells = []
        for prefix, held in stage_sets(frame, "test").items():
            result = agreement(
                torch.tensor(scores)[held.items], held.targets, held.groups, held.pairs
            )
            cells.append(f"{prefix or 'by item/'}{result.agreement:.3f}")
        print(f"{name:<20} test agreement: {'  '.join(cells)}")


if __name__ == "__main__":
    main()
