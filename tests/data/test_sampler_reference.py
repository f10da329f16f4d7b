"""The fast vectorised samplers against slow, obviously correct reference samplers.

The references are plain Python loops: for each row, list the items the user may get (the pool,
or 1..n_items, minus the user's positives) and draw from that list with :mod:`random`. The
fast samplers must have the same support (never a positive, never padding 0, the pool
respected, every allowed item reachable) and the same distribution.

Distribution checks compare counts of many draws, fast vs reference, on a small catalogue:
a chi-square homogeneity test (the two samples come from one distribution) must not reject at
``P_MIN``, and the total-variation distance between the two empirical distributions must stay
under ``TV_MAX``. Seeds are fixed, so each check is deterministic; with fresh seeds a correct
sampler would fail one of the p-value checks with probability ``P_MIN``. ``TV_MAX`` is ~2.4x the
expected two-sample distance for the largest table here (336 cells, 60,000 draws a side:
~0.042; measured 0.041), 3x or more for the others (measured <= 0.035). A deliberately biased
sampler fails the check (``test_the_checks_reject_a_biased_sampler``): it has the power to see
a real bias.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Hashable, Iterable

import pytest
import torch

from hybridrec.data.sampling import KeySet, NegativeSampler, pair_keys, sample_distinct_negatives

N_ITEMS = 12
P_MIN = 1e-4
TV_MAX = 0.1

#: positives per user: dense (3 items left), sparse, none, both ends of the catalogue
POSITIVES: dict[int, list[int]] = {
    0: list(range(1, 10)),
    1: [2, 5, 7],
    2: [],
    3: [1, 12],
}
#: the cold_items protocol's pool: items outside it are never drawn
POOL = [2, 3, 4, 5, 6, 7, 8, 11]


def _keys(positives: dict[int, list[int]]) -> torch.Tensor:
    users = torch.tensor([u for u, items in positives.items() for _ in items], dtype=torch.long)
    items = torch.tensor([i for items in positives.values() for i in items], dtype=torch.long)
    return pair_keys(users, items, N_ITEMS)


def allowed_items(user: int, positives: dict[int, list[int]], pool: list[int] | None) -> list[int]:
    """What the user may be given: the pool (or every item) minus the user's positives."""
    candidates = pool if pool is not None else range(1, N_ITEMS + 1)
    return [item for item in candidates if item not in positives.get(user, [])]


def reference_negatives(
    users: list[int],
    k: int,
    positives: dict[int, list[int]],
    pool: list[int] | None,
    rng: random.Random,
) -> list[list[int]]:
    """k independent uniform draws (with replacement) from each row's allowed items."""
    return [[rng.choice(allowed_items(u, positives, pool)) for _ in range(k)] for u in users]


def reference_distinct(
    users: list[int], k: int, positives: dict[int, list[int]], rng: random.Random
) -> list[list[int]]:
    """A uniform random ordered k-subset of each row's allowed items; all of them (shuffled)
    then padding 0 when fewer than k are allowed."""
    rows = []
    for user in users:
        allowed = allowed_items(user, positives, None)
        picked = rng.sample(allowed, min(k, len(allowed)))
        rows.append(picked + [0] * (k - len(picked)))
    return rows


def homogeneity_p_value(a: Counter, b: Counter) -> float:
    """Chi-square test that counts ``a`` and ``b`` come from one distribution (2 x m table,
    m - 1 degrees of freedom); the p-value from the regularised upper incomplete gamma."""
    n_a, n_b = sum(a.values()), sum(b.values())
    cells = set(a) | set(b)
    statistic = 0.0
    for cell in cells:
        total = a[cell] + b[cell]
        for observed, n in ((a[cell], n_a), (b[cell], n_b)):
            expected = total * n / (n_a + n_b)
            statistic += (observed - expected) ** 2 / expected
    df = len(cells) - 1
    if df == 0:
        return 1.0
    half = torch.tensor([df / 2, statistic / 2], dtype=torch.float64)
    return float(torch.special.gammaincc(half[0], half[1]))


def total_variation(a: Counter, b: Counter) -> float:
    n_a, n_b = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[c] / n_a - b[c] / n_b) for c in set(a) | set(b))


def assert_same_distribution(fast: Iterable[Hashable], reference: Iterable[Hashable]) -> None:
    fast_counts, reference_counts = Counter(fast), Counter(reference)
    assert set(fast_counts) == set(reference_counts)  # same support: each reaches every cell
    p_value = homogeneity_p_value(fast_counts, reference_counts)
    distance = total_variation(fast_counts, reference_counts)
    assert p_value > P_MIN and distance < TV_MAX, (p_value, distance)


# -- NegativeSampler: training negatives, with replacement ------------------------------------

DRAWS = 20_000  # per user


def _fast(
    pool: list[int] | None, users: list[int], k: int, seed: int = 0, membership: str = "bitset"
) -> torch.Tensor:
    # user 0 may get 1 of the pool's 8 items: 200 redraw rounds leave a collision with
    # probability (7/8)**200 ~ 3e-12 (the default 50: ~1e-3 a draw, counted in n_unresolved)
    sampler = NegativeSampler(
        _keys(POSITIVES),
        N_ITEMS,
        max_rounds=200,
        pool=torch.tensor(pool) if pool is not None else None,
    )
    if membership == "sorted":  # the binary-search path KeySet takes past its bitset limit
        sampler.positives = KeySet(_keys(POSITIVES), bitset_limit=0)
    assert (sampler.positives.bits is not None) == (membership == "bitset")
    negatives = sampler.sample(torch.tensor(users), k, torch.Generator().manual_seed(seed))
    assert sampler.n_unresolved == 0
    return negatives


@pytest.mark.parametrize("membership", ["bitset", "sorted"])
@pytest.mark.parametrize("pool", [None, POOL], ids=["catalogue", "pool"])
def test_negative_sampler_support_and_distribution_match_the_reference(
    pool: list[int] | None, membership: str
) -> None:
    users = list(POSITIVES) * (DRAWS // 2)  # users interleaved in one call, 2 draws a row
    fast = _fast(pool, users, k=2, membership=membership)
    reference = reference_negatives(users, 2, POSITIVES, pool, random.Random(0))
    by_user = torch.tensor(users)
    for user in POSITIVES:
        rows = fast[by_user == user]  # (DRAWS / 2, 2)
        allowed = set(allowed_items(user, POSITIVES, pool))
        assert set(rows.flatten().tolist()) == allowed, user  # nothing else, all of it
        assert_same_distribution(
            rows.flatten().tolist(),
            [item for u, row in zip(users, reference) if u == user for item in row],
        )


def test_negative_sampler_columns_are_independent_draws() -> None:
    """The joint of two columns of one row matches the reference's independent pairs: the
    redraw rounds for collisions must not tie a column to the other (dense user: 2 of 3 draws
    collide at first)."""
    users = [0] * DRAWS
    fast = _fast(None, users, k=2, seed=1)
    reference = reference_negatives(users, 2, POSITIVES, None, random.Random(1))
    assert_same_distribution(map(tuple, fast.tolist()), map(tuple, reference))


def _biased_sample(users: list[int], k: int, rng: random.Random) -> list[list[int]]:
    """A plausible bug: a draw that hits a positive moves to the next allowed item above it
    (cyclically) instead of being redrawn, so items right after a run of positives win."""
    rows = []
    for user in users:
        allowed = allowed_items(user, POSITIVES, None)
        row = []
        for _ in range(k):
            item = rng.randint(1, N_ITEMS)
            row.append(next((a for a in allowed if a >= item), allowed[0]))
        rows.append(row)
    return rows


def test_the_checks_reject_a_biased_sampler() -> None:
    users = [3] * DRAWS  # positives 1 and 12: item 2 gets 1's and 12's draws (3x the others)
    biased = [i for row in _biased_sample(users, 1, random.Random(0)) for i in row]
    reference = [
        i for row in reference_negatives(users, 1, POSITIVES, None, random.Random(0)) for i in row
    ]
    fast = _fast(None, users, k=1).flatten().tolist()
    assert set(biased) == set(fast)  # the same support: only the distribution tells them apart
    with pytest.raises(AssertionError):
        assert_same_distribution(biased, reference)
    assert homogeneity_p_value(Counter(biased), Counter(reference)) < 1e-100


# -- sample_distinct_negatives: evaluation negatives, distinct within a row ---------------------

DISTINCT_POSITIVES: dict[int, list[int]] = {
    0: [1, 3, 5, 7, 9, 11, 12],  # 5 allowed, k = 3: the dense path (a random permutation)
    1: [2, 4, 6, 8],  # 8 allowed: the rank-drawing path with redraws of repeats
    2: list(range(1, 11)),  # 2 allowed < k: both, then padding
    3: [],  # all 12 allowed
}
K = 3
DISTINCT_DRAWS = 60_000  # per user


def _distinct(users: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return sample_distinct_negatives(
        torch.tensor(users),
        K,
        _keys(DISTINCT_POSITIVES),
        N_ITEMS,
        torch.Generator().manual_seed(seed),
    )


def test_distinct_negatives_support_distinctness_and_padding() -> None:
    users = list(DISTINCT_POSITIVES) * 500
    negatives, n_available = _distinct(users, seed=0)
    assert negatives.shape == (len(users), K)
    for user, row, available in zip(users, negatives.tolist(), n_available.tolist()):
        allowed = allowed_items(user, DISTINCT_POSITIVES, None)
        assert available == len(allowed)
        real = row[: min(K, available)]
        assert row[len(real) :] == [0] * (K - len(real))  # padding only past the real ones
        assert len(set(real)) == len(real)  # distinct within the row
        assert set(real) <= set(allowed)  # never a positive, never 0


@pytest.mark.parametrize("user", list(DISTINCT_POSITIVES))
def test_distinct_negatives_are_a_uniform_ordered_subset(user: int) -> None:
    """Each row is a uniform k-subset in uniform order, as ``random.sample``: compared as
    ordered tuples (a 3-permutation of 5 items: 60 cells; of 8: 336) and, for the 12-item
    user, as sets (220 cells); the short row as the order of its 2 items."""
    others = [u for u in DISTINCT_POSITIVES if u != user]
    users = [user, *others] * DISTINCT_DRAWS  # the user's rows among other users' rows
    negatives, _ = _distinct(users, seed=user + 1)
    fast = negatives[torch.tensor(users) == user].tolist()
    reference = reference_distinct(
        [user] * DISTINCT_DRAWS, K, DISTINCT_POSITIVES, random.Random(user)
    )
    cell = frozenset if user == 3 else tuple
    n_allowed = len(allowed_items(user, DISTINCT_POSITIVES, None))
    expected_cells = {
        cell(p + (0,) * (K - len(p)))
        for p in itertools.permutations(
            allowed_items(user, DISTINCT_POSITIVES, None), min(K, n_allowed)
        )
    }
    fast_cells = [cell(row) for row in fast]
    assert set(fast_cells) == expected_cells  # every ordered subset reachable, nothing else
    assert_same_distribution(fast_cells, (cell(row) for row in reference))
