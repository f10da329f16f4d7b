"""Synthetic interactions at any scale, for the speed and memory sweeps (``data=synthetic_scale``).

The default synthetic dataset (:mod:`hybridrec.data.synthetic`) samples every user against the
whole catalogue through latent factors, which is exact but quadratic: fine for 500 x 300, not
for 20M interactions over 1M items. This one is linear in the interactions, and still has
structure a model can learn, so its quality metric is not noise:

- items have a Zipf popularity (exponent ``zipf``) and fall into ``n_clusters`` taste clusters
  (the item of popularity rank r is in cluster ``r % n_clusters``);
- each user has a cluster and a log-normal activity; a draw is an item by popularity, moved into
  the user's cluster with probability ``affinity`` (the item of the same within-cluster rank);
- repeated (user, item) pairs are dropped, so the result has slightly fewer rows than asked
  for; timestamps increase along each user's draws.

Everything is vectorised NumPy, deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrec.data.raw import RawData


def read_scale(
    n_users: int = 100_000,
    n_items: int = 10_000,
    n_interactions: int = 1_000_000,
    n_clusters: int = 50,
    zipf: float = 0.8,
    affinity: float = 0.7,
    seed: int = 0,
    name: str = "synthetic_scale",
) -> RawData:
    """About ``n_interactions`` distinct (user, item) pairs with timestamps (see module doc)."""
    for key, value, low in (
        ("n_users", n_users, 1),
        ("n_items", n_items, n_clusters),
        ("n_interactions", n_interactions, 2 * n_users),
        ("n_clusters", n_clusters, 1),
    ):
        if value < low:
            raise ValueError(f"data.source.{key}={value}: expected >= {low}")
    if n_interactions > n_users * n_items // 2:
        raise ValueError(
            f"data.source.n_interactions={n_interactions}: more than half of all "
            f"{n_users} x {n_items} pairs; use fewer interactions or more users/items"
        )
    if not 0 <= affinity <= 1:
        raise ValueError(f"data.source.affinity={affinity}: expected in [0, 1]")
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame()
    oversample = 1.05
    for _ in range(4):  # popular items repeat within a user: draw more until enough are distinct
        frame = _draw(rng, n_users, n_items, n_interactions, n_clusters, zipf, affinity, oversample)
        if len(frame) >= n_interactions:
            break
        oversample *= 1.02 * n_interactions / max(len(frame), 1)
    if len(frame) > n_interactions:
        frame = frame.iloc[np.sort(rng.choice(len(frame), n_interactions, replace=False))]
    # timestamps: increasing along each user's rows, users interleaved in time
    position = frame.groupby("user").cumcount().to_numpy(np.int64)
    start = rng.integers(0, 86_400 * 30, n_users)[frame["user"].to_numpy()]
    frame["timestamp"] = 1_704_067_200 + start + position * 3_600
    return RawData(name=name, interactions=frame.reset_index(drop=True))


def _draw(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_interactions: int,
    n_clusters: int,
    zipf: float,
    affinity: float,
    oversample: float,
) -> pd.DataFrame:
    """About ``oversample * n_interactions`` draws, repeats dropped (see module doc)."""
    # users: activity (>= 2 draws each: leave-one-out holds out two) and a taste cluster
    activity = rng.lognormal(0.0, 1.0, n_users)
    extra = n_interactions * oversample - 2 * n_users
    counts = 2 + np.floor(activity / activity.sum() * extra).astype(np.int64)  # (U,)
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)  # (E,)
    cluster = rng.integers(0, n_clusters, n_users)[users]  # (E,)
    # items by Zipf popularity: inverse CDF over popularity ranks 0..n_items-1
    cdf = np.cumsum(np.arange(1, n_items + 1, dtype=np.float64) ** -zipf)
    ranks = np.searchsorted(cdf, rng.random(users.size) * cdf[-1])  # (E,)
    ranks = np.minimum(ranks, n_items - 1)
    moved = rng.random(users.size) < affinity
    in_cluster = (ranks // n_clusters) * n_clusters + cluster  # same within-cluster rank
    in_cluster = np.where(in_cluster < n_items, in_cluster, ranks)
    ranks = np.where(moved, in_cluster, ranks)
    item_of_rank = np.random.default_rng(0).permutation(n_items)  # ids carry no popularity
    frame = pd.DataFrame({"user": users, "item": item_of_rank[ranks].astype(np.int64)})
    return frame.drop_duplicates(["user", "item"], keep="first")
