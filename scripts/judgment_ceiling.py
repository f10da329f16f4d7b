"""How much agreement the held-out judgments allow: the hidden rule itself, and a ridge
regression on the items' bag-of-words text fitted to the training judgments.

    .venv/bin/python scripts/judgment_ceiling.py data/prepared/synthetic_marketing-loo_full-<hash>
    .venv/bin/python scripts/judgment_ceiling.py data/prepared/ml1m_marketing-loo_full-<hash> \
        --alphas 0.3,1,3,10,30

On a folder prepared from ``data=synthetic_marketing`` the generator's rule is known and is
scored too, with its two parts apart: what the item text shows (brand tier + title words) and
that plus the latent appeal where interactions could show it (items with interactions; a new
product's appeal is unknowable) -- the ceilings of a scorer of text alone and of text + the
interactions. On any other prepared folder with judgments, the ridge probe alone. Prints test
agreement per slice (by item, cold, by rater). ``--alphas`` (default 3): with several, the
ridge's alpha is the one with the best validation agreement by item (printed per alpha), as the
judgment head chooses its L2. ``--fields F`` (default 1): the ridge's words are keyed by the
field of the text they are in (fields end at "."; at most F), the features of the judgment
head's ``fields=F``; ``--train`` prints the agreement on the training judgments too (pairs of
training rows), to tell a lack of capacity from overfitting.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hybridrec.data.batching.judgments import JudgmentEvalSet, eval_set, stage_sets
from hybridrec.data.synthetic import generate, generator
from hybridrec.metrics import agreement


def words(text: str, fields: int = 1) -> list[str]:
    """The text's words; with ``fields`` > 1 each prefixed by its field ("f<k>:"), k = the
    number of "." before it, at most ``fields - 1``."""
    if fields <= 1:
        return re.findall(r"[A-Za-z0-9']+", text.lower())
    parts = text.lower().split(".")
    head, tail = parts[: fields - 1], ".".join(parts[fields - 1 :])
    return [
        f"f{k}:{w}"
        for k, part in enumerate([*head, tail])
        for w in re.findall(r"[A-Za-z0-9']+", part)
    ]


def ridge_scores(
    texts: list[str], rows: pd.DataFrame, alpha: float = 3.0, fields: int = 1
) -> np.ndarray:
    """Binary bag of words (N, V), ridge with an intercept on the everyone-context training
    judgments' normalised scores -> a score per item."""
    tokens = [words(t, fields) for t in texts]
    vocab = sorted({w for ws in tokens for w in ws})
    index = {w: i for i, w in enumerate(vocab)}
    features = np.zeros((len(texts), len(vocab) + 1))
    features[:, -1] = 1.0
    for i, ws in enumerate(tokens):
        for word in ws:
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


def hidden_rule(
    folder: Path, spec: dict[str, Any], items: pd.DataFrame
) -> dict[str, np.ndarray] | None:
    """The synthetic generator's rule per item index, and its parts, or None for other data:
    ``rule``; ``text``, what the item text shows (tier of the brand + title words); ``warm``,
    the text part plus the latent appeal of items with interactions (the catalogue's items:
    the generator's ``n_items``), the text part alone for the new products."""
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
    kwargs = {k: source[k] for k in keys if k in source}
    data = generate(**kwargs)
    raw, index = items["raw_id"].astype(int).to_numpy(), items["index"].to_numpy()
    every = pd.concat([data.items, data.new_items], ignore_index=True)
    # the rule's parts as the generator draws them (its private brand tiers and latent appeal)
    defaults = inspect.signature(generate).parameters
    seed = kwargs.get("seed", defaults["seed"].default)
    n_factors = kwargs.get("n_factors", defaults["n_factors"].default)
    n_items = kwargs.get("n_items", defaults["n_items"].default)
    n_users = kwargs.get("n_users", defaults["n_users"].default)
    streams = np.random.SeedSequence(seed).spawn(6)
    tiers = generator._brand_tiers(np.random.default_rng(streams[5]))
    *_, appeal = generator._latent_factors(
        np.random.default_rng(streams[0]),
        n_users,
        n_items,
        n_factors,
        min(n_factors, len(generator._CATEGORIES)),
    )
    tier = every["brand"].map(tiers).to_numpy(dtype=np.float64)
    title = every["title"].str.lower().str.split()
    title_words = title.map(lambda ws: sum(generator.QUALITY_WORDS.get(w, 0.0) for w in ws))
    text = generator.RULE_TIER * tier + generator.RULE_WORDS * title_words.to_numpy(np.float64)
    warm = text.copy()
    warm[:n_items] += generator.RULE_APPEAL * appeal
    parts = {"rule": data.item_quality, "text": text, "warm": warm}
    out = {}
    for name, values in parts.items():
        out[name] = np.zeros(len(items) + 1)
        out[name][index] = values[raw]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--alphas", default="3", help="ridge alphas; several: chosen on val")
    parser.add_argument("--fields", type=int, default=1, help="ridge words keyed by field")
    parser.add_argument("--train", action="store_true", help="agreement on training pairs too")
    args = parser.parse_args()
    spec = json.loads((args.folder / "spec.json").read_text())
    items = pd.read_parquet(args.folder / "items.parquet")
    frame = pd.read_parquet(args.folder / "judgments.parquet")
    texts = pd.read_parquet(args.folder / "item_text.parquet").sort_values("index")["text"]
    train = frame[(frame["part"] == "train") & (frame["context_kind"] == 0)]
    alphas = [float(a) for a in args.alphas.split(",")]
    fits = {alpha: ridge_scores(texts.tolist(), train, alpha, args.fields) for alpha in alphas}
    validation = stage_sets(frame, "val")[""]
    scored = {alpha: _agreement(scores, validation) for alpha, scores in fits.items()}
    best = max(alphas, key=lambda a: scored[a])
    if len(alphas) > 1:
        cells = "  ".join(f"{a:g}: {v:.3f}" for a, v in scored.items())
        print(f"ridge validation agreement by item per alpha: {cells} -> alpha {best:g}")
    fielded = f", {args.fields} fields" if args.fields > 1 else ""
    scorers = [(f"ridge on item text (alpha {best:g}{fielded})", fits[best])]
    rule = hidden_rule(args.folder, spec, items)
    if rule is not None:
        scorers[:0] = [
            ("the hidden rule", rule["rule"]),
            ("the rule's text part (brand tier + title words)", rule["text"]),
            ("text part + appeal of items with interactions", rule["warm"]),
        ]
    training = frame[frame["part"] == "train"].reset_index(drop=True)
    train_set = eval_set(training, np.ones(len(training), dtype=bool))
    for name, scores in scorers:
        cells = [f"train {_agreement(scores, train_set):.3f}"] if args.train else []
        for prefix, held in stage_sets(frame, "test").items():
            cells.append(f"{prefix or 'by item/'}{_agreement(scores, held):.3f}")
        print(f"{name:<20} test agreement: {'  '.join(cells)}")


if __name__ == "__main__":
    main()
