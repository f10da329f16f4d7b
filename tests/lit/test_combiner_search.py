"""The combiner's search (lit/combiner.py): the shortcuts that rank only what a trial changes
(one item bucket's columns, one user bucket's rows) give exactly the whole ranking's NDCG, the
value a fit reports is the NDCG of the weights it chose, and greedy forward selection (the
search for four parts or more) is never below the best part, close to the whole grid, for a
fraction of its rankings. Where evaluation ranks a row's known items, the repeat offset is
fitted by the same rule (never again where people do not repeat, up where they do), and the
shortcuts stay exact with it."""

from __future__ import annotations

import torch
from torch import Tensor

from hybridrec.lit.combiner import OFFSETS, fit_combiner, greedy_selection
from hybridrec.lit.ranking import _Ranker
from hybridrec.lit.validation_rows import ValidationScores
from hybridrec.metrics import positive_ranks, ranking_metrics

K_AT = 10


class Composed:
    """What fit_combiner reads from and sets on a composed hybrid, without parts."""

    def __init__(self, n_parts: int, bucket: Tensor, allowed: Tensor, n_user_buckets: int = 1):
        self.names = [f"p{j}" for j in range(n_parts)]
        self.item_bucket, self.allowed = bucket, allowed
        self.weights = torch.full(allowed.shape, 1.0 / n_parts)
        self.offsets = torch.zeros(allowed.shape[1])
        self.n_user_buckets = n_user_buckets
        self.user_weights = torch.ones(n_parts, n_user_buckets)

    def set_weights(self, weights: Tensor) -> None:
        self.weights = weights

    def set_offsets(self, offsets: Tensor) -> None:
        self.offsets = offsets

    def set_user_weights(self, weights: Tensor) -> None:
        self.user_weights = weights

    def set_repeat(self, repeat: float) -> None:
        self.repeat = repeat


def reference(
    data: ValidationScores,
    bucket: Tensor,
    weights: Tensor,
    offsets: Tensor,
    factors: Tensor,
    repeat: float = 0.0,
) -> Tensor:
    """(R,) per-row NDCG@10 by the definition: the weighted sum (+ ``repeat`` at each row's
    known items), every column sorted."""
    column = weights[:, bucket].unsqueeze(1)  # (K, 1, N)
    if data.user_bucket is not None:
        column = column * factors[:, data.user_bucket].unsqueeze(2)  # (K, R, N)
    combined = (data.scores * column).sum(0) + offsets[bucket]
    if data.seen is not None:
        combined = combined + repeat * data.seen.float()
    combined = combined.masked_fill(data.masked, -torch.inf)
    ranks = positive_ranks(combined, data.positives, data.valid, ties="pessimistic")
    return ranking_metrics(ranks, K_AT).ndcg


def quarter_data(
    n_parts: int = 3, rows: int = 60, n: int = 50, seed: int = 0, user_buckets: int = 2
) -> tuple[ValidationScores, Tensor]:
    """Scores in quarters (every sum below exact in float32, so ties are exact ties), two
    positives per row (some padding), masked known items; and the items' buckets (0 = cold)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randint(-8, 9, (n_parts, rows, n), generator=generator).float() / 4
    positives = torch.randint(1, n, (rows, 2), generator=generator)
    valid = torch.ones(rows, 2, dtype=torch.bool)
    valid[::3, 1] = False
    masked = torch.rand(rows, n, generator=generator) < 0.1
    masked[:, 0] = True
    masked[torch.arange(rows).unsqueeze(1), positives] = False
    scores = scores.masked_fill(masked.unsqueeze(0), 0.0)
    bucket = torch.randint(0, 4, (n,), generator=generator)
    bucket[0] = 0
    user_bucket = torch.randint(0, user_buckets, (rows,), generator=generator)
    return ValidationScores(scores, masked, positives, valid, None, user_bucket), bucket


def test_ranking_one_bucket_or_one_user_bucket_apart_is_the_whole_ranking() -> None:
    data, bucket = quarter_data()
    ranker = _Ranker(data, bucket, K_AT, "pessimistic")
    assert ranker.by_bucket
    weights = torch.tensor([[0.25, 0.5, 0.0, 0.75], [0.5, 0.25, 1.0, 0.0], [0.25, 0.25, 0.0, 0.25]])
    offsets = torch.tensor([-0.5, 0.0, 0.25, 0.0])
    factors = torch.tensor([[1.0, 0.5], [1.0, 1.5], [1.0, 1.0]])
    whole = reference(data, bucket, weights, offsets, factors)
    assert torch.equal(ranker.ndcg_rows(weights, offsets, factors), whole)
    for g in range(4):
        apart = ranker.bucket_trials(g, weights, offsets, factors)
        for direction in ([1.0, 0.0, 0.0], [0.25, 0.25, 0.5], [0.0, 0.0, 0.0]):
            for offset in (OFFSETS[0], 0.0, 0.5):
                trial, trial_offsets = weights.clone(), offsets.clone()
                trial[:, g] = torch.tensor(direction)
                trial_offsets[g] = offset
                expected = reference(data, bucket, trial, trial_offsets, factors)
                assert torch.equal(apart.ndcg_rows(trial[:, g], offset), expected), (g, direction)
    for h in range(2):
        rows = ranker.user_rows(h)
        trial_factors = factors.clone()
        trial_factors[:, h] = torch.tensor([0.0, 1.5, 1.5])
        got = whole.clone()
        got[rows] = ranker.ndcg_rows(weights, offsets, trial_factors, rows)
        assert torch.equal(got, reference(data, bucket, weights, offsets, trial_factors))
    assert 0 < ranker.rankings  # counted


def test_the_fit_reports_the_ndcg_of_the_weights_it_chose() -> None:
    """Through accepted bucket, offset and user-bucket steps (whose shortcuts keep state), and
    the same choices as a fit whose every trial ranks every row and column."""
    for search, n_parts in (("grid", 3), ("greedy", 4)):
        data, bucket = quarter_data(n_parts, rows=120, seed=n_parts)
        # each part knows the answers of one item bucket: only a mix per bucket ranks them all
        for j in range(n_parts):
            rows = torch.arange(120)
            known = bucket[data.positives[:, 0]] == (j % 4)
            data.scores[j, rows[known], data.positives[known, 0]] += 2.0
        allowed = torch.ones(n_parts, 4, dtype=torch.bool)  # (weights in quarters: exact sums)
        model = Composed(n_parts, bucket, allowed, n_user_buckets=2)
        fit = fit_combiner(model, data, k=K_AT, step=0.25, min_gain=0.0, search=search)
        assert fit.history[0]["search"] == search and len(fit.history) > 1  # buckets moved
        expected = reference(data, bucket, fit.weights, fit.offsets, fit.user_weights)
        assert fit.ndcg == float(expected.mean())
        assert fit.ndcg >= max(fit.part_ndcg.values())
        assert torch.equal(model.weights, fit.weights)
        # every trial ranked whole: the same choices, at a higher cost
        whole = fit_combiner(
            Composed(n_parts, bucket, allowed, 2),
            data,
            K_AT,
            0.25,
            0.0,
            search=search,
            shortcuts=False,
        )
        assert whole.history == fit.history and torch.equal(whole.offsets, fit.offsets)
        assert torch.equal(whole.weights, fit.weights) and torch.equal(
            whole.user_weights, fit.user_weights
        )
        assert fit.rankings < whole.rankings


def test_greedy_selection_is_never_below_its_start_and_reaches_small_weights() -> None:
    # a value peaked at (0.8, 0.2, 0, 0): reachable as 4 + 1 additions
    target = torch.tensor([0.8, 0.2, 0.0, 0.0])
    weights, value, points = greedy_selection(lambda w: -float((w - target).abs().sum()), 4, 0, 20)
    assert torch.allclose(weights, target) and value == 0.0
    assert points < 20 * 4  # points met twice are ranked once
    start_only, start_value, _ = greedy_selection(lambda w: float(w[2]), 4, 2, 5)
    assert start_only.tolist() == [0.0, 0.0, 1.0, 0.0] and start_value == 1.0


def test_auto_searches_the_grid_up_to_three_parts_and_greedy_above() -> None:
    """With five parts greedy costs a fraction of the grid's 1,001 points and lands close to
    the grid's best, never below the best part."""
    for n_parts, expected in ((3, "grid"), (5, "greedy")):
        data, bucket = quarter_data(n_parts, rows=80, seed=7)
        data.scores[:2, torch.arange(80), data.positives[:, 0]] += torch.rand(2, 80) * 3
        bucket = torch.zeros_like(bucket)  # one bucket: the global search alone
        model = Composed(n_parts, bucket, torch.ones(n_parts, 1, dtype=torch.bool))
        fit = fit_combiner(model, data, k=K_AT, step=0.1)
        assert fit.history[0]["search"] == expected
        assert fit.ndcg >= max(fit.part_ndcg.values())
        if expected == "greedy":
            grid = fit_combiner(Composed(n_parts, bucket, model.allowed), data, search="grid")
            assert fit.history[0]["points"] < grid.history[0]["points"] / 5
            assert fit.rankings < grid.rankings / 5
            assert fit.ndcg >= grid.ndcg - 0.02


def with_known_items(data: ValidationScores, seed: int = 0) -> ValidationScores:
    """``data`` with three known items per row that evaluation ranks (not masked, no
    positive among them): what ``protocol.mask_known=false`` collects."""
    generator = torch.Generator().manual_seed(seed)
    rows, n = data.masked.shape
    seen = torch.zeros(rows, n, dtype=torch.bool)
    seen[torch.arange(rows).unsqueeze(1), torch.randint(1, n, (rows, 3), generator=generator)] = (
        True
    )
    seen[torch.arange(rows).unsqueeze(1), data.positives] = False
    seen &= ~data.masked
    data.seen = seen
    return data


def test_the_shortcuts_stay_exact_with_a_repeat_offset() -> None:
    data, bucket = quarter_data()
    data = with_known_items(data)
    ranker = _Ranker(data, bucket, K_AT, "pessimistic")
    ranker.repeat = -1.25
    weights = torch.tensor([[0.25, 0.5, 0.0, 0.75], [0.5, 0.25, 1.0, 0.0], [0.25, 0.25, 0.0, 0.25]])
    offsets = torch.tensor([-0.5, 0.0, 0.25, 0.0])
    factors = torch.tensor([[1.0, 0.5], [1.0, 1.5], [1.0, 1.0]])
    whole = reference(data, bucket, weights, offsets, factors, repeat=-1.25)
    assert not torch.equal(whole, reference(data, bucket, weights, offsets, factors))  # it acts
    assert torch.equal(ranker.ndcg_rows(weights, offsets, factors), whole)
    for g in range(4):
        apart = ranker.bucket_trials(g, weights, offsets, factors)
        trial = weights.clone()
        trial[:, g] = torch.tensor([0.0, 0.5, 0.5])
        expected = reference(data, bucket, trial, offsets, factors, repeat=-1.25)
        assert torch.equal(apart.ndcg_rows(trial[:, g], float(offsets[g])), expected), g
    rows = ranker.user_rows(1)
    got = whole.clone()
    got[rows] = ranker.ndcg_rows(weights, offsets, factors, rows)
    assert torch.equal(got, whole)


def test_the_repeat_offset_follows_whether_people_repeat() -> None:
    """Known items that score high and are never taken again: the fit ranks them last (the
    masked protocol's ranking, learned); known items that ARE the answers: it lifts them;
    no known item ranked (masked): nothing fitted, r = 0. Shortcuts or not, the same fit."""
    one = torch.zeros(50, dtype=torch.long)  # one item bucket: the global stage and r alone
    allowed = torch.ones(2, 1, dtype=torch.bool)
    data, _ = quarter_data(2, rows=100, seed=3, user_buckets=1)
    data.user_bucket = None
    data = with_known_items(data, seed=4)
    assert data.seen is not None
    scores = data.scores + 1.5 * data.seen.float()  # known items high, never the answer
    never = ValidationScores(**{**data.__dict__, "scores": scores})
    fit = fit_combiner(Composed(2, one, allowed), never, k=K_AT, step=0.25, search="grid")
    assert fit.repeat < 0 and fit.history[0]["repeat"] < 0  # fitted before the global search
    assert fit.ndcg == float(
        reference(never, one, fit.weights, fit.offsets, torch.ones(2, 1), fit.repeat).mean()
    )
    assert fit.ndcg > float(
        reference(never, one, fit.weights, fit.offsets, torch.ones(2, 1)).mean()
    )
    again = ValidationScores(**{**data.__dict__, "seen": data.seen.clone()})
    again.seen[torch.arange(100), again.positives[:, 0]] = True  # the first answer: had before
    fit_again = fit_combiner(Composed(2, one, allowed), again, k=K_AT, step=0.25, search="grid")
    assert fit_again.repeat > 0
    whole = fit_combiner(
        Composed(2, one, allowed), again, K_AT, 0.25, search="grid", shortcuts=False
    )
    assert whole.repeat == fit_again.repeat and whole.history == fit_again.history
    masked = ValidationScores(**{**data.__dict__, "seen": None})
    fit_masked = fit_combiner(Composed(2, one, allowed), masked, k=K_AT, step=0.25)
    assert fit_masked.repeat == 0.0 and fit_masked.history[0]["repeat"] == 0.0
    assert "repeat" not in [h["stage"] for h in fit_masked.history]
