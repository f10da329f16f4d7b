"""Readers on tiny files written in each real format, plus one slow test on the real files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CONFIG_DIR
from hybridrec.data.errors import DataError
from hybridrec.data.raw import INTERACTION_COLUMNS, RawData
from hybridrec.data.readers import (
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_latest,
    read_ncf,
    read_sequences,
    read_table,
)

SHARED = Path("/work/shared/datasets")


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _frame(**cols: object) -> pd.DataFrame:
    return pd.DataFrame(cols)


def _assert_frame(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), expected, check_dtype=True)


# ----------------------------------------------------------------------------- MovieLens 100K

U_DATA = (
    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
    "22\t377\t1\t878887116\n196\t302\t5\t881251000\n"
)


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def _ml100k(tmp_path: Path) -> Path:
    _write(tmp_path / "u.data", U_DATA)
    u_item = (
        f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{_flags(5)}\n"
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|{_flags(6, 8, 13, 16)}\n"
        f"377|Nénette et Boni (1996)|01-Jan-1996||http://x|{_flags(8)}\n"
        f"267|unknown||||{_flags(0)}\n"
        f"1412|Land Before Time III (1995) (V)|01-Jan-1995||http://x|{_flags(3, 4)}\n"
        f"500|Película sin género (1999)|01-Jan-1999||http://x|{_flags()}\n"
    )
    _write(tmp_path / "u.item", u_item, "latin-1")
    return tmp_path


def test_movielens_100k(tmp_path: Path) -> None:
    raw = read_movielens_100k(str(_ml100k(tmp_path)))
    assert isinstance(raw, RawData)
    assert raw.name == "ml100k"
    assert raw.files == [tmp_path / "u.data", tmp_path / "u.item"]
    assert not raw.ordered_by_file and raw.has_timestamps
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([196, 186, 22, 196], dtype=np.int64),
            item=np.array([242, 302, 377, 302], dtype=np.int64),
            timestamp=np.array([881250949, 891717742, 878887116, 881251000], dtype=np.int64),
            rating=np.array([3.0, 3.0, 1.0, 5.0]),
        ),
    )
    items = raw.items
    assert items is not None
    assert list(items.columns) == ["item", "title", "year", "genres"]
    assert items["item"].tolist() == [242, 302, 377, 267, 1412, 500]
    assert items["title"].tolist() == [
        "Kolya",
        "L.A. Confidential",
        "Nénette et Boni",
        "unknown",
        "Land Before Time III (1995) (V)",
        "Película sin género",
    ]
    assert items["year"].tolist()[:3] == [1996, 1997, 1996]
    assert items["year"].isna().tolist() == [False, False, False, True, False, False]
    assert items["year"].iloc[4] == 1995  # from the release date
    assert items["genres"].tolist() == [
        "Comedy",
        "Crime|Drama|Mystery|Thriller",
        "Drama",
        "unknown",
        "Animation|Children's",
        "",
    ]


def test_movielens_100k_min_rating(tmp_path: Path) -> None:
    raw = read_movielens_100k(_ml100k(tmp_path), min_rating=3)
    assert raw.interactions["rating"].tolist() == [3.0, 3.0, 5.0]
    assert raw.interactions["user"].tolist() == [196, 186, 196]
    assert raw.interactions.index.tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- MovieLens 1M


def _ml1m(tmp_path: Path) -> Path:
    _write(
        tmp_path / "ratings.dat",
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n3::260::2::978297512\n",
    )
    _write(
        tmp_path / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi\n"
        "3::Café au Lait (Métisse) (1993)::Comedy\n",
        "latin-1",
    )
    return tmp_path


def test_movielens_1m(tmp_path: Path) -> None:
    raw = read_movielens_1m(_ml1m(tmp_path), min_rating=None)
    assert raw.name == "ml1m"
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([1, 1, 2, 3], dtype=np.int64),
            item=np.array([1193, 661, 1193, 260], dtype=np.int64),
            timestamp=np.array([978300760, 978302109, 978298413, 978297512], dtype=np.int64),
            rating=np.array([5.0, 3.0, 4.0, 2.0]),
        ),
    )
    items = raw.items
    assert items is not None
    assert items["item"].tolist() == [1193, 661, 260, 3]
    assert items["title"].tolist() == [
        "One Flew Over the Cuckoo's Nest",
        "James and the Giant Peach",
        "Star Wars: Episode IV - A New Hope",
        "Café au Lait (Métisse)",
    ]
    assert items["year"].tolist() == [1975, 1996, 1977, 1993]
    assert items["genres"].tolist() == [
        "Drama",
        "Animation|Children's|Musical",
        "Action|Adventure|Fantasy|Sci-Fi",
        "Comedy",
    ]
    implicit = read_movielens_1m(tmp_path, min_rating=4)
    assert implicit.interactions["item"].tolist() == [1193, 1193]


# ----------------------------------------------------------------------------- MovieLens latest


def test_movielens_latest(tmp_path: Path) -> None:
    _write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,1445714835\n",
    )
    _write(
        tmp_path / "movies.csv",
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        "9,Babylon 5,(no genres listed)\n"
        '10,"Amélie (Fabuleux destin d\'Amélie Poulain, Le) (2001) ",Comedy|Romance\n',
    )
    raw = read_movielens_latest(tmp_path, min_rating=1.0)
    assert raw.name == "ml-latest"
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([1, 1], dtype=np.int64),
            item=np.array([1, 3], dtype=np.int64),
            timestamp=np.array([964982703, 964981247], dtype=np.int64),
            rating=np.array([4.0, 4.5]),
        ),
    )
    items = raw.items
    assert items is not None
    assert items["item"].tolist() == [1, 3, 9, 10]
    assert items["title"].tolist() == [
        "Toy Story",
        "American President, The",
        "Babylon 5",
        "Amélie (Fabuleux destin d'Amélie Poulain, Le)",
    ]
    assert items["year"].isna().tolist() == [False, False, True, False]
    assert items["year"].dropna().tolist() == [1995, 1995, 2001]
    assert items["genres"].tolist()[1:3] == ["Comedy|Drama|Romance", ""]


# ----------------------------------------------------------------------------- NCF


def _ncf(tmp_path: Path, pairs: bool = False) -> Path:
    if pairs:
        _write(tmp_path / "ml-1m.train.pairs", "0\t0\n0\t1\n1\t0\n1\t2\n2\t1\n")
    else:
        _write(
            tmp_path / "ml-1m.train.rating",
            "0\t0\t5\t978300760\n0\t1\t3\t978302109\n1\t0\t4\t978298413\n"
            "1\t2\t5\t978298414\n2\t1\t3\t978298415\n",
        )
    _write(tmp_path / "ml-1m.test.rating", "0\t3\t5\t978824351\n1\t1\t3\t978300174\n2\t4\t4\t9\n")
    _write(
        tmp_path / "ml-1m.test.negative",
        "(0,3)\t2\t4\t5\n(1,1)\t3\t4\t5\n(2,4)\t0\t2\t3\n",
    )
    return tmp_path


def _check_ncf_test(raw: RawData) -> None:
    _assert_frame(
        raw.test,  # type: ignore[arg-type]
        _frame(
            user=np.array([0, 1, 2], dtype=np.int64),
            item=np.array([3, 1, 4], dtype=np.int64),
            timestamp=np.array([978824351, 978300174, 9], dtype=np.int64),
        ),
    )
    neg = raw.test_negatives
    assert neg is not None
    assert list(neg.columns) == ["user", "item", "negatives"]
    assert neg["user"].tolist() == [0, 1, 2]
    assert neg["item"].tolist() == [3, 1, 4]
    assert neg["negatives"].tolist() == [[2, 4, 5], [3, 4, 5], [0, 2, 3]]
    assert all(type(x) is int for x in neg["negatives"].iloc[0])
    assert raw.ordered_by_file is False


def test_ncf_train_rating(tmp_path: Path) -> None:
    raw = read_ncf(str(_ncf(tmp_path)))
    assert raw.name == "ncf-ml-1m"
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([0, 0, 1, 1, 2], dtype=np.int64),
            item=np.array([0, 1, 0, 2, 1], dtype=np.int64),
            timestamp=np.array([978300760, 978302109, 978298413, 978298414, 978298415]),
            rating=np.array([5.0, 3.0, 4.0, 5.0, 3.0]),
        ),
    )
    _check_ncf_test(raw)
    assert [p.name for p in raw.files] == [
        "ml-1m.train.rating",
        "ml-1m.test.rating",
        "ml-1m.test.negative",
    ]


def test_ncf_train_pairs(tmp_path: Path) -> None:
    raw = read_ncf(_ncf(tmp_path, pairs=True), name="ml-1m")
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([0, 0, 1, 1, 2], dtype=np.int64),
            item=np.array([0, 1, 0, 2, 1], dtype=np.int64),
        ),
    )
    assert not raw.has_timestamps
    _check_ncf_test(raw)
    assert raw.files[0].name == "ml-1m.train.pairs"


# ----------------------------------------------------------------------------- sequences


def test_sequences_ordered(tmp_path: Path) -> None:
    path = _write(tmp_path / "Beauty.txt", "1 5 3 9\n2 3\n3 7 5\n")
    raw = read_sequences(str(path))
    assert raw.name == "Beauty"
    assert raw.ordered_by_file is True
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([1, 1, 1, 2, 3, 3], dtype=np.int64),
            item=np.array([5, 3, 9, 3, 7, 5], dtype=np.int64),
            timestamp=np.array([0, 1, 2, 0, 0, 1], dtype=np.int64),
        ),
    )


def test_sequences_union_unordered(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.txt", "0 10 11 12\n1 10\n")
    test = _write(tmp_path / "test.txt", "0 13\n1 14 15\n2 10\n")
    raw = read_sequences([str(train), test], ordered=False, one_based=False, name="ml-1m")
    assert raw.name == "ml-1m"
    assert raw.ordered_by_file is False
    assert raw.files == [train, test]
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([0, 0, 0, 1, 0, 1, 1, 2], dtype=np.int64),
            item=np.array([10, 11, 12, 10, 13, 14, 15, 10], dtype=np.int64),
        ),
    )
    ordered = read_sequences([train, test])  # positions continue across files
    assert ordered.interactions["timestamp"].tolist() == [0, 1, 2, 0, 3, 1, 2, 0]


def test_sequences_string_ids(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "user_sequence.txt",
        "A1YJEY40YUW4SE B004756YJA 7806397051\nA60XNB876KYML 7806397051 B0009P4PZC\n",
    )
    raw = read_sequences(path)
    inter = raw.interactions
    assert inter["user"].tolist() == ["A1YJEY40YUW4SE"] * 2 + ["A60XNB876KYML"] * 2
    assert inter["item"].tolist() == ["B004756YJA", "7806397051", "7806397051", "B0009P4PZC"]
    assert inter["timestamp"].tolist() == [0, 1, 0, 1]


def test_sequences_one_interaction_per_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "Video.txt", "1 4\n1 2\n2 4\n1 9\n")
    raw = read_sequences(path)
    assert raw.interactions["user"].tolist() == [1, 1, 2, 1]
    assert raw.interactions["timestamp"].tolist() == [0, 1, 0, 2]


# ----------------------------------------------------------------------------- generic tables


def test_table_csv_with_mapping_and_items(tmp_path: Path) -> None:
    inter = _write(
        tmp_path / "events.csv",
        "customer_id,sku,ts,extra\nc1,s1,100,x\nc1,s2,200,y\nc2,s1,150,z\n",
    )
    items = _write(
        tmp_path / "catalog.csv",
        'product,name,brand,price\ns1,"Red shoe, size 9",Acme,10\ns2,Blue hat,Hatco,5\n',
    )
    raw = read_table(
        str(inter),
        columns={"user": "customer_id", "item": "sku", "timestamp": "ts"},
        items_path=str(items),
        item_columns={"item": "product", "title": "name", "brand": "brand"},
    )
    assert raw.name == "events"
    _assert_frame(
        raw.interactions,
        _frame(
            user=pd.array(["c1", "c1", "c2"], dtype="str"),
            item=pd.array(["s1", "s2", "s1"], dtype="str"),
            timestamp=np.array([100, 200, 150], dtype=np.int64),
        ),
    )
    assert raw.items is not None
    assert list(raw.items.columns) == ["item", "title", "brand"]
    assert raw.items["title"].tolist() == ["Red shoe, size 9", "Blue hat"]
    assert raw.files == [inter, items]


def test_table_tsv_sniffed_identity(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "sessions.tsv",
        "session\tuser\titem\ttimestamp\trating\n1\t7\t3\t1.5\t4\n1\t7\t4\t2.5\t5\n2\t8\t3\t3.0\t1\n",
    )
    raw = read_table(path, name="s")
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([7, 7, 8], dtype=np.int64),
            item=np.array([3, 4, 3], dtype=np.int64),
            timestamp=np.array([1.5, 2.5, 3.0]),
            rating=np.array([4.0, 5.0, 1.0]),
            session=np.array([1, 1, 2], dtype=np.int64),
        ),
    )
    assert raw.items is None


def test_table_parquet(tmp_path: Path) -> None:
    path = tmp_path / "inter.parquet"
    pd.DataFrame({"u": [1, 2], "i": [10, 20], "when": [5, 6]}).to_parquet(path)
    items = tmp_path / "items.pq"
    pd.DataFrame({"item": [10, 20], "title": ["a", "b"], "text": ["x", "y"]}).to_parquet(items)
    raw = read_table(
        path, columns={"user": "u", "item": "i", "timestamp": "when"}, items_path=items
    )
    _assert_frame(
        raw.interactions,
        _frame(
            user=np.array([1, 2], dtype=np.int64),
            item=np.array([10, 20], dtype=np.int64),
            timestamp=np.array([5, 6], dtype=np.int64),
        ),
    )
    assert raw.items is not None
    assert list(raw.items.columns) == ["item", "title", "text"]  # None keeps every column


def test_columns_mapped_to_null_read_same_named_columns(tmp_path: Path) -> None:
    """configs/data/csv.yaml lists every column the reader knows, null where not mapped."""
    path = _write(tmp_path / "e.csv", "customer,sku,ts,rating\nc1,s1,100,4\nc2,s1,150,5\n")
    columns = {"user": "customer", "item": "sku", "timestamp": "ts", "rating": None}
    raw = read_table(path, columns={**columns, "session": None})
    assert list(raw.interactions.columns) == ["user", "item", "timestamp", "rating"]
    assert raw.interactions["timestamp"].tolist() == [100, 150]


def test_every_column_the_reader_knows_is_a_documented_data_config_key() -> None:
    """data.source.columns.timestamp=ts needs no `+`: each config with source.columns has
    every column of INTERACTION_COLUMNS as a key, each with a comment."""
    configs = sorted((CONFIG_DIR / "data").glob("*.yaml"))
    with_columns = [
        c for c in configs if "columns" in (yaml.safe_load(c.read_text()).get("source") or {})
    ]
    assert with_columns  # data=csv at least
    for config in with_columns:
        columns = yaml.safe_load(config.read_text())["source"]["columns"]
        assert list(columns) == list(INTERACTION_COLUMNS), config.name
        lines = config.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("columns:"))
        for name, line in zip(INTERACTION_COLUMNS, lines[start + 1 :], strict=False):
            assert line.strip().startswith(f"{name}:") and "# (" in line, (config.name, line)


EVENTS = "customer,sku\nc1,s1\nc1,s2\nc2,s1\n"


@pytest.mark.parametrize("item_columns", [None, {"title": "title"}])
def test_an_item_table_keyed_like_the_interactions_needs_no_second_mapping(
    tmp_path: Path, item_columns: dict[str, str] | None
) -> None:
    """columns.item=sku and an item table whose id column is sku too: the interactions'
    mapping is the item table's unless item_columns names another id column."""
    inter = _write(tmp_path / "events.csv", EVENTS)
    items = _write(tmp_path / "items.csv", "sku,title\ns1,Red shoe\ns2,Blue hat\n")
    raw = read_table(
        inter,
        columns={"user": "customer", "item": "sku"},
        items_path=items,
        item_columns=item_columns,
    )
    assert raw.items is not None
    assert list(raw.items.columns) == ["item", "title"]  # sku read as item, not kept twice
    assert raw.items["item"].tolist() == ["s1", "s2"]
    assert raw.items["title"].tolist() == ["Red shoe", "Blue hat"]


def test_an_item_table_with_our_item_column_still_reads(tmp_path: Path) -> None:
    inter = _write(tmp_path / "events.csv", EVENTS)
    items = _write(tmp_path / "items.csv", "item,title\ns1,Red shoe\n")
    raw = read_table(inter, columns={"user": "customer", "item": "sku"}, items_path=items)
    assert raw.items is not None and raw.items["item"].tolist() == ["s1"]
    # told otherwise: item_columns.item wins over the interactions' mapping
    items = _write(tmp_path / "other.csv", "sku,product,title\nx9,s1,Red shoe\n")
    raw = read_table(
        inter,
        columns={"user": "customer", "item": "sku"},
        items_path=items,
        item_columns={"item": "product", "title": "title"},
    )
    assert raw.items is not None and raw.items["item"].tolist() == ["s1"]


def test_an_item_table_without_its_id_column_names_the_one_that_holds_the_ids(
    tmp_path: Path,
) -> None:
    """Never a column that cannot be right ('title' for 'item'): the column whose values are
    the interactions' item ids, or none."""
    inter = _write(tmp_path / "events.csv", EVENTS)
    items = _write(tmp_path / "items.csv", "title,product\nRed shoe,s1\nBlue hat,s2\n")
    with pytest.raises(DataError) as err:
        read_table(inter, columns={"user": "customer", "item": "sku"}, items_path=items)
    assert str(err.value) == (
        f"file {items}, column 'sku': no item id column: expected 'sku' (the interactions' item "
        "column, data.source.columns.item) or 'item', found ['title', 'product']; column "
        "'product' holds item ids of the interactions; name the table's id column with "
        "'data.source.item_columns={item: product}'"
    )
    # the override the sentence gives: the id column renamed, the text fields kept
    frame = read_table(
        inter,
        columns={"user": "customer", "item": "sku"},
        items_path=items,
        item_columns={"item": "product"},
    )
    assert frame.items is not None and list(frame.items.columns) == ["item", "title"]
    items = _write(tmp_path / "items.csv", "id,title\nx1,Red shoe\n")
    with pytest.raises(DataError, match="no column holds item ids of the interactions") as err:
        read_table(inter, columns={"user": "customer", "item": "sku"}, items_path=items)
    assert "did you mean" not in str(err.value)
    # our own name, nothing mapped: no "did you mean 'title'"
    _write(tmp_path / "plain.csv", "user,item\nc1,s1\n")
    with pytest.raises(DataError) as err:
        read_table(tmp_path / "plain.csv", items_path=_write(tmp_path / "t.csv", "title\na\n"))
    assert "expected 'item', found ['title']; no column holds" in str(err.value)
    assert "title'?" not in str(err.value)


# ----------------------------------------------------------------------------- real files


@pytest.mark.slow
def test_real_files() -> None:
    ncf = SHARED / "ncf_ml1m"
    if not (ncf / "ml-1m.test.negative").is_file():
        pytest.skip("real datasets not present")
    start = time.perf_counter()
    raw = read_ncf(ncf)
    elapsed = time.perf_counter() - start
    assert len(raw.interactions) == 994_169
    assert raw.test is not None and len(raw.test) == 6_040
    neg = raw.test_negatives
    assert neg is not None and len(neg) == 6_040
    assert {len(x) for x in neg["negatives"]} == {99}
    assert (raw.test["user"].to_numpy() == np.arange(6_040)).all()
    assert elapsed < 3.0, f"read_ncf took {elapsed:.2f}s"

    ml = read_movielens_100k(SHARED / "ml-100k")
    assert len(ml.interactions) == 100_000
    assert ml.items is not None and len(ml.items) == 1_682
    assert ml.interactions["user"].nunique() == 943
    assert ml.items.loc[ml.items["item"] == 1, "title"].item() == "Toy Story"

    beauty = read_sequences(SHARED / "s3rec_amazon_yelp" / "Beauty.txt")
    assert len(beauty.interactions) == 198_502
    assert beauty.interactions["user"].nunique() == 22_363
    assert beauty.interactions["item"].nunique() == 12_101

    pieces = SHARED / "ml-1m-pieces"
    ml1m = read_sequences([pieces / "train.txt", pieces / "test.txt"], ordered=False)
    assert len(ml1m.interactions) == 1_000_209  # duplicates="error": none in the union
    assert ml1m.interactions["user"].nunique() == 6_040
    assert ml1m.interactions["item"].nunique() == 3_706
