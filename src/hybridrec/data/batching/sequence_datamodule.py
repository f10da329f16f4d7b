"""SequenceDataModule: a prepared folder as sequences, for sequence and session models.

It builds the iterables of :mod:`hybridrec.data.batching.sequences` (whose module doc describes
the training and evaluation rows) from the prepared parquet files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hybridrec.data.batching.judgments import history_table
from hybridrec.data.batching.pairs import (
    BatchDataModule,
    candidate_rows,
    other_slice_rows,
)
from hybridrec.data.batching.sequences import (
    NEGATIVE_SAMPLINGS,
    ORDERS,
    TRAININGS,
    NextItemBatches,
    PrefixBatches,
    SessionParallelBatches,
    sequences_from_frame,
)
from hybridrec.data.errors import DataError
from hybridrec.data.preparation.staging import read_negatives
from hybridrec.data.spec import DataSpec


def _long(frame: pd.DataFrame, column: str) -> Tensor:
    return torch.as_tensor(frame[column].to_numpy(np.int64, copy=True))


class SequenceDataModule(BatchDataModule):
    """A prepared folder as sequences, for session models (see the module doc of
    :mod:`hybridrec.data.batching.sequences`).

    Args:
        data_dir: the prepared folder (session layout, or a leave-one-out split whose training
            file has timestamps, e.g. user sequences read with ``read_sequences``).
        training: ``session_parallel`` (GRU4Rec: one step per batch, shared negatives) or
            ``next_item`` (SASRec-style models: windows of whole sequences, every position
            scored against the whole catalogue, or against ``negatives`` shared samples;
            ``n_negatives`` and ``order`` are unused).
        batch_size: session-parallel rows, or next-item windows, per training batch.
        max_length: ``next_item``: inputs per training window (the model's context length).
        bucket: ``next_item``: batch windows of similar length together (see
            :class:`NextItemBatches`).
        n_negatives: ``session_parallel``: negatives shared by the whole batch, drawn from
            popularity^sample_alpha.
        sample_alpha: 0 = uniform over training items, 1 = proportional to popularity
            (``session_parallel``, and ``next_item`` with ``negative_sampling=popularity``).
        negatives: ``next_item``: negatives shared by every position of a batch, each
            position scored against its target and these (sampled softmax; see
            :class:`NextItemBatches`); 0 = every position against the whole catalogue.
        negative_sampling: ``next_item`` with ``negatives`` > 0: ``uniform`` over the
            training items, or ``popularity`` (count^sample_alpha, with logQ for the loss).
        order: ``time`` (sequences enter by their first timestamp, the official GRU4Rec order,
            the same every epoch) or ``random`` (reshuffled every epoch).
        eval_batch_size: evaluation rows per batch.
        max_history: evaluation keeps the latest ``max_history`` items of a prefix (0 = all).
        prefix_cache: evaluation batches hold each sequence once and its prefixes as rows (the
            ``PrefixEvalBatch``): GRU4Rec encodes a held-out session once instead of once
            per position (the session protocol). Other models get the same rows in the per-row
            layout. Unused where it saves nothing (leave-one-out: one row per sequence) and
            where ``max_history`` truncates a prefix (see :class:`PrefixBatches`).
        seed: sampling and shuffling seed.
        data_on_device: move the tensors to the trainer's device once, at setup.
        train_on_val: train on the training sequences + the validation items (leave-one-out
            only): the refit after model selection (``refit_on_val`` in the train config);
            validation metrics are then meaningless and the trainer skips them.
        judgment_batch_size: judgment pairs (and single judgments) per training step.
        judgment_population: users whose mean vector stands for "everyone" in each step.
    """

    def __init__(
        self,
        data_dir: str | Path,
        training: str = "session_parallel",
        batch_size: int = 128,
        max_length: int = 50,
        bucket: bool = True,
        n_negatives: int = 2048,
        sample_alpha: float = 0.5,
        order: str = "time",
        eval_batch_size: int = 1024,
        max_history: int = 0,
        prefix_cache: bool = False,
        seed: int = 0,
        data_on_device: bool = True,
        train_on_val: bool = False,
        judgment_batch_size: int = 256,
        judgment_population: int = 256,
        negatives: int = 0,
        negative_sampling: str = "uniform",
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError("datamodule.batch_size and eval_batch_size must be >= 1")
        self.train_on_val = train_on_val
        if n_negatives < 0:
            raise ValueError(f"datamodule.n_negatives={n_negatives}: expected >= 0")
        if order not in ORDERS:
            raise ValueError(f"datamodule.order={order!r}: expected one of {ORDERS}")
        if training not in TRAININGS:
            raise ValueError(f"datamodule.training={training!r}: expected one of {TRAININGS}")
        if max_length < 1:
            raise ValueError(f"datamodule.max_length={max_length}: expected >= 1")
        if negatives < 0:
            raise ValueError(f"datamodule.negatives={negatives}: expected >= 0")
        if negative_sampling not in NEGATIVE_SAMPLINGS:
            raise ValueError(
                f"datamodule.negative_sampling={negative_sampling!r}: expected one of "
                f"{NEGATIVE_SAMPLINGS}"
            )
        self.negatives, self.negative_sampling = negatives, negative_sampling
        self.training, self.max_length, self.bucket = training, max_length, bucket
        self.data_dir = Path(data_dir)
        self.spec = DataSpec.load(self.data_dir)
        self.batch_size, self.n_negatives = batch_size, n_negatives
        self.sample_alpha, self.order = sample_alpha, order
        self.eval_batch_size, self.max_history = eval_batch_size, max_history
        self.prefix_cache = prefix_cache
        self.seed, self.data_on_device = seed, data_on_device
        self.judgment_batch_size, self.judgment_population = (
            judgment_batch_size,
            judgment_population,
        )
        self._user_sequences: tuple[np.ndarray, np.ndarray] | None = None
        self._histories: tuple[Tensor, Tensor] | None = None
        self._train: SessionParallelBatches | NextItemBatches | None = None
        self._val: PrefixBatches | None = None
        self._test: PrefixBatches | None = None

    def _frame(self, role: str) -> pd.DataFrame:
        frame = pd.read_parquet(self.data_dir / self.spec.files[role])
        if role == "train" and "timestamp" not in frame.columns:
            raise DataError(
                "sequence models need the order of each user's interactions, and this prepared "
                "dataset has no timestamps: use a source with times or ordered sequences "
                "(e.g. read_sequences with ordered: true)",
                path=self.data_dir / self.spec.files[role],
            )
        return frame

    def setup(self, stage: str | None = None) -> None:
        if self._train is not None:
            return
        spec = self.spec
        train = self._frame("train")
        if self.train_on_val:
            if "cold_items" in spec.files:
                raise ValueError(
                    "train_on_val (refit_on_val) would train on validation-cold items: the "
                    "cold_items protocol keeps them out of training; set refit_on_val=false"
                )
            if spec.layout == "sessions":
                raise ValueError(
                    "train_on_val (refit_on_val) applies to leave-one-out splits; with the "
                    "session protocol set protocol.val_days=0 to train on every session instead"
                )
            val = self._frame("val")
            train = pd.concat([train, val.assign(timestamp=np.inf)[list(train.columns)]])
        items, offsets = sequences_from_frame(train, spec.n_users)
        if spec.layout != "sessions":
            self._user_sequences = (items, offsets)
            self._load_judgments(
                self.data_dir,
                spec.n_users,
                self.seed,
                self.judgment_batch_size,
                self.judgment_population,
            )
        first_times = None
        if spec.layout == "sessions":
            first = train.groupby("user")["timestamp"].min()
            times = np.full(spec.n_users, np.inf)
            times[first.index.to_numpy()] = first.to_numpy()
            first_times = torch.as_tensor(times)
        if self.training == "next_item":
            train_columns = None
            if "cold_items" in spec.files:  # cold items stay out of training, as negatives too
                train_columns = torch.ones(spec.n_items + 1, dtype=torch.bool)
                train_columns[_long(self._frame("cold_items"), "item")] = False
            self._train = NextItemBatches(
                torch.as_tensor(items.copy()),
                torch.as_tensor(offsets),
                self.batch_size,
                self.max_length,
                self.seed,
                bucket=self.bucket,
                train_columns=train_columns,
                n_negatives=self.negatives,
                sampling=self.negative_sampling,
                sample_alpha=self.sample_alpha,
                n_items=spec.n_items,
            )
        else:
            self._train = SessionParallelBatches(
                torch.as_tensor(items.copy()),
                torch.as_tensor(offsets),
                self.batch_size,
                self.n_negatives,
                self.sample_alpha,
                self.seed,
                spec.n_items,
                order=self.order,
                first_times=first_times,
            )
        if spec.layout == "sessions":
            self._val = self._session_rows(self._frame("val"))
            self._test = self._session_rows(self._frame("test"))
        else:
            self._val, self._test = self._loo_rows(self._frame("train"))
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            if trainer.world_size > 1:
                raise NotImplementedError(
                    "sequence training runs on one device (session-parallel rows carry hidden "
                    "state from batch to batch; prefix evaluation is not sharded); use "
                    "trainer=cpu or trainer=gpu"
                )
            self._train.epoch_source = lambda: trainer.current_epoch
            if self.data_on_device:
                device = trainer.strategy.root_device
                for batches in (self._train, self._val, self._test):
                    batches.to(device)
                if self.judgments is not None:
                    self.judgments.to(device)

    def _session_rows(self, frame: pd.DataFrame) -> PrefixBatches:
        """Every click after a session's first is a target; its prefix is the history."""
        flat, offsets = sequences_from_frame(frame, self.spec.n_users)
        session = np.repeat(np.arange(self.spec.n_users), np.diff(offsets))
        is_first = np.zeros(flat.size, dtype=bool)
        is_first[offsets[:-1][np.diff(offsets) > 0]] = True
        positions = np.flatnonzero(~is_first)
        return PrefixBatches(
            torch.as_tensor(flat),
            torch.as_tensor(offsets[session[positions]]),
            torch.as_tensor(positions),
            torch.as_tensor(flat[positions]),
            torch.as_tensor(session[positions]),
            self.eval_batch_size,
            mask_known=False,
            max_history=self.max_history,
            prefix_cache=self.prefix_cache,
        )

    def _cold_rows(
        self, frame: pd.DataFrame, items: np.ndarray, offsets: np.ndarray
    ) -> PrefixBatches:
        """cold_items protocol: one row per (user, slice) — the user's held-out cold items, and
        their warm ones — ranked after the whole training sequence (as the ID models see it:
        the held-out rows are a set, not a next item)."""
        pairs = frame["user"].to_numpy(np.int64) * 2 + frame["cold"].to_numpy(np.int64)
        codes, uniques = pd.factorize(pairs, sort=True)
        counts = np.bincount(codes, minlength=len(uniques))
        targets = np.zeros((len(uniques), int(counts.max())), dtype=np.int64)  # (R, P)
        order = np.argsort(codes, kind="stable")
        column = np.arange(codes.size) - np.repeat(np.cumsum(counts) - counts, counts)
        targets[codes[order], column] = frame["item"].to_numpy(np.int64)[order]
        users = uniques // 2
        restrict = None
        if self.spec.candidates != "all":
            restrict = candidate_rows(
                self.spec.candidates, _long(self._frame("cold_items"), "item"), self.spec.n_items
            )
        also = None
        if self.spec.other_slice == "mask":  # each row leaves out the other slice's targets
            other_row, has_other = other_slice_rows(pairs[order], uniques)
            also = np.zeros_like(targets)  # (R, P) the other slice's targets, 0-padded
            kept = order[has_other]
            also[other_row[has_other], column[has_other]] = frame["item"].to_numpy(np.int64)[kept]
        return PrefixBatches(
            torch.as_tensor(items.copy()),
            torch.as_tensor(offsets[users]),
            torch.as_tensor(offsets[users + 1]),
            torch.as_tensor(targets),
            torch.as_tensor(users),
            self.eval_batch_size,
            mask_known=self.spec.mask_known,
            max_history=self.max_history,
            prefix_cache=self.prefix_cache,
            cold=torch.as_tensor(uniques % 2 == 1),
            restrict_to=restrict,
            also_exclude=None if also is None else torch.as_tensor(also),
        )

    def _loo_rows(self, train: pd.DataFrame) -> tuple[PrefixBatches, PrefixBatches]:
        spec = self.spec
        items, offsets = sequences_from_frame(train, spec.n_users)
        val, test = self._frame("val"), self._frame("test")
        if "cold" in val.columns:
            return self._cold_rows(val, items, offsets), self._cold_rows(test, items, offsets)
        mask = spec.eval_mode == "full" and spec.mask_known
        val_users = val["user"].to_numpy(np.int64, copy=True)
        val_batches = PrefixBatches(
            torch.as_tensor(items.copy()),
            torch.as_tensor(offsets[val_users]),
            torch.as_tensor(offsets[val_users + 1]),
            _long(val, "item"),
            torch.as_tensor(val_users),
            self.eval_batch_size,
            candidates=self._candidates(val, "val_negatives"),
            mask_known=mask,
            max_history=self.max_history,
            prefix_cache=self.prefix_cache,
        )
        # test histories: training sequence + the validation item (fed, never trained on)
        with_val = pd.concat(
            [
                train[["user", "item", "timestamp"]],
                val.assign(timestamp=np.inf)[["user", "item", "timestamp"]],
            ]
        )
        items2, offsets2 = sequences_from_frame(with_val, spec.n_users)
        test_users = test["user"].to_numpy(np.int64, copy=True)
        test_batches = PrefixBatches(
            torch.as_tensor(items2),
            torch.as_tensor(offsets2[test_users]),
            torch.as_tensor(offsets2[test_users + 1]),
            _long(test, "item"),
            torch.as_tensor(test_users),
            self.eval_batch_size,
            candidates=self._candidates(test, "test_negatives"),
            mask_known=mask,
            max_history=self.max_history,
            prefix_cache=self.prefix_cache,
        )
        return val_batches, test_batches

    def _candidates(self, frame: pd.DataFrame, role: str) -> Tensor | None:
        if self.spec.eval_mode != "sampled":
            return None
        negatives = torch.as_tensor(read_negatives(self.data_dir / self.spec.files[role]))
        positives = _long(frame, "item").unsqueeze(1)  # (R, 1)
        negatives = negatives.masked_fill(negatives == positives, 0)
        return torch.cat([positives, negatives], 1)  # (R, 1 + K)

    def train_sequences(self) -> tuple[Tensor, Tensor]:
        """(items (E,), offsets (n + 1,)) of the training sequences, for count-based models."""
        self.setup()
        assert self._train is not None
        return self._train.items, self._train.offsets

    def item_counts(self) -> Tensor:
        """(n_items + 1,) training clicks per item (index 0 padding): the popularity behind the
        beyond-accuracy metrics."""
        self.setup()
        assert self._train is not None
        items = self._train.items.cpu()
        return torch.bincount(items[items > 0], minlength=self.spec.n_items + 1)

    def user_histories(self) -> tuple[Tensor, Tensor]:
        """(table (n_users, T), lengths (n_users,)): each user's latest ``max_length`` training
        items, right-aligned and 0-padded as in evaluation (the judgment contexts' histories)."""
        self.setup()
        if self._histories is None:
            if self._user_sequences is None:
                raise ValueError("user histories need user sequences (not the session layout)")
            items, offsets = self._user_sequences
            self._histories = history_table(
                torch.as_tensor(items.copy()), torch.as_tensor(offsets), self.max_length
            )
        return self._histories
