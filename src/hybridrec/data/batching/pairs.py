"""(user, item) pair batches: RecDataModule, a prepared dataset held as tensors, batches made by
index arithmetic (TrainBatches, EvalBatches over a CSR of known items).

No per-sample ``__getitem__``: an epoch is one ``randperm`` over the training pairs, each batch a
slice of it plus one vectorised call to the negative sampler. The tensors can live on the
training device (``data_on_device``), so on a GPU batches are made there and never copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hybridrec.data.batch import Batch, PairBatch, RowEvalBatch
from hybridrec.data.batching.judgments import JudgmentData
from hybridrec.data.preparation.staging import read_negatives
from hybridrec.data.sampling import NegativeSampler, pair_keys
from hybridrec.data.spec import DataSpec
from hybridrec.validators import COUNT, SIZE


def _long(frame: pd.DataFrame, column: str) -> Tensor:
    return torch.as_tensor(frame[column].to_numpy(np.int64, copy=True))


class CSR:
    """Items per user as a compressed row list: ``items[indptr[u]:indptr[u+1]]``."""

    def __init__(self, users: Tensor, items: Tensor, n_users: int) -> None:
        order = torch.argsort(users, stable=True)
        self.items = items[order]  # (E,) grouped by user
        counts = torch.bincount(users, minlength=n_users)
        self.indptr = torch.zeros(n_users + 1, dtype=torch.long)
        self.indptr[1:] = torch.cumsum(counts, 0)

    def to(self, device: torch.device | str) -> CSR:
        self.items, self.indptr = self.items.to(device), self.indptr.to(device)
        return self

    def gather(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """users (B,) -> (rows (E,), items (E,)): every (batch row, item) pair of those users."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        counts = ends - starts  # (B,)
        rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), counts)
        # position inside each user's run: global arange minus the run's start offset
        offsets = torch.cumsum(counts, 0) - counts
        within = torch.arange(rows.numel(), device=users.device) - offsets[rows]
        return rows, self.items[starts[rows] + within]

    def padded(self, users: Tensor) -> Tensor:
        """users (B,) -> (B, P) items, 0-padded to the longest row in the batch."""
        rows, items = self.gather(users)
        counts = self.indptr[users + 1] - self.indptr[users]
        width = int(counts.max().item()) if counts.numel() else 0
        out = torch.zeros(users.numel(), max(width, 1), dtype=torch.long, device=users.device)
        offsets = torch.cumsum(counts, 0) - counts
        cols = torch.arange(rows.numel(), device=users.device) - offsets[rows]
        out[rows, cols] = items
        return out


class TrainBatches:
    """One epoch of shuffled training batches: positives plus sampled negatives.

    Each row is a user, column 0 of ``items`` the positive, columns 1..K the negatives.
    Under DDP each rank takes its share of one permutation (same seed on every rank).
    """

    def __init__(
        self,
        users: Tensor,
        items: Tensor,
        sampler: NegativeSampler,
        batch_size: int,
        num_negatives: int,
        seed: int,
        drop_last: bool = False,
    ) -> None:
        self.users, self.items, self.sampler = users, items, sampler
        self.batch_size, self.num_negatives = batch_size, num_negatives
        self.seed, self.drop_last = seed, drop_last
        self.epoch, self.rank, self.world_size = 0, 0, 1
        # the trainer's epoch counter when there is a trainer, so a resumed run continues with
        # the permutation and negatives of the epoch it resumes at
        self.epoch_source: Callable[[], int] | None = None

    def _n_rows(self) -> int:
        return self.users.numel() // self.world_size

    def __len__(self) -> int:
        rows = self._n_rows()
        return rows // self.batch_size if self.drop_last else -(-rows // self.batch_size)

    def __iter__(self) -> Iterator[PairBatch]:
        device = self.users.device
        if self.epoch_source is not None:
            self.epoch = self.epoch_source()
        shuffle = torch.Generator(device="cpu").manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.users.numel(), generator=shuffle).to(device)
        perm = perm[self.rank :: self.world_size][: self._n_rows()]
        negatives_rng = torch.Generator(device=device)
        negatives_rng.manual_seed(self.seed * 1_000_003 + self.epoch * 101 + self.rank)
        self.epoch += 1
        labels = torch.zeros(1, 1 + self.num_negatives, device=device)
        labels[0, 0] = 1.0
        for index in torch.split(perm, self.batch_size):
            if self.drop_last and index.numel() < self.batch_size:
                break
            users = self.users[index]  # (B,)
            positives = self.items[index].unsqueeze(1)  # (B, 1)
            negatives = self.sampler.sample(users, self.num_negatives, negatives_rng)  # (B, K)
            yield PairBatch(
                users=users,
                items=torch.cat([positives, negatives], dim=1),  # (B, 1 + K)
                labels=labels.expand(users.numel(), -1),
            )


def candidate_rows(candidates: str, cold_items: Tensor, n_items: int) -> Tensor:
    """cold_items rows' candidates: ``cold`` -> (N + 1,) the cold items (what a cold row ranks
    among; warm rows rank every item); ``slice`` -> (2, N + 1): warm rows rank the warm items,
    cold rows the cold items (two shelves, as ALDI evaluates)."""
    cold = torch.zeros(n_items + 1, dtype=torch.bool)
    cold[cold_items] = True
    if candidates == "cold":
        return cold
    warm = ~cold
    warm[0] = False
    return torch.stack([warm, cold])


def other_slice_rows(codes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cold_items rows are keyed ``user * 2 + cold`` (``rows`` sorted, one per row). For each
    held-out item's key in ``codes`` (E,): the row of the same user's OTHER slice, and whether
    that row exists — (E,) int64, (E,) bool."""
    other = codes ^ 1  # the same user, the other slice
    position = np.searchsorted(rows, other).clip(max=max(len(rows) - 1, 0))
    exists = rows[position] == other if len(rows) else np.zeros(len(codes), dtype=bool)
    return position.astype(np.int64), np.asarray(exists, dtype=bool)


class EvalBatches:
    """Validation or test batches.

    sampled: ``items`` (B, 1 + K) = held-out item then its negatives; a negative equal to the
        positive (the NCF files have a few) becomes padding 0, which the metrics mask.
    full: ``targets`` (B, P) = the user's held-out items, ``exclude`` = the user's known items
        (masked to -inf before ranking). With ``cold`` (R,) flags (the cold_items protocol) a
        user has up to two rows, one per slice: ``keys`` (R,) then index ``targets`` by row,
        and ``restrict_to`` (N + 1,) limits what cold rows rank among (``candidates: cold``);
        ``also_exclude`` (by row key) adds items to a row's ``exclude`` (``other_slice: mask``:
        the user's held-out items of the other slice).
    """

    def __init__(
        self,
        users: Tensor,
        batch_size: int,
        candidates: Tensor | None = None,
        targets: CSR | None = None,
        known: CSR | None = None,
        keys: Tensor | None = None,
        cold: Tensor | None = None,
        restrict_to: Tensor | None = None,
        also_exclude: CSR | None = None,
    ) -> None:
        self.users, self.batch_size = users, batch_size
        self.candidates, self.targets, self.known = candidates, targets, known
        self.keys, self.cold, self.restrict_to = keys, cold, restrict_to
        self.also_exclude = also_exclude
        self.rank, self.world_size = 0, 1

    def _rows(self) -> Tensor:
        rows = torch.arange(self.users.numel(), device=self.users.device)
        return rows[self.rank :: self.world_size]

    def __len__(self) -> int:
        return -(-self._rows().numel() // self.batch_size)

    def __iter__(self) -> Iterator[RowEvalBatch]:
        for index in torch.split(self._rows(), self.batch_size):
            users = self.users[index]
            if self.candidates is not None:
                items = self.candidates[index]
                labels = torch.zeros_like(items, dtype=torch.float)
                labels[:, 0] = 1.0
                yield RowEvalBatch(users=users, items=items, labels=labels)
            else:
                assert self.targets is not None and self.known is not None
                rows, known_items = self.known.gather(users)
                keys = self.keys[index] if self.keys is not None else users
                if self.also_exclude is not None:  # (row, item) pairs of the rows' keys
                    more_rows, more_items = self.also_exclude.gather(keys)
                    rows, known_items = (
                        torch.cat([rows, more_rows]),
                        torch.cat([known_items, more_items]),
                    )
                yield RowEvalBatch(
                    users=users,
                    targets=self.targets.padded(keys),
                    exclude=torch.stack([rows, known_items]),
                    cold=self.cold[index] if self.cold is not None else None,
                    restrict_to=self.restrict_to,
                )


class BatchDataModule(L.LightningDataModule):
    """Base of the data modules whose loaders yield batches (:mod:`hybridrec.data.batch`).

    With marketers' judgments in the prepared folder (``judgments.parquet``), ``judgments``
    holds them (:class:`JudgmentData`: the held-out sets are measured in every run); when the
    training task switches ``train_judgments`` on (its human-rating term has lambda > 0), the
    training loader becomes a ``CombinedLoader`` of the interactions and the judgments, and
    each step gets ``{"interactions": <training batch>, "judgments": JudgmentBatch}``.
    """

    judgments: JudgmentData | None = None
    train_judgments: bool = False

    def _load_judgments(
        self, data_dir: Path, n_users: int, seed: int, batch_size: int, population: int
    ) -> None:
        self.judgments = JudgmentData.load(
            data_dir,
            n_users,
            pair_batch_size=batch_size,
            row_batch_size=batch_size,
            population_size=population,
            seed=seed,
        )

    def _with_judgments(self, loader: Any) -> Any:
        if not self.train_judgments:
            return loader
        if self.judgments is None:
            raise ValueError(
                "the training task has a human-rating term (judgment=...) but the prepared data "
                "has no judgments: set data.judgments (docs/judgments.md) or judgment=null"
            )
        from lightning.pytorch.utilities import CombinedLoader

        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        self.judgments.train.steps = len(loader)  # one judgment batch per interaction batch
        self.judgments.train.rank = rank
        if trainer is not None:
            self.judgments.train.epoch_source = lambda: trainer.current_epoch
        return CombinedLoader(
            {"interactions": loader, "judgments": self.judgments.train}, mode="max_size_cycle"
        )

    # the subclasses' setup() fills these: training batches, validation and test rows
    _train: Any = None
    _val: Any = None
    _test: Any = None

    def train_dataloader(self) -> Any:
        self.setup("fit")
        assert self._train is not None
        return self._with_judgments(self._train)

    def val_dataloader(self) -> Any:
        self.setup("fit")
        assert self._val is not None
        return self._val

    def test_dataloader(self) -> Any:
        self.setup("fit")
        assert self._test is not None
        return self._test

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # a Batch moves itself (a no-op when the data is already there); Lightning's generic
        # path deep-copies the dataclass on every step
        if isinstance(batch, Batch):  # from the host: pinned, non-blocking
            return batch.to(device, non_blocking=device.type == "cuda")
        if isinstance(batch, dict) and "interactions" in batch:
            return {key: value.to(device) for key, value in batch.items()}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


class RecDataModule(BatchDataModule):
    """Loads a prepared folder (see :mod:`hybridrec.data.preparation.prepare`) into tensors.

    Args:
        data_dir: the prepared folder holding spec.json.
        batch_size: training positives per batch (each brings ``num_negatives`` negatives, so a
            batch scores ``batch_size * (1 + num_negatives)`` pairs).
        num_negatives: sampled negatives per positive for training.
        eval_batch_size: users per validation/test batch.
        seed: shuffling and negative-sampling seed.
        data_on_device: move the tensors to the trainer's device once, at setup.
        judgment_batch_size: judgment pairs (and single judgments) per training step.
        judgment_population: users whose mean vector stands for "everyone" in each step.
    """

    def __init__(
        self,
        data_dir: str | Path,
        batch_size: int = 1024,
        num_negatives: int = 4,
        eval_batch_size: int = 1024,
        seed: int = 0,
        data_on_device: bool = True,
        judgment_batch_size: int = 256,
        judgment_population: int = 256,
    ) -> None:
        super().__init__()
        SIZE.require("datamodule.batch_size", batch_size)
        SIZE.require("datamodule.eval_batch_size", eval_batch_size)
        COUNT.require("datamodule.num_negatives", num_negatives)
        self.data_dir = Path(data_dir)
        self.spec = DataSpec.load(self.data_dir)
        if self.spec.layout != "pairs":
            raise ValueError(
                f"{self.data_dir} holds {self.spec.layout} (protocol {self.spec.protocol}): "
                "train it with datamodule=sequence and a session model (e.g. model=gru4rec)"
            )
        self.batch_size, self.num_negatives = batch_size, num_negatives
        self.eval_batch_size, self.seed = eval_batch_size, seed
        self.data_on_device = data_on_device
        self.judgment_batch_size, self.judgment_population = (
            judgment_batch_size,
            judgment_population,
        )
        self._train: TrainBatches | None = None
        self._val: EvalBatches | None = None
        self._test: EvalBatches | None = None

    def _frame(self, role: str) -> pd.DataFrame:
        return pd.read_parquet(self.data_dir / self.spec.files[role])

    def setup(self, stage: str | None = None) -> None:
        if self._train is not None:
            return
        n_users, n_items = self.spec.n_users, self.spec.n_items
        train, val, test = self._frame("train"), self._frame("val"), self._frame("test")
        train_users, train_items = _long(train, "user"), _long(train, "item")
        pool = None
        if "cold_items" in self.spec.files:  # cold items stay out of training, as negatives too
            warm = torch.ones(n_items + 1, dtype=torch.bool)
            warm[0] = False
            warm[_long(self._frame("cold_items"), "item")] = False
            pool = torch.nonzero(warm).squeeze(1)
        self._load_judgments(
            self.data_dir, n_users, self.seed, self.judgment_batch_size, self.judgment_population
        )
        sampler = NegativeSampler(pair_keys(train_users, train_items, n_items), n_items, pool=pool)
        self._train = TrainBatches(
            train_users, train_items, sampler, self.batch_size, self.num_negatives, self.seed
        )
        if self.spec.eval_mode == "sampled":
            self._val = self._sampled(val, "val_negatives")
            self._test = self._sampled(test, "test_negatives")
        else:
            seen = CSR(train_users, train_items, n_users)
            seen_and_val = CSR(
                torch.cat([train_users, _long(val, "user")]),
                torch.cat([train_items, _long(val, "item")]),
                n_users,
            )
            if not self.spec.mask_known:  # rank the user's known items too
                nothing = torch.zeros(0, dtype=torch.long)
                seen = seen_and_val = CSR(nothing, nothing, n_users)
            self._val = self._full(val, seen)
            self._test = self._full(test, seen_and_val)
        trainer = self._trainer_or_none()
        if trainer is not None:
            for batches in (self._train, self._val, self._test):
                batches.rank, batches.world_size = trainer.global_rank, trainer.world_size
            self._train.epoch_source = lambda: trainer.current_epoch
            if self.data_on_device:
                self._move(trainer.strategy.root_device)

    def item_counts(self) -> Tensor:
        """(n_items + 1,) training interactions per item (index 0 padding): the popularity
        behind the beyond-accuracy metrics."""
        self.setup()
        assert self._train is not None
        return torch.bincount(self._train.items.cpu(), minlength=self.spec.n_items + 1)

    def train_sequences(self) -> tuple[Tensor, Tensor]:
        """(items (E,), offsets (n_users + 1,)): each user's training items (in no particular
        order), for count-based models such as :class:`hybridrec.nn.Popularity`."""
        self.setup()
        assert self._train is not None
        csr = CSR(self._train.users.cpu(), self._train.items.cpu(), self.spec.n_users)
        return csr.items, csr.indptr

    def _trainer_or_none(self) -> L.Trainer | None:
        return getattr(self, "trainer", None)

    def _sampled(self, frame: pd.DataFrame, negatives_role: str) -> EvalBatches:
        negatives = torch.as_tensor(read_negatives(self.data_dir / self.spec.files[negatives_role]))
        positives = _long(frame, "item").unsqueeze(1)  # (R, 1)
        negatives = negatives.masked_fill(negatives == positives, 0)  # a repeat of the positive
        return EvalBatches(
            _long(frame, "user"),
            self.eval_batch_size,
            candidates=torch.cat([positives, negatives], 1),
        )

    def _full(self, frame: pd.DataFrame, known: CSR) -> EvalBatches:
        users, items = _long(frame, "user"), _long(frame, "item")
        if "cold" not in frame.columns:
            eval_users = torch.unique(users)
            return EvalBatches(
                eval_users,
                self.eval_batch_size,
                targets=CSR(users, items, self.spec.n_users),
                known=known,
            )
        # one row per (user, slice): the user's cold targets and warm targets ranked apart
        pairs = frame["user"].to_numpy(np.int64) * 2 + frame["cold"].to_numpy(np.int64)
        codes, uniques = pd.factorize(pairs, sort=True)
        row_of = torch.as_tensor(codes.astype(np.int64))  # (E,) row of each target
        restrict = None
        if self.spec.candidates != "all":
            restrict = candidate_rows(
                self.spec.candidates, _long(self._frame("cold_items"), "item"), self.spec.n_items
            )
        also = None
        if self.spec.other_slice == "mask":  # each row leaves out the other slice's targets
            other_row, has_other = other_slice_rows(pairs, uniques)
            keep = torch.as_tensor(has_other)
            also = CSR(torch.as_tensor(other_row)[keep], items[keep], len(uniques))
        return EvalBatches(
            torch.as_tensor(uniques // 2),
            self.eval_batch_size,
            targets=CSR(row_of, items, len(uniques)),
            known=known,
            keys=torch.arange(len(uniques)),
            cold=torch.as_tensor(uniques % 2 == 1),
            restrict_to=restrict,
            also_exclude=also,
        )

    def _move(self, device: torch.device) -> None:
        assert self._train is not None and self._val is not None and self._test is not None
        train = self._train
        train.users, train.items = train.users.to(device), train.items.to(device)
        train.sampler.to(device)
        for batches in (self._val, self._test):
            batches.users = batches.users.to(device)
            if batches.candidates is not None:
                batches.candidates = batches.candidates.to(device)
            for csr in (batches.targets, batches.known, batches.also_exclude):
                if csr is not None:
                    csr.to(device)
            for name in ("keys", "cold", "restrict_to"):
                value = getattr(batches, name)
                if value is not None:
                    setattr(batches, name, value.to(device))
        if self.judgments is not None:
            self.judgments.to(device)
