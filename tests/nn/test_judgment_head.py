"""The judgment head's parts against hand computations: distinct tokens, s_J, the per-row
standardisation, the spec's refusals and the copy chosen by validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hybridrec.nn.contexts import EVERYONE, SEGMENT, USER
from hybridrec.nn.judgment_head import (
    HeadSpec,
    JudgmentHead,
    distinct_tokens,
    field_tokens,
    standardise_rows,
)


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
        ({"fields": 0}, "judgment.head.fields=0"),
        ({"fields": 2, "source": "text"}, "judgment.head.fields=2 with source=text"),
        ({"map_l2": [0.1]}, "judgment.head.map_l2 with source=tokens"),
        ({"source": "tokens+id", "map_l2": []}, "judgment.head.map_l2=[]"),
    ],
)
def test_a_bad_spec_says_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HeadSpec(**kwargs)  # type: ignore[arg-type]


def test_field_tokens_count_the_separators_before_each_token() -> None:
    # "a b . c . d e" with "." = 9: fields 0 0 0 1 1 2 2; at most 2 fields -> 0 0 0 1 1 1 1
    ids = torch.tensor([[1, 2, 9, 3, 9, 4, 5, 0]])
    mask = (ids > 0).long()
    vocab = 10
    keys = field_tokens(ids, mask, separator=9, fields=3)
    assert keys[0, :7].tolist() == [1, 2, 9, 3 + vocab, 9 + vocab, 4 + 2 * vocab, 5 + 2 * vocab]
    keys = field_tokens(ids, mask, separator=9, fields=2)
    assert keys[0, :7].tolist() == [1, 2, 9, 13, 19, 14, 15]


class _Tokenizer:
    def token_to_id(self, token: str) -> int | None:
        return {".": 4}.get(token)


def test_fields_give_a_token_one_weight_per_field(monkeypatch: pytest.MonkeyPatch) -> None:
    import hybridrec.nn.judgment_head as module

    monkeypatch.setattr(module, "text_tower", lambda model: model.items)
    # item 1: "1 2 . 3"; item 2: "3 . 1": token 1 and 3 change field between the items
    ids = torch.tensor([[0, 0, 0, 0], [1, 2, 4, 3], [3, 4, 1, 0]])
    model = _Model(ids)
    model.items.tokenizer = _Tokenizer()  # type: ignore[assignment]
    head = JudgmentHead(HeadSpec(l2=(0.1,), dim=1, fields=2), model, 2, 2, 1)
    # V = 5 tokens; keys token + 5 * field, the largest 3 + 5 = 8
    assert head.token_weight is not None and head.token_weight.shape == (1, 9, 1)
    with torch.no_grad():
        head.token_weight.copy_(torch.arange(9.0).reshape(1, 9, 1))  # W[key] = key
        head.everyone.fill_(1.0)
    # item 1: 1 + 2 + 4 (field 0) + (3 + 5) = 15; item 2: 3 + 4 (field 0) + (1 + 5) = 13
    scores = head(None, torch.tensor([EVERYONE]), torch.tensor([0]), torch.tensor([[1, 2]]))  # type: ignore[arg-type]
    assert scores[0, 0].tolist() == [15.0, 13.0]
    model.items.tokenizer = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="field_separator='.' is not a token"):
        JudgmentHead(HeadSpec(fields=2), model, 2, 2, 1)


def test_map_l2_makes_a_copy_per_pair_and_weighs_the_map_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hybridrec.nn.judgment_head as module

    monkeypatch.setattr(module, "FusedItemTower", nn.Module)  # the stub stands for the hybrid's
    spec = HeadSpec(source="tokens+id", l2=[0.0, 1.0], map_l2=[0.5, 2.0])
    assert spec.l2 == (0.0, 0.0, 1.0, 1.0) and spec.map_l2 == (0.5, 2.0, 0.5, 2.0)
    head = JudgmentHead(HeadSpec(source="id", l2=[0.0], map_l2=[3.0]), _IdModel(), 2, 3, 1)
    assert head.map is not None
    expected = 3.0 * float(head.map[0].detach().pow(2).sum())
    assert head.penalty().tolist() == pytest.approx([expected])


class _IdModel(nn.Module):
    """A hybrid-like model: ``items.ids`` an ID tower, ``items.counts`` the interactions."""

    def __init__(self) -> None:
        super().__init__()
        from hybridrec.nn.towers import ItemIdTower

        self.items = nn.Module()
        self.items.ids = ItemIdTower(3, 4, init_std=0.1)
        self.items.counts = torch.tensor([0.0, 5.0, 0.0, 2.0])  # item 2: no interaction


def test_id_reads_zeros_for_an_item_without_interactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hybridrec.nn.judgment_head as module

    monkeypatch.setattr(module, "FusedItemTower", nn.Module)  # the stub stands for the hybrid's
    head = JudgmentHead(HeadSpec(source="id", linear=False), _IdModel(), 2, 3, 1)
    features = head.item_features(_IdModel())  # (K, N, D)
    assert features.shape == (4, 4, 4)
    assert features[:, 2].abs().sum() == 0 and features[:, 0].abs().sum() == 0
    assert features[:, 1].abs().sum() > 0 and features[:, 3].abs().sum() > 0
