"""prepare: raw source -> mapped ids -> protocol split -> parquet files + spec.json.

Folder layout (all item indices 1..n_items, 0 = padding; users 0..n_users-1):
    train.parquet        user, item [, timestamp]
    val.parquet          user, item              (+ val_negatives.parquet for sampled eval)
    test.parquet         user, item              (+ test_negatives.parquet)
    users.parquet        index, raw_id
    items.parquet        index, raw_id [, text fields]
    item_text.parquet    index, text (0..n_items, 0 = padding ""), when an item text config
                         (``data.text``) is given: see hybridrec.data.preparation.text
    judgments.parquet    marketers' judgments with their split, when ``data.judgments`` is
                         given: see hybridrec.data.preparation.judgments
    spec.json            DataSpec (sizes, counts, fingerprint of the files above)

The folder is written atomically (:func:`hybridrec.data.preparation.staging.staged_folder`);
session protocols are prepared by :mod:`hybridrec.data.preparation.sessions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.judgments import (
    JUDGMENTS_FILE,
    JudgmentConfig,
    PreparedJudgments,
    prepare_judgments,
)
from hybridrec.data.preparation.protocols import Split
from hybridrec.data.preparation.sessions import prepare_sessions
from hybridrec.data.preparation.staging import staged_folder
from hybridrec.data.preparation.text import (
    ITEM_TEXT_FILE,
    TextConfig,
    assemble_item_text,
    text_sha256,
)
from hybridrec.data.pseudonyms import Pseudonyms
from hybridrec.data.raw import RawData
from hybridrec.data.spec import SPEC_VERSION, DataSpec, fingerprint_files

log = logging.getLogger(__name__)

FILE_ROLES = (
    "train",
    "val",
    "test",
    "val_negatives",
    "test_negatives",
    "users",
    "items",
    "item_text",
    "cold_items",
    "judgments",
)
#: which catalogue-only items (in the item table, without an interaction) become items
CATALOGUE_MODES = ("interacted", "judged", "all")


class SplitProtocol(Protocol):
    name: str

    def split(
        self,
        interactions: pd.DataFrame,
        n_items: int,
        given_test: pd.DataFrame | None = ...,
        given_negatives: np.ndarray | None = ...,
    ) -> Split: ...


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    unique = pd.unique(values)
    try:
        return np.sort(unique)
    except TypeError:  # mixed ids (ints and strings): order by their text
        return np.asarray(sorted(unique, key=str), dtype=object)


def _map(index: pd.Index, values: Any, what: str, where: str, offset: int = 0) -> np.ndarray:
    codes = index.get_indexer(values)
    if (codes < 0).any():
        first = int(np.flatnonzero(codes < 0)[0])
        raise DataError(
            f"{what} {np.asarray(values)[first]!r} is not in the training interactions",
            path=where,
            row=first + 1,
        )
    return (codes + offset).astype(np.int64)


def _filter_counts(frame: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Drop rare items, then rare users (one pass each, in that order, like RecBole)."""
    if min_item > 1:
        frame = frame[frame.groupby("item")["item"].transform("size") >= min_item]
    if min_user > 1:
        frame = frame[frame.groupby("user")["user"].transform("size") >= min_user]
    return frame.reset_index(drop=True)


def _write_negatives(path: Path, frame: pd.DataFrame, negatives: np.ndarray) -> None:
    n_rows, k = negatives.shape
    flat = pa.array(negatives.reshape(-1).astype(np.int64))
    table = pa.table(
        {
            "user": frame["user"].to_numpy(np.int64),
            "item": frame["item"].to_numpy(np.int64),
            "negatives": pa.FixedSizeListArray.from_arrays(flat, k),
        }
    )
    pq.write_table(table, path)


#: per-row flags a protocol may add to val/test (``cold``: the target is a cold item)
HELD_OUT_FLAGS = ("cold",)


def prepare(
    raw: RawData,
    protocol: SplitProtocol,
    folder: str | Path,
    *,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    source_config: dict[str, Any] | None = None,
    item_text: Mapping[str, Any] | None = None,
    judgments: Mapping[str, Any] | None = None,
    catalogue_items: str | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> DataSpec:
    """Map ids, split with ``protocol``, write the prepared folder atomically, return its spec.

    ``item_text``: the item text config (``fields``, ``sep``, ``missing``; see
    :class:`hybridrec.data.preparation.text.TextConfig`); None takes
    ``source_config["data"]["text"]`` (the data config's ``text`` section, which the CLI passes
    and hashes into the folder name).
    With one, and an item table in ``raw``, ``item_text.parquet`` is written.

    ``judgments``: the judgments config (:class:`JudgmentConfig`); None takes
    ``source_config["data"]["judgments"]``. With one, ``raw.ratings`` are validated, normalised,
    weighed and split into ``judgments.parquet``. ``catalogue_items`` (None: the data config's
    ``catalogue_items``, default ``judged``): which items of the item table that have no
    interaction become items all the same (cold by definition): ``interacted`` none, ``judged``
    the judged ones, ``all`` every one.

    Session protocols (``protocol.layout == "sessions"``) go to
    :func:`hybridrec.data.preparation.sessions.prepare_sessions`, which keeps order and repeats.

    ``pseudonyms`` (``data.pseudonymise``): the user ids written to ``users.parquet`` and the
    rater names of the judgments are keyed hashes (:mod:`hybridrec.data.pseudonyms`); every
    index is the one the raw id gets, so the files differ from a plain run's only there.
    """
    judgment_cfg = _judgment_config(judgments, source_config)
    catalogue = _catalogue_mode(catalogue_items, source_config)
    where = str(raw.files[0]) if raw.files else raw.name
    if judgment_cfg is not None and raw.ratings is None:
        raise DataError(
            "data.judgments is set but this source has no judgments: give data.judgments.path "
            "(a judgments file) or set data.judgments=null",
            path=where,
        )
    if getattr(protocol, "layout", "pairs") == "sessions":
        if judgment_cfg is not None:
            raise DataError(
                "judgments need users and items; the session protocol has neither users nor a "
                "user-item split: set data.judgments=null or use a user protocol (loo_full, ...)",
                path=where,
            )
        return prepare_sessions(
            raw,
            protocol,  # type: ignore[arg-type]
            folder,
            source_config=source_config,
            pseudonyms=pseudonyms,
        )
    folder = Path(folder)
    frame = raw.interactions
    if len(frame) == 0:
        raise DataError("no interactions to prepare (the source is empty)", path=where)
    counts: dict[str, int] = {"raw_interactions": len(frame)}
    keep = ["user", "item"] + (["timestamp"] if raw.has_timestamps else [])
    frame = frame[keep]
    if raw.has_timestamps:
        frame = frame.sort_values("timestamp", kind="stable")
    before = len(frame)
    frame = frame.drop_duplicates(["user", "item"], keep="first")
    counts["repeat_pairs_dropped"] = before - len(frame)
    frame = _filter_counts(frame, min_user_interactions, min_item_interactions)
    counts["rare_filtered"] = before - counts["repeat_pairs_dropped"] - len(frame)
    if len(frame) == 0:
        raise DataError(
            "no interactions left after filtering: lower data.min_user_interactions / "
            "data.min_item_interactions",
            path=where,
        )

    # -- id maps: users from the interactions; items from everything that can be ranked
    user_ids = _sorted_unique(frame["user"].to_numpy())
    item_pool = [frame["item"].to_numpy()]
    if raw.test is not None:
        item_pool.append(raw.test["item"].to_numpy())
    if raw.test_negatives is not None:
        item_pool.append(np.concatenate(raw.test_negatives["negatives"].to_numpy()))
    extra = _catalogue_only(raw, catalogue, judged=judgment_cfg is not None)
    if extra is not None:
        item_pool.append(extra)
    item_ids = _sorted_unique(np.concatenate(item_pool))
    counts["catalogue_only_items"] = (
        0
        if extra is None
        else int((~pd.Index(extra).isin(pd.Index(np.concatenate(item_pool[:-1])))).sum())
    )
    user_index, item_index = pd.Index(user_ids), pd.Index(item_ids)
    n_users, n_items = len(user_ids), len(item_ids)

    mapped = pd.DataFrame(
        {
            "user": _map(user_index, frame["user"], "user", where),
            "item": _map(item_index, frame["item"], "item", where, offset=1),
        }
    )
    if raw.has_timestamps:
        mapped["timestamp"] = frame["timestamp"].to_numpy()

    given_test = given_negatives = None
    if raw.test is not None:
        test_where = str(raw.files[1]) if len(raw.files) > 1 else where
        given_test = pd.DataFrame(
            {
                "user": _map(user_index, raw.test["user"], "test user", test_where),
                "item": _map(item_index, raw.test["item"], "test item", test_where, offset=1),
            }
        )
        if raw.test_negatives is not None:
            # align the negatives to the test rows by user (one test row per user)
            negs = raw.test_negatives
            neg_users = _map(user_index, negs["user"], "negatives user", where)
            order = pd.Index(neg_users).get_indexer(given_test["user"])
            if (order < 0).any():
                raise DataError(
                    "a test user has no row in the negatives file",
                    path=test_where,
                    row=int(np.flatnonzero(order < 0)[0]) + 1,
                )
            raw_negs = np.stack(negs["negatives"].to_numpy())[order]
            given_negatives = _map(
                item_index, raw_negs.reshape(-1), "negative item", where, offset=1
            ).reshape(raw_negs.shape)

    split = protocol.split(mapped, n_items, given_test, given_negatives)
    counts.update(split.counts)
    if len(split.test) == 0:
        raise DataError(
            f"protocol {protocol.name} left no test interactions (users need at least 3)",
            path=where,
        )

    prepared: PreparedJudgments | None = None
    if judgment_cfg is not None:
        assert raw.ratings is not None
        _held_out_by_pseudonym(judgment_cfg, raw.ratings, pseudonyms)
        train_items = np.unique(split.train["item"].to_numpy())
        prepared = prepare_judgments(
            raw.ratings, f"{raw.name} judgments", user_index, item_index, train_items, judgment_cfg
        )
        counts.update(prepared.counts)

    # -- write into a temporary folder, then move into place: never a half-written dataset
    with staged_folder(folder) as tmp:
        files: dict[str, str] = {}
        for role in ("train", "val", "test"):
            part: pd.DataFrame = getattr(split, role)
            columns = ["user", "item"] + (
                ["timestamp"] if role == "train" and raw.has_timestamps else []
            )
            columns += [c for c in HELD_OUT_FLAGS if role != "train" and c in part.columns]
            part[columns].to_parquet(tmp / f"{role}.parquet", index=False)
            files[role] = f"{role}.parquet"
            negatives = getattr(split, f"{role}_negatives", None)
            if negatives is not None:
                _write_negatives(tmp / f"{role}_negatives.parquet", part, negatives)
                files[f"{role}_negatives"] = f"{role}_negatives.parquet"
        if split.cold_items is not None:
            pd.DataFrame({"item": np.sort(split.cold_items)}).to_parquet(
                tmp / "cold_items.parquet", index=False
            )
            files["cold_items"] = "cold_items.parquet"
        written_ids = user_ids if pseudonyms is None else pseudonyms.ids("users", user_ids)
        pd.DataFrame({"index": np.arange(n_users), "raw_id": written_ids}).to_parquet(
            tmp / "users.parquet", index=False
        )
        items = pd.DataFrame({"index": np.arange(1, n_items + 1), "raw_id": item_ids})
        text_fields: list[str] = []
        if raw.items is not None:
            side = raw.items.drop_duplicates("item").set_index("item")
            text_fields = [
                c
                for c in side.columns
                if side[c].dtype == object or str(side[c].dtype).startswith("str")
            ]
            items = items.join(side, on="raw_id")
        items.to_parquet(tmp / "items.parquet", index=False)
        files["users"], files["items"] = "users.parquet", "items.parquet"
        text_cfg = _text_config(item_text, source_config)
        text_sha, n_without_text = "", 0
        if text_cfg is not None:
            if raw.items is None:
                raise DataError(
                    "data.text asks for item text, but this source has no item table; "
                    "set data.text=null or give the reader an item table",
                    path=where,
                )
            texts, n_without_text = _item_texts(raw.items, item_ids, text_cfg)
            pd.DataFrame({"index": np.arange(n_items + 1), "text": texts}).to_parquet(
                tmp / ITEM_TEXT_FILE, index=False
            )
            files["item_text"] = ITEM_TEXT_FILE
            text_fields, text_sha = text_cfg.field_names(), text_sha256(texts)
        if prepared is not None:
            prepared.frame.to_parquet(tmp / JUDGMENTS_FILE, index=False)
            files["judgments"] = JUDGMENTS_FILE
        ordered = [tmp / files[r] for r in FILE_ROLES if r in files]
        negatives_k = split.test_negatives.shape[1] if split.test_negatives is not None else 0
        spec = DataSpec(
            name=raw.name,
            protocol=protocol.name,
            n_users=n_users,
            n_items=n_items,
            n_train=len(split.train),
            n_val=len(split.val),
            n_test=len(split.test),
            eval_mode=split.eval_mode,
            n_eval_negatives=int(negatives_k),
            has_timestamps=raw.has_timestamps and not raw.ordered_by_file,
            mask_known=bool(getattr(protocol, "mask_known", True)),
            candidates=str(getattr(protocol, "candidates", "all")),
            other_slice=str(getattr(protocol, "other_slice", "keep")),
            item_text_fields=text_fields,
            text_sha256=text_sha,
            n_items_without_text=n_without_text,
            fingerprint=fingerprint_files(ordered),
            files=files,
            counts=counts,
            judgments={}
            if prepared is None or judgment_cfg is None
            else _rater_names(prepared.spec_entry(judgment_cfg), pseudonyms),
            source=source_config or {},
            pseudonyms={} if pseudonyms is None else pseudonyms.spec_entry(),
        )
        spec.save(tmp)
    return spec


def _held_out_by_pseudonym(
    cfg: JudgmentConfig, ratings: pd.DataFrame, pseudonyms: Pseudonyms | None
) -> None:
    """With raters pseudonymised, ``held_out_raters`` may name raters by their pseudonyms (so
    that no name is in the config, and so in MLflow's params): each becomes the rater's name."""
    if pseudonyms is None or "raters" not in pseudonyms.kinds:
        return
    if not isinstance(cfg.held_out_raters, list):
        return
    names = pd.unique(ratings["rater"].astype(str))
    by_pseudonym = dict(zip(pseudonyms.ids("raters", names), names, strict=True))
    cfg.held_out_raters = [by_pseudonym.get(str(r), r) for r in cfg.held_out_raters]


def _rater_names(entry: dict[str, Any], pseudonyms: Pseudonyms | None) -> dict[str, Any]:
    """The judgments' spec entry with the raters' names as pseudonyms when asked for (the
    order, and so each rater's index, unchanged)."""
    if pseudonyms is not None and "raters" in pseudonyms.kinds:
        entry["raters"] = pseudonyms.ids("raters", entry["raters"])
    return entry


def _text_config(
    item_text: Mapping[str, Any] | None, source_config: Mapping[str, Any] | None
) -> TextConfig | None:
    if item_text is None and source_config is not None:
        data = source_config.get("data")
        item_text = data.get("text") if isinstance(data, Mapping) else None
    return None if item_text is None else TextConfig.from_config(item_text)


def _judgment_config(
    judgments: Mapping[str, Any] | None, source_config: Mapping[str, Any] | None
) -> JudgmentConfig | None:
    if judgments is None and source_config is not None:
        data = source_config.get("data")
        judgments = data.get("judgments") if isinstance(data, Mapping) else None
    return None if judgments is None else JudgmentConfig.from_mapping(judgments)


def _catalogue_mode(mode: str | None, source_config: Mapping[str, Any] | None) -> str:
    if mode is None and source_config is not None:
        data = source_config.get("data")
        mode = data.get("catalogue_items") if isinstance(data, Mapping) else None
    mode = mode or "judged"
    if mode not in CATALOGUE_MODES:
        raise ValueError(f"data.catalogue_items={mode!r}: expected one of {CATALOGUE_MODES}")
    return mode


def _catalogue_only(raw: RawData, mode: str, judged: bool) -> np.ndarray | None:
    """Raw ids of item-table items to index even without an interaction (see ``prepare``)."""
    if raw.items is None or mode == "interacted" or (mode == "judged" and not judged):
        return None
    ids = raw.items["item"].to_numpy()
    if mode == "judged":
        assert raw.ratings is not None
        wanted = {str(v) for v in raw.ratings["item"].to_numpy()}
        ids = ids[np.fromiter((str(v) in wanted for v in ids), bool, ids.size)]
    return ids


def _item_texts(side: pd.DataFrame, item_ids: np.ndarray, cfg: TextConfig) -> tuple[list[str], int]:
    """Texts aligned with the item index (element 0 = padding ""), and how many of the indexed
    items had none (items without a row in the table included)."""
    table = side.drop_duplicates("item").set_index("item").reindex(pd.Index(item_ids))
    table = table.rename_axis("item").reset_index()
    table.attrs["path"] = side.attrs.get("path", "item table")
    texts = assemble_item_text(table, cfg.fields, sep=cfg.sep, missing=cfg.missing)
    return ["", *(str(t) for t in texts.tolist())], int(texts.attrs["n_missing"])


def prepare_cached(
    make_raw: Callable[[], RawData],
    protocol: SplitProtocol,
    folder: str | Path,
    **kwargs: Any,
) -> DataSpec:
    """Reuse ``folder`` when it already holds a prepared dataset, else prepare it.

    Callers put a hash of the data config in the folder name, so a changed config gets a new
    folder rather than stale data; a folder written by an older ``prepare`` (its spec's
    ``version`` below :data:`SPEC_VERSION`) is prepared again.
    """
    folder = Path(folder)
    if (folder / "spec.json").is_file():
        try:
            spec = DataSpec.load(folder)
        except DataError as exc:  # a cut-short spec.json: the folder is prepared again
            log.warning("%s; preparing it again", exc)
        else:
            broken = _broken_file(folder, spec)
            if broken is not None:
                log.warning("%s; preparing %s again", broken, folder)
            elif spec.version == SPEC_VERSION:
                return spec
    return prepare(make_raw(), protocol, folder, **kwargs)


def _broken_file(folder: Path, spec: DataSpec) -> str | None:
    """Why a prepared file that ``spec`` lists is unusable (missing, empty, not Parquet), or
    None. Reads only each Parquet footer: cheap next to hashing the files."""
    for name in spec.files.values():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if path.suffix == ".parquet":
            try:
                pq.read_metadata(path)
            except (OSError, pa.ArrowException) as exc:
                return f"{path} is not readable Parquet ({' '.join(str(exc).split())})"
    return None
