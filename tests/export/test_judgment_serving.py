"""lambda and segment as request fields: the served answer ranks by z(s) + lambda z(s_J) (a
hand computation), lambda 0 is the model's own answer, the run's default applies when a request
gives none, and mistakes are one sentence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hybridrec.export.judgment import ServedJudgment
from hybridrec.export.recommender import Recommender, RequestError
from hybridrec.export.requests import check_request
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.towers import ItemIdTower

N_ITEMS = 5


class _Latest(nn.Module):
    def forward(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        return item_table[history[:, -1]]  # (B, D)


def _served(**judgment: Any) -> Recommender:
    """Model scores of a session whose latest item is 1: item i scores i (item 1's vector is
    (1, 0), item i's (i, i)); the head: phi_i = (1 if i is even else 0, i), everyone (0, -1)
    (prefers low indices), segment "students" (1, 0) (prefers even items)."""
    items = ItemIdTower(N_ITEMS, 2, init_std=None)
    with torch.no_grad():
        rows = [[0.0, 0.0], [1.0, 0.0], *[[float(i), float(i)] for i in range(2, 6)]]
        items.table.weight.copy_(torch.tensor(rows))
    model = FactorizedModel(0, N_ITEMS, items, DotScorer(), history=_Latest())
    phi = torch.tensor([[0.0, 0.0], *[[float(i % 2 == 0), float(i)] for i in range(1, 6)]])
    head = ServedJudgment(
        phi=phi,
        everyone=torch.tensor([0.0, -1.0]),
        segments={"students": torch.tensor([1.0, 0.0])},
        user_offsets=torch.zeros(0, 2),
        item_bias=None,
        **judgment,
    )
    raw = [None, *(str(i) for i in range(1, N_ITEMS + 1))]
    return Recommender(model, raw, [], None, judgment=head)


def _hand(lam: float, head: list[float]) -> list[str]:
    """Items 1..5 by z(model) + lam z(head), model scores 1..5 (item 1 scores 1: (1,0).(1,0))."""
    own = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    mine = np.array(head)
    total = (own - own.mean()) / own.std() + lam * (mine - mine.mean()) / mine.std()
    return [str(i + 1) for i in np.argsort(-total, kind="stable")]


def test_lambda_and_segment_rank_as_the_hand_sum() -> None:
    served = _served()
    request = {"recent_items": ["1"], "k": 5}
    assert served.recommend(**request)["items"] == ["5", "4", "3", "2", "1"]  # default 0
    everyone = [-1.0, -2.0, -3.0, -4.0, -5.0]  # (0, -1) . (even, i)
    students = [0.0, 1.0, 0.0, 1.0, 0.0]  # (1, 0) . (even, i)
    for lam in (0.5, 2.0):
        got = served.recommend(**request, judgment_lambda=lam)["items"]
        assert got == _hand(lam, everyone)
        got = served.recommend(**request, judgment_lambda=lam, segment="students")["items"]
        assert got == _hand(lam, students)
    assert _served(default_lambda=2.0).recommend(**request)["items"] == _hand(2.0, everyone)
    assert _served(default_lambda=2.0).recommend(**request, judgment_lambda=0)["items"] == [
        "5",
        "4",
        "3",
        "2",
        "1",
    ]


def test_mistakes_are_one_sentence() -> None:
    with pytest.raises(RequestError, match=r"segment='pensioners': expected one of \['students'\]"):
        _served().recommend(recent_items=["1"], k=3, segment="pensioners")
    plain = _served()
    plain.judgment = None
    with pytest.raises(RequestError, match="trained without a judgment head"):
        plain.recommend(recent_items=["1"], k=3, judgment_lambda=0.3)
    rows = check_request([{"recent_items": ["1"], "lambda": 0.3, "segment": "students"}])
    assert rows[0]["judgment_lambda"] == 0.3 and rows[0]["segment"] == "students"
    for bad in ({"lambda": -1}, {"lambda": "a lot"}, {"segment": 3}):
        with pytest.raises(Exception, match="row 0: (lambda|segment)"):
            check_request([{"recent_items": ["1"], **bad}])
