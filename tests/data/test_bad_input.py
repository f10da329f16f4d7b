"""Bad input: every case raises DataError naming the file, and the row and column when known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import check_columns, check_interactions, require_file
from hybridrec.data.readers import (
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_latest,
    read_ncf,
    read_sequences,
    read_table,
)

FLAGS = "|".join(["0"] * 19)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _ml100k(tmp_path: Path, u_data: str) -> Path:
    _write(tmp_path / "u.data", u_data)
    _write(tmp_path / "u.item", f"1|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS}\n")
    return tmp_path


def _ncf(
    tmp_path: Path,
    train: str = "0\t0\n0\t1\n1\t0\n1\t2\n",
    test: str = "0\t2\t5\t100\n1\t1\t3\t200\n",
    negative: str = "(0,2)\t3\t4\n(1,1)\t3\t4\n",
) -> Path:
    _write(tmp_path / "ml-1m.train.pairs", train)
    _write(tmp_path / "ml-1m.test.rating", test)
    _write(tmp_path / "ml-1m.test.negative", negative)
    return tmp_path


def _where(err: pytest.ExceptionInfo[DataError], name: str, row: int | None, col: str | None):
    msg = str(err.value)
    assert name in msg
    assert err.value.path is not None and Path(err.value.path).name == name
    assert err.value.row == row
    assert err.value.column == col
    if row is not None:
        assert f"row {row}" in msg
    if col is not None:
        assert f"column {col!r}" in msg
    return msg


# ----------------------------------------------------------------------------- missing files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_movielens_100k(tmp_path)
    msg = _where(err, "u.data", None, None)
    assert "file not found" in msg
    assert "MovieLens 100K's u.data (TAB user item rating timestamp)" in msg


def test_missing_items_file(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.dat", "1::2::3::4\n")
    with pytest.raises(DataError) as err:
        read_movielens_1m(tmp_path)
    assert "MovieID::Title (Year)::Genre|Genre" in _where(err, "movies.dat", None, None)


def test_require_file_on_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        require_file(tmp_path, "something")


def test_missing_ncf_negatives(tmp_path: Path) -> None:
    _ncf(tmp_path)
    (tmp_path / "ml-1m.test.negative").unlink()
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    assert "(user,item)" in _where(err, "ml-1m.test.negative", None, None)


# ----------------------------------------------------------------------------- columns


def test_renamed_column(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.csv", "userId,movie_id,rating,timestamp\n1,2,3.0,4\n")
    with pytest.raises(DataError) as err:
        read_movielens_latest(tmp_path)
    msg = _where(err, "ratings.csv", None, "movieId")
    assert "did you mean 'movie_id'?" in msg
    assert "expected columns ['userId', 'movieId', 'rating', 'timestamp']" in msg
    assert "found ['userId', 'movie_id', 'rating', 'timestamp']" in msg


def test_missing_mapped_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", "customer,sku\nc1,s1\n")
    with pytest.raises(DataError) as err:
        read_table(path, columns={"user": "customer_id", "item": "sku"})
    assert "did you mean 'customer'?" in _where(err, "events.csv", None, "customer_id")


def test_no_column_read_as_another_is_suggested() -> None:
    """'title' is read as title: it cannot be the missing 'item' (it once was suggested)."""
    with pytest.raises(DataError) as err:
        check_columns(["sku", "title"], ["item", "title"], "items.csv")
    assert "missing column 'item';" in str(err.value) and "did you mean" not in str(err.value)
    with pytest.raises(DataError, match=r"missing column 'item' \(did you mean 'itme'\?\)"):
        check_columns(["itme", "title"], ["item", "title"], "items.csv")


def test_check_columns_lists_all() -> None:
    df = pd.DataFrame({"a": [1], "b": [2]})
    with pytest.raises(DataError) as err:
        check_columns(df, ["a", "c", "d"], "x.csv")
    assert "missing columns 'c', 'd'" in str(err.value)
    assert err.value.column == "c"


# ----------------------------------------------------------------------------- values


def test_non_integer_id_text(tmp_path: Path) -> None:
    rows = "".join(f"{u}\t{u + 10}\t3\t{100 + u}\n" for u in range(1, 7))
    rows = rows.replace("4\t14\t", "abc\t14\t")
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, rows))
    assert "'abc' is not an integer" in _where(err, "u.data", 4, "user")


def test_non_integer_id_counts_the_numeric_ids_exactly(tmp_path: Path) -> None:
    # 599 of 600 numeric: a rounded share used to read "100% of the user ids are numbers"
    rows = "".join(f"{u},{u % 7}\n" for u in range(600)).replace("\n300,", "\nu300,")
    path = _write(tmp_path / "inter.csv", "user,item\n" + rows)
    with pytest.raises(DataError) as err:
        read_table(path)
    msg = _where(err, "inter.csv", 302, "user")
    assert "id 'u300' is not an integer, while 599 of 600 user ids are numbers" in msg
    assert "100%" not in msg


def test_non_integer_id_fraction(tmp_path: Path) -> None:
    path = _write(tmp_path / "inter.csv", "user,item\n1,10\n2,12.5\n3,13\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert "12.5" in _where(err, "inter.csv", 3, "item")


def test_nan_value(tmp_path: Path) -> None:
    data = "1\t10\t3\t100\n2\t11\t\t101\n3\t12\t4\t102\n"
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, data))
    assert "missing value" in _where(err, "u.data", 2, "rating")


def test_short_line_is_missing_value(tmp_path: Path) -> None:
    data = "1\t10\t3\t100\n2\t11\t4\n"
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, data))
    _where(err, "u.data", 2, "timestamp")


def test_nan_in_csv_with_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "inter.tsv", "user\titem\n1\t10\n\t11\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    _where(err, "inter.tsv", 3, "user")  # header counted


def test_non_numeric_timestamp(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "user,item,timestamp\n1,10,5\n2,11,2016-05-09\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert "'2016-05-09' is not a number" in _where(err, "t.csv", 3, "timestamp")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, ""))
    assert "empty file" in _where(err, "u.data", None, None)


def test_header_only_file(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError) as err:
        read_movielens_latest(tmp_path)
    assert "no data rows" in _where(err, "ratings.csv", None, None)


def test_empty_sequence_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "Beauty.txt", "\n")
    with pytest.raises(DataError) as err:
        read_sequences(path)
    assert "empty file" in _where(err, "Beauty.txt", None, None)


# ----------------------------------------------------------------------------- duplicates


DUPS = "1\t10\t3\t100\n2\t11\t4\t101\n1\t12\t5\t102\n3\t10\t1\t103\n1\t10\t4\t104\n"


def test_duplicates_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, DUPS))
    msg = _where(err, "u.data", 5, None)
    assert "rows 1 and 5 are the same (user, item) pair" in msg
    assert (
        "to keep the first row of each repeated pair, add the override "
        "data.source.duplicates=drop" in msg
    )


def test_duplicates_drop_and_keep(tmp_path: Path) -> None:
    _ml100k(tmp_path, DUPS)
    dropped = read_movielens_100k(tmp_path, duplicates="drop").interactions
    assert dropped["timestamp"].tolist() == [100, 101, 102, 103]
    kept = read_movielens_100k(tmp_path, duplicates="keep").interactions
    assert len(kept) == 5


def test_duplicates_across_sequence_files(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.txt", "0 1 2\n1 3\n")
    test = _write(tmp_path / "test.txt", "0 4\n1 3 5\n")
    with pytest.raises(DataError) as err:
        read_sequences([train, test], ordered=False)
    msg = _where(err, "test.txt", 2, None)
    assert f"repeats the (user, item) pair of row 2 of {train}" in msg


def test_duplicates_bad_mode() -> None:
    with pytest.raises(ValueError, match="duplicates='first'"):
        check_interactions(pd.DataFrame({"user": [1], "item": [2]}), "x", duplicates="first")


# ----------------------------------------------------------------------------- NCF consistency


def test_ncf_test_user_unseen_in_training(tmp_path: Path) -> None:
    _ncf(
        tmp_path,
        test="0\t2\t5\t100\n7\t1\t3\t200\n",
        negative="(0,2)\t3\t4\n(7,1)\t3\t4\n",
    )
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    assert "test user 7 has no training rows" in _where(err, "ml-1m.test.rating", 2, "user")


def test_ncf_negatives_disagree_with_test(tmp_path: Path) -> None:
    _ncf(tmp_path, negative="(0,2)\t3\t4\n(1,2)\t3\t4\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    msg = _where(err, "ml-1m.test.negative", 2, "item")
    assert "(1,2) disagrees with ml-1m.test.rating" in msg
    assert "test item is 1" in msg


def test_ncf_negatives_user_not_in_test(tmp_path: Path) -> None:
    _ncf(tmp_path, negative="(0,2)\t3\t4\n(5,1)\t3\t4\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    _where(err, "ml-1m.test.negative", 2, "user")


def test_ncf_two_test_rows_for_one_user(tmp_path: Path) -> None:
    _ncf(tmp_path, test="0\t2\t5\t100\n1\t1\t3\t200\n0\t3\t5\t300\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    assert "rows 1 and 3 are both test rows of user 0" in _where(
        err, "ml-1m.test.rating", 3, "user"
    )


def test_ncf_repeated_test_row_is_not_a_duplicates_setting(tmp_path: Path) -> None:
    # data.source.duplicates applies to the training file: a repeated test row is its own error
    _ncf(tmp_path, test="0\t2\t5\t100\n1\t1\t3\t200\n0\t2\t5\t100\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path, duplicates="drop")
    msg = _where(err, "ml-1m.test.rating", 3, "user")
    assert "rows 1 and 3 are both test rows of user 0" in msg
    assert "duplicates" not in msg


def test_ncf_training_user_without_test_row(tmp_path: Path) -> None:
    _ncf(tmp_path, test="0\t2\t5\t100\n", negative="(0,2)\t3\t4\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    assert "training user 1 has no row" in _where(err, "ml-1m.train.pairs", 3, "user")


def test_ncf_negatives_of_different_lengths(tmp_path: Path) -> None:
    _ncf(tmp_path, negative="(0,2)\t3\t4\n(1,1)\t3\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    assert "row has 1 negatives, expected 2" in _where(err, "ml-1m.test.negative", 2, None)
    _ncf(tmp_path, negative="(0,2)\t3\t4\n(1,1)\t3\t4\t5\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    assert "line has 4 fields, expected 3" in _where(err, "ml-1m.test.negative", 2, None)


def test_ncf_bad_pair_field(tmp_path: Path) -> None:
    _ncf(tmp_path, negative="(0,2)\t3\t4\n1,1\t3\t4\n")
    with pytest.raises(DataError) as err:
        read_ncf(tmp_path)
    _where(err, "ml-1m.test.negative", 2, "(user,item)")


# ----------------------------------------------------------------------------- malformed lines


def test_malformed_line_extra_field(tmp_path: Path) -> None:
    data = "1\t10\t3\t100\n2\t11\t4\t101\n3\t12\t5\t102\t9\n"
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, data))
    assert "line has 5 fields, expected 4" in _where(err, "u.data", 3, None)


def test_malformed_first_line(tmp_path: Path) -> None:
    data = "1\t10\t3\n2\t11\t4\t101\n"
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, data))
    assert "line has 3 fields, expected 4" in _where(err, "u.data", 1, None)


def test_malformed_ml1m_separator(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.dat", "1::10::3::100\n2:11::4::101\n")
    _write(tmp_path / "movies.dat", "10::Heat (1995)::Action\n")
    with pytest.raises(DataError) as err:
        read_movielens_1m(tmp_path)
    assert "UserID::MovieID::Rating::Timestamp" in _where(err, "ratings.dat", 2, None)


def test_malformed_ml1m_movies_line(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.dat", "1::10::3::100\n")
    _write(tmp_path / "movies.dat", "10::Heat (1995)::Action\n11::No genres (1995)\n")
    with pytest.raises(DataError) as err:
        read_movielens_1m(tmp_path)
    _where(err, "movies.dat", 2, None)


def test_sequence_line_without_items(tmp_path: Path) -> None:
    path = _write(tmp_path / "Beauty.txt", "1 2 3\n2 5\n3\n4 1\n")
    with pytest.raises(DataError) as err:
        read_sequences(path)
    assert "no items" in _where(err, "Beauty.txt", 3, None)


def test_blank_line_inside_file(tmp_path: Path) -> None:
    data = "1\t10\t3\t100\n\n3\t12\t5\t102\n\n"  # trailing blank line is fine
    with pytest.raises(DataError) as err:
        read_movielens_100k(_ml100k(tmp_path, data))
    _where(err, "u.data", 2, "user")


def test_duplicate_item_ids(tmp_path: Path) -> None:
    _write(tmp_path / "ratings.dat", "1::10::3::100\n")
    _write(tmp_path / "movies.dat", "10::Heat (1995)::Action\n10::Heat again (1995)::Action\n")
    with pytest.raises(DataError) as err:
        read_movielens_1m(tmp_path)
    assert "rows 1 and 2 describe the same item 10" in _where(err, "movies.dat", 2, "item")
