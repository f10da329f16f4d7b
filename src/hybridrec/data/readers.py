"""Readers: one function per source format, each returning :class:`RawData`.

They are Hydra ``_target_`` functions, so they take plain keyword arguments (paths as ``str`` or
``Path``). Ids stay raw; bad input raises :class:`DataError` naming file, row and column.
Every reader of interactions takes ``duplicates`` (``"error"``, ``"drop"`` to keep the first,
``"keep"``) for repeated ``(user, item)`` pairs; the data configs expose it as
``data.source.duplicates``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.raw import INTERACTION_COLUMNS, RawData
from hybridrec.data.validate import (
    RowOrigin,
    check_columns,
    check_interactions,
    check_items,
    read_delimited,
    require_file,
    show,
)

__all__ = [
    "ML100K_GENRES",
    "read_movielens_100k",
    "read_movielens_1m",
    "read_movielens_latest",
    "read_movies_dat",
    "read_ncf",
    "read_sequences",
    "read_table",
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


# ----------------------------------------------------------------------------- NCF


def _read_ncf_negatives(neg_path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """``(user,item)\\tneg_1\\t...\\tneg_k`` -> frame (user, item) and a (rows, k) int64 array."""
    fmt = "NCF .test.negative (TAB: (user,item) then the sampled negatives)"
    raw = read_delimited(neg_path, sep="\t", fmt=fmt)
    first = raw[0].astype("str").str.extract(r"^\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)\s*$")
    bad = first[0].isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise DataError(
            f"first field {show(raw[0].iloc[i])} is not '(user,item)'; format: {fmt}",
            path=neg_path,
            row=i + 1,
            column="(user,item)",
        )
    pairs = pd.DataFrame(
        {"user": first[0].astype(np.int64).to_numpy(), "item": first[1].astype(np.int64).to_numpy()}
    )
    block = raw.iloc[:, 1:]
    k = block.shape[1]
    if k == 0:
        raise DataError(f"no negatives after '(user,item)'; format: {fmt}", path=neg_path, row=1)
    if not all(pd.api.types.is_numeric_dtype(t) for t in block.dtypes):
        for j in range(k):
            num = pd.to_numeric(block.iloc[:, j].astype("str"), errors="coerce")
            bad = (num.isna() & block.iloc[:, j].notna()).to_numpy()
            if bad.any():
                i = int(bad.argmax())
                raise DataError(
                    f"negative {show(block.iloc[i, j])} is not an integer item id",
                    path=neg_path,
                    row=i + 1,
                    column=f"negative {j + 1}",
                )
        block = block.apply(lambda c: pd.to_numeric(c.astype("str"), errors="coerce"))
    values = block.to_numpy(dtype=np.float64)
    missing = np.isnan(values)
    short = missing.any(axis=1)
    if short.any():
        i = int(short.argmax())
        raise DataError(
            f"row has {int((~missing[i]).sum())} negatives, expected {k} as in row 1; "
            "every row needs the same number of negatives",
            path=neg_path,
            row=i + 1,
        )
    frac = values != np.floor(values)
    if frac.any():
        i, j = (int(x) for x in np.argwhere(frac)[0])
        raise DataError(
            f"negative {show(values[i, j])} is not an integer item id",
            path=neg_path,
            row=i + 1,
            column=f"negative {j + 1}",
        )
    return pairs, values.astype(np.int64)


def read_ncf(path: str | Path, name: str = "ml-1m", duplicates: str = "error") -> RawData:
    """NCF (He et al. 2017) evaluation files ``{name}.*`` in folder ``path``.

    Training: ``{name}.train.rating`` (TAB ``user item rating timestamp``) when present, else
    ``{name}.train.pairs`` (TAB ``user item``). ``{name}.test.rating`` (TAB
    ``user item rating timestamp``; exactly one row per training user) -> ``RawData.test``
    (``user``, ``item``, ``timestamp``). ``{name}.test.negative`` (TAB ``(user,item)`` then the
    negatives, the same count on every row; ``(user,item)`` must be that user's test row) ->
    ``RawData.test_negatives`` (``user``, ``item``, ``negatives``: list of ints).
    """
    folder = Path(path)
    rating_path = folder / f"{name}.train.rating"
    pairs_path = folder / f"{name}.train.pairs"
    if rating_path.is_file() or not pairs_path.is_file():
        train_path = rating_path
        train_names = ["user", "item", "rating", "timestamp"]
        fmt = (
            f"NCF {name}.train.rating (TAB user item rating timestamp), "
            f"or {name}.train.pairs (TAB user item)"
        )
    else:
        train_path = pairs_path
        train_names = ["user", "item"]
        fmt = f"NCF {name}.train.pairs (TAB user item)"
    df = read_delimited(train_path, sep="\t", n_fields=len(train_names), fmt=fmt)
    df.columns = pd.Index(train_names)
    inter = check_interactions(df, train_path, duplicates=duplicates)

    test_path = folder / f"{name}.test.rating"
    df = read_delimited(
        test_path,
        sep="\t",
        n_fields=4,
        fmt=f"NCF {name}.test.rating (TAB user item rating timestamp)",
    )
    df.columns = pd.Index(["user", "item", "rating", "timestamp"])
    # a repeated test row is reported below as a second test row of its user
    test = check_interactions(df, test_path, duplicates="keep")
    test = test[["user", "item", "timestamp"]]

    # exactly one test row per user, and test users are training users (and vice versa)
    test_users = test["user"].to_numpy()
    dup = test["user"].duplicated(keep="first").to_numpy()
    if dup.any():
        j = int(dup.argmax())
        i = int((test_users == test_users[j]).argmax())
        raise DataError(
            f"rows {i + 1} and {j + 1} are both test rows of user {show(test_users[j])}; "
            "NCF leave-one-out has exactly one test row per user",
            path=test_path,
            row=j + 1,
            column="user",
        )
    train_users = inter["user"].to_numpy()
    unseen = ~np.isin(test_users, train_users)
    if unseen.any():
        i = int(unseen.argmax())
        raise DataError(
            f"test user {show(test_users[i])} has no training rows in {train_path.name}",
            path=test_path,
            row=i + 1,
            column="user",
        )
    untested = ~np.isin(train_users, test_users)
    if untested.any():
        i = int(untested.argmax())
        raise DataError(
            f"training user {show(train_users[i])} has no row in {test_path.name}; "
            "NCF leave-one-out has exactly one test row per user",
            path=train_path,
            row=i + 1,
            column="user",
        )

    neg_path = folder / f"{name}.test.negative"
    pairs, negatives = _read_ncf_negatives(neg_path)
    test_item = pd.Series(test["item"].to_numpy(), index=test_users)
    expected = test_item.reindex(pairs["user"].to_numpy()).to_numpy()
    no_test = pd.isna(expected)
    if no_test.any():
        i = int(no_test.argmax())
        raise DataError(
            f"user {show(pairs['user'].iloc[i])} has no row in {test_path.name}",
            path=neg_path,
            row=i + 1,
            column="user",
        )
    wrong = expected != pairs["item"].to_numpy()
    if wrong.any():
        i = int(wrong.argmax())
        raise DataError(
            f"({pairs['user'].iloc[i]},{pairs['item'].iloc[i]}) disagrees with "
            f"{test_path.name}, where user {pairs['user'].iloc[i]}'s test item is {expected[i]}",
            path=neg_path,
            row=i + 1,
            column="item",
        )
    dup = pairs["user"].duplicated(keep="first").to_numpy()
    if dup.any():
        j = int(dup.argmax())
        raise DataError(
            f"user {pairs['user'].iloc[j]} has a second negatives row; one row per test user",
            path=neg_path,
            row=j + 1,
            column="user",
        )
    if len(pairs) != len(test):
        missing_user = test_users[~np.isin(test_users, pairs["user"].to_numpy())][0]
        raise DataError(
            f"{len(pairs)} rows for {len(test)} test users: test user {show(missing_user)} "
            "has no negatives row",
            path=neg_path,
        )
    test_negatives = pairs.assign(negatives=negatives.tolist())
    return RawData(
        name=f"ncf-{name}",
        interactions=inter,
        test=test.reset_index(drop=True),
        test_negatives=test_negatives,
        files=[train_path, test_path, neg_path],
        ordered_by_file=False,
    )


# ----------------------------------------------------------------------------- sequences


def _read_sequence_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens of one ``user item item ...`` file: (users, items, 1-based lines), items as str."""
    fmt = "one user per line: 'user item item ...' (space-separated)"
    p = require_file(path, fmt)
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeError, OSError) as exc:
        raise DataError(f"cannot read ({exc}); expected {fmt}", path=p) from exc
    lines = text.splitlines()
    counts = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    if counts.sum() == 0:
        raise DataError(f"empty file: no data rows; expected {fmt}", path=p)
    lonely = counts == 1
    if lonely.any():
        i = int(lonely.argmax())
        raise DataError(
            f"line has a user ({lines[i].strip()!r}) but no items; expected {fmt}",
            path=p,
            row=i + 1,
        )
    tokens = np.array(text.split(), dtype=object)
    kept = counts > 0
    n_items = counts[kept] - 1
    starts = np.concatenate(([0], np.cumsum(counts[kept])[:-1]))
    is_user = np.zeros(len(tokens), dtype=bool)
    is_user[starts] = True
    users = np.repeat(tokens[starts], n_items)
    items = tokens[~is_user]
    line_no = np.repeat(np.flatnonzero(kept) + 1, n_items)
    return users, items, line_no


def _as_ids(tokens: np.ndarray) -> np.ndarray:
    """Token strings as int64 when every one is an integer, else unchanged."""
    try:
        return tokens.astype(np.int64)
    except (ValueError, OverflowError):
        return tokens


def read_sequences(
    path: str | Path | Sequence[str | Path],
    one_based: bool = True,
    ordered: bool = True,
    name: str | None = None,
    duplicates: str = "error",
) -> RawData:
    """One-user-per-line files: ``user item item ...`` (whitespace-separated, no header).

    Several paths are concatenated and a user found in several lines or files gets the union.
    Ids are kept as read (int64 when all are integers, else strings); ``one_based`` only records
    the source convention (ids are mapped later). With ``ordered`` the items are in time order:
    ``timestamp`` is each item's position in the user's sequence (0, 1, 2...; across lines in
    file order) and ``ordered_by_file`` is True; otherwise there is no timestamp column.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    if not paths:
        raise ValueError("read_sequences needs at least one path")
    del one_based  # documentation only: ids are kept as read
    parts = [_read_sequence_file(p) for p in paths]
    users = np.concatenate([u for u, _, _ in parts])
    items = np.concatenate([i for _, i, _ in parts])
    lines = np.concatenate([ln for _, _, ln in parts])
    file_idx = np.repeat(np.arange(len(parts)), [len(u) for u, _, _ in parts])
    df = pd.DataFrame({"user": _as_ids(users), "item": _as_ids(items)})
    if ordered:
        df["timestamp"] = df.groupby("user", sort=False).cumcount().to_numpy(dtype=np.int64)
    origin = RowOrigin(paths=paths, file=file_idx, line=lines)
    inter = check_interactions(df, paths[0], duplicates=duplicates, origin=origin)
    return RawData(
        name=name if name is not None else paths[0].stem,
        interactions=inter,
        files=paths,
        ordered_by_file=ordered,
    )


# ----------------------------------------------------------------------------- generic tables


def _sniff_sep(path: Path) -> str:
    """Tab when the header line has a tab, ``;`` when it has semicolons but no comma, else comma."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    if "\t" in header:
        return "\t"
    if ";" in header and "," not in header:
        return ";"
    return ","


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _parquet_error(exc: Exception, path: Path, what: str) -> DataError:
    return DataError(f"cannot read Parquet ({exc}); expected {what}", path=path)


def _table_columns(path: Path, sep: str, what: str) -> list[str]:
    """Column names of a Parquet file or of the header line of a CSV/TSV file."""
    if _is_parquet(path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return [str(c) for c in pq.read_schema(path).names]
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise _parquet_error(exc, path, what) from exc
    try:
        cols = pd.read_csv(path, sep=sep, nrows=0, engine="c").columns
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"empty file: no header line; expected {what}", path=path) from exc
    except (ValueError, UnicodeError) as exc:
        raise DataError(f"cannot read ({exc}); expected {what}", path=path) from exc
    return [str(c) for c in cols]


def _read_mapped(
    path: str | Path,
    sep: str | None,
    mapping: dict[str, str] | None,
    required: Sequence[str],
    optional: Sequence[str] | None,
    what: str,
) -> tuple[pd.DataFrame, Path, int]:
    """Read the mapped columns of a table, renamed to ours; returns (frame, path, header rows).

    ``mapping`` is ours -> the file's; ``required`` default to identity, and so do ``optional``
    columns found in the file (all columns when ``optional`` is None).
    """
    p = require_file(path, what)
    sep = sep if sep is not None or _is_parquet(p) else _sniff_sep(p)
    found = _table_columns(p, sep or ",", what)
    cols = {c: c for c in required}
    cols.update({c: c for c in found if optional is None or c in optional})
    cols.update(mapping or {})
    usecols = list(dict.fromkeys(cols.values()))
    check_columns(found, usecols, p)
    if _is_parquet(p):
        import pyarrow as pa

        try:
            df = pd.read_parquet(p, columns=usecols)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise _parquet_error(exc, p, what) from exc
        header_rows = 0
    else:
        df = read_delimited(
            p,
            sep=sep or ",",
            header=True,
            quoting=csv.QUOTE_MINIMAL,
            usecols=usecols,
            fmt=f"{what} (separator {sep!r}, header line)",
        )
        header_rows = 1
    return pd.DataFrame({ours: df[theirs] for ours, theirs in cols.items()}), p, header_rows


def read_table(
    path: str | Path,
    columns: dict[str, str] | None = None,
    sep: str | None = None,
    items_path: str | Path | None = None,
    item_columns: dict[str, str] | None = None,
    name: str | None = None,
    duplicates: str = "error",
) -> RawData:
    """A generic interactions table: CSV/TSV with a header line, or Parquet (``.parquet``/``.pq``).

    ``columns`` maps our names (``user``, ``item``, ``timestamp``, ``rating``, ``session``) to the
    file's, e.g. ``{"user": "customer_id", "item": "sku"}``; unmapped names are taken from
    same-named file columns (``user`` and ``item`` must exist). ``sep`` None sniffs the header
    line: tab if it has one, ``;`` if it has semicolons and no comma, else comma.
    ``items_path``: optional item table read the same way with ``item_columns`` (``item`` plus
    the text fields to keep; None keeps every column, ``item`` must exist).
    """
    unknown = sorted(set(columns or {}) - set(INTERACTION_COLUMNS))
    if unknown:
        raise ValueError(f"columns: unknown keys {unknown}; expected some of {INTERACTION_COLUMNS}")
    df, p, header_rows = _read_mapped(
        path,
        sep,
        columns,
        ("user", "item"),
        INTERACTION_COLUMNS,
        "interactions table (columns user, item[, timestamp, rating, session])",
    )
    inter = check_interactions(df, p, header_rows=header_rows, duplicates=duplicates)
    files = [p]
    items = None
    if items_path is not None:
        keep_all = item_columns is None
        raw, ip, item_header = _read_mapped(
            items_path,
            None,
            item_columns,
            ("item",),
            None if keep_all else (),
            "item table (column item plus text fields)",
        )
        items = check_items(raw, ip, header_rows=item_header)
        files.append(ip)
    return RawData(
        name=name if name is not None else p.stem, interactions=inter, items=items, files=files
    )
