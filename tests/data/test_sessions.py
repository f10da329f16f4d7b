"""The session protocol, its readers and its prepared folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.data import synthetic
from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
from hybridrec.data.errors import DataError
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.sessions import DAY, SessionSplit
from hybridrec.data.raw import RawData
from hybridrec.data.readers import read_diginetica, read_sessions


def _clicks() -> pd.DataFrame:
    """Hand-made sessions: id, item, time (days). s5 ends on the last day (test), s4 the day
    before (validation); item 'z' is clicked in test only; s6 has one click."""
    rows = [
        ("s1", "a", 0.0), ("s1", "b", 0.1), ("s1", "a", 0.2),
        ("s2", "b", 1.0), ("s2", "c", 1.1),
        ("s3", "a", 2.0), ("s3", "c", 2.1), ("s3", "b", 2.2),
        ("s6", "c", 2.5),
        ("s4", "c", 3.5), ("s4", "a", 3.6), ("s4", "z", 3.7),
        ("s5", "b", 4.5), ("s5", "z", 4.6), ("s5", "c", 4.7), ("s5", "a", 4.8),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    frame["timestamp"] *= DAY
    return frame


def test_split_is_by_session_end_and_never_leaks() -> None:
    split = SessionSplit(min_item_support=1).split_sessions(_clicks(), None)
    assert set(split.train["user"]) == {"s1", "s2", "s3"}  # s6 (one click) teaches nothing
    assert set(split.val["user"]) == {"s4"} and set(split.test["user"]) == {"s5"}
    # held-out clicks on items unseen in training are dropped, the rest keep their order
    assert split.test["item"].tolist() == ["b", "c", "a"]
    assert split.val["item"].tolist() == ["c", "a"]
    assert split.counts["test_unseen_item_clicks_dropped"] == 1
    # no held-out session or click appears in training; training ends before the cuts
    train_keys = set(map(tuple, split.train[["user", "timestamp"]].to_numpy().tolist()))
    for part in (split.val, split.test):
        assert not set(part["user"]) & set(split.train["user"])
        assert not set(map(tuple, part[["user", "timestamp"]].to_numpy().tolist())) & train_keys
    assert split.train["timestamp"].max() < split.val["timestamp"].min()


def test_support_and_length_filters_repeat_until_stable() -> None:
    frame = _clicks()
    split = SessionSplit(min_item_support=4, val_days=0).split_sessions(frame, None)
    # z (2 clicks) goes first; then every item left has >= 4 clicks
    kept = pd.concat([split.train, split.test])
    assert "z" not in set(kept["item"])
    assert split.val.empty


def test_given_test_is_used_and_filtered() -> None:
    frame = _clicks()
    given = frame[frame["user"] == "s5"]
    split = SessionSplit(val_days=0).split_sessions(frame[frame["user"] != "s5"], given)
    assert set(split.test["user"]) == {"s5"}
    assert "z" in set(split.train["item"])  # s4 is training data now: z is known
    assert split.test["item"].tolist() == ["b", "z", "c", "a"]


def test_prepared_sessions_keep_order_and_repeats(tmp_path: Path) -> None:
    raw = RawData(name="toy", interactions=_clicks())
    spec = prepare(raw, SessionSplit(min_item_support=1), tmp_path / "p")
    assert spec.layout == "sessions" and spec.protocol == "session" and not spec.mask_known
    train = pd.read_parquet(tmp_path / "p" / "train.parquet")
    items = pd.read_parquet(tmp_path / "p" / "items.parquet")
    names = dict(zip(items["index"], items["raw_id"], strict=True))
    s1 = train[train["user"] == 0]
    assert [names[i] for i in s1["item"]] == ["a", "b", "a"]  # repeat kept, time order
    assert spec.n_items == 3 and spec.counts["test_predictions"] == 2


def test_session_datamodule_predicts_every_next_click(tmp_path: Path) -> None:
    raw = RawData(name="toy", interactions=_clicks())
    prepare(raw, SessionSplit(min_item_support=1), tmp_path / "p")
    dm = SequenceDataModule(tmp_path / "p", batch_size=2, n_negatives=3)
    dm.setup()
    (batch,) = list(dm.test_dataloader())  # s5 without z: b c a -> predict c from b, a from b c
    assert batch.history is not None and batch.targets is not None
    rows = sorted(zip(batch.history.tolist(), batch.targets[:, 0].tolist(), strict=True))
    items = pd.read_parquet(tmp_path / "p" / "items.parquet")
    index = dict(zip(items["raw_id"], items["index"], strict=True))
    assert rows == sorted([([0, index["b"]], index["c"]), ([index["b"], index["c"]], index["a"])])
    assert batch.exclude is not None and batch.exclude.shape == (2, 0)  # repeats are rankable
    seen = sum(len(b) for b in dm.train_dataloader())
    assert seen == 2 + 1 + 2  # every (click, next click) pair of s1, s2, s3


def test_pair_datamodule_refuses_sessions(tmp_path: Path) -> None:
    from hybridrec.data.batching.pairs import RecDataModule

    prepare(RawData(name="t", interactions=_clicks()), SessionSplit(min_item_support=1), tmp_path)
    with pytest.raises(ValueError, match="datamodule=sequence"):
        RecDataModule(tmp_path)


def test_loo_sequences_test_history_includes_the_val_item(tmp_path: Path) -> None:
    from conftest import prepare_tiny
    from hybridrec.data.preparation.protocols import LeaveOneOut

    folder = prepare_tiny(tmp_path / "loo", LeaveOneOut(eval_mode="full"))
    dm = SequenceDataModule(folder, batch_size=4, n_negatives=8)
    dm.setup()
    val = pd.read_parquet(folder / "val.parquet").set_index("user")["item"]
    for batch in dm.test_dataloader():
        assert batch.history is not None and batch.history_lengths is not None
        last = batch.history[:, -1]
        for user, item in zip(batch.users.tolist(), last.tolist(), strict=True):
            if user in val.index:
                assert item == val[user]  # fed through the model, never trained on
    train = pd.read_parquet(folder / "train.parquet")
    pairs = sum(len(b) for b in dm.train_dataloader())
    sizes = train.groupby("user").size()
    assert pairs == int((sizes - 1).clip(lower=0).sum())


def test_read_sessions_and_diginetica_round_trip(tmp_path: Path) -> None:
    data = synthetic.generate(n_users=30, n_items=20, seed=1)
    train, test = synthetic.write_sessions(data, tmp_path / "s")
    raw = read_sessions(train, test)
    assert raw.test is not None and {"user", "item", "timestamp"} <= set(raw.test.columns)
    assert len(raw.interactions) + len(raw.test) == len(data.interactions)
    digi = read_diginetica(synthetic.write_diginetica(data, tmp_path / "d.csv"))
    # times survive the day + milliseconds encoding; a click repeating the previous is dropped
    inter = data.interactions.sort_values(["session", "timestamp"], kind="stable")
    repeat = (inter["session"].diff() == 0) & (inter["item"].diff() == 0)
    assert len(digi.interactions) == int((~repeat).sum())
    assert np.allclose(
        np.sort(digi.interactions["timestamp"].to_numpy()),
        np.sort(inter.loc[~repeat, "timestamp"].to_numpy(np.float64)),
    )


def test_diginetica_times_are_epoch_seconds(tmp_path: Path) -> None:
    """A hand-written file: day midnight (UTC) + timeframe ms, whatever pandas' datetime unit."""
    path = tmp_path / "views.csv"
    path.write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "7;NA;5;1500;2016-05-09\n7;NA;6;90000;2016-05-09\n8;NA;5;0;2016-05-10\n"
    )
    times = read_diginetica(path).interactions.sort_values("timestamp")["timestamp"].tolist()
    assert times == [1462752000 + 1.5, 1462752000 + 90.0, 1462838400.0]


def test_bad_session_files_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "clicks.tsv"
    path.write_text("SessionId\tItemId\tTime\n1\t5\t10.0\n1\t6\tsoon\n")
    with pytest.raises(DataError, match="clicks.tsv") as info:
        read_sessions(path)
    assert "row" in str(info.value) or "line" in str(info.value)
    digi = tmp_path / "views.csv"
    digi.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;100;2016-13-01\n")
    with pytest.raises(DataError, match="eventdate"):
        read_diginetica(digi)
    missing = tmp_path / "no_time.tsv"
    missing.write_text("SessionId\tItemId\n1\t5\n")
    with pytest.raises(DataError, match="Time"):
        read_sessions(missing)


def test_protocol_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="test_days"):
        SessionSplit(test_days=0)
    with pytest.raises(ValueError, match="val_days"):
        SessionSplit(val_days=-1)


def test_no_test_sessions_is_a_clear_error(tmp_path: Path) -> None:
    frame = _clicks()
    frame = frame[frame["user"].isin(["s1", "s2"])]
    late = pd.DataFrame({"user": ["s9", "s9"], "item": ["q", "r"], "timestamp": [9 * DAY] * 2})
    frame = pd.concat([frame, late])  # the only test session clicks unseen items only
    with pytest.raises(DataError, match="no test sessions"):
        prepare(
            RawData(name="t", interactions=frame),
            SessionSplit(min_item_support=1, val_days=0),
            tmp_path,
        )
