"""MovieLens readers: 100K (``u.data``, ``u.item``), 1M (``ratings.dat``, ``movies.dat``) and
"latest" (``ratings.csv``, ``movies.csv``; also ml-20m/25m/32m), plus ``movies.dat`` as an item
table (:func:`read_movielens_items`, which the ML-1M pieces join with). Items get ``title`` (year
suffix removed), ``year`` and ``genres`` (``"Action|Comedy"``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import (
    check_columns,
    check_interactions,
    check_items,
    read_delimited,
    require_file,
)
from hybridrec.data.raw import RawData

__all__ = [
    "ML100K_GENRES",
    "read_movielens_100k",
    "read_movielens_1m",
    "read_movielens_items",
    "read_movielens_latest",
    "read_movies_dat",
]

#: Genre flag columns of MovieLens 100K's ``u.item``, in file order.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-\u2013]\d{4})?\)\s*$"


# ----------------------------------------------------------------------------- helpers


def _min_rating(df: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    if min_rating is None:
        return df
    return df.loc[df["rating"] >= min_rating].reset_index(drop=True)


def _split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``"Toy Story (1995)"`` -> (``"Toy Story"``, 1995); titles without a year keep NA."""
    titles = titles.fillna("").astype("str").str.strip()
    parts = titles.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna()
    title = titles.where(~has_year, parts["title"])
    year = pd.to_numeric(parts["year"], errors="coerce").astype("Int64")
    return title.astype("str"), year


def _movielens_items(
    ids: pd.Series, titles: pd.Series, genres: pd.Series, path: Path, header_rows: int
) -> pd.DataFrame:
    title, year = _split_title_year(titles)
    genres = genres.fillna("").astype("str").str.strip()
    genres = genres.where(genres != "(no genres listed)", "")
    items = pd.DataFrame({"item": ids, "title": title, "year": year, "genres": genres})
    return check_items(items, path, header_rows=header_rows)


# ----------------------------------------------------------------------------- MovieLens


def read_movielens_100k(
    path: str | Path, min_rating: float | None = None, duplicates: str = "error"
) -> RawData:
    """MovieLens 100K folder.

    ``u.data``: TAB ``user item rating timestamp``, no header. ``u.item`` (latin-1):
    ``id|title|release date|video release date|IMDb URL|`` + 19 genre flags (0/1, in the order of
    :data:`ML100K_GENRES`). Items get ``title`` (year suffix removed), ``year`` (from the title,
    else the release date; NA when neither has one) and ``genres`` (``"Action|Comedy"``).
    ``min_rating`` keeps ratings >= it (implicit feedback); None keeps all.
    """
    folder = Path(path)
    data_path = folder / "u.data"
    df = read_delimited(
        data_path,
        sep="\t",
        n_fields=4,
        fmt="MovieLens 100K's u.data (TAB user item rating timestamp)",
    )
    df.columns = pd.Index(["user", "item", "rating", "timestamp"])
    inter = _min_rating(check_interactions(df, data_path, duplicates=duplicates), min_rating)

    item_path = folder / "u.item"
    n_fields = 5 + len(ML100K_GENRES)
    raw = read_delimited(
        item_path,
        sep="|",
        n_fields=n_fields,
        encoding="latin-1",
        dtype=str,
        fmt=f"MovieLens 100K's u.item (latin-1, {n_fields} '|'-separated fields: "
        "id|title|release date|video release date|IMDb URL|19 genre flags)",
    )
    on = raw.iloc[:, 5:].fillna("0").apply(lambda col: col.str.strip() == "1").to_numpy()
    names = np.array([g + "|" for g in ML100K_GENRES], dtype=object)
    genre_str = pd.Series(np.where(on, names, "").sum(axis=1), index=raw.index)
    genres = genre_str.astype("str").str.rstrip("|")
    items = _movielens_items(raw[0], raw[1], genres, item_path, header_rows=0)
    release_year = pd.to_numeric(raw[2].astype("str").str[-4:], errors="coerce").astype("Int64")
    items["year"] = items["year"].fillna(release_year)
    return RawData(name="ml100k", interactions=inter, items=items, files=[data_path, item_path])


def read_movielens_1m(
    path: str | Path, min_rating: float | None = None, duplicates: str = "error"
) -> RawData:
    """MovieLens 1M folder.

    ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``. ``movies.dat`` (latin-1):
    ``MovieID::Title (Year)::Genre|Genre``. Items get ``title``, ``year`` and ``genres``.
    """
    folder = Path(path)
    data_path = folder / "ratings.dat"
    fmt = "MovieLens 1M's ratings.dat (UserID::MovieID::Rating::Timestamp)"
    # '::' is read as ':' (the C engine needs one char): fields 1, 3, 5 must then be empty
    df = read_delimited(data_path, sep=":", n_fields=7, fmt=fmt)
    bad = df[[1, 3, 5]].notna().any(axis=1).to_numpy()
    if bad.any():
        raise DataError(
            f"malformed line; expected {fmt}", path=data_path, row=int(bad.argmax()) + 1
        )
    df = df[[0, 2, 4, 6]]
    df.columns = pd.Index(["user", "item", "rating", "timestamp"])
    inter = _min_rating(check_interactions(df, data_path, duplicates=duplicates), min_rating)

    item_path = folder / "movies.dat"
    items = read_movies_dat(item_path)
    return RawData(name="ml1m", interactions=inter, items=items, files=[data_path, item_path])


def read_movies_dat(path: str | Path) -> pd.DataFrame:
    """MovieLens 1M's ``movies.dat`` (latin-1, ``MovieID::Title (Year)::Genre|Genre``) as an item
    table: ``item`` (the MovieID), ``title`` (year suffix removed), ``year`` (Int64, NA when the
    title has none) and ``genres`` (``"Action|Comedy"``)."""
    item_path = require_file(path, "MovieLens 1M's movies.dat (MovieID::Title (Year)::Genre|Genre)")
    text = item_path.read_text(encoding="latin-1").rstrip()
    lines = pd.Series(text.splitlines(), dtype="str")
    parts = lines.str.extract(r"^\s*([^:]+?)\s*::(.*)::([^:]*)$")
    bad = parts[0].isna().to_numpy()
    if bad.any():
        raise DataError(
            "malformed line; expected MovieID::Title (Year)::Genre|Genre",
            path=item_path,
            row=int(lines.index[int(bad.argmax())]) + 1,
        )
    if len(parts) == 0:
        raise DataError("empty file: no item rows", path=item_path)
    return _movielens_items(parts[0], parts[1], parts[2], item_path, header_rows=0)


def read_movielens_latest(
    path: str | Path, min_rating: float | None = None, duplicates: str = "error"
) -> RawData:
    """MovieLens "latest" folder (also ml-20m/ml-25m/ml-32m).

    ``ratings.csv``: header ``userId,movieId,rating,timestamp``. ``movies.csv``: header
    ``movieId,title,genres`` (quoted CSV, UTF-8; genres ``A|B`` or ``(no genres listed)``).
    """
    folder = Path(path)
    data_path = folder / "ratings.csv"
    names = ["userId", "movieId", "rating", "timestamp"]
    df = read_delimited(
        data_path,
        sep=",",
        header=True,
        quoting=csv.QUOTE_MINIMAL,
        fmt="MovieLens ratings.csv (header userId,movieId,rating,timestamp)",
    )
    check_columns(df, names, data_path)
    df = df[names].set_axis(["user", "item", "rating", "timestamp"], axis=1)
    inter = check_interactions(df, data_path, header_rows=1, duplicates=duplicates)
    inter = _min_rating(inter, min_rating)

    item_path = folder / "movies.csv"
    raw = read_delimited(
        item_path,
        sep=",",
        header=True,
        quoting=csv.QUOTE_MINIMAL,
        dtype={"title": str, "genres": str},
        fmt="MovieLens movies.csv (header movieId,title,genres; quoted CSV)",
    )
    check_columns(raw, ["movieId", "title", "genres"], item_path)
    items = _movielens_items(raw["movieId"], raw["title"], raw["genres"], item_path, 1)
    return RawData(name="ml-latest", interactions=inter, items=items, files=[data_path, item_path])


def read_movielens_items(path: str | Path, item_id_offset: int = 0) -> pd.DataFrame:
    """MovieLens 1M ``movies.dat`` as an item table, ids ``MovieID - item_id_offset``.

    The ML-1M pieces number items MovieID - 1, so they join with ``item_id_offset=1``.
    """
    items = read_movies_dat(path)
    items["item"] = items["item"] - int(item_id_offset)
    return items
