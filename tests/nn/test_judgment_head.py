"""The judgment head's parts against hand computations: distinct tokens, s_J, the per-row
standardisation, the spec's refusals and the copy chosen by validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hybridrec.nn.contexts import EVERYONE, SEGMENT, USER
from hybridrec.nn.judgment_head import HeadSpec, JudgmentHead, distinct_tokens, standardise_rows


class _Tokens(nn.Module):
    """Stands for a text tower: its tokenised catalogue only."""

    def __init__(self, item_ids: torch.Tensor) -> None:
        super().__init__()
        self.item_ids, self.item_mask = item_ids, (item_ids > 0).long()


class _Model(nn.Module):
    """A TextRec-like model: ``items`` is a text tower (read through the isinstance check)."""

    def __init__(self, item_ids: torch.Tensor) -> None:
        super().__init__()
        self.items = _Tokens(item_ids)


def _head(monkeypatch: pytest.MonkeyPatch, l2: tuple[float, ...] = (0.1,)) -> JudgmentHead:
    import hybridrec.nn.judgment_head as module

    monkeypatch.setattr(module, "text_tower", lambda model: model.items)
    # items 1..3 (row 0 padding), tokens 1..4 (0 padding); item 2 repeats token 3
    ids = torch.tensor([[0, 0, 0], [1, 2, 0], [3, 3, 4], [2, 4, 0]])
    return JudgmentHead(HeadSpec(l2=l2, dim=2), _Model(ids), n_users=3, n_items=3, n_segments=2)


def test_distinct_tokens_keeps_each_token_once() -> None:
    ids = torch.tensor([[5, 5, 2, 0], [1, 2, 3, 4]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    kept = distinct_tokens(ids, mask)
    assert [sorted(v for v in row.tolist() if v >= 0) for row in kept] == [[2, 5], [1, 2, 3, 4]]


def test_scores_are_the_context_times_the_summed_token_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    head = _head(monkeypatch)
    with torch.no_grad():
        assert head.token_weight is not None
        head.token_weight.copy_(torch.arange(10.0).reshape(1, 5, 2))  # W[t] = (2t, 2t + 1)
        head.everyone.copy_(torch.tensor([[1.0, -1.0]]))
        head.segment_offsets[0, 1] = torch.tensor([0.5, 0.0])
        head.user_offsets[2, 0] = torch.tensor([0.0, 2.0])  # user 2, copy 0
    # item 2: tokens {3, 4} (3 once) -> phi = (6 + 8, 7 + 9) = (14, 16)
    kind = torch.tensor([EVERYONE, SEGMENT, USER])
    context = torch.tensor([0, 1, 2])
    scores = head(None, kind, context, torch.tensor([[2], [2], [2]]))  # type: ignore[arg-type]
    assert scores.shape == (1, 3, 1)
    expected = [14 - 16, 1.5 * 14 - 16, 14 + 16]
    assert scores[0, :, 0].tolist() == pytest.approx(expected)
    every = head.score_all(None, kind, context)  # type: ignore[arg-type]
    assert every.shape == (3, 4) and every[:, 2].tolist() == pytest.approx(expected)
    assert every[:, 0].tolist() == [0.0, 0.0, 0.0]  # padding: no token


def test_a_token_no_judgment_trained_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    head = _head(monkeypatch)
    scores = head(None, torch.tensor([EVERYONE]), torch.tensor([0]), torch.tensor([[1, 2]]))  # type: ignore[arg-type]
    (scores[0, 0, 0] - scores[0, 0, 1]).backward()
    assert head.token_weight is not None and head.token_weight.grad is not None
    grad = head.token_weight.grad[0].abs().sum(1)
    assert grad[1] > 0 and grad[3] > 0  # tokens of items 1 and 2
    assert grad[0] == 0  # padding


def test_penalty_and_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    head = _head(monkeypatch, l2=(0.0, 0.5))
    penalty = head.penalty()
    squared = head.everyone[1].detach().pow(2).sum()  # the only non-zero parameter at the start
    assert penalty.tolist() == pytest.approx([0.0, 0.5 * float(squared)])
    assert head.choose([0.7, math.nan]) == 0 and int(head.chosen) == 0
    assert head.choose([0.6, 0.8]) == 1 and int(head.chosen) == 1


def test_standardise_rows_over_the_catalogue_leaves_padding_out() -> None:
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0], [5.0, 4.0, 4.0, 4.0]])
    out = standardise_rows(scores)
    std = math.sqrt(2 / 3)
    assert out[0, 1:].tolist() == pytest.approx([-1 / std, 0.0, 1 / std])
    assert out[1, 1:].tolist() == [0.0, 0.0, 0.0]  # a constant row: no division by 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "words"}, "judgment.head.source='words'"),
        ({"l2": []}, "judgment.head.l2=[]"),
        ({"l2": [-1.0]}, "judgment.head.l2=[-1.0]"),
        ({"dim": 0}, "judgment.head.dim=0"),
        ({"shared": True}, "judgment.head.shared=true with source=tokens"),
    ],
)
def test_a_bad_spec_says_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HeadSpec(**kwargs)  # type: ignore[arg-type]
