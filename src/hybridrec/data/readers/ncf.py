"""The NCF paper's evaluation files (He et al. 2017): training pairs, one test row per user and
its given sampled negatives (``RawData.test``, ``RawData.test_negatives``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import check_interactions, read_delimited, show
from hybridrec.data.raw import RawData

__all__ = ["read_ncf"]


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
