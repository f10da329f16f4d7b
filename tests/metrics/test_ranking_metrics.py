"""positive_ranks / ranking_metrics against values worked out by hand (written as literals)."""

from __future__ import annotations

import math

import pytest
import torch

from hybridrec.metrics import TIE_MODES, positive_ranks, ranking_metrics

INF = math.inf


def _metrics(ranks: torch.Tensor, k: int) -> dict[str, list[float]]:
    return {name: v.tolist() for name, v in ranking_metrics(ranks, k).as_dict(k).items()}


# --- one positive, sampled candidates ---------------------------------------------------------


def test_single_positive_rank_and_metrics() -> None:
    # the positive (col 0, 0.9) is beaten only by 0.95 -> 0-based rank 1
    scores = torch.tensor([[0.9, 0.1, 0.95, 0.3]])
    ranks = positive_ranks(scores, torch.tensor([[0]]))
    assert ranks.tolist() == [[1.0]]

    at1 = _metrics(ranks, 1)
    assert at1 == {"hr@1": [0.0], "recall@1": [0.0], "ndcg@1": [0.0], "mrr@1": [0.0]}

    at2 = _metrics(ranks, 2)
    assert at2["hr@2"] == [1.0]
    assert at2["recall@2"] == [1.0]
    assert at2["ndcg@2"] == pytest.approx([0.6309297535714575])  # 1 / log2(3)
    assert at2["mrr@2"] == pytest.approx([0.5])


def test_positive_in_first_place() -> None:
    ranks = positive_ranks(torch.tensor([[0.7, 0.1, 0.2]]), torch.tensor([[0]]))
    assert ranks.tolist() == [[0.0]]
    m = _metrics(ranks, 1)
    assert m == {"hr@1": [1.0], "recall@1": [1.0], "ndcg@1": [1.0], "mrr@1": [1.0]}


def test_positive_not_in_column_zero() -> None:
    # positives are column indices: col 3 holds 0.8, beaten by 0.9 and 0.85 -> rank 2
    scores = torch.tensor([[0.9, 0.1, 0.85, 0.8]])
    assert positive_ranks(scores, torch.tensor([[3]])).tolist() == [[2.0]]


# --- ties --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ties", "expected"), [("pessimistic", 3.0), ("optimistic", 0.0), ("average", 1.5)]
)
def test_ties_three_others_tied(ties: str, expected: float) -> None:
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.1]])  # 3 others tie with the positive
    ranks = positive_ranks(scores, torch.tensor([[0]]), ties=ties)
    assert ranks.tolist() == [[expected]]


@pytest.mark.parametrize(
    ("ties", "expected"), [("pessimistic", 2.0), ("optimistic", 1.0), ("average", 1.5)]
)
def test_ties_with_one_strictly_greater(ties: str, expected: float) -> None:
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1]])  # one above, one tied, one below
    ranks = positive_ranks(scores, torch.tensor([[0]]), ties=ties)
    assert ranks.tolist() == [[expected]]


def test_constant_model_scores_zero_under_pessimistic_ties() -> None:
    scores = torch.zeros(3, 100)  # 1 positive + 99 candidates, all the same score
    positives = torch.zeros(3, 1, dtype=torch.long)
    pess = positive_ranks(scores, positives)  # pessimistic is the default
    assert pess.tolist() == [[99.0]] * 3
    m = _metrics(pess, 10)
    assert m["hr@10"] == [0.0] * 3
    assert m["ndcg@10"] == [0.0] * 3
    assert m["mrr@10"] == [0.0] * 3
    # the same model would look perfect if ties were resolved in its favour
    assert _metrics(positive_ranks(scores, positives, ties="optimistic"), 10)["hr@10"] == [1.0] * 3
    assert positive_ranks(scores, positives, ties="average").tolist() == [[49.5]] * 3


def test_invalid_ties_mode_raises() -> None:
    with pytest.raises(ValueError, match="ties"):
        positive_ranks(torch.zeros(1, 3), torch.zeros(1, 1, dtype=torch.long), ties="random")
    assert set(TIE_MODES) == {"pessimistic", "optimistic", "average"}


# --- masked candidates ------------------------------------------------------------------------


def test_minus_inf_candidates_never_outrank() -> None:
    scores = torch.tensor([[-1e6, -INF, -INF, -2e6, -INF]])
    ranks = positive_ranks(scores, torch.tensor([[0]]))
    assert ranks.tolist() == [[0.0]]
    # a positive below one finite candidate ranks 1, whatever the -inf count
    scores = torch.tensor([[0.1, -INF, 0.2, -INF, -INF, -INF]])
    for ties in TIE_MODES:
        assert positive_ranks(scores, torch.tensor([[0]]), ties=ties).tolist() == [[1.0]]


# --- several positives per row ----------------------------------------------------------------


def test_multi_positive_row_with_padding() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    positives = torch.tensor([[1, 4, 0]])  # the third entry is padding
    valid = torch.tensor([[True, True, False]])
    ranks = positive_ranks(scores, positives, valid)
    assert ranks.tolist() == [[1.0, 4.0, INF]]

    at3 = _metrics(ranks, 3)  # one of two positives in the top 3, at rank 1
    assert at3["hr@3"] == [1.0]
    assert at3["recall@3"] == [0.5]
    # DCG = 1/log2(3); IDCG over min(2, 3) = 2 hits = 1 + 1/log2(3); ratio = 1/log2(6)
    assert at3["ndcg@3"] == pytest.approx([0.38685280723454163])
    assert at3["mrr@3"] == pytest.approx([0.5])

    at5 = _metrics(ranks, 5)  # both in the top 5
    assert at5["recall@5"] == [1.0]
    # (1/log2(3) + 1/log2(6)) / (1 + 1/log2(3))
    assert at5["ndcg@5"] == pytest.approx([0.6240505200038379])
    assert at5["mrr@5"] == pytest.approx([0.5])


def test_mrr_uses_the_best_positive() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.8, 0.7, 0.6]])
    ranks = positive_ranks(scores, torch.tensor([[0, 3]]))  # ranks 4 and 2
    assert ranks.tolist() == [[4.0, 2.0]]
    assert _metrics(ranks, 5)["mrr@5"] == pytest.approx([1 / 3])
    assert _metrics(ranks, 2)["mrr@2"] == [0.0]


def test_ideal_dcg_is_capped_at_k() -> None:
    # 4 positives, the top 2 ranks are positives: perfect at K=2 although only 2 of 4 are hit
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    ranks = positive_ranks(scores, torch.tensor([[0, 1, 2, 3]]))
    assert ranks.tolist() == [[0.0, 1.0, 2.0, 3.0]]
    m = _metrics(ranks, 2)
    assert m["ndcg@2"] == pytest.approx([1.0])
    assert m["recall@2"] == [0.5]
    assert m["hr@2"] == [1.0]


def test_batch_rows_with_different_positive_counts() -> None:
    scores = torch.tensor(
        [
            [0.2, 0.9, 0.1, 0.3, 0.0],  # one positive (col 2): 0.2, 0.9, 0.3 above -> rank 3
            [0.5, 0.4, 0.3, 0.2, 0.1],  # three positives (cols 0, 2, 4) -> ranks 0, 2, 4
        ]
    )
    positives = torch.tensor([[2, 0, 0], [0, 2, 4]])
    valid = torch.tensor([[True, False, False], [True, True, True]])
    ranks = positive_ranks(scores, positives, valid)
    assert ranks.tolist() == [[3.0, INF, INF], [0.0, 2.0, 4.0]]

    at3 = _metrics(ranks, 3)
    assert at3["hr@3"] == [0.0, 1.0]
    assert at3["recall@3"] == pytest.approx([0.0, 2 / 3])
    # row 1: DCG = 1 + 1/log2(4) = 1.5; IDCG(3) = 1 + 1/log2(3) + 1/2
    assert at3["ndcg@3"] == pytest.approx([0.0, 0.7039180890341347])
    assert at3["mrr@3"] == pytest.approx([0.0, 1.0])

    at5 = _metrics(ranks, 5)
    assert at5["hr@5"] == [1.0, 1.0]
    assert at5["recall@5"] == [1.0, 1.0]
    # row 0: 1/log2(5); row 1: (1 + 1/log2(4) + 1/log2(6)) / (1 + 1/log2(3) + 1/log2(4))
    assert at5["ndcg@5"] == pytest.approx([0.43067655807339306, 0.8854598815714874])
    assert at5["mrr@5"] == pytest.approx([0.25, 1.0])


def test_explicit_n_positives_overrides_the_finite_count() -> None:
    # one hit at rank 0, but the row really has 4 positives (3 were not scored)
    ranks = torch.tensor([[0.0, INF]])
    m = ranking_metrics(ranks, 10, n_positives=torch.tensor([4]))
    assert m.recall.tolist() == [0.25]
    # IDCG over min(4, 10) = 4 hits: 1 + 1/log2(3) + 1/2 + 1/log2(5)
    assert m.ndcg.tolist() == pytest.approx([1 / 2.5616063116448506])


def test_row_without_any_valid_positive_scores_zero() -> None:
    ranks = positive_ranks(
        torch.tensor([[0.3, 0.2]]), torch.tensor([[0]]), valid=torch.tensor([[False]])
    )
    assert ranks.tolist() == [[INF]]
    assert _metrics(ranks, 2) == {"hr@2": [0.0], "recall@2": [0.0], "ndcg@2": [0.0], "mrr@2": [0.0]}


# --- more than 4 positives per row: the sort + binary-search path -----------------------------


def _ranks_by_comparison(
    scores: torch.Tensor, positives: torch.Tensor, valid: torch.Tensor, ties: str
) -> torch.Tensor:
    """The same ranks through the <= 4 positives path: 4 positive columns per call."""
    chunks = [
        positive_ranks(scores, positives[:, i : i + 4], valid[:, i : i + 4], ties=ties)
        for i in range(0, positives.shape[1], 4)
    ]
    return torch.cat(chunks, 1)


# 6 positive columns per row (> 4: positive_ranks sorts each row instead of comparing)
MANY_SCORES = torch.tensor(
    [
        # cols: 0    1    2    3    4     5    6    7
        [0.9, 0.5, 0.5, 0.5, 0.2, -INF, 0.7, 0.5],
        [0.1, 0.2, 0.3, 0.4, 0.4, 0.4, -INF, 0.8],
    ]
)
MANY_POSITIVES = torch.tensor([[1, 0, 4, 6, 2, 7], [3, 7, 0, 1, 2, 0]])
MANY_VALID = torch.tensor([[True] * 6, [True] * 5 + [False]])  # row 1: 5 positives + padding


@pytest.mark.parametrize(
    ("ties", "expected"),
    [
        # row 0: col 1 (0.5) is below 0.9 and 0.7 (2 greater) and ties with cols 2, 3, 7
        #   (3 others): pessimistic 2 + 3 = 5, optimistic 2, average 2 + 1.5 = 3.5; cols 2 and
        #   7 are the same 0.5; col 0 (0.9) is first (0); col 4 (0.2): 0.9, 0.7 and the four
        #   0.5s above (6; the -inf of col 5 never is); col 6 (0.7): only 0.9 above (1).
        # row 1: col 3 (0.4): 0.8 above (1), ties with cols 4, 5 (2 others): 3 / 1 / 2;
        #   col 7 (0.8) first; col 0 (0.1): 0.2, 0.3, 3 x 0.4, 0.8 above (6); col 1 (0.2): 5;
        #   col 2 (0.3): 4; the padded sixth entry is inf.
        ("pessimistic", [[5.0, 0.0, 6.0, 1.0, 5.0, 5.0], [3.0, 0.0, 6.0, 5.0, 4.0, INF]]),
        ("optimistic", [[2.0, 0.0, 6.0, 1.0, 2.0, 2.0], [1.0, 0.0, 6.0, 5.0, 4.0, INF]]),
        ("average", [[3.5, 0.0, 6.0, 1.0, 3.5, 3.5], [2.0, 0.0, 6.0, 5.0, 4.0, INF]]),
    ],
)
def test_more_than_four_positives_uses_sorted_ranks(ties: str, expected: list[list[float]]) -> None:
    assert MANY_POSITIVES.shape[1] > 4  # the sort + searchsorted branch
    ranks = positive_ranks(MANY_SCORES, MANY_POSITIVES, MANY_VALID, ties=ties)
    assert ranks.tolist() == expected
    # the comparison path (<= 4 positives per call) gives the same ranks on the same data
    assert _ranks_by_comparison(MANY_SCORES, MANY_POSITIVES, MANY_VALID, ties).tolist() == expected


@pytest.mark.parametrize("ties", TIE_MODES)
def test_sorted_and_compared_ranks_agree_with_many_ties(ties: str) -> None:
    # integer scores in 0..4 over 30 candidates: nearly every positive ties with others
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (4, 30), generator=gen).float()
    scores[:, 7] = -INF  # a masked candidate in every row
    positives = torch.randint(0, 30, (4, 9), generator=gen)
    valid = torch.rand(4, 9, generator=gen) > 0.2
    sorted_ranks = positive_ranks(scores, positives, valid, ties=ties)
    assert torch.equal(sorted_ranks, _ranks_by_comparison(scores, positives, valid, ties))
