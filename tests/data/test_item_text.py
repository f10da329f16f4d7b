"""Item text: assembling one text per item, the readers that bring item tables, prepare's
item_text.parquet. Synthetic files in each real format; the real files only under -m slow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig

from conftest import data_overrides
from hybridrec.cli.common import prepare_from_config, prepared_folder, read_source
from hybridrec.data import synthetic
from hybridrec.data.errors import DataError
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.preparation.text import assemble_item_text, load_item_text, text_sha256
from hybridrec.data.readers import (
    join_items,
    read_items_table,
    read_movielens_items,
    read_sequences,
    read_synthetic,
    read_unisrec,
)
from hybridrec.data.spec import DataSpec

SHARED = Path("/work/shared/datasets")
LOO_FULL = LeaveOneOut(eval_mode="full", n_negatives=0, name="loo_full")
Compose = Callable[..., DictConfig]


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": [10, 11, 12, 13],
            "title": ["Toy Story", "Heat.", None, ""],
            "year": pd.array([1995, pd.NA, 2001, pd.NA], dtype="Int64"),
            "genres": ["Animation|Children's|Comedy", "", np.nan, ""],
            "tags": [["a", "b"], np.array(["c"]), [], None],
        }
    )


# ----------------------------------------------------------------------------- assembly


def test_fields_in_order_with_separators_and_prefixes() -> None:
    items = _items()
    texts = assemble_item_text(items, {"title": "", "year": "Year: ", "genres": "Genres: "})
    assert texts.index.tolist() == [10, 11, 12, 13]
    assert texts[10] == "Toy Story. Year: 1995. Genres: Animation, Children's, Comedy"
    assert texts[11] == "Heat."  # empty fields skipped: no trailing separator, no "Heat.."
    assert texts[12] == "Year: 2001"  # leading empty field: no leading separator
    assert texts[13] == "" and texts.attrs["n_missing"] == 1
    # a list keeps the given order; lists and arrays render like genres
    other = assemble_item_text(items, ["genres", "tags", "title"], sep=" | ")
    assert other[10] == "Animation, Children's, Comedy | a, b | Toy Story"
    assert other[11] == "c | Heat."
    assert other[12] == "" and other.attrs["n_missing"] == 2


def test_float_years_and_numbers_render_without_decimals() -> None:
    items = pd.DataFrame({"item": ["a", "b"], "year": [1999.0, np.nan], "price": [9.99, 3.0]})
    texts = assemble_item_text(items, ["year", "price"], sep=", ")
    assert texts.tolist() == ["1999, 9.99", "3"]


def test_missing_modes(tmp_path: Path) -> None:
    items = _items()
    items.attrs["path"] = str(tmp_path / "movies.dat")
    kept = assemble_item_text(items, ["genres"], missing="empty")
    assert kept.tolist() == ["Animation, Children's, Comedy", "", "", ""]
    assert kept.attrs["n_missing"] == 3
    with pytest.raises(DataError, match=r"movies\.dat.*column 'genres'.*item 11 has no text"):
        assemble_item_text(items, ["genres"], missing="error")
    titled = assemble_item_text(items, ["genres"], missing="title")
    # falls back to the title, else to the raw id; still counted as missing
    assert titled.tolist() == ["Animation, Children's, Comedy", "Heat.", "12", "13"]
    assert titled.attrs["n_missing"] == 3
    with pytest.raises(ValueError, match="missing='skip'"):
        assemble_item_text(items, ["genres"], missing="skip")


def test_unknown_field_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"items\.csv.*'titel' \(did you mean 'title'\?\)"):
        assemble_item_text(_items(), ["titel", "year"], path=tmp_path / "items.csv")


# ----------------------------------------------------------------------------- UniSRec


@pytest.fixture
def unisrec(tmp_path: Path, syn_data: synthetic.SyntheticData) -> Path:
    synthetic.write_unisrec(syn_data, tmp_path / "uni", max_len=5)
    return tmp_path / "uni"


def test_read_unisrec_rebuilds_the_sequences(
    unisrec: Path, syn_data: synthetic.SyntheticData
) -> None:
    raw = read_unisrec(unisrec)
    inter = raw.interactions
    expected = syn_data.interactions
    # histories were cut to 5 items: the long sequences were stitched back from train rows
    assert expected.groupby("user").size().max() > 6
    pd.testing.assert_frame_equal(inter[["user", "item"]], expected[["user", "item"]])
    positions = expected.groupby("user").cumcount().to_numpy()
    assert np.array_equal(inter["timestamp"].to_numpy(), positions) and raw.ordered_by_file
    items = raw.items
    assert items is not None and items["item"].tolist() == list(range(len(syn_data.items)))
    assert items["asin"].iloc[3] == synthetic.unisrec_asin(3)
    described = syn_data.items["description"] != ""
    assert (items["text"] != "").tolist() == described.tolist()  # no text row -> ""
    first = syn_data.items.iloc[int(np.flatnonzero(described)[0])]
    assert items["text"].iloc[int(first["item"])] == (
        f"{first['title']}. {first['category']}. {first['brand']}."
    )


def test_loo_full_reproduces_the_unisrec_split(unisrec: Path, tmp_path: Path) -> None:
    spec = prepare(
        read_unisrec(unisrec), LOO_FULL, tmp_path / "prep", item_text={"fields": ["text"]}
    )
    folder = tmp_path / "prep"
    users = pd.read_parquet(folder / "users.parquet")["raw_id"].to_numpy()
    for split, role in (("test", "test"), ("valid", "val")):
        theirs = pd.read_csv(unisrec / f"Scientific.{split}.inter", sep="\t")
        ours = pd.read_parquet(folder / f"{role}.parquet")
        # our item index = their 0-based index + 1
        got = pd.Series(ours["item"].to_numpy() - 1, index=users[ours["user"].to_numpy()])
        assert len(got) == len(theirs)
        assert np.array_equal(got.reindex(theirs["user_id:token"]), theirs["item_id:token"])
    assert spec.item_text_fields == ["text"]
    assert spec.n_items_without_text == int((read_unisrec(unisrec).items["text"] == "").sum())


def _rewrite(path: Path, line: int, edit: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = "\t".join(edit(lines[line - 1].split("\t")))
    path.write_text("\n".join(lines) + "\n")


def test_unisrec_inconsistent_history_names_file_and_row(unisrec: Path) -> None:
    # valid history of the user on line 4 loses its last item: no longer the train history
    _rewrite(
        unisrec / "Scientific.valid.inter", 4, lambda f: [f[0], " ".join(f[1].split()[:-1]), f[2]]
    )
    with pytest.raises(DataError, match=r"Scientific\.valid\.inter, row 4.*user 2's history"):
        read_unisrec(unisrec)


def test_unisrec_unknown_item_and_missing_user(unisrec: Path) -> None:
    _rewrite(unisrec / "Scientific.test.inter", 3, lambda f: [f[0], f[1], "99999"])
    with pytest.raises(DataError, match=r"test\.inter, row 3, column 'item_id:token'.*99999"):
        read_unisrec(unisrec)


def test_unisrec_repeats_keep_the_last_event(tmp_path: Path) -> None:
    """A re-bought test item survives de-duplication, so it stays the test item."""
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    files = {
        "S.train.inter": head + "0\t0 1\t2\n0\t0\t1\n",
        "S.valid.inter": head + "0\t0 1 2\t3\n",
        "S.test.inter": head + "0\t0 1 2 3\t1\n",
        "S.item2index": "A0\t0\nA1\t1\nA2\t2\nA3\t3\nA4\t4\n",
        "S.text": "item_id:token\ttext:token_seq\nA1\tOne\nA4\tcold item\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    raw = read_unisrec(tmp_path, name="S")
    assert raw.interactions["item"].tolist() == [0, 2, 3, 1]
    assert raw.interactions["timestamp"].tolist() == [0, 2, 3, 4]
    assert read_unisrec(tmp_path, name="S", duplicates="keep").interactions["item"].size == 5
    with pytest.raises(
        DataError, match=r"S\.test\.inter, row 2: .* pair of row 3 of \S*S\.train\.inter"
    ):
        read_unisrec(tmp_path, name="S", duplicates="error")
    items = raw.items
    assert items is not None and items["text"].tolist() == ["", "One", "", "", "cold item"]


# ----------------------------------------------------------------------------- joins


def test_movies_join_the_pieces(tmp_path: Path, syn_data: synthetic.SyntheticData) -> None:
    synthetic.write_movielens_1m(syn_data, tmp_path)
    seq = synthetic.write_sequences(syn_data, tmp_path / "pieces.txt", offset=0)
    raw = join_items(
        read_sequences([seq], ordered=False),
        read_movielens_items(tmp_path / "movies.dat", item_id_offset=1),
    )
    assert raw.items is not None and raw.files[-1] == tmp_path / "movies.dat"
    assert raw.items["item"].tolist() == syn_data.items["item"].tolist()
    texts = assemble_item_text(raw.items, {"title": "", "year": "Year: ", "genres": "Genres: "})
    title = syn_data.items["title"].iloc[0]
    assert texts[0].startswith(f"{title}. Year: ") and ". Genres: " in texts[0]
    assert texts.attrs["n_missing"] == 0
    with pytest.raises(DataError, match="numbers in the interactions but strings"):
        join_items(raw, raw.items.assign(item=raw.items["item"].astype(str)))


def test_items_table_keeps_cold_items_and_counts_missing(
    tmp_path: Path, syn_data: synthetic.SyntheticData
) -> None:
    synthetic.write(syn_data, tmp_path, fmt="csv")
    table = syn_data.items.rename(columns={"item": "sku", "title": "name"})
    # one interacted item has no row; one extra (never interacted) item is kept
    dropped = int(syn_data.interactions["item"].iloc[0])
    table = table[table["sku"] != dropped]
    extra = table.iloc[[0]].assign(sku=1000, name="Brand New Thing")
    pd.concat([table, extra]).to_csv(tmp_path / "catalogue.tsv", sep="\t", index=False)
    items = read_items_table(
        tmp_path / "catalogue.tsv",
        item_column="sku",
        text_columns={"title": "name", "brand": "brand"},
    )
    assert list(items.columns) == ["item", "title", "brand"]
    assert 1000 in set(items["item"]) and dropped not in set(items["item"])
    assert read_items_table(tmp_path / "catalogue.tsv", "sku", ["name"]).columns.tolist() == [
        "item",
        "name",
    ]
    with pytest.raises(DataError, match=r"catalogue\.tsv.*'nmae' \(did you mean 'name'\?\)"):
        read_items_table(tmp_path / "catalogue.tsv", "sku", ["nmae"])

    from hybridrec.data.readers import read_table

    raw = join_items(read_table(tmp_path / "interactions.csv"), items)
    spec = prepare(raw, LOO_FULL, tmp_path / "prep", item_text={"fields": ["title", "brand"]})
    assert spec.n_items_without_text == 1
    texts = load_item_text(tmp_path / "prep")
    assert texts[dropped + 1] == ""  # synthetic ids are 0.., so the index is id + 1
    assert texts[1] == f"{syn_data.items['title'][0]}. {syn_data.items['brand'][0]}"
    with pytest.raises(DataError, match=f"catalogue.tsv.*item {dropped} has no text"):
        prepare(raw, LOO_FULL, tmp_path / "p2", item_text={"fields": ["title"], "missing": "error"})


# ----------------------------------------------------------------------------- prepare


def test_prepare_writes_aligned_item_text(tmp_path: Path) -> None:
    raw = read_synthetic(n_users=60, n_items=40, seed=0, ratings_per_rater=20)
    config = {"fields": {"title": "", "brand": "Brand: "}, "sep": ". "}
    spec = prepare(raw, LOO_FULL, tmp_path / "p", source_config={"data": {"text": config}})
    texts = load_item_text(tmp_path / "p")
    items = pd.read_parquet(tmp_path / "p" / "items.parquet")
    assert len(texts) == spec.n_items + 1 and texts[0] == ""
    row = items.iloc[5]  # index 6
    assert texts[int(row["index"])] == f"{row['title']}. Brand: {row['brand']}"
    assert spec.item_text_fields == ["title", "brand"] and spec.n_items_without_text == 0
    assert spec.text_sha256 == text_sha256(texts) and spec.files["item_text"] == "item_text.parquet"
    assert DataSpec.load(tmp_path / "p") == spec
    # without a text config: no file, as before
    plain = prepare(raw, LOO_FULL, tmp_path / "q")
    assert "item_text" not in plain.files and plain.text_sha256 == ""
    with pytest.raises(FileNotFoundError, match="data.text"):
        load_item_text(tmp_path / "q")
    # a different text config changes the texts' hash (and the fingerprint)
    other = prepare(raw, LOO_FULL, tmp_path / "r", item_text={"fields": ["title"]})
    assert other.text_sha256 != spec.text_sha256 and other.fingerprint != spec.fingerprint
    with pytest.raises(ValueError, match=r"unknown keys \['field'\]"):
        prepare(raw, LOO_FULL, tmp_path / "s", item_text={"field": ["title"]})


def test_old_spec_without_text_fields_loads(tmp_path: Path) -> None:
    raw = read_synthetic(n_users=30, n_items=20, seed=0, ratings_per_rater=5)
    prepare(raw, LOO_FULL, tmp_path)
    blob = json.loads((tmp_path / "spec.json").read_text())
    del blob["text_sha256"], blob["n_items_without_text"]
    (tmp_path / "spec.json").write_text(json.dumps(blob))
    assert DataSpec.load(tmp_path).n_items_without_text == 0


def test_text_config_is_part_of_the_folder_hash(
    compose_cfg: Compose, data_files: dict[str, str]
) -> None:
    base = data_overrides("ml1m_pieces_text", data_files)
    cfg = compose_cfg(*base, "protocol=loo_full")
    spec, folder = prepare_from_config(cfg)
    assert spec.item_text_fields == ["title", "year", "genres"]
    texts = load_item_text(folder)
    assert sum(t != "" for t in texts) == spec.n_items and spec.n_items_without_text == 0
    assert "Genres: " in texts[1]
    changed = compose_cfg(*base, "protocol=loo_full", "data.text.sep=' - '")
    assert prepared_folder(changed) != folder
    assert prepared_folder(compose_cfg(*base, "protocol=loo_full")) == folder


def test_scientific_config_prepares(compose_cfg: Compose, data_files: dict[str, str]) -> None:
    cfg = compose_cfg(*data_overrides("scientific", data_files), "protocol=loo_full")
    spec, folder = prepare_from_config(cfg)
    assert spec.item_text_fields == ["text"] and spec.n_items_without_text >= 1
    assert len(load_item_text(folder)) == spec.n_items + 1


# ----------------------------------------------------------------------------- real files


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "amazon_scientific_unisrec").is_dir(), reason="no shared data")
def test_real_scientific(tmp_path: Path) -> None:
    raw = read_unisrec(SHARED / "amazon_scientific_unisrec")
    inter = raw.interactions
    assert inter["user"].nunique() == 8442 and inter["item"].nunique() == 4385
    # 59,427 events (the UniSRec paper's count; the README's 59,384 is the test histories,
    # which RecBole cut at 50 items); 291 are re-purchases, so 59,136 distinct pairs
    assert (
        len(read_unisrec(SHARED / "amazon_scientific_unisrec", duplicates="keep").interactions)
        == 59427
    )
    assert len(inter) == 59136
    spec = prepare(raw, LOO_FULL, tmp_path / "p", item_text={"fields": ["text"]})
    assert (spec.n_users, spec.n_items, spec.n_items_without_text) == (8442, 4385, 0)
    assert spec.n_test == 8440  # two users re-bought until fewer than 3 distinct items remain


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "ml-1m-pieces").is_dir(), reason="no shared data")
def test_real_ml1m_pieces_text(compose_cfg: Compose) -> None:
    cfg = compose_cfg("data=ml1m_pieces_text", f"paths.shared_dir={SHARED.parent}")
    raw = read_source(cfg)
    assert len(raw.interactions) == 1_000_209 and raw.items is not None
    texts = assemble_item_text(raw.items, dict(cfg.data.text.fields))
    interacted = texts.reindex(raw.interactions["item"].unique())
    assert interacted.notna().all() and (interacted != "").all()  # all 3,706 items have text
    assert texts[0] == "Toy Story. Year: 1995. Genres: Animation, Children's, Comedy"
