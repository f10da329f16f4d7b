"""Marketers' judgments: validation, per-rater normalisation, rater reliability and the split.

A judgment is one row ``rater, item, score`` with an optional ``context`` (a user id, a
segment name, or empty = everyone) and ``set`` (items shown together; scores are only compared
within one set). :func:`prepare_judgments` turns the rows into ``judgments.parquet``:

    rater (int)      index into spec.judgments["raters"]
    item (int)       item index (1..n_items)
    context_kind     0 everyone, 1 user, 2 segment (hybridrec.nn.contexts)
    context (int)    user index, segment index, or 0
    group (int)      one id per (rater, context, set): pairs never cross groups
    score (float)    the rater's score (for kind=rank: the rank turned into a score, see below)
    z (float)        the score normalised per rater
    weight (float)   the rater's reliability weight (mean 1 over raters)
    part (str)       train | item_val | item_test | rater_val | rater_test | unused (the split)
    cold (bool)      the item has no training interaction

The formulas (normalisation, reliability, split) are written down in docs/judgments.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.errors import DataError

JUDGMENTS_FILE = "judgments.parquet"
KINDS = ("score", "rank")
INVALID_MODES = ("error", "drop")
NORMALISE_MODES = ("zscore", "minmax", "none")
RELIABILITY_MODES = ("consensus", "none")
PARTS = ("train", "item_val", "item_test", "rater_val", "rater_test", "unused")
EVERYONE, USER, SEGMENT = 0, 1, 2
#: a rater needs this many ordered pairs against the consensus for a reliability of their own
MIN_CONSENSUS_PAIRS = 10
#: the smallest reliability weight before the weights are scaled to mean 1
MIN_WEIGHT = 0.05


@dataclass
class JudgmentConfig:
    """The data config's ``judgments`` section (configs/data/*.yaml)."""

    path: str | None = None  # judgments file; None: the source's own (synthetic has them)
    columns: dict[str, str] | None = None  # our name -> the file's column
    sep: str | None = None
    kind: str = "score"  # score (higher = better, any scale) | rank (1 = best)
    invalid: str = "error"  # error: stop at the first bad row | drop: drop and count them
    segments: list[str] | None = None  # the segment names a context may hold
    normalise: str = "zscore"  # per rater: zscore | minmax | none
    reliability: str = "consensus"  # consensus | none
    held_out_items: float = 0.2  # share of judged items held out (half val, half test)
    held_out_raters: int | list[str] = 1  # raters held out (a count drawn by seed, or names)
    max_pairs_per_group: int = 20_000  # training pairs sampled from larger groups
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> JudgmentConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"data.judgments: unknown key(s) {unknown}; expected some of {sorted(known)}"
            )
        cfg = cls(**dict(values))
        cfg.check()
        return cfg

    def check(self) -> None:
        for key, value, allowed in (
            ("kind", self.kind, KINDS),
            ("invalid", self.invalid, INVALID_MODES),
            ("normalise", self.normalise, NORMALISE_MODES),
            ("reliability", self.reliability, RELIABILITY_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"data.judgments.{key}={value!r}: expected one of {allowed}")
        if not 0 <= self.held_out_items < 1:
            raise ValueError(
                f"data.judgments.held_out_items={self.held_out_items}: expected in [0, 1)"
            )
        if isinstance(self.held_out_raters, int) and self.held_out_raters < 0:
            raise ValueError(
                f"data.judgments.held_out_raters={self.held_out_raters}: expected >= 0 or names"
            )
        if self.max_pairs_per_group < 1:
            raise ValueError(
                f"data.judgments.max_pairs_per_group={self.max_pairs_per_group}: expected >= 1"
            )


@dataclass
class PreparedJudgments:
    """What :func:`prepare_judgments` returns: the rows and what the spec records."""

    frame: pd.DataFrame
    raters: list[str]
    segments: list[str]
    weights: list[float]
    consensus_agreement: list[float | None]
    counts: dict[str, int] = field(default_factory=dict)

    def spec_entry(self, cfg: JudgmentConfig) -> dict[str, Any]:
        return {
            "raters": self.raters,
            "segments": self.segments,
            "weights": self.weights,
            "consensus_agreement": self.consensus_agreement,
            "kind": cfg.kind,
            "normalise": cfg.normalise,
            "reliability": cfg.reliability,
            "counts": self.counts,
        }


# -- validation -------------------------------------------------------------------------------
class _Rows:
    """Error reporting for one judgments frame: the file and the 1-based line of each row, and
    with ``invalid=drop`` the rows dropped, counted per reason."""

    def __init__(self, frame: pd.DataFrame, source: str, invalid: str) -> None:
        self.path = frame.attrs.get("path") or source
        header = int(frame.attrs.get("header_rows", 0))
        self.line = np.arange(len(frame)) + 1 + header
        self.invalid = invalid
        self.keep = np.ones(len(frame), dtype=bool)
        self.dropped: dict[str, int] = {}

    def reject(self, bad: np.ndarray, reason: str, column: str, message: str) -> None:
        """``bad`` (rows,) mask over the frame: stop at its first row, or drop and count."""
        bad = bad & self.keep
        if not bad.any():
            return
        if self.invalid == "error":
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                message + " (or set data.judgments.invalid=drop to drop such rows and count them)",
                path=self.path,
                row=int(self.line[i]),
                column=column,
            )
        self.dropped[reason] = self.dropped.get(reason, 0) + int(bad.sum())
        self.keep &= ~bad


def _as_text(values: pd.Series) -> np.ndarray:
    """Ids and names as strings (12 and "12" are the same id; 12.0 reads as 12)."""
    out = []
    for v in values.to_numpy(dtype=object):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("")
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return np.asarray(out, dtype=object)


def check_judgments(
    frame: pd.DataFrame,
    source: str,
    user_ids: pd.Index,
    item_ids: pd.Index,
    cfg: JudgmentConfig,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Validate judgments against the prepared id maps (raw ids, items without the padding).

    Returns (rows with ``rater`` str, ``item`` index, ``context_kind``, ``context`` index,
    ``set`` str, ``score`` float, ``line``; dropped-row counts per reason). Checks, in order:
    no rows; missing rater/item/score; non-numeric, NaN or infinite scores; ranks that are not
    whole numbers >= 1 (kind=rank); items in neither the interactions nor the catalogue;
    contexts that are no known user and no listed segment; the same (rater, item, context, set)
    twice; raters left with a single judgment. ``invalid=error`` stops at the first bad row
    with its file, row and column; ``drop`` drops them and counts them.
    """
    if len(frame) == 0:
        raise DataError(
            "empty judgments: no rows; expected columns rater, item, score[, context, set]",
            path=frame.attrs.get("path") or source,
        )
    missing = [c for c in ("rater", "item", "score") if c not in frame.columns]
    if missing:
        raise DataError(
            f"judgments need columns rater, item, score; missing {missing} "
            "(map yours with data.judgments.columns)",
            path=frame.attrs.get("path") or source,
            column=missing[0],
        )
    rows = _Rows(frame, source, cfg.invalid)
    rater = _as_text(frame["rater"])
    item_text = _as_text(frame["item"])
    for name, values in (("rater", rater), ("item", item_text)):
        rows.reject(values == "", f"missing_{name}", name, f"empty {name}; every row needs one")

    # scores: numbers, finite; ranks: whole numbers >= 1
    raw_score = frame["score"]
    score = pd.to_numeric(raw_score.astype("str").str.strip(), errors="coerce").to_numpy(
        dtype=np.float64
    )
    as_text = raw_score.astype("str").str.strip().to_numpy()
    not_number = np.isnan(score) & ~np.isin(as_text, ["nan", "NaN", "NAN"])
    empty = (as_text == "") | raw_score.isna().to_numpy()
    rows.reject(empty, "missing_score", "score", "empty score; every row needs one")
    rows.reject(
        not_number & ~empty,
        "score_not_a_number",
        "score",
        "score is not a number",
    )
    rows.reject(
        ~np.isfinite(score),
        "score_not_finite",
        "score",
        "score is NaN or infinite; scores must be finite numbers",
    )
    if cfg.kind == "rank":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(score) & (np.floor(score) == score) & (score >= 1)
        rows.reject(
            ~whole,
            "rank_not_whole",
            "score",
            "rank is not a whole number >= 1 (data.judgments.kind=rank: 1 = best)",
        )

    # items: matched to the catalogue by raw id
    item_index = _lookup(item_ids, item_text)
    rows.reject(
        item_index < 0,
        "unknown_item",
        "item",
        "item is in neither the interactions nor the item table (catalogue)",
    )

    # contexts: empty = everyone, a known user, or a listed segment
    context_text = (
        _as_text(frame["context"])
        if "context" in frame.columns
        else np.full(len(frame), "", dtype=object)
    )
    user_index = _lookup(user_ids, context_text)
    segments = list(cfg.segments or [])
    segment_index = pd.Index(segments).get_indexer(context_text)
    kind = np.where(context_text == "", EVERYONE, np.where(user_index >= 0, USER, SEGMENT)).astype(
        np.int8
    )
    unknown = (context_text != "") & (user_index < 0) & (segment_index < 0)
    if unknown.any() and (rows.keep & unknown).any():
        first = context_text[int(np.flatnonzero(unknown & rows.keep)[0])]
        close = difflib.get_close_matches(str(first), segments, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        rows.reject(
            unknown,
            "unknown_context",
            "context",
            f"context {first!r} is no known user and no segment{hint}; segments "
            f"(data.judgments.segments): {segments}; empty = everyone",
        )
    context = np.where(kind == USER, user_index, np.where(kind == SEGMENT, segment_index, 0))

    sets = (
        _as_text(frame["set"]) if "set" in frame.columns else np.full(len(frame), "", dtype=object)
    )
    out = pd.DataFrame(
        {
            "rater": rater,
            "item": item_index.astype(np.int64) + 1,
            "context_kind": kind,
            "context": context.astype(np.int64),
            "set": sets,
            "score": score,
            "line": rows.line,
        }
    )
    key = ["rater", "item", "context_kind", "context", "set"]
    dup = out.duplicated(key, keep="first").to_numpy() & rows.keep
    if dup.any():
        j = int(np.flatnonzero(dup)[0])
        same = np.ones(len(out), dtype=bool)
        for col in key:
            same &= (out[col] == out[col].iloc[j]).to_numpy()
        first_line = int(out["line"].to_numpy()[int(np.flatnonzero(same & rows.keep)[0])])
        rows.reject(
            dup,
            "duplicate",
            "item",
            f"repeats the judgment of row {first_line} (same rater, item, context and set)",
        )
    # raters with a single judgment left: nothing to compare it with
    kept_counts = pd.Series(rater[rows.keep]).value_counts()
    single = set(kept_counts.index[kept_counts.to_numpy() < 2])
    if single:
        lonely = np.isin(rater, list(single)) & rows.keep
        name = rater[int(np.flatnonzero(lonely)[0])]
        rows.reject(
            lonely,
            "single_judgment_rater",
            "rater",
            f"rater {name!r} has a single judgment; a rater's scores are only compared with "
            "each other, so each rater needs at least two",
        )
    kept = out.loc[rows.keep].reset_index(drop=True)
    if len(kept) == 0:
        raise DataError(
            f"no valid judgments left (dropped: {rows.dropped})", path=rows.path, column="score"
        )
    return kept, rows.dropped


def _lookup(index: pd.Index, values: np.ndarray) -> np.ndarray:
    """Positions of ``values`` (strings) in ``index`` (raw ids, int or str), -1 when absent."""
    as_text = pd.Index([str(v) for v in index])
    return np.asarray(as_text.get_indexer(values), dtype=np.int64)


# -- normalisation and reliability ------------------------------------------------------------
def rank_scores(rank: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Ranks (1 = best) -> scores in [0, 1] per group: ``1 - (rank - 1) / (n_g - 1)``, with
    ``n_g`` the group's largest rank (a one-item group scores 0.5)."""
    top = pd.Series(rank).groupby(groups).transform("max").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 - (rank - 1.0) / (top - 1.0)
    return np.where(top > 1, out, 0.5)


def normalise(scores: np.ndarray, raters: np.ndarray, mode: str) -> np.ndarray:
    """Per-rater normalisation: ``zscore`` (s - mean_r) / std_r, ``minmax`` (s - min_r) /
    (max_r - min_r), ``none``; a rater whose scores are all equal gets 0 (zscore) / 0.5."""
    if mode == "none":
        return scores.astype(np.float64)
    grouped = pd.Series(scores, dtype=np.float64).groupby(raters)
    if mode == "zscore":
        mean = grouped.transform("mean").to_numpy()
        std = grouped.transform(lambda s: s.std(ddof=0)).to_numpy()
        return np.where(std > 0, (scores - mean) / np.where(std > 0, std, 1.0), 0.0)
    low = grouped.transform("min").to_numpy()
    span = grouped.transform("max").to_numpy() - low
    return np.where(span > 0, (scores - low) / np.where(span > 0, span, 1.0), 0.5)


def consensus_reliability(
    raters: np.ndarray, items: np.ndarray, z: np.ndarray, names: list[int], rounds: int = 3
) -> tuple[list[float], list[float | None]]:
    """Each rater's agreement with the consensus of the others, and weights from it.

    For rater r: ``c_{-r}(i)`` = the other raters' mean normalised score of item i, each rater
    weighted by their current weight (all 1 in the first round); ``a_r`` = share of pairs of
    r's items (both with a consensus, r's scores differing) that ``c_{-r}`` orders as r did,
    ties 1/2. Weight ``w_r = max(2 a_r - 1, MIN_WEIGHT)``: chance agreement weighs (almost)
    nothing. Raters with fewer than ``MIN_CONSENSUS_PAIRS`` such pairs get the mean weight of
    the others. The weights are scaled to mean 1, and the consensus recomputed with them
    (``rounds`` times), so an unreliable rater stops blurring the others' consensus.
    """
    frame = pd.DataFrame({"rater": raters, "item": items, "z": z})
    per_item = frame.groupby(["rater", "item"], sort=False)["z"].mean().reset_index()
    by_rater = {name: per_item[per_item["rater"] == name] for name in names}
    weights = np.ones(len(names))
    agreement: list[float | None] = [None] * len(names)
    for _ in range(max(rounds, 1)):
        w_of = pd.Series(weights, index=names)
        row_weight = w_of.loc[per_item["rater"]].to_numpy()
        weighted = per_item.assign(wz=per_item["z"] * row_weight, w=row_weight)
        sums = weighted.groupby("item")[["wz", "w"]].sum()
        counts = per_item.groupby("item")["z"].count()
        for k, name in enumerate(names):
            mine = by_rater[name]
            total, count = sums.loc[mine["item"]], counts.loc[mine["item"]].to_numpy()
            has = count > 1
            own_w = weights[k]
            rest_w = total["w"].to_numpy() - own_w
            rest = (total["wz"].to_numpy() - own_w * mine["z"].to_numpy())[has]
            consensus = rest / np.maximum(rest_w[has], 1e-12)
            own = mine["z"].to_numpy()[has]
            a, b = np.triu_indices(own.size, k=1)
            rater_sign = np.sign(own[a] - own[b])
            ordered = rater_sign != 0
            if int(ordered.sum()) < MIN_CONSENSUS_PAIRS:
                agreement[k] = None
                continue
            hits = rater_sign[ordered] * np.sign(consensus[a] - consensus[b])[ordered]
            agreement[k] = float(((hits + 1) / 2).mean())
        known = [max(2 * a - 1, MIN_WEIGHT) for a in agreement if a is not None]
        fallback = float(np.mean(known)) if known else 1.0
        raw = np.array([fallback if a is None else max(2 * a - 1, MIN_WEIGHT) for a in agreement])
        weights = raw / raw.mean() if raw.size else raw
    return [float(w) for w in weights], agreement


# -- split --------------------------------------------------------------------------------------
def split_parts(
    raters: np.ndarray,
    items: np.ndarray,
    groups: np.ndarray,
    names: list[Any],
    cfg: JudgmentConfig,
    where: str,
) -> np.ndarray:
    """The ``part`` of each row (see the module docstring).

    A share ``held_out_items`` of the judged items is held out, half for validation and half
    for test (a seeded permutation, alternating): all their judgments go to item_val /
    item_test. ``held_out_raters`` raters are held out: their judgments on the other items go
    to rater_val / rater_test by group (one rater, context and set stay on one side); on
    held-out items to ``unused``. The rest is ``train``.

    Where the held-out raters' groups all land on one side (a plain file, without ``set`` or
    ``context``, gives each rater one group), their judgments are split by item instead (a
    seeded permutation of their items, alternating), so that both by-rater metrics exist; a
    group then has rows on both sides and pairs stay within one side.
    """
    rng = np.random.default_rng(cfg.seed)
    judged = np.unique(items)
    order = rng.permutation(judged.size)
    n_held = int(round(cfg.held_out_items * judged.size))
    held = judged[order[:n_held]]
    item_side = pd.Series(np.where(np.arange(n_held) % 2 == 0, "val", "test"), held)
    if isinstance(cfg.held_out_raters, int):
        count = cfg.held_out_raters
        if count >= len(names):
            raise DataError(
                f"data.judgments.held_out_raters={count} but there are {len(names)} raters: "
                "at least one must stay for training",
                path=where,
            )
        held_raters = set(rng.choice(np.asarray(names, dtype=object), count, replace=False))
    else:
        unknown = [r for r in cfg.held_out_raters if r not in names]
        if unknown:
            raise DataError(
                f"data.judgments.held_out_raters names unknown rater(s) {unknown}; raters: {names}",
                path=where,
            )
        held_raters = set(cfg.held_out_raters)
    unique_groups = np.unique(groups)
    group_order = rng.permutation(unique_groups.size)
    group_side = pd.Series(
        np.where(np.arange(unique_groups.size) % 2 == 0, "val", "test"),
        unique_groups[group_order],
    )
    item_out = np.isin(items, held)
    rater_out = np.isin(raters, list(held_raters))
    part = np.full(items.size, "train", dtype=object)
    by_item = item_out & ~rater_out
    part[by_item] = "item_" + item_side.loc[items[by_item]].to_numpy()
    by_rater = ~item_out & rater_out
    rater_side = group_side.loc[groups[by_rater]].to_numpy()
    if np.unique(rater_side).size == 1:  # one side would be empty: split by item
        rater_items = np.unique(items[by_rater])
        item_order = rater_items[rng.permutation(rater_items.size)]
        by_item_side = pd.Series(
            np.where(np.arange(item_order.size) % 2 == 0, "val", "test"), item_order
        )
        rater_side = by_item_side.loc[items[by_rater]].to_numpy()
    part[by_rater] = "rater_" + rater_side
    part[item_out & rater_out] = "unused"
    return part


# -- the whole step -----------------------------------------------------------------------------
def prepare_judgments(
    ratings: pd.DataFrame,
    source: str,
    user_ids: pd.Index,
    item_ids: pd.Index,
    train_items: np.ndarray,
    cfg: JudgmentConfig,
) -> PreparedJudgments:
    """Validate, normalise, weigh and split the judgments (``ratings`` as a reader returns
    them); ``train_items`` holds the item indices with a training interaction."""
    rows, dropped = check_judgments(ratings, source, user_ids, item_ids, cfg)
    names = sorted(set(rows["rater"]))
    rater_index = pd.Index(names).get_indexer(rows["rater"])
    group_key = pd.MultiIndex.from_arrays(
        [rater_index, rows["context_kind"], rows["context"], rows["set"]]
    )
    group = pd.factorize(group_key)[0].astype(np.int64)
    score = rows["score"].to_numpy(dtype=np.float64)
    if cfg.kind == "rank":
        score = rank_scores(score, group)
    z = normalise(score, rater_index, cfg.normalise)
    items = rows["item"].to_numpy()
    if cfg.reliability == "consensus":
        weights, agreement = consensus_reliability(rater_index, items, z, list(range(len(names))))
    else:
        weights, agreement = [1.0] * len(names), [None] * len(names)
    path = str(ratings.attrs.get("path") or source)
    part = split_parts(rows["rater"].to_numpy(), items, group, names, cfg, path)
    frame = pd.DataFrame(
        {
            "rater": rater_index.astype(np.int64),
            "item": items.astype(np.int64),
            "context_kind": rows["context_kind"].to_numpy(dtype=np.int8),
            "context": rows["context"].to_numpy(dtype=np.int64),
            "group": group,
            "score": score,
            "z": z,
            "weight": np.asarray(weights, dtype=np.float64)[rater_index],
            "part": part.astype(str),
            "cold": ~np.isin(items, train_items),
        }
    )
    counts = {f"judgments_dropped_{k}": v for k, v in dropped.items()}
    counts["judgments"] = len(frame)
    for name in PARTS:
        counts[f"judgments_{name}"] = int((frame["part"] == name).sum())
    rater_rows = frame[frame["part"].str.startswith("rater_")]
    split = rater_rows.groupby("group")["part"].transform("nunique") > 1
    counts["judgments_rater_split_by_item"] = int(split.sum())  # see split_parts
    counts["judgments_cold"] = int(frame["cold"].sum())
    return PreparedJudgments(
        frame=frame,
        raters=names,
        segments=list(cfg.segments or []),
        weights=weights,
        consensus_agreement=agreement,
        counts=counts,
    )


# -- what a run reports about its raters ---------------------------------------------------------
#: Raters named in the training log's summary, least reliable first (all: the run's artifact).
LEAST_RELIABLE_SHOWN = 5


def rater_table(info: Mapping[str, Any]) -> pd.DataFrame:
    """One row per rater of a data spec's ``judgments`` entry: ``rater``, ``weight``,
    ``consensus_agreement`` (empty without consensus reliability), least reliable first."""
    raters = [str(r) for r in info.get("raters", [])]
    weights = list(info.get("weights", []))[: len(raters)]
    agreement = list(info.get("consensus_agreement") or [None] * len(raters))[: len(raters)]
    table = pd.DataFrame(
        {"rater": raters, "weight": weights, "consensus_agreement": agreement}
    ).astype({"weight": float})
    return table.sort_values(["weight", "rater"], kind="stable").reset_index(drop=True)


def rater_summary(info: Mapping[str, Any]) -> str:
    """The raters in one short phrase, whatever their number: ``351 raters, weights min 0.05 /
    median 1.02 / max 1.61, least reliable r17 0.05, r3 0.12, ...`` (the few least reliable)."""
    table = rater_table(info)
    if table.empty:
        return "no raters"
    weights = table["weight"].to_numpy()
    text = (
        f"{len(table)} rater{'s' if len(table) > 1 else ''}, weights min {weights.min():.2f} / "
        f"median {float(np.median(weights)):.2f} / max {weights.max():.2f}"
    )
    if weights.min() == weights.max():  # reliability none (or all equal): nobody stands out
        return text
    least = table.head(LEAST_RELIABLE_SHOWN)
    return (
        text
        + ", least reliable "
        + ", ".join(f"{r} {w:.2f}" for r, w in zip(least["rater"], least["weight"], strict=True))
    )


def load_judgments(folder: str | Path) -> pd.DataFrame | None:
    """The prepared ``judgments.parquet`` of a folder, or None when it has none."""
    path = Path(folder) / JUDGMENTS_FILE
    return pd.read_parquet(path) if path.is_file() else None
