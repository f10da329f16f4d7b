"""Tests of the synthetic dataset generator and its format writers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.raw import RawData
from hybridrec.data.readers import read_synthetic
from hybridrec.data.synthetic import (
    EMPTY_DESCRIPTION_SHARE,
    ML_GENRES,
    QUALITY_WORDS,
    RATER_SCALES,
    START_TIMESTAMP,
    SyntheticData,
    generate,
    write,
    write_movielens_1m,
    write_movielens_100k,
    write_ncf,
    write_sequences,
)


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate()  # the defaults: the dataset `make train` uses


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return generate(n_users=40, n_items=120, mean_interactions=12, seed=3)


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_data(data: SyntheticData) -> None:
    again = generate()
    pd.testing.assert_frame_equal(data.interactions, again.interactions)
    pd.testing.assert_frame_equal(data.items, again.items)
    pd.testing.assert_frame_equal(data.ratings, again.ratings)
    np.testing.assert_array_equal(data.user_factors, again.user_factors)
    np.testing.assert_array_equal(data.item_factors, again.item_factors)


def test_different_seed_different_data(data: SyntheticData) -> None:
    other = generate(seed=1)
    assert not data.interactions.equals(other.interactions)
    assert not data.items.equals(other.items)
    assert not data.ratings.equals(other.ratings)
    assert not np.array_equal(data.item_factors, other.item_factors)


def test_rating_settings_do_not_change_interactions(data: SyntheticData) -> None:
    # Separate random streams: marketer-rating options leave interactions and items alone.
    other = generate(n_raters=2, ratings_per_rater=10)
    pd.testing.assert_frame_equal(data.interactions, other.interactions)
    pd.testing.assert_frame_equal(data.items, other.items)


# --- schema -------------------------------------------------------------------------------------


def test_interaction_schema(data: SyntheticData) -> None:
    inter = data.interactions
    assert list(inter.columns) == ["user", "item", "rating", "timestamp", "session"]
    assert all(inter[c].dtype == np.int64 for c in inter.columns)
    assert set(inter["user"]) == set(range(500))
    assert inter["item"].between(0, 299).all()
    assert inter["rating"].between(1, 5).all()
    assert set(inter["rating"]) == {1, 2, 3, 4, 5}
    assert not inter.duplicated(["user", "item"]).any()
    counts = inter.groupby("user").size()
    assert counts.min() >= 5
    assert 20 <= counts.mean() <= 30
    assert inter["user"].is_monotonic_increasing


def test_timestamps_increase_and_span_the_window(data: SyntheticData) -> None:
    inter = data.interactions
    diffs = inter.groupby("user")["timestamp"].diff().dropna()
    assert (diffs > 0).all()
    assert inter["timestamp"].min() >= START_TIMESTAMP
    assert inter["timestamp"].max() < START_TIMESTAMP + 92 * 86_400
    # Mostly minutes apart, with occasional breaks of days.
    assert (diffs < 3600).mean() > 0.75
    assert (diffs > 86_400).mean() > 0.05


def test_sessions_change_exactly_at_gaps(data: SyntheticData) -> None:
    inter = data.interactions
    same_user = inter["user"].eq(inter["user"].shift())
    gap = inter["timestamp"].diff()
    expect_new = ~same_user | (gap > 1800)
    assert (inter["session"].ne(inter["session"].shift()) == expect_new).all()
    # Globally unique, consecutive ids, and never shared between users.
    assert inter["session"].iloc[0] == 0
    assert inter["session"].diff().dropna().isin([0, 1]).all()
    assert inter.groupby("session")["user"].nunique().max() == 1


def test_session_gap_parameter() -> None:
    short = generate(n_users=30, session_gap=60, seed=2).interactions
    gap = short["timestamp"].diff()
    new = short["user"].ne(short["user"].shift()) | (gap > 60)
    assert (short["session"].ne(short["session"].shift()) == new).all()
    assert (
        short["session"].nunique() > generate(n_users=30, seed=2).interactions["session"].nunique()
    )


def test_items_schema_and_text(data: SyntheticData) -> None:
    items = data.items
    assert list(items.columns) == ["item", "title", "category", "brand", "description", "price"]
    assert items["item"].tolist() == list(range(300))
    assert items["price"].dtype == np.float64 and (items["price"] > 0).all()
    for col in ("title", "category", "brand"):
        assert items[col].str.len().gt(0).all()
    n_words = items["title"].str.split().str.len()
    assert n_words.between(2, 4).all()
    assert items["category"].nunique() == 8
    assert (items.groupby("category")["brand"].nunique() <= 3).all()
    n_empty = int((items["description"] == "").sum())
    assert n_empty == round(EMPTY_DESCRIPTION_SHARE * 300)
    assert items["description"].notna().all()


def test_text_predicts_category(data: SyntheticData) -> None:
    # Classify each item by the category whose other items' titles share most words with it:
    # far above the 1/8 of chance, so a text tower has something to learn.
    words = data.items["title"].str.lower().str.split()
    cats = data.items["category"]
    vocab = {c: set().union(*words[cats == c]) for c in cats.unique()}
    hits = [max(vocab, key=lambda c: len(vocab[c] & set(w))) == c for w, c in zip(words, cats)]
    assert np.mean(hits) > 0.8


def test_marketer_ratings(data: SyntheticData) -> None:
    ratings = data.ratings
    assert list(ratings.columns) == ["rater", "item", "context", "score", "timestamp"]
    assert ratings["score"].dtype == np.float64
    assert ratings["item"].dtype == np.int64
    assert sorted(ratings["rater"].unique()) == [f"rater_{k}" for k in range(4)]
    assert (ratings.groupby("rater").size() == 60).all()
    assert not ratings.duplicated(["rater", "item"]).any()
    for k in range(4):
        lo, hi = RATER_SCALES[k]
        scores = ratings.loc[ratings["rater"] == f"rater_{k}", "score"]
        assert scores.between(lo, hi).all()
        assert (scores == scores.round()).all()
    assert RATER_SCALES[:3] == ((1, 5), (0, 100), (1, 10))
    share = (ratings["context"] != "").mean()
    assert 0.2 < share < 0.5
    # Reliable raters agree with the hidden quality; the last one is noisy.
    corr = [
        np.corrcoef(g["score"], data.item_quality[g["item"]])[0, 1]
        for _, g in ratings.groupby("rater")
    ]
    assert min(corr[:3]) > 0.7
    assert corr[3] < min(corr[:3]) - 0.2
    assert data.rater_noise[3] > data.rater_noise[0]

    # The hidden rule is what the text shows: brand and title words explain most of it, the
    # latent factors (what interactions show) only a little.
    def r2(features: np.ndarray) -> float:
        X = np.c_[features, np.ones(300)]
        fit = X @ np.linalg.lstsq(X, data.item_quality, rcond=None)[0]
        return float(np.corrcoef(fit, data.item_quality)[0, 1] ** 2)

    brands = pd.get_dummies(data.items["brand"]).to_numpy(float)
    words = np.array(
        [[w in t.lower().split() for w in QUALITY_WORDS] for t in data.items["title"]], float
    )
    assert r2(np.c_[brands, words]) > 0.85
    assert r2(data.item_factors) < 0.3
    # Some rated items are rarely interacted with.
    counts = np.bincount(data.interactions["item"], minlength=300)
    assert counts[ratings["item"]].min() < 10


def test_new_products_and_sets() -> None:
    """n_new_items catalogue-only items: in the item table and judged, never interacted with;
    set_size groups each rater's judgments of one context into sets."""
    data = generate(n_users=60, n_items=40, n_new_items=8, set_size=5, ratings_per_rater=30)
    assert data.new_items is not None and len(data.new_items) == 8
    assert data.new_items["item"].tolist() == list(range(40, 48))
    assert not data.interactions["item"].isin(data.new_items["item"]).any()
    raw = data.to_raw()
    assert raw.items is not None and len(raw.items) == 48
    assert raw.ratings is not None and raw.ratings["item"].isin(data.new_items["item"]).any()
    assert data.item_quality.shape == (48,)
    sizes = data.ratings.groupby(["rater", "context", "set"]).size()
    assert sizes.max() == 5
    assert data.ratings.groupby("set")["context"].nunique().max() == 1  # one context per set
    # the interactions and the old items' text are those of the catalogue without new items
    plain = generate(n_users=60, n_items=40)
    pd.testing.assert_frame_equal(data.interactions, plain.interactions)
    pd.testing.assert_frame_equal(data.items, plain.items)


def test_to_raw_and_read_synthetic(data: SyntheticData) -> None:
    raw = data.to_raw()
    assert isinstance(raw, RawData)
    assert raw.name == "synthetic" and not raw.ordered_by_file and raw.has_timestamps
    assert raw.items is not None and raw.ratings is not None
    pd.testing.assert_frame_equal(raw.interactions, data.interactions)
    raw.interactions.loc[0, "item"] = -1  # a copy: the generated data stays intact
    assert data.interactions.loc[0, "item"] != -1
    raw2 = read_synthetic(n_users=50, seed=4, name="tiny")
    assert raw2.name == "tiny"
    pd.testing.assert_frame_equal(raw2.interactions, generate(n_users=50, seed=4).interactions)


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="mean_interactions"):
        generate(mean_interactions=2)
    with pytest.raises(ValueError, match="ratings_per_rater"):
        generate(n_items=20, ratings_per_rater=-1)
    # more ratings per rater than items: each rater judges every item once
    small = generate(n_users=30, n_items=20, n_raters=2, ratings_per_rater=60)
    assert small.ratings.groupby("rater")["item"].nunique().tolist() == [20, 20]


# --- learnable structure ------------------------------------------------------------------------


def _leave_one_out_hr(data: SyntheticData, seed: int = 0) -> dict[str, float]:
    """HR@10 of each user's latest item among 99 never-seen random items, by three scorers."""
    inter = data.interactions
    is_last = inter["user"].ne(inter["user"].shift(-1)).to_numpy()
    train, test = inter[~is_last], inter[is_last]
    n_items = data.item_factors.shape[0]
    pop = np.bincount(train["item"], minlength=n_items).astype(float)
    affinity = data.affinity()
    rng = np.random.default_rng(seed)
    seen = inter.groupby("user")["item"].agg(lambda s: s.to_numpy())
    hits = {"true": 0, "popularity": 0, "random": 0}
    for u, i in zip(test["user"].to_numpy(), test["item"].to_numpy()):
        unseen = np.ones(n_items, dtype=bool)
        unseen[seen[u]] = False
        cand = np.concatenate([[i], rng.choice(np.flatnonzero(unseen), 99, replace=False)])
        scores = {
            "true": affinity[u, cand],
            # popularity ties broken at random, not in the positive's favour
            "popularity": pop[cand] + rng.random(100) * 1e-3,
            "random": rng.random(100),
        }
        for name, s in scores.items():
            hits[name] += int((s[1:] > s[0]).sum() < 10)
    return {k: v / len(test) for k, v in hits.items()}


def test_true_factors_beat_popularity_beat_random(data: SyntheticData) -> None:
    hr = _leave_one_out_hr(data)
    # Measured with the defaults: true ~0.78, popularity ~0.39, random ~0.09.
    assert hr["true"] > 0.65
    assert hr["true"] > hr["popularity"] + 0.25
    assert 0.25 < hr["popularity"] < 0.55
    assert 0.05 < hr["random"] < 0.15


def test_popularity_skew_zero_removes_popularity_signal() -> None:
    hr = _leave_one_out_hr(generate(popularity_skew=0.0, n_users=300))
    assert hr["true"] > 0.65
    assert hr["popularity"] < 0.35


# --- writers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_round_trip(small: SyntheticData, tmp_path: Path, fmt: str) -> None:
    paths = write(small, tmp_path, fmt=fmt)  # type: ignore[arg-type]
    assert [p.name for p in paths] == [f"{n}.{fmt}" for n in ("interactions", "items", "ratings")]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    for path, frame in zip(paths, (small.interactions, small.items, small.ratings)):
        back = read(path)
        assert list(back.columns) == list(frame.columns)
        assert len(back) == len(frame)
    inter = read(paths[0])
    assert (inter.to_numpy() == small.interactions.to_numpy()).all()
    with pytest.raises(ValueError, match="fmt"):
        write(small, tmp_path, fmt="json")  # type: ignore[arg-type]


def test_write_movielens_100k(small: SyntheticData, tmp_path: Path) -> None:
    u_data, u_item, u_genre = write_movielens_100k(small, tmp_path)
    rows = u_data.read_text().splitlines()
    assert len(rows) == len(small.interactions)
    assert all(re.fullmatch(r"\d+\t\d+\t[1-5]\t\d+", r) for r in rows)
    u, i, r, t = small.interactions[["user", "item", "rating", "timestamp"]].iloc[0]
    assert rows[0] == f"{u + 1}\t{i + 1}\t{r}\t{t}"
    lines = u_item.read_bytes().decode("latin-1").splitlines()
    assert len(lines) == 120
    for k, line in enumerate(lines):
        fields = line.split("|")
        assert len(fields) == 5 + 19
        assert fields[0] == str(k + 1)
        assert re.fullmatch(r".+ \(\d{4}\)", fields[1])
        assert fields[3] == ""
        assert set(fields[5:]) <= {"0", "1"} and "1" in fields[5:]
    genres = u_genre.read_text().splitlines()
    assert genres[0] == "unknown|0" and genres[18] == "Western|18"


def test_write_movielens_1m(small: SyntheticData, tmp_path: Path) -> None:
    ratings, movies = write_movielens_1m(small, tmp_path)
    rows = ratings.read_text().splitlines()
    assert len(rows) == len(small.interactions)
    assert all(re.fullmatch(r"\d+::\d+::[1-5]::\d+", r) for r in rows)
    assert min(int(r.split("::")[0]) for r in rows) == 1
    lines = movies.read_bytes().decode("latin-1").splitlines()
    assert len(lines) == 120
    for k, line in enumerate(lines):
        movie_id, title, genres = line.split("::")
        assert movie_id == str(k + 1)
        assert re.fullmatch(r".+ \(\d{4}\)", title)
        assert set(genres.split("|")) <= set(ML_GENRES)


def test_movielens_writers_use_latin1(tmp_path: Path) -> None:
    # The kitchen vocabulary has "Café": encoded as one latin-1 byte, not UTF-8's two.
    data = generate(n_users=20, n_items=200, seed=0)
    assert (
        data.items["title"].str.contains("é").any() or data.items["brand"].str.contains("é").any()
    )
    _, movies = write_movielens_1m(data, tmp_path)
    raw = movies.read_bytes()
    if data.items["title"].str.contains("é").any():
        assert b"\xe9" in raw
    assert b"\xc3\xa9" not in raw


def test_write_ncf(small: SyntheticData, tmp_path: Path) -> None:
    train, test, negative = write_ncf(small, tmp_path, name="syn", n_negatives=20, seed=5)
    assert [p.name for p in (train, test, negative)] == [
        "syn.train.rating",
        "syn.test.rating",
        "syn.test.negative",
    ]
    tr = pd.read_csv(train, sep="\t", header=None, names=["user", "item", "rating", "ts"])
    te = pd.read_csv(test, sep="\t", header=None, names=["user", "item", "rating", "ts"])
    n_users = small.interactions["user"].nunique()
    assert len(te) == n_users and len(tr) + len(te) == len(small.interactions)
    assert te["user"].tolist() == list(range(n_users))
    # The test row is each user's latest event.
    latest = small.interactions.groupby("user")["timestamp"].max()
    assert (te.set_index("user")["ts"] == latest).all()
    assert (tr.groupby("user")["ts"].max() < latest).all()
    seen = small.interactions.groupby("user")["item"].agg(set)
    lines = negative.read_text().splitlines()
    assert len(lines) == n_users
    for line, (u, i) in zip(lines, zip(te["user"], te["item"])):
        head, *negs = line.split("\t")
        assert head == f"({u},{i})"
        assert len(negs) == 20 == len(set(negs))
        assert not {int(n) for n in negs} & seen[u]
    again = tmp_path / "again"
    write_ncf(small, again, name="syn", n_negatives=20, seed=5)
    assert (again / "syn.test.negative").read_text() == negative.read_text()
    with pytest.raises(ValueError, match="n_negatives"):
        write_ncf(small, tmp_path, n_negatives=119)


def test_write_sequences(small: SyntheticData, tmp_path: Path) -> None:
    path = write_sequences(small, tmp_path / "seq" / "syn.txt")
    lines = path.read_text().splitlines()
    assert len(lines) == small.interactions["user"].nunique()
    for u, (line, (_, group)) in enumerate(zip(lines, small.interactions.groupby("user"))):
        ids = [int(x) for x in line.split(" ")]
        assert ids[0] == u + 1
        assert ids[1:] == (group.sort_values("timestamp")["item"] + 1).tolist()
