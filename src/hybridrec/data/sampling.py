"""Vectorised negative sampling, checked against each user's known positives.

Positives are kept as a :class:`KeySet` of keys ``user * (n_items + 1) + item``: a packed bitset
when the key range fits (checking a (B, K) block of candidates is one gather and a shift), else
one sorted tensor (one ``searchsorted``) — no Python loop over samples either way.

:class:`NegativeSampler` draws training negatives (with replacement, fresh every batch);
:func:`sample_distinct_negatives` draws the fixed evaluation negatives, distinct within a row.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pair_keys(users: Tensor, items: Tensor, n_items: int) -> Tensor:
    """(…) user/item index tensors -> (…) int64 keys, unique per pair."""
    return users.long() * (n_items + 1) + items.long()


def sorted_isin(query: Tensor, sorted_keys: Tensor) -> Tensor:
    """Elementwise ``query in sorted_keys`` for a sorted 1-D key tensor. Same shape as query."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool)
    position = torch.searchsorted(sorted_keys, query).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[position] == query


class KeySet:
    """Membership of int64 keys: ``keyset.contains(query)`` is ``query in keys`` elementwise.

    A packed bitset (one bit per possible key, ``span / 8`` bytes) when the key range is at most
    ``bitset_limit`` keys: 2**31 (256 MB) by default, so ML-1M's 22.4M (user, item) keys take
    2.8 MB and Amazon Beauty's 270M take 34 MB. Past that, the sorted keys and a binary search.
    On one CPU core the bitset checks 16,384 keys against ML-1M's 994,169 positives in a small
    fraction of the ``searchsorted`` time (docs/benchmarks.md "NeuMF on one CPU core").
    """

    def __init__(self, keys: Tensor, bitset_limit: int = 1 << 31) -> None:
        self.sorted_keys = torch.sort(keys.long().reshape(-1)).values  # (P,)
        self.span = int(self.sorted_keys[-1]) + 1 if self.sorted_keys.numel() else 0
        self.bits: Tensor | None = None  # (ceil(span / 8),) uint8
        if 0 < self.span <= bitset_limit:
            unique = torch.unique_consecutive(self.sorted_keys)
            words = torch.zeros((self.span + 7) // 8, dtype=torch.int32)
            # distinct bits of one byte: their sum is their OR
            words.index_add_(0, unique // 8, torch.bitwise_left_shift(1, unique % 8).int())
            self.bits = words.to(torch.uint8)

    def to(self, device: torch.device | str) -> KeySet:
        self.sorted_keys = self.sorted_keys.to(device)
        if self.bits is not None:
            self.bits = self.bits.to(device)
        return self

    def contains(self, query: Tensor) -> Tensor:
        """query (…) int64 -> (…) bool."""
        if self.bits is None:
            return sorted_isin(query, self.sorted_keys)
        inside = (query >= 0) & (query < self.span)
        safe = torch.where(inside, query, torch.zeros_like(query))
        word = self.bits[safe // 8].long()
        return inside & (torch.bitwise_right_shift(word, safe % 8) & 1).bool()


class NegativeSampler:
    """Uniform item negatives that are not among the user's positives.

    Items are 1..n_items (0 is padding and never sampled), or only those in ``pool`` (item
    indices: the cold_items protocol keeps its cold items out of training, negatives included).
    Collisions with a positive are redrawn, vectorised, up to ``max_rounds`` times; a user who
    has interacted with nearly the whole catalogue can keep a few positives after that, which
    is counted in ``n_unresolved``.
    """

    def __init__(
        self,
        positive_keys: Tensor,
        n_items: int,
        max_rounds: int = 50,
        pool: Tensor | None = None,
    ) -> None:
        self.positives = KeySet(positive_keys)
        self.n_items = n_items
        self.max_rounds = max_rounds
        self.pool = pool.long() if pool is not None else None  # (M,) items to draw from
        self.n_unresolved = 0

    def to(self, device: torch.device | str) -> NegativeSampler:
        self.positives.to(device)
        if self.pool is not None:
            self.pool = self.pool.to(device)
        return self

    def _draw(self, shape: tuple[int, ...], device: torch.device, generator) -> Tensor:
        if self.pool is None:
            return torch.randint(1, self.n_items + 1, shape, device=device, generator=generator)
        picks = torch.randint(0, self.pool.numel(), shape, device=device, generator=generator)
        return self.pool[picks]

    def sample(self, users: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """users (B,) -> negatives (B, k), each not a positive of its user."""
        shape = (users.shape[0], k)
        device = users.device
        negatives = self._draw(shape, device, generator)
        flat = negatives.view(-1)  # (B * k,)
        owners = users.long().repeat_interleave(k)  # (B * k,) the user of each draw
        # only the draws that hit a positive are re-checked in later rounds
        todo = torch.arange(flat.numel(), device=device)
        for _ in range(self.max_rounds):
            hit = self.positives.contains(pair_keys(owners[todo], flat[todo], self.n_items))
            todo = todo[hit]
            if todo.numel() == 0:
                return negatives
            flat[todo] = self._draw((todo.numel(),), device, generator)
        hit = self.positives.contains(pair_keys(owners[todo], flat[todo], self.n_items))
        self.n_unresolved += int(hit.sum())
        return negatives


def _rank_to_item(
    users: Tensor, ranks: Tensor, keys: Tensor, starts: Tensor, n_items: int
) -> Tensor:
    """The ``ranks``-th (0-based) item of 1..n_items that is not a known item of each user.

    users (B,), ranks (B, k), keys: sorted unique known pair keys, starts (B,): where each user's
    keys begin. With the user's known items k_0 < k_1 < ..., ``gap_j = k_j - 1 - j`` counts the
    unknown items below k_j, so the r-th unknown item is ``r + 1 + #{j: gap_j <= r}``: one
    ``searchsorted`` over keys ``user * (n_items + 1) + gap`` (sorted, as gaps grow per user).
    """
    stride = n_items + 1
    key_users, key_items = keys // stride, keys % stride
    first = torch.searchsorted(keys, key_users * stride)  # (P,) each key's user's first key
    gaps = key_items - 1 - (torch.arange(keys.numel()) - first)  # (P,)
    gap_keys = key_users * stride + gaps  # (P,) sorted
    query = users.unsqueeze(1) * stride + ranks  # (B, k)
    below = torch.searchsorted(gap_keys, query, right=True) - starts.unsqueeze(1)  # (B, k)
    return ranks + 1 + below


def _draw_ranks(n_available: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """(R,) counts -> (R, k) uniform ranks 0..n_available-1 (float64: exact up to 2**53)."""
    draw = torch.rand(n_available.numel(), k, generator=generator, dtype=torch.float64)
    top = n_available.unsqueeze(1)  # (R, 1)
    return torch.minimum((draw * top.double()).long(), top - 1)


def sample_distinct_negatives(
    users: Tensor,
    k: int,
    positive_keys: Tensor,
    n_items: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """users (B,) -> (negatives (B, k), n_available (B,)): per row ``k`` distinct items of
    1..n_items, none a positive of its user (CPU, vectorised, deterministic for a seeded
    ``generator``).

    A row is a uniform random ``k``-subset, in random order, of the user's unknown items. A
    user with fewer than ``k`` unknown items (``n_available < k``) gets all of them, then
    padding 0 — never a repeat. Rows are drawn in ranks among the user's unknown items (mapped
    to items by :func:`_rank_to_item`): rows with at most ``2k`` unknown items take the first
    ``k`` of a random permutation; the others draw ranks and redraw within-row repeats, each
    round on the rows that still have one (a repeat has probability < 1/2 there).
    """
    stride = n_items + 1
    keys = torch.unique(positive_keys.long())  # sorted, each known pair once
    keys = keys[(keys % stride) > 0]  # padding is never an item
    users = users.long()
    starts = torch.searchsorted(keys, users * stride)  # (B,)
    n_known = torch.searchsorted(keys, (users + 1) * stride) - starts  # (B,)
    n_available = n_items - n_known  # (B,)
    ranks = torch.zeros(users.numel(), k, dtype=torch.long)  # (B, k)

    dense = n_available <= 2 * k
    if dense.any():  # the first k of a random permutation of 0..a-1
        avail = n_available[dense].unsqueeze(1)  # (D, 1)
        width = max(int(avail.max()), k)
        noise = torch.rand(avail.shape[0], width, generator=generator, dtype=torch.float64)
        columns = torch.arange(width).unsqueeze(0)  # (1, W)
        noise = noise.masked_fill(columns >= avail, 2.0)  # ranks past a sort last
        ranks[dense] = noise.argsort(dim=1, stable=True)[:, :k]  # (D, k)

    rows = torch.nonzero(~dense).squeeze(1)  # (S,) more than 2k unknown items: draw ranks
    ranks[rows] = _draw_ranks(n_available[rows], k, generator)
    while rows.numel():  # redraw within-row repeats, on the rows that still have one
        values, order = ranks[rows].sort(dim=1, stable=True)  # (T, k) repeats side by side
        later = torch.zeros_like(values, dtype=torch.bool)
        later[:, 1:] = values[:, 1:] == values[:, :-1]  # all but the first of equal ranks
        repeat = torch.zeros_like(later).scatter(1, order, later)  # (T, k) in row order
        hit = repeat.any(dim=1)
        rows, repeat = rows[hit], repeat[hit]
        redraw = _draw_ranks(n_available[rows], k, generator)  # (T, k)
        ranks[rows] = torch.where(repeat, redraw, ranks[rows])

    negatives = _rank_to_item(users, ranks, keys, starts, n_items)  # (B, k)
    negatives = negatives.masked_fill(ranks >= n_available.unsqueeze(1), 0)  # short rows: pad
    return negatives, n_available
