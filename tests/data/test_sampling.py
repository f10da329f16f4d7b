"""NegativeSampler, the sorted-key membership test it is built on, and the evaluation negatives."""

from __future__ import annotations

import pytest
import torch

from hybridrec.data.sampling import (
    KeySet,
    NegativeSampler,
    pair_keys,
    sample_distinct_negatives,
    sorted_isin,
)

N_ITEMS = 20


def _sampler(positives: dict[int, list[int]], max_rounds: int = 50) -> NegativeSampler:
    users = torch.tensor([u for u, items in positives.items() for _ in items])
    items = torch.tensor([i for items in positives.values() for i in items])
    return NegativeSampler(pair_keys(users, items, N_ITEMS), N_ITEMS, max_rounds=max_rounds)


POSITIVES = {
    0: list(range(1, 16)),  # dense: only items 16..20 are negatives
    1: [2, 5, 7],
    2: [1, 20],
}


def test_pair_keys_are_unique_per_pair() -> None:
    users = torch.arange(4).repeat_interleave(N_ITEMS + 1)
    items = torch.arange(N_ITEMS + 1).repeat(4)
    keys = pair_keys(users, items, N_ITEMS)
    assert keys.unique().numel() == keys.numel()
    assert pair_keys(torch.tensor([2]), torch.tensor([3]), N_ITEMS).item() == 2 * 21 + 3


def test_never_returns_a_positive_or_padding() -> None:
    sampler = _sampler(POSITIVES)
    users = torch.tensor([0, 1, 2] * 40)
    generator = torch.Generator().manual_seed(0)
    negatives = sampler.sample(users, 10, generator=generator)
    assert negatives.shape == (120, 10)
    assert negatives.dtype == torch.long
    assert int(negatives.min()) >= 1 and int(negatives.max()) <= N_ITEMS
    for user, row in zip(users.tolist(), negatives.tolist()):
        assert not set(row) & set(POSITIVES[user]), (user, row)
    # the dense user only ever gets its five negatives, and all of them show up
    dense = set(negatives[users == 0].flatten().tolist())
    assert dense == {16, 17, 18, 19, 20}
    assert sampler.n_unresolved == 0


def test_n_unresolved_counts_exactly_the_positives_left_in_the_output() -> None:
    # 19 of 20 items positive and only 3 redraw rounds: some collisions must survive
    sampler = _sampler({0: list(range(1, 20)), 1: [4]}, max_rounds=3)
    users = torch.tensor([0, 1] * 50)
    negatives = sampler.sample(users, 8, torch.Generator().manual_seed(0))
    left = sum(
        item in (range(1, 20) if user == 0 else [4])
        for user, row in zip(users.tolist(), negatives.tolist())
        for item in row
    )
    assert left > 0
    assert sampler.n_unresolved == left
    assert set(negatives[1::2].flatten().tolist()).isdisjoint({4})


def test_user_without_positives_gets_any_item() -> None:
    sampler = _sampler(POSITIVES)
    negatives = sampler.sample(torch.full((200,), 5), 5, torch.Generator().manual_seed(0))
    assert set(negatives.flatten().tolist()) == set(range(1, N_ITEMS + 1))


def test_deterministic_with_a_seeded_generator() -> None:
    sampler = _sampler(POSITIVES)
    users = torch.tensor([0, 1, 2, 3] * 8)
    a = sampler.sample(users, 6, torch.Generator().manual_seed(7))
    b = sampler.sample(users, 6, torch.Generator().manual_seed(7))
    c = sampler.sample(users, 6, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_counts_unresolved_when_a_user_has_every_item() -> None:
    sampler = _sampler({**POSITIVES, 3: list(range(1, N_ITEMS + 1))}, max_rounds=5)
    users = torch.tensor([3, 1, 3])
    negatives = sampler.sample(users, 4, torch.Generator().manual_seed(0))
    assert sampler.n_unresolved == 2 * 4  # every sample of the two rows of user 3
    assert not set(negatives[1].tolist()) & set(POSITIVES[1])  # others still resolved
    sampler.sample(torch.tensor([3]), 2, torch.Generator().manual_seed(1))
    assert sampler.n_unresolved == 8 + 2  # accumulates


def test_empty_positive_set() -> None:
    sampler = NegativeSampler(torch.zeros(0, dtype=torch.long), N_ITEMS)
    negatives = sampler.sample(torch.tensor([0, 1]), 3, torch.Generator().manual_seed(0))
    assert negatives.shape == (2, 3) and int(negatives.min()) >= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sorted_isin_matches_python_in(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randint(0, 60, (25,), generator=generator)  # with repeats
    sorted_keys = torch.sort(keys).values
    query = torch.randint(-5, 70, (6, 7), generator=generator)  # below, inside and above
    got = sorted_isin(query, sorted_keys)
    assert got.shape == query.shape
    members = set(keys.tolist())
    expected = [[q in members for q in row] for row in query.tolist()]
    assert got.tolist() == expected


def test_sorted_isin_edges() -> None:
    keys = torch.tensor([3, 5, 9])
    query = torch.tensor([0, 3, 4, 5, 9, 10, 100])
    assert sorted_isin(query, keys).tolist() == [False, True, False, True, True, False, False]
    empty = sorted_isin(query, torch.zeros(0, dtype=torch.long))
    assert empty.dtype == torch.bool and not empty.any()


# --- sample_distinct_negatives (evaluation negatives) -------------------------------------------


def _keys(positives: dict[int, list[int]], n_items: int) -> torch.Tensor:
    users = torch.tensor([u for u, items in positives.items() for _ in items], dtype=torch.long)
    items = torch.tensor([i for items in positives.values() for i in items], dtype=torch.long)
    return pair_keys(users, items, n_items)


def test_distinct_negatives_rank_to_item_matches_python() -> None:
    # k = n_items: every row must hold exactly the user's unknown items, then padding
    positives = {**POSITIVES, 4: [20], 5: [1], 6: list(range(1, N_ITEMS + 1))}
    users = torch.tensor([0, 1, 2, 3, 4, 5, 6, 1])
    negatives, available = sample_distinct_negatives(
        users, N_ITEMS, _keys(positives, N_ITEMS), N_ITEMS, torch.Generator().manual_seed(0)
    )
    assert negatives.shape == (8, N_ITEMS)
    for user, row, n in zip(users.tolist(), negatives.tolist(), available.tolist()):
        unknown = set(range(1, N_ITEMS + 1)) - set(positives.get(user, []))
        assert n == len(unknown)
        assert sorted(row[:n]) == sorted(unknown) and row[n:] == [0] * (N_ITEMS - n)


@pytest.mark.parametrize("n_items", [20, 300, 5000])
def test_distinct_negatives_are_distinct_unknown_and_seeded(n_items: int) -> None:
    generator = torch.Generator().manual_seed(n_items)
    users = torch.arange(40)
    sizes = torch.randint(0, n_items, (40,), generator=generator)
    positives = {
        u: (torch.randperm(n_items, generator=generator)[: int(sizes[u])] + 1).tolist()
        for u in range(40)
    }
    keys = _keys(positives, n_items)
    k = 9

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_distinct_negatives(
            users, k, keys, n_items, torch.Generator().manual_seed(seed)
        )

    negatives, available = draw(1)
    for user, row, n in zip(users.tolist(), negatives.tolist(), available.tolist()):
        items = [i for i in row if i]
        assert len(items) == len(set(items)) == min(k, n), (user, row)
        assert not set(items) & set(positives[user])
    assert torch.equal(draw(1)[0], negatives)
    assert not torch.equal(draw(2)[0], negatives)


def test_distinct_negatives_are_uniform() -> None:
    # both paths: 300 unknown items (> 2k: draws) and 150 (<= 2k: a permutation)
    for n_items, k in ((300, 99), (150, 99)):
        users = torch.zeros(4000, dtype=torch.long)
        negatives, _ = sample_distinct_negatives(
            users, k, torch.zeros(0, dtype=torch.long), n_items, torch.Generator().manual_seed(3)
        )
        counts = torch.bincount(negatives.flatten(), minlength=n_items + 1)[1:].double()
        expected = 4000 * k / n_items
        assert counts.min() > 0.9 * expected and counts.max() < 1.1 * expected


def test_keyset_bitset_equals_the_sorted_search() -> None:
    gen = torch.Generator().manual_seed(3)
    keys = torch.randint(0, 5000, (800,), generator=gen)  # repeats included
    query = torch.randint(-20, 5100, (4000,), generator=gen)  # below, inside and past the range
    fast, slow = KeySet(keys), KeySet(keys, bitset_limit=0)
    assert fast.bits is not None and slow.bits is None
    expected = torch.tensor([int(q) in set(keys.tolist()) for q in query])
    assert torch.equal(fast.contains(query), expected)
    assert torch.equal(slow.contains(query), expected)
    assert not KeySet(torch.zeros(0, dtype=torch.long)).contains(query).any()


def test_sampler_draws_the_same_negatives_with_either_membership_check() -> None:
    users = torch.randint(0, 50, (3000,), generator=torch.Generator().manual_seed(0))
    items = torch.randint(1, 41, (3000,), generator=torch.Generator().manual_seed(1))
    fast = NegativeSampler(pair_keys(users, items, 40), 40)
    slow = NegativeSampler(pair_keys(users, items, 40), 40)
    slow.positives = KeySet(pair_keys(users, items, 40), bitset_limit=0)
    batch = torch.arange(50).repeat(20)
    a = fast.sample(batch, 6, torch.Generator().manual_seed(9))
    b = slow.sample(batch, 6, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    known = set(zip(users.tolist(), items.tolist(), strict=True))
    assert all((u, i) not in known for u, row in zip(batch.tolist(), a.tolist()) for i in row)
