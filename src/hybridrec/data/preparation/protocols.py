"""Evaluation protocols: how interactions are split into train / validation / test.

Every protocol returns a :class:`Split` over *mapped* indices (users 0.., items 1..). The
validation split exists for early stopping and model selection and never contains a test pair;
the model never trains on validation or test pairs.

    loo_sampled  test: each user's last interaction (or the source's test file);
                 validation: the last remaining one; rank 1 + N sampled (or given) negatives
    loo_full     same split; rank all items, the user's known items masked
    temporal     test: after a global time cut; validation: the slice before it; all items
    cold_items   a seeded share of items never trains; held-out rows flagged cold / warm

Without timestamps, "last" is a seeded random pick per user (the NCF paper's validation rule).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from hybridrec.data.sampling import pair_keys, sample_distinct_negatives

EVAL_MODES = ("sampled", "full")

log = logging.getLogger(__name__)


@dataclass
class Split:
    """Mapped train/val/test frames (columns ``user``, ``item`` [, ``timestamp``])."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    eval_mode: str
    val_negatives: np.ndarray | None = None  # (n_val, K) item indices, row-aligned with val
    test_negatives: np.ndarray | None = None  # (n_test, K)
    counts: dict[str, int] = field(default_factory=dict)
    cold_items: np.ndarray | None = None  # item indices never trained on (cold_items protocol)


def _order_key(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A per-row sort key: the timestamp where there is one, else a random tie-free key."""
    if "timestamp" in frame.columns:
        return frame["timestamp"].to_numpy(dtype=np.float64)
    return rng.permutation(len(frame)).astype(np.float64)


def hold_out_last(
    frame: pd.DataFrame, rng: np.random.Generator, min_remaining: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off each user's last row (by timestamp, else random).

    Users with at most ``min_remaining`` rows keep all of them (nothing held out), so every
    evaluated user still has training data. Returns (kept, held_out).
    """
    key = _order_key(frame, rng)
    # position from the end within the user: 0 = the latest row; ties broken by row order
    order = np.lexsort((np.arange(len(frame)), key, frame["user"].to_numpy()))
    ordered = frame.iloc[order]
    from_end = ordered.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    sizes = ordered.groupby("user", sort=False)["user"].transform("size").to_numpy()
    held = (from_end == 0) & (sizes > min_remaining)
    return ordered[~held].reset_index(drop=True), ordered[held].reset_index(drop=True)


def sample_eval_negatives(
    held_out: pd.DataFrame,
    known: pd.DataFrame,
    n_items: int,
    n_negatives: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """(n_rows, n_negatives) negatives per held-out row and the number of short rows.

    Each row holds ``n_negatives`` distinct items drawn uniformly (seeded) from the items the
    user does not have in ``known`` (all of the user's interactions, train + val + test). A
    user with fewer unknown items than that (a small catalogue, or a user who has seen most
    of it) gets every unknown item once, then padding 0, which the evaluation scores -inf: the
    row ranks among fewer candidates and is counted as short. Never a repeated item.
    """
    keys = pair_keys(
        torch.as_tensor(known["user"].to_numpy(np.int64, copy=True)),
        torch.as_tensor(known["item"].to_numpy(np.int64, copy=True)),
        n_items,
    )
    generator = torch.Generator().manual_seed(seed)
    users = torch.as_tensor(held_out["user"].to_numpy(np.int64, copy=True))
    negatives, n_available = sample_distinct_negatives(
        users, n_negatives, keys, n_items, generator=generator
    )
    return negatives.numpy(), int((n_available < n_negatives).sum())


def _short_rows_message(short_val: int, short_test: int, width: int, n_items: int) -> str:
    why = (
        f"the catalogue has only {n_items} items"
        if n_items <= width
        else f"their users have interacted with more than {n_items - width} of the {n_items} items"
    )
    return (
        f"{short_val} validation and {short_test} test rows get fewer than {width} sampled "
        f"negatives: {why}; each such row holds every item its user has not interacted with, "
        "once, then padding (scored -inf), never a repeat. Counted in spec.json counts as "
        "eval_rows_short_of_negatives"
    )


@dataclass
class LeaveOneOut:
    """Leave the last interaction out per user for test, the one before it for validation.

    eval_mode: ``sampled`` ranks the held-out item against ``n_negatives`` sampled negatives
        (or the source's given negatives file, kept as given), ``full`` against every item
        with the user's known items masked. Sampled negatives are distinct within a row and
        never a known item; a row whose user has fewer unknown items than ``n_negatives``
        holds each of them once, then padding 0 (scored -inf), and is counted in
        ``counts["eval_rows_short_of_negatives"]`` (with a warning); see
        :func:`sample_eval_negatives`.
    use_given_test: use the source's own held-out file (e.g. NCF's ``.test.rating``) if it has
        one; otherwise hold out the last interaction.
    mask_known: full ranking masks the user's known items (ICLRec/S3-Rec style); False ranks
        them too (GRU4Rec's evaluation, where a user may come back to an item).
    """

    eval_mode: str = "sampled"
    n_negatives: int = 99
    use_given_test: bool = True
    seed: int = 0
    name: str = "loo_sampled"
    mask_known: bool = True

    def __post_init__(self) -> None:
        if self.eval_mode not in EVAL_MODES:
            raise ValueError(f"protocol.eval_mode={self.eval_mode!r}: expected one of {EVAL_MODES}")
        if self.eval_mode == "sampled" and self.n_negatives < 1:
            raise ValueError(f"protocol.n_negatives={self.n_negatives}: expected >= 1")

    def split(
        self,
        interactions: pd.DataFrame,
        n_items: int,
        given_test: pd.DataFrame | None = None,
        given_negatives: np.ndarray | None = None,
    ) -> Split:
        rng = np.random.default_rng(self.seed)
        counts: dict[str, int] = {}
        if given_test is not None and self.use_given_test:
            rest, test = interactions, given_test.reset_index(drop=True)
        else:
            rest, test = hold_out_last(interactions, rng, min_remaining=2)
            given_negatives = None
        train, val = hold_out_last(rest, rng, min_remaining=1)
        counts["users_without_test"] = int(interactions["user"].nunique() - test["user"].nunique())
        split = Split(train=train, val=val, test=test, eval_mode=self.eval_mode, counts=counts)
        if self.eval_mode == "sampled":
            known = pd.concat([interactions[["user", "item"]], test[["user", "item"]]])
            # validation ranks against as many negatives as the test does
            width = given_negatives.shape[1] if given_negatives is not None else self.n_negatives
            split.val_negatives, short_val = sample_eval_negatives(
                val, known, n_items, width, self.seed + 1
            )
            short_test = 0
            if given_negatives is not None:
                split.test_negatives = given_negatives  # the source's own: kept as given
            else:
                split.test_negatives, short_test = sample_eval_negatives(
                    test, known, n_items, self.n_negatives, self.seed + 2
                )
            counts["eval_rows_short_of_negatives"] = short_val + short_test
            if short_val + short_test:
                log.warning(_short_rows_message(short_val, short_test, width, n_items))
        return split


@dataclass
class TemporalSplit:
    """A global time cut: the latest ``test_fraction`` of interactions (by timestamp) is test,
    the ``val_fraction`` before it validation, the rest train. Held-out rows of users or items
    never seen in training are dropped (and counted): they are a cold-start problem, measured
    by the ``cold_items`` protocol instead."""

    test_fraction: float = 0.2
    val_fraction: float = 0.1
    name: str = "temporal"
    eval_mode: str = "full"
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("test_fraction", "val_fraction"):
            value = getattr(self, key)
            if not 0.0 < value < 1.0:
                raise ValueError(f"protocol.{key}={value}: expected a fraction in (0, 1)")
        if self.test_fraction + self.val_fraction >= 1.0:
            raise ValueError("protocol.test_fraction + protocol.val_fraction must be < 1")
        if self.eval_mode != "full":
            raise ValueError("protocol temporal ranks all items: eval_mode must be 'full'")

    def split(
        self,
        interactions: pd.DataFrame,
        n_items: int,
        given_test: pd.DataFrame | None = None,
        given_negatives: np.ndarray | None = None,
    ) -> Split:
        if "timestamp" not in interactions.columns:
            raise ValueError(
                "protocol temporal needs timestamps, and this dataset has none: "
                "choose protocol=loo_sampled or protocol=loo_full"
            )
        times = interactions["timestamp"].to_numpy(dtype=np.float64)
        t_test = np.quantile(times, 1.0 - self.test_fraction)
        # rounded so 1 - 0.2 - 0.2 is 0.6, not 0.6000000000000001
        t_val = np.quantile(times, round(1.0 - self.test_fraction - self.val_fraction, 12))
        train = interactions[times < t_val]
        val = interactions[(times >= t_val) & (times < t_test)]
        test = interactions[times >= t_test]
        counts: dict[str, int] = {}
        seen_users = set(train["user"].unique())
        seen_items = set(train["item"].unique())

        def keep_seen(frame: pd.DataFrame, label: str) -> pd.DataFrame:
            mask = frame["user"].isin(seen_users) & frame["item"].isin(seen_items)
            counts[f"{label}_dropped_unseen"] = int((~mask).sum())
            return frame[mask].reset_index(drop=True)

        return Split(
            train=train.reset_index(drop=True),
            val=keep_seen(val, "val"),
            test=keep_seen(test, "test"),
            eval_mode="full",
            counts=counts,
        )


@dataclass
class ColdItems:
    """A seeded share of items is never seen in training ("cold"); the model must rank them
    from side information (item text) alone.

    Split, in this order:
      1. ``cold_share`` of the items that have interactions are drawn (seeded) as cold; of
         those, ``val_share`` are validation-cold, the rest test-cold. Every interaction with a
         cold item leaves training.
      2. The warm interactions are split leave-one-out: each user's last warm interaction (by
         timestamp, else random) is the warm test row, the one before it the warm validation
         row (users with too few warm interactions keep them all for training).
      3. Validation = warm validation rows + interactions with validation-cold items; test =
         warm test rows + interactions with test-cold items. Held-out rows of users who have
         no training interaction left are dropped (counted).
    Each held-out row carries ``cold`` (bool), so metrics are reported for cold targets, warm
    targets and all of them separately. Ranking is ``full`` (all items, the user's training
    items masked); ``candidates: cold`` ranks cold targets among the cold items only (the
    "new arrivals" shelf), ``candidates: slice`` also the warm targets among the warm items only
    (two shelves, ALDI's cold and warm evaluation) — applied by the evaluation, recorded here.
    ``other_slice: mask`` leaves a user's held-out items of the other slice out of each
    slice's row (neither target nor negative: a model that ranks the user's own cold items high
    is not charged for it in the warm row); ``keep`` (the default) ranks them as negatives.

    A source's own test file is ignored (this protocol makes its own split; counted as
    ``given_test_ignored``).
    """

    cold_share: float = 0.2
    val_share: float = 0.5
    seed: int = 0
    candidates: str = "all"
    other_slice: str = "keep"
    name: str = "cold_items"
    eval_mode: str = "full"
    mask_known: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.cold_share < 1.0:
            raise ValueError(f"protocol.cold_share={self.cold_share}: expected a share in (0, 1)")
        if not 0.0 <= self.val_share < 1.0:
            raise ValueError(f"protocol.val_share={self.val_share}: expected a share in [0, 1)")
        if self.candidates not in ("all", "cold", "slice"):
            raise ValueError(
                f"protocol.candidates={self.candidates!r}: expected 'all', 'cold' or 'slice'"
            )
        if self.other_slice not in ("keep", "mask"):
            raise ValueError(
                f"protocol.other_slice={self.other_slice!r}: expected 'keep' or 'mask'"
            )
        if self.eval_mode != "full":
            raise ValueError("protocol cold_items ranks all items: eval_mode must be 'full'")

    def cold_item_sets(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(validation-cold, test-cold) item indices, sorted, drawn from ``items`` (seeded)."""
        rng = np.random.default_rng(self.seed)
        pool = np.unique(items)
        n_cold = int(round(self.cold_share * len(pool)))
        if n_cold < 1 or n_cold >= len(pool):
            raise ValueError(
                f"protocol.cold_share={self.cold_share} makes {n_cold} cold items out of "
                f"{len(pool)}: need at least one cold and one warm item"
            )
        cold = rng.permutation(pool)[:n_cold]
        n_val = int(round(self.val_share * n_cold))
        return np.sort(cold[:n_val]), np.sort(cold[n_val:])

    def split(
        self,
        interactions: pd.DataFrame,
        n_items: int,
        given_test: pd.DataFrame | None = None,
        given_negatives: np.ndarray | None = None,
    ) -> Split:
        counts: dict[str, int] = {"given_test_ignored": int(given_test is not None)}
        items = interactions["item"].to_numpy()
        cold_val, cold_test = self.cold_item_sets(items)
        is_cold_val = np.isin(items, cold_val)
        is_cold_test = np.isin(items, cold_test)
        warm = interactions[~(is_cold_val | is_cold_test)]
        rng = np.random.default_rng(self.seed + 1)
        rest, warm_test = hold_out_last(warm, rng, min_remaining=2)
        train, warm_val = hold_out_last(rest, rng, min_remaining=1)
        trained_users = train["user"].unique()

        def held_out(warm_rows: pd.DataFrame, cold_rows: pd.DataFrame, label: str) -> pd.DataFrame:
            frame = pd.concat(
                [warm_rows.assign(cold=False), cold_rows.assign(cold=True)], ignore_index=True
            )
            seen = frame["user"].isin(trained_users)
            counts[f"{label}_rows_without_training_user"] = int((~seen).sum())
            frame = frame[seen].reset_index(drop=True)
            counts[f"{label}_cold_rows"] = int(frame["cold"].sum())
            counts[f"{label}_warm_rows"] = int((~frame["cold"]).sum())
            return frame

        val = held_out(warm_val, interactions[is_cold_val], "val")
        test = held_out(warm_test, interactions[is_cold_test], "test")
        counts["cold_items_val"], counts["cold_items_test"] = len(cold_val), len(cold_test)
        leaked = np.isin(train["item"].to_numpy(), np.concatenate([cold_val, cold_test]))
        if leaked.any():  # pragma: no cover - guarded by construction
            raise AssertionError("a cold item reached the training split")
        return Split(
            train=train.reset_index(drop=True),
            val=val,
            test=test,
            eval_mode="full",
            counts=counts,
            cold_items=np.concatenate([cold_val, cold_test]),
        )
