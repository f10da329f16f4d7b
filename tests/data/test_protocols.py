"""Evaluation protocols (LeaveOneOut, TemporalSplit) and the prepared folder they produce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.preparation.prepare import prepare, prepare_cached
from hybridrec.data.preparation.protocols import LeaveOneOut, Split, TemporalSplit
from hybridrec.data.preparation.staging import read_negatives
from hybridrec.data.raw import RawData
from hybridrec.data.readers import read_ncf, read_synthetic
from hybridrec.data.spec import SPEC_VERSION, DataSpec, fingerprint_files
from hybridrec.data.synthetic import generate, write_ncf

N_USERS, N_ITEMS = 60, 40


def _raw(seed: int = 0) -> RawData:
    # ratings_per_rater must fit in n_items (its default, 60, does not)
    return read_synthetic(n_users=N_USERS, n_items=N_ITEMS, seed=seed, ratings_per_rater=20)


@pytest.fixture(scope="module")
def raw() -> RawData:
    return _raw()


@pytest.fixture(scope="module")
def mapped(raw: RawData) -> pd.DataFrame:
    """The synthetic interactions as mapped indices: users 0.., items 1..n_items."""
    inter = raw.interactions
    return pd.DataFrame(
        {
            "user": inter["user"].to_numpy(np.int64),
            "item": inter["item"].to_numpy(np.int64) + 1,
            "timestamp": inter["timestamp"].to_numpy(np.int64),
        }
    )


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"].tolist(), frame["item"].tolist()))


def _items_by_user(frame: pd.DataFrame) -> dict[int, set[int]]:
    return {int(u): set(g.tolist()) for u, g in frame.groupby("user")["item"]}


# --- LeaveOneOut --------------------------------------------------------------------------------


def test_loo_holds_out_latest_for_test_and_second_latest_for_val(mapped: pd.DataFrame) -> None:
    split = LeaveOneOut(n_negatives=99).split(mapped, N_ITEMS)
    assert split.eval_mode == "sampled"
    assert len(split.test) == len(split.val) == N_USERS  # every user has >= 3 interactions
    latest = mapped.sort_values("timestamp").groupby("user").tail(2)
    by_user = {u: g.sort_values("timestamp")["item"].tolist() for u, g in latest.groupby("user")}
    test_item = dict(zip(split.test["user"], split.test["item"]))
    val_item = dict(zip(split.val["user"], split.val["item"]))
    for user, (second_latest, last) in by_user.items():
        assert test_item[user] == last
        assert val_item[user] == second_latest

    train, val, test = _pairs(split.train), _pairs(split.val), _pairs(split.test)
    assert not train & test and not train & val and not val & test
    assert train | val | test == _pairs(mapped)
    assert len(split.train) + len(split.val) + len(split.test) == len(mapped)
    assert split.counts["users_without_test"] == 0


def _check_rows(
    frame: pd.DataFrame, negatives: np.ndarray, known: dict[int, set[int]], n_items: int, k: int
) -> int:
    """Every row: distinct items, none known, padding 0 only after them and only when the user
    has fewer than k unknown items (then all of them). Returns the number of short rows."""
    assert negatives.shape == (len(frame), k)
    short = 0
    for user, row in zip(frame["user"].tolist(), negatives.tolist()):
        unknown = set(range(1, n_items + 1)) - known[user]
        items = [i for i in row if i != 0]
        assert len(items) == len(set(items)), (user, row)  # no repeats
        assert not set(items) & known[user] and set(items) <= unknown, user
        assert row[len(items) :] == [0] * (k - len(items))  # padding last
        if len(unknown) < k:
            assert set(items) == unknown  # a short row holds every unknown item once
            short += 1
        else:
            assert len(items) == k
    return short


def test_loo_sampled_negatives_avoid_every_known_item(mapped: pd.DataFrame) -> None:
    # 40 items and 99 negatives: every row is short, holds each unknown item once, padded
    split = LeaveOneOut(n_negatives=99, seed=3).split(mapped, N_ITEMS)
    assert split.val_negatives is not None and split.test_negatives is not None
    known = _items_by_user(mapped)  # train + val + test
    short = 0
    for frame, negatives in ((split.val, split.val_negatives), (split.test, split.test_negatives)):
        assert negatives.min() >= 0 and negatives.max() <= N_ITEMS
        short += _check_rows(frame, negatives, known, N_ITEMS, 99)
    assert short == len(split.val) + len(split.test)
    assert split.counts["eval_rows_short_of_negatives"] == short


def _random_histories(n_users: int, n_items: int, sizes: np.ndarray, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(n_users) for i in rng.permutation(n_items)[: sizes[u]] + 1]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return frame.assign(timestamp=np.arange(len(frame)))


def test_loo_sampled_small_catalogue_pads_instead_of_repeating(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 30 items, 99 negatives asked: before the fix an item came up several times in a row
    n_items, sizes = 30, np.array([3, 5, 10, 20, 27, 28, 29, 30])
    frame = _random_histories(len(sizes), n_items, sizes)
    split = LeaveOneOut(n_negatives=99, seed=1).split(frame, n_items)
    assert split.val_negatives is not None and split.test_negatives is not None
    known = _items_by_user(frame)
    short = _check_rows(split.val, split.val_negatives, known, n_items, 99)
    short += _check_rows(split.test, split.test_negatives, known, n_items, 99)
    assert short == len(split.val) + len(split.test) == 2 * len(sizes)
    assert split.counts["eval_rows_short_of_negatives"] == short
    # the user who knows every item ranks the held-out item alone (all padding)
    full_user = int(np.flatnonzero(sizes == n_items)[0])
    row = split.test_negatives[split.test["user"].to_numpy() == full_user]
    assert (row == 0).all()
    assert f"{len(sizes)} validation and {len(sizes)} test rows get fewer than 99" in caplog.text
    assert "the catalogue has only 30 items" in caplog.text
    # prepare records the count in spec.json for the training run to tag
    users = frame["user"].map("u{}".format)
    spec = prepare(
        RawData(name="small", interactions=frame.assign(user=users)), LeaveOneOut(), tmp_path
    )
    assert DataSpec.load(tmp_path).counts["eval_rows_short_of_negatives"] == short
    assert spec.n_eval_negatives == 99


def test_loo_sampled_big_catalogue_gives_exactly_k_distinct_negatives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 2,000 items: 99 uniform draws with repeats would repeat an item in most rows. Users
    # knowing 1,850 items (150 unknown) take the permutation path, the others the draws.
    n_items = 2000
    sizes = np.array([3, 10, 50, 200, 1000, 1850, 1898] * 6)
    frame = _random_histories(len(sizes), n_items, sizes, seed=4)
    split = LeaveOneOut(n_negatives=99, seed=2).split(frame, n_items)
    assert split.val_negatives is not None and split.test_negatives is not None
    known = _items_by_user(frame)
    for part, negatives in ((split.val, split.val_negatives), (split.test, split.test_negatives)):
        assert _check_rows(part, negatives, known, n_items, 99) == 0
        assert (negatives > 0).all()
    assert split.counts["eval_rows_short_of_negatives"] == 0
    assert "fewer than" not in caplog.text
    again = LeaveOneOut(n_negatives=99, seed=2).split(frame, n_items)
    np.testing.assert_array_equal(again.test_negatives, split.test_negatives)
    np.testing.assert_array_equal(again.val_negatives, split.val_negatives)


def test_loo_sampled_user_short_of_negatives_in_a_big_catalogue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    n_items = 500
    sizes = np.array([5, 450, 480, 20])  # 50 and 20 unknown items < 99
    frame = _random_histories(len(sizes), n_items, sizes, seed=5)
    split = LeaveOneOut(n_negatives=99).split(frame, n_items)
    assert split.val_negatives is not None and split.test_negatives is not None
    known = _items_by_user(frame)
    short = _check_rows(split.val, split.val_negatives, known, n_items, 99)
    short += _check_rows(split.test, split.test_negatives, known, n_items, 99)
    assert short == split.counts["eval_rows_short_of_negatives"] == 4
    assert "2 validation and 2 test rows get fewer than 99 sampled negatives" in caplog.text
    assert "interacted with more than 401 of the 500 items" in caplog.text


def test_loo_given_negatives_are_not_resampled() -> None:
    # the source's own negatives (NCF .test.negative) stay exactly as given, repeats included
    frame = _random_histories(3, 50, np.array([5, 6, 7]))
    test = frame.groupby("user").tail(1)
    rest = frame.drop(test.index)
    given = np.array([[7, 7, 8], [9, 10, 10], [11, 12, 13]])
    split = LeaveOneOut(n_negatives=3).split(rest, 50, test, given)
    assert split.test_negatives is given
    assert split.val_negatives is not None and split.val_negatives.shape == (3, 3)
    assert split.counts["eval_rows_short_of_negatives"] == 0


def test_loo_full_has_no_negatives(mapped: pd.DataFrame) -> None:
    split = LeaveOneOut(eval_mode="full", name="loo_full").split(mapped, N_ITEMS)
    assert split.eval_mode == "full"
    assert split.val_negatives is None and split.test_negatives is None
    assert len(split.test) == N_USERS


def test_loo_short_users_keep_their_rows_for_training() -> None:
    frame = pd.DataFrame(
        {
            "user": [0, 1, 1, 2, 2, 2],
            "item": [1, 2, 3, 4, 5, 6],
            "timestamp": [10, 20, 21, 30, 31, 32],
        }
    )
    split = LeaveOneOut(n_negatives=2).split(frame, 10)
    assert _pairs(split.test) == {(2, 6)}  # only a user with >= 3 rows gets a test item
    assert _pairs(split.val) == {(1, 3), (2, 5)}  # >= 2 rows left: one goes to validation
    assert _pairs(split.train) == {(0, 1), (1, 2), (2, 4)}
    assert split.counts["users_without_test"] == 2


def test_loo_without_timestamps_is_random_but_seeded(mapped: pd.DataFrame) -> None:
    no_time = mapped[["user", "item"]]
    a = LeaveOneOut(eval_mode="full", seed=0).split(no_time, N_ITEMS)
    b = LeaveOneOut(eval_mode="full", seed=0).split(no_time, N_ITEMS)
    c = LeaveOneOut(eval_mode="full", seed=1).split(no_time, N_ITEMS)
    for role in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(a, role), getattr(b, role))
    assert _pairs(a.test) != _pairs(c.test)
    assert _pairs(a.val) != _pairs(c.val)
    # still a partition with one test and one val item per user
    assert a.test["user"].is_unique and a.val["user"].is_unique
    assert not _pairs(a.train) & (_pairs(a.val) | _pairs(a.test))
    assert _pairs(a.train) | _pairs(a.val) | _pairs(a.test) == _pairs(mapped)
    # a random pick, not the latest interaction
    latest = mapped.sort_values("timestamp").groupby("user").tail(1)
    assert _pairs(a.test) != _pairs(latest)


def test_loo_sampled_negatives_seeded(mapped: pd.DataFrame) -> None:
    a = LeaveOneOut(seed=5).split(mapped, N_ITEMS)
    b = LeaveOneOut(seed=5).split(mapped, N_ITEMS)
    assert a.val_negatives is not None and b.val_negatives is not None
    np.testing.assert_array_equal(a.val_negatives, b.val_negatives)
    np.testing.assert_array_equal(a.test_negatives, b.test_negatives)


def test_loo_given_test_and_negatives_are_kept(tmp_path: Path) -> None:
    data = generate(n_users=30, n_items=N_ITEMS, seed=2, ratings_per_rater=10)
    write_ncf(data, tmp_path / "ncf", name="syn", n_negatives=15, seed=4)
    raw = read_ncf(tmp_path / "ncf", name="syn")
    assert raw.test is not None and raw.test_negatives is not None
    # negatives rows in another order than the test rows: prepare must align them by user
    raw.test_negatives = raw.test_negatives.iloc[::-1].reset_index(drop=True)
    spec = prepare(raw, LeaveOneOut(n_negatives=15), tmp_path / "prepared")
    folder = tmp_path / "prepared"
    assert spec.n_test == len(raw.test) == 30
    assert spec.n_eval_negatives == 15

    users = pd.read_parquet(folder / "users.parquet")
    items = pd.read_parquet(folder / "items.parquet")
    raw_user = dict(zip(users["index"], users["raw_id"]))
    raw_item = dict(zip(items["index"], items["raw_id"]))
    assert 0 not in raw_item  # index 0 is padding

    test = pd.read_parquet(folder / "test.parquet")
    test_raw = [(raw_user[u], raw_item[i]) for u, i in zip(test["user"], test["item"])]
    assert test_raw == list(zip(raw.test["user"], raw.test["item"]))

    negatives = read_negatives(folder / "test_negatives.parquet")
    assert negatives.shape == (30, 15)
    given = dict(zip(raw.test_negatives["user"], raw.test_negatives["negatives"]))
    for user, row in zip(test["user"], negatives.tolist()):
        assert [raw_item[i] for i in row] == list(given[raw_user[user]])

    # the given test rows are not trained on, and validation comes out of the training file
    train = pd.read_parquet(folder / "train.parquet")
    val = pd.read_parquet(folder / "val.parquet")
    assert not _pairs(train) & _pairs(test)
    assert not _pairs(train) & _pairs(val)
    assert len(train) + len(val) == len(raw.interactions)


def test_loo_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="eval_mode"):
        LeaveOneOut(eval_mode="ranked")
    with pytest.raises(ValueError, match="n_negatives"):
        LeaveOneOut(eval_mode="sampled", n_negatives=0)
    LeaveOneOut(eval_mode="full", n_negatives=0)  # unused in full ranking: allowed


# --- TemporalSplit ------------------------------------------------------------------------------


def test_temporal_split_orders_train_val_test(mapped: pd.DataFrame) -> None:
    split = TemporalSplit(test_fraction=0.2, val_fraction=0.1).split(mapped, N_ITEMS)
    assert split.eval_mode == "full"
    assert split.train["timestamp"].max() < split.val["timestamp"].min()
    assert split.val["timestamp"].max() < split.test["timestamp"].min()
    # held-out rows only for users and items seen in training
    assert set(split.val["user"]) | set(split.test["user"]) <= set(split.train["user"])
    assert set(split.val["item"]) | set(split.test["item"]) <= set(split.train["item"])
    dropped = split.counts["val_dropped_unseen"] + split.counts["test_dropped_unseen"]
    assert len(split.train) + len(split.val) + len(split.test) + dropped == len(mapped)
    assert len(split.test) + split.counts["test_dropped_unseen"] == pytest.approx(
        0.2 * len(mapped), abs=2
    )


def test_temporal_split_drops_and_counts_unseen_users_and_items() -> None:
    # 10 events at t = 1..10; quantiles 0.6 -> 6.4 and 0.8 -> 8.2: train 1-6, val 7-8, test 9-10
    frame = pd.DataFrame(
        {
            "user": [0, 0, 1, 1, 0, 1, 0, 2, 1, 0],
            "item": [1, 2, 1, 2, 3, 4, 4, 1, 3, 5],
            "timestamp": list(range(1, 11)),
        }
    )
    split = TemporalSplit(test_fraction=0.2, val_fraction=0.2).split(frame, 5)
    assert split.train["timestamp"].tolist() == [1, 2, 3, 4, 5, 6]
    assert _pairs(split.val) == {(0, 4)}  # (2, 1) dropped: user 2 is new
    assert _pairs(split.test) == {(1, 3)}  # (0, 5) dropped: item 5 is new
    assert split.counts == {"val_dropped_unseen": 1, "test_dropped_unseen": 1}


def test_temporal_split_event_on_a_cut_goes_to_the_later_part() -> None:
    # 9 events at t = 1..9: quantile 0.5 is exactly 5.0 and quantile 0.75 exactly 7.0
    # (the split only looks at times; the repeated pairs keep every item seen in training)
    frame = pd.DataFrame({"user": [0] * 9, "item": [1, 2, 3] * 3, "timestamp": list(range(1, 10))})
    split = TemporalSplit(test_fraction=0.25, val_fraction=0.25).split(frame, 3)
    assert split.train["timestamp"].tolist() == [1, 2, 3, 4]
    assert split.val["timestamp"].tolist() == [5, 6]
    assert split.test["timestamp"].tolist() == [7, 8, 9]
    assert split.counts == {"val_dropped_unseen": 0, "test_dropped_unseen": 0}


def test_temporal_split_needs_timestamps(mapped: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="timestamps"):
        TemporalSplit().split(mapped[["user", "item"]], N_ITEMS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"test_fraction": 0.0},
        {"test_fraction": 1.0},
        {"val_fraction": -0.1},
        {"test_fraction": 0.6, "val_fraction": 0.4},
        {"eval_mode": "sampled"},
    ],
)
def test_temporal_split_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TemporalSplit(**kwargs)  # type: ignore[arg-type]


# --- prepare ------------------------------------------------------------------------------------


def test_prepare_writes_the_spec_files(raw: RawData, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "syn"
    spec = prepare(raw, LeaveOneOut(n_negatives=20), folder)
    assert set(spec.files) == {
        "train",
        "val",
        "test",
        "val_negatives",
        "test_negatives",
        "users",
        "items",
    }
    on_disk = {p.name for p in folder.iterdir()}
    assert on_disk == set(spec.files.values()) | {"spec.json"}
    assert [p.name for p in folder.parent.iterdir()] == ["syn"]  # no temporary folder left

    assert DataSpec.load(folder) == spec
    assert (spec.n_users, spec.n_items) == (N_USERS, N_ITEMS)
    assert (spec.n_val, spec.n_test) == (N_USERS, N_USERS)
    assert spec.n_train + spec.n_val + spec.n_test == len(raw.interactions)
    assert spec.eval_mode == "sampled" and spec.n_eval_negatives == 20
    assert spec.has_timestamps and "title" in spec.item_text_fields
    ordered = ["train", "val", "test", "val_negatives", "test_negatives", "users", "items"]
    assert spec.fingerprint == fingerprint_files([folder / spec.files[r] for r in ordered])

    train = pd.read_parquet(folder / "train.parquet")
    assert list(train.columns) == ["user", "item", "timestamp"]
    assert train["item"].min() >= 1 and train["item"].max() <= N_ITEMS
    users = pd.read_parquet(folder / "users.parquet")
    items = pd.read_parquet(folder / "items.parquet")
    assert users["index"].tolist() == list(range(N_USERS))
    assert items["index"].tolist() == list(range(1, N_ITEMS + 1))
    assert read_negatives(folder / "val_negatives.parquet").shape == (N_USERS, 20)


def test_prepare_fingerprint_tracks_the_data(raw: RawData, tmp_path: Path) -> None:
    protocol = LeaveOneOut(n_negatives=5)
    first = prepare(raw, protocol, tmp_path / "a")
    again = prepare(raw, protocol, tmp_path / "b")
    assert first.fingerprint == again.fingerprint
    fewer = RawData(name=raw.name, interactions=raw.interactions.iloc[1:], items=raw.items)
    changed = prepare(fewer, protocol, tmp_path / "c")
    assert changed.fingerprint != first.fingerprint
    other_seed = prepare(raw, LeaveOneOut(n_negatives=5, seed=1), tmp_path / "d")
    assert other_seed.fingerprint != first.fingerprint  # different negatives


def test_prepare_drops_repeated_pairs_keeping_the_earliest(tmp_path: Path) -> None:
    inter = pd.DataFrame(
        {
            "user": ["a", "a", "a", "a", "b", "b", "b"],
            "item": ["x", "y", "z", "x", "x", "y", "z"],
            "timestamp": [1, 2, 3, 9, 1, 2, 3],
        }
    )
    spec = prepare(
        RawData(name="tiny", interactions=inter),
        LeaveOneOut(eval_mode="full", name="loo_full"),
        tmp_path / "tiny",
    )
    assert spec.counts["repeat_pairs_dropped"] == 1
    test = pd.read_parquet(tmp_path / "tiny" / "test.parquet")
    items = pd.read_parquet(tmp_path / "tiny" / "items.parquet")
    raw_item = dict(zip(items["index"], items["raw_id"]))
    # user a's repeat of x at t=9 is gone, so z (t=3) is the latest
    assert sorted(raw_item[i] for i in test["item"]) == ["z", "z"]


def test_prepare_cached_reuses_the_folder(raw: RawData, tmp_path: Path) -> None:
    calls: list[int] = []

    def make_raw() -> RawData:
        calls.append(1)
        return raw

    folder = tmp_path / "cached"
    spec = prepare_cached(make_raw, LeaveOneOut(n_negatives=5), folder)
    assert calls == [1]
    stamp = (folder / "train.parquet").stat().st_mtime_ns

    def must_not_run() -> RawData:
        raise AssertionError("prepare_cached re-read the source")

    again = prepare_cached(must_not_run, LeaveOneOut(n_negatives=5), folder)
    assert again == spec
    assert (folder / "train.parquet").stat().st_mtime_ns == stamp


def test_prepare_cached_redoes_a_folder_of_an_older_prepare(raw: RawData, tmp_path: Path) -> None:
    # spec version 1 sampled evaluation negatives with repeats: such a folder is not reused
    folder = tmp_path / "old"
    spec = prepare(raw, LeaveOneOut(n_negatives=5), folder)
    spec.version, spec.counts = 1, {}
    spec.save(folder)
    again = prepare_cached(lambda: raw, LeaveOneOut(n_negatives=5), folder)
    assert again.version == SPEC_VERSION == DataSpec.load(folder).version
    assert again.counts["eval_rows_short_of_negatives"] == 0


def test_split_dataclass_defaults() -> None:
    empty = pd.DataFrame({"user": [], "item": []})
    split = Split(train=empty, val=empty, test=empty, eval_mode="full")
    assert split.counts == {} and split.val_negatives is None
