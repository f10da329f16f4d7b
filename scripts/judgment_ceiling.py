"""How much agreement the held-out judgments allow: the hidden rule itself, and a ridge
regression on the items' bag-of-words text fitted to the training judgments.

    .venv/bin/python scripts/judgment_ceiling.py data/prepared/synthetic_marketing-loo_full-<hash>
    .venv/bin/python scripts/judgment_ceiling.py data/prepared/ml1m_marketing-loo_full-<hash> \
        --alphas 0.3,1,3,10,30

On a folder prepared from ``data=synthetic_marketing`` the generator's rule is known and is
scored too; on any other prepared folder with judgments, the ridge probe alone. Prints test
agreement per slice (by item, cold, by rater). ``--alphas`` (default 3): with several, the
ridge's alpha is the one with the best validation agreement by item (printed per alpha), as the
judgment head chooses its L2.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hybridrec.data.batching.judgments import JudgmentEvalSet, stage_sets
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


def _agreement(scores: np.ndarray, held: JudgmentEvalSet) -> float:
    return agreement(
        torch.tensor(scores)[held.items], held.targets, held.groups, held.pairs
    ).agreement


def hidden_rule(folder: Path, spec: dict[str, Any], items: pd.DataFrame) -> np.ndarray | None:
    """The synthetic generator's rule per item index, or None for other data."""
    source = spec["source"]["data"]["source"]
    if "n_raters" not in source:
        return None
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
    rule = np.zeros(len(items) + 1)
    rule[items["index"]] = data.item_quality[items["raw_id"].astype(int)]
    return rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--alphas", default="3", help="ridge alphas; several: chosen on val")
    args = parser.parse_args()
    spec = json.loads((args.folder / "spec.json").read_text())
    items = pd.read_parquet(args.folder / "items.parquet")
    frame = pd.read_parquet(args.folder / "judgments.parquet")
    texts = pd.read_parquet(args.folder / "item_text.parquet").sort_values("index")["text"]
    train = frame[(frame["part"] == "train") & (frame["context_kind"] == 0)]
    alphas = [float(a) for a in args.alphas.split(",")]
    fits = {alpha: ridge_scores(texts.tolist(), train, alpha) for alpha in alphas}
    validation = stage_sets(frame, "val")[""]
    scored = {alpha: _agreement(scores, validation) for alpha, scores in fits.items()}
    best = max(alphas, key=lambda a: scored[a])
    if len(alphas) > 1:
        cells = "  ".join(f"{a:g}: {v:.3f}" for a, v in scored.items())
        print(f"ridge validation agreement by item per alpha: {cells} -> alpha {best:g}")
    scorers = [(f"ridge on item text (alpha {best:g})", fits[best])]
    rule = hidden_rule(args.folder, spec, items)
    if rule is not None:
        scorers.insert(0, ("the hidden rule", rule))
    for name, scores in scorers:
        cells = []
        for prefix, held in stage_sets(frame, "test").items():
            cells.append(f"{prefix or 'by item/'}{_agreement(scores, held):.3f}")
        print(f"{name:<20} test agreement: {'  '.join(cells)}")


if __name__ == "__main__":
    main()
