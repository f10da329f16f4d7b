"""Simulated marketers' judgments of a real catalogue (MovieLens 1M movies.dat), by a written rule.

    .venv/bin/python -m hybridrec.data.synthetic.movie_judgments \\
        --movies ../shared/datasets/ml-1m/movies.dat --out bench/ml1m_judgments.csv
    .venv/bin/hybridrec-train -m data=ml1m_marketing ... judgment.weight=0,0.3,1,3

MovieLens has no marketer data, so the judgments are simulated from what the catalogue shows
(genres, year), the rule written down here and in docs/judgments.md:

    value(movie) = sum of GENRE_VALUE[g] over its genres + clip(0.04 (year - 1990), -1, 1)
    in the "families" segment:   + 1 per Children's / Animation, - 1 per Horror / Crime
    in the "cinephiles" segment: + 1 per Film-Noir / Documentary / Drama, - 0.5 if Children's
    then standardised (all contexts together); a rater's 1-10 score is
    round(5.5 + 2 (value + noise) + 2 leniency), clipped to [1, 10]

``raters`` raters (the last one unreliable: noise 1.2 against 0.25) each judge
``per_rater`` movies drawn uniformly from the whole movies.dat catalogue — so the 177 movies
nobody rated in ML-1M (items only the catalogue knows) get judged too — in sets of
``set_size``, a third of them for a segment; each rater has their own 1-10 leniency. The file
is written to ``--out`` (keep it outside the repository, like the data it derives from). Columns
are named as a marketing team's export might be (``editor, movie, stars, audience,
shown_together``), mapped in configs/data/ml1m_marketing.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.readers.movielens import read_movies_dat

GENRE_VALUE = {
    "Drama": 0.6,
    "Documentary": 0.8,
    "Film-Noir": 0.8,
    "War": 0.4,
    "Animation": 0.5,
    "Horror": -0.8,
    "Thriller": -0.2,
    "Action": -0.3,
    "Comedy": 0.1,
}
SEGMENT_RULES = {
    "families": ({"Children's": 1.0, "Animation": 1.0, "Horror": -1.0, "Crime": -1.0}),
    "cinephiles": ({"Film-Noir": 1.0, "Documentary": 1.0, "Drama": 1.0, "Children's": -0.5}),
}
RELIABLE_NOISE, NOISY_NOISE = 0.25, 1.2


def rule_values(movies: pd.DataFrame) -> pd.DataFrame:
    """(movies, 1 + segments) the rule's value of each movie for everyone and each segment."""
    genres = movies["genres"].fillna("").str.split("|")
    base = genres.map(lambda gs: sum(GENRE_VALUE.get(g, 0.0) for g in gs)).to_numpy(float)
    year = movies["year"].astype("Float64").fillna(1990).to_numpy(float)
    base = base + np.clip(0.04 * (year - 1990), -1, 1)
    out = {"": base}
    for segment, values in SEGMENT_RULES.items():
        extra = genres.map(lambda gs, v=values: sum(v.get(g, 0.0) for g in gs)).to_numpy(float)
        out[segment] = base + extra
    frame = pd.DataFrame(out)
    return (frame - frame.mean()) / frame.stack().std()


def simulate(
    movies: pd.DataFrame, raters: int = 5, per_rater: int = 300, set_size: int = 10, seed: int = 0
) -> pd.DataFrame:
    """Judgments of ``movies`` (``read_movies_dat`` with ``item`` the id to write)."""
    rng = np.random.default_rng(seed)
    values = rule_values(movies)
    contexts = ["", *SEGMENT_RULES]
    rows = []
    for r in range(raters):
        noise = NOISY_NOISE if r == raters - 1 and raters > 1 else RELIABLE_NOISE
        chosen = rng.choice(len(movies), size=min(per_rater, len(movies)), replace=False)
        context = np.where(
            rng.random(chosen.size) < 2 / 3, "", rng.choice(list(SEGMENT_RULES), chosen.size)
        )
        column = np.array([contexts.index(c) for c in context])
        latent = values.to_numpy()[chosen, column] + rng.normal(0, noise, chosen.size)
        leniency = rng.normal(0.0, 0.3)
        score = np.clip(np.round(5.5 + 2.0 * latent + 2.0 * leniency), 1, 10)
        frame = pd.DataFrame(
            {
                "editor": f"editor_{r}",
                "movie": movies["item"].to_numpy()[chosen],
                "stars": score,
                "audience": context,
            }
        )
        position = frame.groupby("audience").cumcount().to_numpy() // set_size
        frame["shown_together"] = [
            f"e{r}-{c or 'all'}-{k}" for c, k in zip(frame["audience"], position, strict=True)
        ]
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--movies", type=Path, required=True, help="ml-1m/movies.dat")
    parser.add_argument("--item-id-offset", type=int, default=1, help="item id = MovieID - this")
    parser.add_argument("--out", type=Path, default=Path("bench/ml1m_judgments.csv"))
    parser.add_argument("--raters", type=int, default=5)
    parser.add_argument("--per-rater", type=int, default=300)
    parser.add_argument("--set-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    movies = read_movies_dat(args.movies)
    movies["item"] = movies["item"] - args.item_id_offset
    judgments = simulate(movies, args.raters, args.per_rater, args.set_size, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    judgments.to_csv(args.out, index=False)
    print(
        f"wrote {len(judgments)} judgments of {judgments['movie'].nunique()} movies to {args.out}"
    )


if __name__ == "__main__":
    main()
