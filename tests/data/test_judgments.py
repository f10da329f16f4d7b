"""Judgments data: validation errors, normalisation, reliability, split and pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hybridrec.data.batching.judgments import JudgmentBatches, preference_pairs, within_group_pairs
from hybridrec.data.errors import DataError
from hybridrec.data.preparation.judgments import (
    JudgmentConfig,
    check_judgments,
    consensus_reliability,
    normalise,
    prepare_judgments,
    rank_scores,
    rater_summary,
    rater_table,
    split_parts,
)
from hybridrec.data.readers.judgments import read_judgments

USERS = pd.Index([10, 11, 12])
ITEMS = pd.Index([100, 101, 102, 103, "new-1"])  # "new-1": a catalogue-only product


def _frame(rows: list[tuple], columns: tuple[str, ...] = ("rater", "item", "score", "context")):
    return pd.DataFrame(rows, columns=list(columns))


def _write(tmp_path: Path, text: str, name: str = "judgments.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _check(path: Path, **cfg: object) -> tuple[pd.DataFrame, dict[str, int]]:
    config = JudgmentConfig(segments=["students"], **cfg)  # type: ignore[arg-type]
    return check_judgments(read_judgments(path), "test", USERS, ITEMS, config)


GOOD = "rater,item,score,context\nann,100,5,\nann,101,3,students\nbob,102,1,11\nbob,new-1,4,\n"


def test_a_good_file_maps_items_contexts_and_keeps_lines(tmp_path: Path) -> None:
    rows, dropped = _check(_write(tmp_path, GOOD))
    assert dropped == {}
    assert rows["item"].tolist() == [1, 2, 3, 5]  # item indices start at 1
    assert rows["context_kind"].tolist() == [0, 2, 1, 0]  # everyone, segment, user, everyone
    assert rows["context"].tolist() == [0, 0, 1, 0]  # segment 0, user index 1
    assert rows["line"].tolist() == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("text", "row", "column", "message"),
    [
        ("rater,item,score\nann,100,5\nann,999,3\n", 3, "item", "neither the interactions"),
        ("rater,item,score\nann,100,5\nann,101,nan\n", 3, "score", "NaN or infinite"),
        ("rater,item,score\nann,100,inf\nann,101,1\n", 2, "score", "NaN or infinite"),
        ("rater,item,score\nann,100,good\nann,101,1\n", 2, "score", "not a number"),
        ("rater,item,score\nann,100,5\nann,101,\n", 3, "score", "empty score"),
        (
            "rater,item,score,context\nann,100,5,\nann,101,3,studnets\n",
            3,
            "context",
            "did you mean 'students'",
        ),
        ("rater,item,score,context\nann,100,5,\nann,101,3,99\n", 3, "context", "no known user"),
        ("rater,item,score\nann,100,5\nann,101,3\nbob,100,2\n", 4, "rater", "single judgment"),
        (
            "rater,item,score\nann,100,5\nann,101,3\nann,100,2\n",
            4,
            "item",
            "repeats the judgment of row 2",
        ),
    ],
)
def test_bad_rows_name_file_row_and_column(
    tmp_path: Path, text: str, row: int, column: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        _check(path)
    assert (info.value.path, info.value.row, info.value.column) == (str(path), row, column)


def test_ranks_must_be_whole_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, "rater,item,score\nann,100,1\nann,101,1.5\n")
    with pytest.raises(DataError, match="whole number") as info:
        _check(path, kind="rank")
    assert info.value.row == 3


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        _check(_write(tmp_path, ""))
    with pytest.raises(DataError, match="empty judgments"):
        _check(_write(tmp_path, "rater,item,score\n"))


def test_missing_column_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'score'"):
        _check(_write(tmp_path, "rater,item,points\nann,100,1\n"))


def test_invalid_drop_drops_and_counts(tmp_path: Path) -> None:
    text = GOOD + "ann,999,2,\nann,102,nan,\ncid,100,3,\n"
    rows, dropped = _check(_write(tmp_path, text), invalid="drop")
    assert len(rows) == 4
    assert dropped == {"unknown_item": 1, "score_not_finite": 1, "single_judgment_rater": 1}


def test_rank_scores_and_normalisation_by_hand() -> None:
    # a group ranked 1..3 and a one-item group
    np.testing.assert_allclose(
        rank_scores(np.array([1.0, 2.0, 3.0, 1.0]), np.array([0, 0, 0, 1])), [1, 0.5, 0, 0.5]
    )
    raters = np.array(["lenient"] * 3 + ["strict"] * 3 + ["flat"] * 2)
    scores = np.array([8.0, 9.0, 10.0, 1.0, 2.0, 3.0, 4.0, 4.0])
    z = normalise(scores, raters, "zscore")
    # the lenient and the strict rater say the same thing once normalised
    np.testing.assert_allclose(z[:3], z[3:6])
    np.testing.assert_allclose(z[:3], [-np.sqrt(1.5), 0, np.sqrt(1.5)])
    assert z[6:].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(normalise(scores, raters, "minmax")[:6], [0, 0.5, 1] * 2)


def test_consensus_reliability_gives_the_contrarian_the_lowest_weight() -> None:
    rng = np.random.default_rng(0)
    items = np.arange(20)
    truth = rng.standard_normal(20)
    raters, judged, z = [], [], []
    for r, noise in enumerate([0.1, 0.1, 0.1, 3.0]):
        raters += [r] * 20
        judged += list(items)
        z += list(truth + rng.normal(0, noise, 20))
    weights, agreement = consensus_reliability(
        np.array(raters), np.array(judged), np.array(z), [0, 1, 2, 3]
    )
    assert int(np.argmin(weights)) == 3
    assert np.mean(weights) == pytest.approx(1.0)
    assert all(a is not None and a > 0.8 for a in agreement[:3])


def test_split_holds_out_items_and_raters_apart() -> None:
    raters = np.repeat(np.arange(4), 50)
    items = np.tile(np.arange(50), 4) + 1
    groups = raters * 10 + (items % 5)  # five sets per rater
    cfg = JudgmentConfig(held_out_items=0.2, held_out_raters=1, seed=3)
    part = split_parts(raters, items, groups, [0, 1, 2, 3], cfg, "test")
    held_items = set(items[np.char.startswith(part.astype(str), "item_")])
    assert len(held_items) == 10  # 20% of the 50 judged items
    assert not held_items & set(items[part == "train"])  # no held-out item is trained on
    held_rater = set(raters[np.char.startswith(part.astype(str), "rater_")])
    assert len(held_rater) == 1 and not held_rater & set(raters[part == "train"])
    # each held-out item's judgments sit on one side, val or test; each held-out group too
    for item in held_items:
        assert len({p for p in part[items == item] if p.startswith("item_")}) == 1
    for group in set(groups[np.char.startswith(part.astype(str), "rater_")]):
        assert len({p for p in part[groups == group] if p.startswith("rater_")}) == 1


def test_a_plain_file_still_gets_by_rater_validation_and_test() -> None:
    """No set, no context: one group per rater, so the held-out rater's one group once went
    to one side and the other by-rater metric never existed ("by rater 17 + 0"). Their items
    are split in halves instead, and each half holds pairs."""
    rng = np.random.default_rng(0)
    ratings = pd.DataFrame(
        {
            "rater": np.repeat(["ann", "bob", "cid", "dan"], 4),
            "item": np.tile([100, 101, 102, 103], 4),
            "score": rng.integers(1, 6, 16).astype(float),
        }
    )
    cfg = JudgmentConfig(held_out_items=0.0, held_out_raters=1, seed=1)
    prepared = prepare_judgments(ratings, "test", USERS, ITEMS, np.array([1, 2, 3, 4]), cfg)
    frame, counts = prepared.frame, prepared.counts
    assert counts["judgments_rater_val"] == 2 and counts["judgments_rater_test"] == 2
    assert counts["judgments_rater_split_by_item"] == 4
    held = frame[frame["part"].str.startswith("rater_")]
    assert held["rater"].nunique() == 1 and held["group"].nunique() == 1
    assert not set(held.loc[held["part"] == "rater_val", "item"]) & set(
        held.loc[held["part"] == "rater_test", "item"]
    )
    # raters with several sets keep each set on one side, and nothing is counted
    cfg = JudgmentConfig(held_out_items=0.0, held_out_raters=1, seed=3)
    with_sets = ratings.assign(set=np.tile(["s1", "s1", "s2", "s2"], 4))
    prepared = prepare_judgments(with_sets, "test", USERS, ITEMS, np.array([1, 2, 3, 4]), cfg)
    assert prepared.counts["judgments_rater_split_by_item"] == 0
    assert prepared.counts["judgments_rater_val"] == prepared.counts["judgments_rater_test"] == 2


def test_hundreds_of_raters_are_summarised_in_one_short_phrase() -> None:
    """351 raters once made a 5,000-character log line: count, min / median / max and the five
    least reliable; the whole table (least reliable first) is the run's artifact."""
    weights = np.linspace(0.05, 1.95, 351)[::-1]  # r350 the least reliable
    info = {
        "raters": [f"r{k}" for k in range(351)],
        "weights": weights.tolist(),
        "consensus_agreement": [None] * 351,
    }
    text = rater_summary(info)
    assert text == (
        "351 raters, weights min 0.05 / median 1.00 / max 1.95, least reliable "
        "r350 0.05, r349 0.06, r348 0.06, r347 0.07, r346 0.07"
    )
    table = rater_table(info)
    assert len(table) == 351 and table["rater"].iloc[0] == "r350"
    assert table["weight"].is_monotonic_increasing
    assert rater_summary({"raters": ["a", "b"], "weights": [1.0, 1.0]}) == (
        "2 raters, weights min 1.00 / median 1.00 / max 1.00"  # reliability=none: nobody stands out
    )


def test_pairs_never_cross_raters_contexts_or_sets() -> None:
    ratings = pd.DataFrame(
        {
            "rater": ["a", "a", "a", "a", "b", "b", "a", "a"],
            "item": [100, 101, 102, 103, 100, 101, 100, 101],
            "score": [4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 1.0, 5.0],
            "context": ["", "", "students", "students", "", "", "", ""],
            "set": ["s1", "s1", "s1", "s1", "s1", "s1", "s2", "s2"],
        }
    )
    cfg = JudgmentConfig(segments=["students"], held_out_items=0.0, held_out_raters=0)
    prepared = prepare_judgments(ratings, "test", USERS, ITEMS, np.array([1, 2]), cfg)
    frame = prepared.frame
    batches = JudgmentBatches(frame, n_users=3, pair_batch_size=100)
    pairs = batches.pairs.numpy()
    key = frame[["rater", "context_kind", "context", "group"]].to_numpy()
    for a, b in pairs:
        assert (key[a] == key[b]).all()
        assert frame["score"][a] > frame["score"][b]  # preferred first
    assert len(pairs) == 4  # one pair in each of the four groups
    assert frame["cold"].tolist() == [False, False, True, True, False, False, False, False]


def test_within_group_pairs_is_every_pair_once() -> None:
    groups = torch.tensor([2, 0, 2, 0, 2, 1])
    pairs = {tuple(sorted(p)) for p in within_group_pairs(groups).tolist()}
    assert pairs == {(0, 2), (0, 4), (2, 4), (1, 3)}


def test_large_groups_are_sampled_down() -> None:
    groups = torch.zeros(100, dtype=torch.long)
    pairs = preference_pairs(groups, torch.arange(100.0), max_per_group=50, seed=0)
    assert pairs.shape == (50, 2)
    assert len({tuple(p) for p in pairs.tolist()}) == 50
