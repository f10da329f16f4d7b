"""Writers: a :class:`SyntheticData` in the on-disk formats of the real benchmarks (MovieLens
100K / 1M, NCF, space-separated sequences, UniSRec, GRU4Rec session files, Diginetica; see
``/work/shared/datasets/README.md``) so every reader can be tested on generated data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hybridrec.data.readers.movielens import ML100K_GENRES
from hybridrec.data.synthetic.generator import _CATEGORIES, SyntheticData

# The 18 MovieLens genres (ML-1M names; ML-100K adds "unknown" at flag 0).
ML_GENRES = ML100K_GENRES[1:]


def write(
    data: SyntheticData, folder: str | Path, fmt: Literal["csv", "parquet"] = "csv"
) -> list[Path]:
    """Write ``interactions``, ``items`` and ``ratings`` as ``<name>.<fmt>`` (with a header).

    In CSV an empty ``description`` or ``context`` reads back as missing (NaN), which is the
    point: readers must cope with missing text.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (
        ("interactions", data.interactions),
        ("items", data.items),
        ("ratings", data.ratings),
    ):
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def _item_genres(data: SyntheticData) -> list[tuple[str, ...]]:
    return [_CATEGORIES[c].genres for c in data.item_category]


def _movie_title(data: SyntheticData, item: int) -> tuple[str, int]:
    # A fixed pseudo-year per item (no randomness needed): "Title (Year)" as MovieLens writes it.
    year = 1980 + (item * 7) % 44
    return f"{data.items['title'].iat[item]} ({year})", year


def write_movielens_100k(data: SyntheticData, folder: str | Path) -> list[Path]:
    """MovieLens 100K layout: ``u.data`` (TAB user item rating timestamp, 1-based ids, no header),
    ``u.item`` (latin-1, ``id|title (year)|release date|video date|url|19 genre flags``) and
    ``u.genre`` (``name|flag index``). Categories map onto genres (``_Category.genres``)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    inter = data.interactions
    u_data = out / "u.data"
    _write_lines(
        u_data,
        (
            f"{u + 1}\t{i + 1}\t{r}\t{t}"
            for u, i, r, t in zip(
                inter["user"].to_numpy(),
                inter["item"].to_numpy(),
                inter["rating"].to_numpy(),
                inter["timestamp"].to_numpy(),
            )
        ),
        encoding="ascii",
    )
    all_genres = ("unknown", *ML_GENRES)
    lines = []
    for item, genres in enumerate(_item_genres(data)):
        title, year = _movie_title(data, item)
        flags = "|".join("1" if g in genres else "0" for g in all_genres)
        url = f"http://example.org/item/{item + 1}"
        lines.append(f"{item + 1}|{title}|01-Jan-{year}||{url}|{flags}")
    u_item = out / "u.item"
    _write_lines(u_item, lines, encoding="latin-1")
    u_genre = out / "u.genre"
    _write_lines(u_genre, [f"{g}|{k}" for k, g in enumerate(all_genres)] + [""], encoding="ascii")
    return [u_data, u_item, u_genre]


def write_movielens_1m(data: SyntheticData, folder: str | Path) -> list[Path]:
    """MovieLens 1M layout: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
    ``movies.dat`` (``MovieID::Title (Year)::Genre|Genre``, latin-1), 1-based ids."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    inter = data.interactions
    ratings = out / "ratings.dat"
    _write_lines(
        ratings,
        (
            f"{u + 1}::{i + 1}::{r}::{t}"
            for u, i, r, t in zip(
                inter["user"].to_numpy(),
                inter["item"].to_numpy(),
                inter["rating"].to_numpy(),
                inter["timestamp"].to_numpy(),
            )
        ),
        encoding="ascii",
    )
    movies = out / "movies.dat"
    _write_lines(
        movies,
        (
            f"{item + 1}::{_movie_title(data, item)[0]}::{'|'.join(genres)}"
            for item, genres in enumerate(_item_genres(data))
        ),
        encoding="latin-1",
    )
    return [ratings, movies]


def write_ncf(
    data: SyntheticData,
    folder: str | Path,
    name: str = "syn",
    n_negatives: int = 99,
    seed: int = 0,
) -> list[Path]:
    """NCF (He et al. 2017) files, 0-based ids, TAB-separated, no header:

    ``{name}.train.rating``: ``user item rating timestamp``, all but each user's latest event;
    ``{name}.test.rating``: each user's latest event; ``{name}.test.negative``:
    ``(user,item)`` then ``n_negatives`` items the user never interacted with (sampled with
    ``default_rng(seed)``, without replacement).
    """
    inter = data.interactions  # sorted by user then timestamp, so the last row is the latest
    is_last = inter["user"].ne(inter["user"].shift(-1)).to_numpy()
    train, test = inter[~is_last], inter[is_last]
    n_items = data.item_factors.shape[0]
    rng = np.random.default_rng(seed)
    seen_by_user = inter.groupby("user", sort=True)["item"].agg(lambda s: s.to_numpy())

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cols = ["user", "item", "rating", "timestamp"]
    paths = [out / f"{name}.train.rating", out / f"{name}.test.rating"]
    for path, frame in zip(paths, (train, test)):
        _write_lines(path, ("\t".join(map(str, row)) for row in frame[cols].to_numpy()))

    neg_lines = []
    for u, i in zip(test["user"].to_numpy(), test["item"].to_numpy()):
        seen = np.zeros(n_items, dtype=bool)
        seen[seen_by_user[u]] = True
        unseen = np.flatnonzero(~seen)
        if unseen.size < n_negatives:
            raise ValueError(
                f"user {u} has only {unseen.size} unseen items, fewer than "
                f"n_negatives={n_negatives}; generate more items or ask for fewer negatives"
            )
        negs = rng.choice(unseen, size=n_negatives, replace=False)
        neg_lines.append(f"({u},{i})\t" + "\t".join(map(str, negs)))
    neg_path = out / f"{name}.test.negative"
    _write_lines(neg_path, neg_lines)
    return [*paths, neg_path]


def write_sequences(data: SyntheticData, path: str | Path, offset: int = 1) -> Path:
    """SASRec / S3-Rec style: one line per user, ``user item item ...`` in time order, ids
    ``+ offset`` (1-based by default; ``offset=0`` for the ML-1M pieces' ``MovieID - 1``, which
    then join :func:`write_movielens_1m`'s movies.dat with ``item_id_offset=1``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inter = data.interactions  # sorted by user then timestamp
    lines = [
        " ".join(map(str, [u + offset, *(items + offset)]))
        for u, items in inter.groupby("user", sort=True)["item"].agg(lambda s: s.to_numpy()).items()
    ]
    _write_lines(path, lines)
    return path


def unisrec_asin(item: int) -> str:
    """The synthetic ASIN of an item ("B" + 9 digits, leading zeros: ids that stay strings)."""
    return f"B{item:09d}"


def write_unisrec(
    data: SyntheticData, folder: str | Path, name: str = "Scientific", max_len: int = 50
) -> list[Path]:
    """UniSRec / RecBole atomic files ``<name>.*`` (the Amazon Scientific layout, 0-based ids).

    ``.train.inter`` / ``.valid.inter`` / ``.test.inter``: TAB, header ``user_id:token
    item_id_list:token_seq item_id:token``; a user of L events has train rows for targets
    L-3 .. 1 (longest first, as RecBole writes them), a valid row (target L-2) and a test row
    (target L-1); histories keep the latest ``max_len`` items. ``.item2index`` /
    ``.user2index``: ``raw id \t index``. ``.text``: header ``item_id:token text:token_seq``,
    ``"title. category. brand. "`` by ASIN; items with an empty description get no row, so
    readers meet items without text.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token"
    rows: dict[str, list[str]] = {"train": [header], "valid": [header], "test": [header]}
    sequences = data.interactions.groupby("user", sort=True)["item"].agg(list)
    for user, seq in sequences.items():
        n = len(seq)
        if n < 3:
            raise ValueError(f"user {user} has {n} events; the UniSRec layout needs at least 3")
        for split, target in [("train", t) for t in range(n - 3, 0, -1)] + [
            ("valid", n - 2),
            ("test", n - 1),
        ]:
            history = " ".join(map(str, seq[max(0, target - max_len) : target]))
            rows[split].append(f"{user}\t{history}\t{seq[target]}")
    paths = []
    for split in ("train", "valid", "test"):
        paths.append(out / f"{name}.{split}.inter")
        _write_lines(paths[-1], rows[split])
    items = data.items
    asins = [unisrec_asin(int(i)) for i in items["item"]]
    paths.append(out / f"{name}.item2index")
    _write_lines(paths[-1], (f"{a}\t{i}" for i, a in enumerate(asins)))
    paths.append(out / f"{name}.user2index")
    _write_lines(paths[-1], (f"A{u:012d}\t{u}" for u in sequences.index))
    text = ["item_id:token\ttext:token_seq"] + [
        f"{a}\t{t}. {c}. {b}. "
        for a, t, c, b, d in zip(
            asins, items["title"], items["category"], items["brand"], items["description"]
        )
        if d
    ]
    paths.append(out / f"{name}.text")
    _write_lines(paths[-1], text, encoding="utf-8")
    return paths


def _write_lines(path: Path, lines: Iterable[str], encoding: str = "ascii") -> None:
    # "\n" endings on every platform, final newline included, as in the original files.
    with open(path, "w", encoding=encoding, newline="\n") as f:
        for line in lines:
            f.write(line)
            f.write("\n")


def write_sessions(data: SyntheticData, folder: str | Path, test_days: float = 10.0) -> list[Path]:
    """GRU4Rec style click files: ``train.tsv`` and ``test.tsv`` (TAB, header
    ``SessionId ItemId Time``), the sessions ending in the last ``test_days`` days as test."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inter = data.interactions.sort_values(["session", "timestamp"], kind="stable")
    ends = inter.groupby("session")["timestamp"].transform("max")
    late = ends >= inter["timestamp"].max() - test_days * 86_400
    frame = pd.DataFrame(
        {"SessionId": inter["session"] + 1, "ItemId": inter["item"] + 1, "Time": inter["timestamp"]}
    )
    paths = [folder / "train.tsv", folder / "test.tsv"]
    frame[~late.to_numpy()].to_csv(paths[0], sep="\t", index=False)
    frame[late.to_numpy()].to_csv(paths[1], sep="\t", index=False)
    return paths


def write_diginetica(data: SyntheticData, path: str | Path) -> Path:
    """Diginetica's raw ``train-item-views.csv`` (``;``-separated): session_id, user_id (NA),
    item_id, timeframe (ms since the session's first click), eventdate (the session's day)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inter = data.interactions.sort_values(["session", "timestamp"], kind="stable")
    first = inter.groupby("session")["timestamp"].transform("min")
    day = pd.to_datetime(first, unit="s").dt.strftime("%Y-%m-%d")
    midnight = (pd.to_datetime(day) - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    frame = pd.DataFrame(
        {
            "session_id": inter["session"] + 1,
            "user_id": "NA",
            "item_id": inter["item"] + 1,
            "timeframe": (inter["timestamp"] - midnight) * 1000,
            "eventdate": day,
        }
    )
    frame.to_csv(path, sep=";", index=False)
    return path
