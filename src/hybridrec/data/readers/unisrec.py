"""UniSRec / RecBole atomic files: user sequences plus item text (the Amazon 2018 sets as UniSRec
ships them, e.g. Scientific). The sequences are rebuilt from the train/valid/test ``.inter``
files and checked against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.validate import (
    RowOrigin,
    check_columns,
    check_interactions,
    check_items,
    read_delimited,
    show,
)
from hybridrec.data.raw import RawData

__all__ = ["read_unisrec"]

_INTER_COLUMNS = ("user_id:token", "item_id_list:token_seq", "item_id:token")
_TEXT_COLUMNS = ("item_id:token", "text:token_seq")


def _read_atomic(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """A RecBole atomic file (TAB, typed header), every field as a string ("" when empty)."""
    fmt = f"{what} (TAB, header {' '.join(columns)})"
    frame = read_delimited(path, sep="\t", header=True, dtype=str, fmt=fmt)
    check_columns(frame, list(columns), path)
    return frame[list(columns)].fillna("")


def _read_index(path: Path, what: str) -> pd.Series:
    """``raw id \\t index`` (no header) -> Series raw id (str) indexed by the int index."""
    fmt = f"{what} (TAB raw id, 0-based index; no header)"
    frame = read_delimited(path, sep="\t", n_fields=2, dtype=str, fmt=fmt)
    index = pd.to_numeric(frame[1], errors="coerce")
    bad = (index.isna() | frame[0].isna()).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise DataError(
            f"expected a raw id and an integer index, got {show(frame[0].iloc[i])}, "
            f"{show(frame[1].iloc[i])}",
            path=path,
            row=i + 1,
        )
    dup = index.duplicated().to_numpy()
    if dup.any():
        raise DataError(
            f"index {int(index.iloc[int(dup.argmax())])} appears twice",
            path=path,
            row=int(dup.argmax()) + 1,
        )
    return pd.Series(frame[0].str.strip().to_numpy(), index=index.astype(np.int64).to_numpy())


def _tokens(
    frame: pd.DataFrame, path: Path, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History tokens of an .inter frame: (flat item indices, per-row lengths, targets)."""
    hist = frame["item_id_list:token_seq"].str.split()
    lengths = hist.str.len().to_numpy(dtype=np.int64)
    empty = lengths == 0
    if empty.any():
        raise DataError(
            "empty history; every row needs at least one item before its target",
            path=path,
            row=int(empty.argmax()) + 2,
            column="item_id_list:token_seq",
        )
    flat = pd.Series(np.concatenate(hist.to_numpy()), dtype=str)
    row_of = np.repeat(np.arange(len(frame)), lengths)
    for values, rows, column in (
        (flat, row_of, "item_id_list:token_seq"),
        (frame["item_id:token"], np.arange(len(frame)), "item_id:token"),
    ):
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(num) | (num < 0) | (num >= n_items) | (np.floor(num) != num)
        if bad.any():
            k = int(bad.argmax())
            raise DataError(
                f"item {values.iloc[k]!r} is not an item index 0..{n_items - 1} of the "
                "item2index file",
                path=path,
                row=int(rows[k]) + 2,
                column=column,
            )
    targets = frame["item_id:token"].astype(np.int64).to_numpy()
    return flat.astype(np.int64).to_numpy(), lengths, targets


def read_unisrec(path: str | Path, name: str = "Scientific", duplicates: str = "last") -> RawData:
    """UniSRec / RecBole atomic files ``<name>.*`` in folder ``path`` (Amazon 2018 with text).

    ``<name>.{train,valid,test}.inter`` (TAB, header ``user_id:token item_id_list:token_seq
    item_id:token``): a history of 0-based item indices (space-separated, the latest at most
    ``MAX_ITEM_LIST_LENGTH`` items) and its target. Train holds every prefix of each user's
    training part (targets at positions 1..L-3, contiguous per user, in either order); valid
    and test hold one row per user, targets at L-2 and L-1. ``<name>.item2index``
    (``ASIN \\t index``) and ``<name>.text`` (header ``item_id:token text:token_seq``, by ASIN).

    Each user's sequence is rebuilt (first history item, then the train targets in position
    order, then the valid and the test target), so ``loo_full`` holds out exactly their valid
    and test targets, and every history is checked against it (DataError naming file and row).
    ``timestamp`` is the position (``ordered_by_file``). Ids: ``user`` as in the files,
    ``item`` the 0-based item index (so our index = theirs + 1, aligned with UniSRec's
    index-ordered feature files). Items: ``item``, ``asin``, ``text`` ("" when the text file
    has no row), every item of item2index, interacted or not.
    Users re-buy items (291 repeated (user, item) events in Scientific), and the prepared
    pairs hold each pair once. ``duplicates="last"`` (the default) keeps each pair's latest
    event, so every test target and every valid target that differs from its test target
    survives and ``loo_full`` reproduces their split; ``"keep"`` returns every event (then
    ``prepare`` keeps the first); ``"drop"`` keeps the first; ``"error"`` rejects repeats.
    """
    if duplicates not in ("last", "keep", "drop", "error"):
        raise ValueError(
            f"duplicates={duplicates!r}; expected one of ('last', 'keep', 'drop', 'error')"
        )
    folder = Path(path)
    index_path = folder / f"{name}.item2index"
    asins = _read_index(index_path, f"UniSRec {name}.item2index")
    n_items = int(asins.index.max()) + 1 if len(asins) else 0
    if len(asins) != n_items:
        raise DataError(
            f"{len(asins)} rows but indices up to {n_items - 1}: expected indices 0..n-1",
            path=index_path,
        )

    parts = {}
    for split in ("train", "valid", "test"):
        p = folder / f"{name}.{split}.inter"
        frame = _read_atomic(p, _INTER_COLUMNS, f"UniSRec {name}.{split}.inter")
        users = frame["user_id:token"].str.strip()
        flat, lengths, targets = _tokens(frame, p, n_items)
        parts[split] = (p, users.to_numpy(dtype=object), flat, lengths, targets)
    (users, items), positions, origin = _rebuild_sequences(parts)
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": positions})
    mode = "keep" if duplicates == "last" else duplicates
    inter = check_interactions(inter, parts["train"][0], duplicates=mode, origin=origin)
    if duplicates == "last":
        inter = inter[~inter.duplicated(["user", "item"], keep="last")].reset_index(drop=True)

    text_path = folder / f"{name}.text"
    text = _read_atomic(text_path, _TEXT_COLUMNS, f"UniSRec {name}.text")
    by_asin = pd.Series(text["text:token_seq"].str.strip().to_numpy(), index=text["item_id:token"])
    by_asin = by_asin[~by_asin.index.duplicated(keep="first")]
    items = pd.DataFrame(
        {
            "item": asins.index.to_numpy(dtype=np.int64),
            "asin": asins.to_numpy(dtype=object),
            "text": by_asin.reindex(asins.to_numpy()).fillna("").to_numpy(dtype=object),
        }
    ).sort_values("item", ignore_index=True)
    items = check_items(items, text_path)
    return RawData(
        name=name.lower(),
        interactions=inter,
        items=items,
        files=[parts[s][0] for s in ("train", "valid", "test")] + [index_path, text_path],
        ordered_by_file=True,
    )


def _rebuild_sequences(
    parts: dict[str, tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, RowOrigin]:
    """((users, items), positions, origin) of every event, from the three .inter files (see
    read_unisrec); DataError naming the file and row of the first inconsistent row."""
    train_path, t_target = parts["train"][0], parts["train"][4]
    rows = [
        pd.DataFrame({"user": users, "length": lengths, "target": targets})
        for _, users, _, lengths, targets in parts.values()
    ]
    train, valid, test = rows
    for split, frame in (("valid", valid), ("test", test)):
        p = parts[split][0]
        dup = frame["user"].duplicated().to_numpy()
        if dup.any():
            raise DataError(
                f"user {frame['user'].iloc[int(dup.argmax())]} has a second row; "
                "leave-one-out files have one row per user",
                path=p,
                row=int(dup.argmax()) + 2,
                column="user_id:token",
            )
    users = pd.Index(test["user"].to_numpy())
    for split, frame in (("train", train), ("valid", valid)):
        unknown = users.get_indexer(frame["user"].to_numpy()) < 0
        if unknown.any():
            raise DataError(
                f"user {frame['user'].iloc[int(unknown.argmax())]} has no row in "
                f"{parts['test'][0].name}",
                path=parts[split][0],
                row=int(unknown.argmax()) + 2,
                column="user_id:token",
            )
    no_valid = pd.Index(valid["user"].to_numpy()).get_indexer(users) < 0
    if no_valid.any():
        raise DataError(
            f"user {users[int(no_valid.argmax())]} has no row in {parts['valid'][0].name}",
            path=parts["test"][0],
            row=int(no_valid.argmax()) + 2,
            column="user_id:token",
        )
    # train rows of a user must be contiguous: their order gives the positions
    change = train["user"].ne(train["user"].shift()).to_numpy()
    runs = train["user"].to_numpy()[change]
    seen_twice = pd.Index(runs).duplicated()
    if seen_twice.any():
        user = runs[int(seen_twice.argmax())]
        row = int(np.flatnonzero(change)[int(seen_twice.argmax())])
        raise DataError(
            f"rows of user {user} are not together; the train file lists each user's "
            "prefixes in one block",
            path=train_path,
            row=row + 2,
            column="user_id:token",
        )

    # positions: train rows 1..n_u in file order (reversed when the block starts with the
    # longest history, as RecBole writes it), valid n_u + 1, test n_u + 2
    user_code = users.get_indexer(train["user"].to_numpy())
    n_users = len(users)
    n_train = np.bincount(user_code, minlength=n_users)
    first_len = train.groupby(user_code, sort=True)["length"].first()
    last_len = train.groupby(user_code, sort=True)["length"].last()
    descending = np.zeros(n_users, dtype=bool)
    descending[first_len.index.to_numpy()] = (first_len > last_len).to_numpy()
    rank = train.groupby(user_code, sort=False).cumcount().to_numpy()
    train_pos = np.where(descending[user_code], n_train[user_code] - rank, rank + 1)
    valid_code = users.get_indexer(valid["user"].to_numpy())
    test_code = np.arange(n_users)

    # the sequence of user u lives at seq[offsets[u] : offsets[u + 1]], length n_u + 3
    lengths = n_train + 3
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    seq = np.full(offsets[-1], -1, dtype=np.int64)
    # where each event was read (file 0/1/2 = train/valid/test, 1-based line), for messages
    src_file = np.zeros(offsets[-1], dtype=np.int64)
    src_line = np.zeros(offsets[-1], dtype=np.int64)

    def put(at: np.ndarray, items: np.ndarray, file: int, line: np.ndarray) -> None:
        seq[at], src_file[at], src_line[at] = items, file, line

    train_line = np.arange(len(train)) + 2  # header is line 1
    valid_line = np.arange(len(valid)) + 2
    put(offsets[user_code] + train_pos, t_target, 0, train_line)
    put(offsets[valid_code] + n_train[valid_code] + 1, valid["target"].to_numpy(), 1, valid_line)
    put(offsets[test_code] + n_train + 2, test["target"].to_numpy(), 2, np.arange(n_users) + 2)
    # item 0 of the sequence: the first history item of the row at position 1
    first_rows = {split: _first_items(parts[split]) for split in parts}
    at_one = train_pos == 1
    put(offsets[user_code[at_one]], first_rows["train"][at_one], 0, train_line[at_one])
    no_train = n_train[valid_code] == 0
    put(offsets[valid_code[no_train]], first_rows["valid"][no_train], 1, valid_line[no_train])

    for split, codes, pos in (
        ("train", user_code, train_pos),
        ("valid", valid_code, n_train[valid_code] + 1),
        ("test", test_code, n_train + 2),
    ):
        _check_histories(parts[split], seq, offsets[codes] + pos, pos)
    event_user = np.repeat(users.to_numpy(), lengths)
    position = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    origin = RowOrigin(paths=[parts[s][0] for s in parts], file=src_file, line=src_line)
    return (event_user, seq), position.astype(np.int64), origin


def _first_items(part: tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    _, _, flat, lengths, _ = part
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return flat[starts]


def _check_histories(
    part: tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    seq: np.ndarray,
    target_at: np.ndarray,
    position: np.ndarray,
) -> None:
    """Each row's history must be the items right before its target in the rebuilt sequence."""
    p, users, flat, lengths, _ = part
    too_long = lengths > position
    if too_long.any():
        i = int(too_long.argmax())
        raise DataError(
            f"user {users[i]}'s history has {lengths[i]} items, but only {position[i]} come "
            "before this target in the user's train/valid/test sequence",
            path=p,
            row=i + 2,
            column="item_id_list:token_seq",
        )
    # (T,) index into seq of every history token: target_at - length + j
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    j = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    expected = seq[target_at[row_of] - lengths[row_of] + j]
    wrong = expected != flat
    if wrong.any():
        k = int(wrong.argmax())
        i = int(row_of[k])
        raise DataError(
            f"user {users[i]}'s history does not extend the earlier rows: item "
            f"{int(j[k]) + 1} of it is {flat[k]}, but the sequence rebuilt from the train, "
            f"valid and test targets has {expected[k]} there",
            path=p,
            row=i + 2,
            column="item_id_list:token_seq",
        )
