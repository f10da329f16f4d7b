"""The Recommender's answers by hand on a tiny catalogue: a session's own items are left out
where the run's evaluation masked known items (and a request can say otherwise), and every
answer says what its scores are (the model's, or the popularity fallback's counts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hybridrec.export.pyfunc_model import masks_known
from hybridrec.export.recommender import Recommender
from hybridrec.lit.checkpoint import PAYLOAD
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.towers import ItemIdTower

N_ITEMS = 6
POPULARITY = np.array([0, 173, 40, 12, 90, 3, 7], dtype=np.float32)  # (N + 1,)


class _LatestItem(nn.Module):
    """A history tower whose user vector is the session's latest item's vector."""

    def forward(self, history: Tensor, lengths: Tensor, item_table: Tensor) -> Tensor:
        return item_table[history[:, -1]]  # (B, D)


def _recommender(**kwargs: Any) -> Recommender:
    """Item i is the unit vector at angle 0.1 i² (rad): a session's latest item scores itself
    1.0 and the others cos(their angle to it), all distinct: the viewed item first."""
    items = ItemIdTower(N_ITEMS, 2, init_std=None)
    angles = 0.1 * torch.arange(N_ITEMS + 1) ** 2
    with torch.no_grad():
        items.table.weight.copy_(torch.stack([angles.cos(), angles.sin()], 1))
    model = FactorizedModel(0, N_ITEMS, items, DotScorer(), history=_LatestItem())
    raw = [None, *(str(10 + i) for i in range(1, N_ITEMS + 1))]  # item index i is raw "1i"
    return Recommender(model, raw, [], POPULARITY, **kwargs)


def test_the_item_just_viewed_is_left_out_as_the_evaluation_did() -> None:
    # the request: an unknown id, then item "12" (index 2)
    request = {"recent_items": ["999999", "12"], "k": 3}
    kept = _recommender().recommend(**request)  # a run that ranked known items too
    assert kept["items"] == ["12", "11", "13"]  # item 2 at 0.4 rad: 1 at 0.1, 3 at 0.9
    assert kept["scores"] == pytest.approx([1.0, math.cos(0.3), math.cos(0.5)], abs=1e-6)
    masked = _recommender(exclude_recent=True)  # a run whose evaluation masked them
    answer = masked.recommend(**request)
    assert answer["items"] == ["11", "13", "14"] and answer["unknown_items"] == ["999999"]
    assert answer["scores"] == pytest.approx([math.cos(x) for x in (0.3, 0.5, 1.2)], abs=1e-6)
    # the request decides over the run's default, both ways
    assert masked.recommend(**request, exclude_recent=False)["items"] == kept["items"]
    assert _recommender().recommend(**request, exclude_recent=True)["items"] == answer["items"]
    # every item of the session, not only the latest
    two = masked.recommend(recent_items=["13", "12"], k=2)["items"]
    assert two == ["11", "14"]


def test_every_answer_says_what_its_scores_are() -> None:
    recommender = _recommender(exclude_recent=True)
    session = recommender.recommend(recent_items=["12"], k=2)
    assert (session["source"], session["score_kind"]) == ("session", "model")
    fallback = recommender.recommend(recent_items=["999999"], k=3)
    assert (fallback["source"], fallback["score_kind"]) == ("popularity", "count")
    assert fallback["items"] == ["11", "14", "12"]
    assert fallback["scores"] == [173.0, 90.0, 40.0]  # training interactions, as counted


@pytest.mark.parametrize(
    ("config", "spec", "expected"),
    [
        ({"protocol": {"name": "loo_full", "mask_known": True}}, {"layout": "pairs"}, True),
        ({"protocol": {"name": "loo_full", "mask_known": False}}, {"layout": "pairs"}, False),
        ({"protocol": {"name": "loo_sampled"}}, {"layout": "pairs"}, True),  # prepare's default
        ({"protocol": {"name": "temporal"}}, None, True),
        ({"protocol": {"name": "session"}}, {"layout": "sessions"}, False),  # GRU4Rec's repeats
        (None, None, True),  # a checkpoint without its run's config: DataSpec's default
    ],
)
def test_the_served_default_is_the_runs_protocol(
    config: dict[str, Any] | None, spec: dict[str, Any] | None, expected: bool
) -> None:
    saved = {PAYLOAD: {"spec": spec}, "hybridrec_config": config}
    assert masks_known(saved) is expected
