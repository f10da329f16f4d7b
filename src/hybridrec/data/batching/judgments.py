"""Judgment batches for training and the held-out judgment sets for evaluation.

Training reads the ``train`` part of ``judgments.parquet`` (:mod:`hybridrec.data.preparation.
judgments`) through a second loader next to the interactions (Lightning's ``CombinedLoader``,
``max_size_cycle``): each step gets a :class:`JudgmentBatch` of preference pairs (for the
Bradley-Terry part), of single rows (for the pointwise part) and a random population of users
(whose mean vector stands for "everyone", :mod:`hybridrec.nn.contexts`).

Pairs are made only inside one group (one rater, one context, one set), the preferred item
first, from rows whose scores differ; a group with more than ``max_pairs_per_group`` pairs is
sampled down (seeded). All index arithmetic on tensors, no per-sample Python.

Shapes: Q = judgment rows, P = pairs, U = population users.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hybridrec.data.preparation.judgments import load_judgments


def within_group_pairs(groups: Tensor) -> Tensor:
    """groups (Q,) -> (P, 2) every unordered pair of rows (a, b) of one group, a before b in
    the group's order (rows ordered by group, stably)."""
    if groups.numel() == 0:
        return torch.zeros(0, 2, dtype=torch.long)
    order = torch.argsort(groups, stable=True)
    _, sizes = torch.unique_consecutive(groups[order], return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)  # (Q,) sorted
    ends = starts + torch.repeat_interleave(sizes, sizes)
    position = torch.arange(groups.numel())
    later = ends - position - 1  # rows after each sorted row in its group
    first = torch.repeat_interleave(position, later)  # (P,)
    offset = torch.arange(first.numel()) - torch.repeat_interleave(
        torch.cumsum(later, 0) - later, later
    )
    second = first + 1 + offset
    return torch.stack([order[first], order[second]], 1)


def preference_pairs(groups: Tensor, scores: Tensor, max_per_group: int, seed: int) -> Tensor:
    """(P, 2) row pairs within a group whose scores differ, the preferred row first; at most
    ``max_per_group`` per group (a seeded sample of the larger ones)."""
    pairs = within_group_pairs(groups)
    if pairs.numel() == 0:
        return pairs
    diff = scores[pairs[:, 0]] - scores[pairs[:, 1]]
    pairs = pairs[diff != 0]
    flip = diff[diff != 0] < 0
    pairs = torch.where(flip.unsqueeze(1), pairs.flip(1), pairs)
    pair_group = groups[pairs[:, 0]]
    counts = torch.bincount(pair_group)
    if int(counts.max()) <= max_per_group:
        return pairs
    generator = torch.Generator().manual_seed(seed)
    keys = torch.rand(pairs.shape[0], generator=generator)  # random order within a group
    order = torch.argsort(pair_group.double() + keys)  # group-major, random within
    sorted_group = pair_group[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel()) - starts[sorted_group]
    keep = order[rank < max_per_group]
    return pairs[torch.sort(keep).values]


@dataclass
class JudgmentBatch:
    """pair_*: (P,) per pair, ``pair_items`` (P, 2) preferred item first; row_*: (Q,) per
    judgment (``row_targets`` the normalised score); population (U,) user indices."""

    pair_kind: Tensor
    pair_context: Tensor
    pair_items: Tensor
    pair_weight: Tensor
    pair_rater: Tensor
    row_kind: Tensor
    row_context: Tensor
    row_items: Tensor
    row_targets: Tensor
    row_weight: Tensor
    row_rater: Tensor
    population: Tensor

    def to(self, device: torch.device | str) -> JudgmentBatch:
        if self.population.device == torch.device(device):
            return self
        return JudgmentBatch(
            **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)}
        )

    def __len__(self) -> int:
        return int(self.pair_items.shape[0])


class JudgmentBatches:
    """The training loader: ``len`` batches per pass over the pairs; rows and the population
    are drawn at random for each batch. Seeded; each pass reshuffles (epoch-aware)."""

    def __init__(
        self,
        rows: pd.DataFrame,
        n_users: int,
        pair_batch_size: int = 256,
        row_batch_size: int = 256,
        population_size: int = 256,
        max_pairs_per_group: int = 20_000,
        seed: int = 0,
    ) -> None:
        if min(pair_batch_size, row_batch_size, population_size) < 1:
            raise ValueError("datamodule.judgment_batch_size and population_size must be >= 1")
        self.kind = torch.tensor(rows["context_kind"].to_numpy(np.int64))
        self.context = torch.tensor(rows["context"].to_numpy(np.int64))
        self.items = torch.tensor(rows["item"].to_numpy(np.int64))
        self.targets = torch.tensor(rows["z"].to_numpy(np.float32))
        self.weight = torch.tensor(rows["weight"].to_numpy(np.float32))
        self.rater = torch.tensor(rows["rater"].to_numpy(np.int64))
        groups = torch.tensor(rows["group"].to_numpy(np.int64))
        scores = torch.tensor(rows["score"].to_numpy(np.float64))
        self.pairs = preference_pairs(groups, scores, max_pairs_per_group, seed)  # (P, 2)
        self.n_users = n_users
        self.pair_batch_size, self.row_batch_size = pair_batch_size, row_batch_size
        self.population_size = min(population_size, n_users)
        self.seed, self.passes = seed, 0
        self.steps: int | None = None  # batches per pass; None: one pass over the pairs
        self.rank = 0  # DDP: each rank draws its own batches
        #: the trainer's epoch: a pass's draws depend on (seed, rank, epoch) only, so a run
        #: resumed at epoch e draws what the uninterrupted run drew; None: count the passes
        self.epoch_source: Callable[[], int] | None = None

    def __len__(self) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, -(-self.pairs.shape[0] // self.pair_batch_size))

    def to(self, device: torch.device) -> None:
        for name in ("kind", "context", "items", "targets", "weight", "rater", "pairs"):
            setattr(self, name, getattr(self, name).to(device))

    def __iter__(self) -> Iterator[JudgmentBatch]:
        device = self.items.device
        epoch = self.epoch_source() if self.epoch_source is not None else self.passes
        seed = self.seed + 1_000_003 * self.rank + epoch
        generator = torch.Generator(device=device).manual_seed(seed)
        self.passes += 1
        n_pairs, n_rows = self.pairs.shape[0], self.items.shape[0]
        order = torch.randperm(n_pairs, generator=generator, device=device)
        start = 0
        for _ in range(len(self)):
            if start >= n_pairs and n_pairs > 0:  # cycle: a fresh order over the pairs
                order, start = torch.randperm(n_pairs, generator=generator, device=device), 0
            chosen = self.pairs[order[start : start + self.pair_batch_size]]  # (P, 2)
            start += self.pair_batch_size
            a = chosen[:, 0]
            rows = torch.randint(
                max(n_rows, 1),
                (min(self.row_batch_size, n_rows),),
                generator=generator,
                device=device,
            )
            population = torch.randint(
                self.n_users, (self.population_size,), generator=generator, device=device
            )
            yield JudgmentBatch(
                pair_kind=self.kind[a],
                pair_context=self.context[a],
                pair_items=self.items[chosen],
                pair_weight=self.weight[a],
                pair_rater=self.rater[a],
                row_kind=self.kind[rows],
                row_context=self.context[rows],
                row_items=self.items[rows],
                row_targets=self.targets[rows],
                row_weight=self.weight[rows],
                row_rater=self.rater[rows],
                population=population,
            )


def history_table(items: Tensor, offsets: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Sequences ``items[offsets[u]:offsets[u + 1]]`` -> (table (U, width), lengths (U,)): the
    latest ``width`` items of each, right-aligned, 0-padded on the left."""
    sizes = offsets[1:] - offsets[:-1]
    lengths = sizes.clamp(max=width)
    n = sizes.numel()
    table = torch.zeros(n, width, dtype=torch.long)
    row = torch.repeat_interleave(torch.arange(n), lengths)
    # position from the right (0 = the latest item) of each kept item
    from_right = torch.arange(int(lengths.sum())) - torch.repeat_interleave(
        torch.cumsum(lengths, 0) - lengths, lengths
    )
    source = offsets[1:][row] - 1 - from_right
    table[row, width - 1 - from_right] = items[source]
    return table, lengths


@dataclass
class JudgmentEvalSet:
    """Held-out judgments of one slice: rows (Q,) and their within-group pairs (P, 2)."""

    kind: Tensor
    context: Tensor
    items: Tensor
    targets: Tensor  # the rater's score
    groups: Tensor
    pairs: Tensor

    def to(self, device: torch.device) -> JudgmentEvalSet:
        return JudgmentEvalSet(
            **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)}
        )


def eval_set(rows: pd.DataFrame, focus: np.ndarray) -> JudgmentEvalSet:
    """Rows of some groups and their within-group pairs that hold at least one ``focus`` row
    (focus (Q,) bool: the held-out judgments this set measures)."""
    groups = torch.tensor(rows["group"].to_numpy(np.int64))
    pairs = within_group_pairs(groups)
    wanted = torch.tensor(focus, dtype=torch.bool)
    pairs = pairs[wanted[pairs[:, 0]] | wanted[pairs[:, 1]]]
    return JudgmentEvalSet(
        kind=torch.tensor(rows["context_kind"].to_numpy(np.int64)),
        context=torch.tensor(rows["context"].to_numpy(np.int64)),
        items=torch.tensor(rows["item"].to_numpy(np.int64)),
        targets=torch.tensor(rows["score"].to_numpy(np.float64)),
        groups=groups,
        pairs=pairs,
    )


def stage_sets(frame: pd.DataFrame, stage: str) -> dict[str, JudgmentEvalSet]:
    """The evaluation slices of ``stage`` (val | test), metric prefix -> set:

    ``""``        by item: pairs with a held-out item of this stage (``item_<stage>``) and
                  another judgment of the same group (held out too, or a training one; never
                  one of the other stage's held-out items);
    ``cold/``     the same pairs, where the held-out item has no training interaction;
    ``by_rater/`` the held-out raters' groups of this stage (``rater_<stage>``), all pairs.
    Slices without a pair are left out.
    """
    held = frame["part"].to_numpy() == f"item_{stage}"
    other = "item_test" if stage == "val" else "item_val"
    in_groups = frame["group"].isin(frame.loc[held, "group"]).to_numpy()
    keep = in_groups & (frame["part"].to_numpy() != other)
    rows, focus = frame[keep].reset_index(drop=True), held[keep]
    cold = focus & rows["cold"].to_numpy(bool)
    rater_rows = frame[frame["part"] == f"rater_{stage}"].reset_index(drop=True)
    sets = {
        "": eval_set(rows, focus),
        "cold/": eval_set(rows, cold),
        "by_rater/": eval_set(rater_rows, np.ones(len(rater_rows), dtype=bool)),
    }
    return {prefix: chosen for prefix, chosen in sets.items() if chosen.pairs.shape[0] > 0}


class JudgmentData:
    """A prepared folder's judgments: the training loader and the evaluation slices.

    ``eval_sets(stage)`` -> metric prefix -> set (``EVAL_SLICES``; slices without a pair are
    left out); ``population`` is the fixed user sample that stands for "everyone" in
    evaluation (seeded, at most ``population_size`` users).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        n_users: int,
        pair_batch_size: int = 256,
        row_batch_size: int = 256,
        population_size: int = 256,
        eval_population_size: int = 2048,
        max_pairs_per_group: int = 20_000,
        seed: int = 0,
    ) -> None:
        train = frame[frame["part"] == "train"].reset_index(drop=True)
        self.train = JudgmentBatches(
            train,
            n_users,
            pair_batch_size,
            row_batch_size,
            population_size,
            max_pairs_per_group,
            seed,
        )
        generator = torch.Generator().manual_seed(seed)
        size = min(eval_population_size, n_users)
        self.population = torch.randperm(n_users, generator=generator)[:size]
        self._sets = {stage: stage_sets(frame, stage) for stage in ("val", "test")}

    @classmethod
    def load(cls, folder: str | Path, n_users: int, **kwargs: int) -> JudgmentData | None:
        frame = load_judgments(folder)
        return None if frame is None else cls(frame, n_users, **kwargs)

    def eval_sets(self, stage: str) -> dict[str, JudgmentEvalSet]:
        return self._sets.get(stage, {})

    def to(self, device: torch.device) -> None:
        self.train.to(device)
        self.population = self.population.to(device)
        self._sets = {
            stage: {k: v.to(device) for k, v in sets.items()} for stage, sets in self._sets.items()
        }
