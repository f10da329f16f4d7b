"""One rule, two callers: the config check (before any data is read) and the constructor (for a
library user) refuse the same bad value with the same sentence, read from
:mod:`hybridrec.validators`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import Compose
from hybridrec.cli.checks import ConfigError, check_config
from hybridrec.data.batching.pairs import RecDataModule
from hybridrec.errors import HybridrecError
from hybridrec.lit import RecLitModule
from hybridrec.losses import BCELoss
from hybridrec.losses.human import JudgmentLoss
from hybridrec.nn import MF, NeuMF
from hybridrec.nn.composed import ComposedHybrid, popularity_buckets
from hybridrec.validators import (
    COMBINER_USER_BUCKETS,
    SIZE,
    ArgumentError,
    Validator,
    int_min,
    share,
)


def _module(**kwargs: object) -> None:
    model = kwargs.pop("model", None) or MF(n_users=2, n_items=3, embedding_dim=2)
    RecLitModule(model, BCELoss(), lambda p: torch.optim.SGD(p, lr=0.1), **kwargs)  # type: ignore[arg-type]


def _judgment_term() -> JudgmentLoss:
    return JudgmentLoss()


def _composed_user_buckets(value: int) -> None:
    parts = [MF(n_users=2, n_items=3, embedding_dim=2)]
    ComposedHybrid(parts, ["mf"], torch.ones(4), 1, n_user_buckets=value)


#: (overrides the config check refuses, the key it names, the constructor given the same value)
CASES: list[tuple[tuple[str, ...], str, Callable[[Path], None]]] = [
    (("embedding_l2=-0.5",), "embedding_l2", lambda _: _module(embedding_l2=-0.5)),
    (("judgment_blend=1.5",), "judgment_blend", lambda _: _module(blend=1.5)),
    (
        ("datamodule.batch_size=0",),
        "datamodule.batch_size",
        lambda root: RecDataModule(root, batch_size=0) and None,
    ),
    (
        ("datamodule.num_negatives=-1",),
        "datamodule.num_negatives",
        lambda root: RecDataModule(root, num_negatives=-1) and None,
    ),
    (
        ("model=hybrid", "model.combiner.buckets=0"),
        "model.combiner.buckets",
        lambda _: popularity_buckets(torch.ones(4), 0) and None,
    ),
    (
        ("model=hybrid", "model.combiner.user_buckets=0"),
        "model.combiner.user_buckets",
        lambda _: _composed_user_buckets(0),
    ),
]


@pytest.mark.parametrize(("overrides", "key", "construct"), CASES, ids=[case[1] for case in CASES])
def test_config_check_and_constructor_say_the_same(
    compose_cfg: Compose,
    tmp_path: Path,
    overrides: tuple[str, ...],
    key: str,
    construct: Callable[[Path], None],
) -> None:
    with pytest.raises(ConfigError) as checked:
        check_config(compose_cfg(*overrides))
    (problem,) = [p for p in checked.value.problems if p.key == key]
    with pytest.raises(ArgumentError) as built:  # before any file is read (tmp_path is empty)
        construct(tmp_path)
    name, expected = str(built.value).split(": expected ", 1)
    assert name.startswith(f"{key}=")
    assert expected == problem.expected
    assert isinstance(built.value, HybridrecError) and isinstance(built.value, ValueError)


def test_tower_contract_the_same_sentence(compose_cfg: Compose) -> None:
    with pytest.raises(ConfigError) as checked:
        check_config(compose_cfg("data=synthetic_marketing", "model=neumf", "judgment=bt"))
    (problem,) = [p for p in checked.value.problems if p.key == "model._target_"]
    model = NeuMF(n_users=2, n_items=3, gmf_dim=4, mlp_embedding_dim=4, hidden_dims=[4])
    with pytest.raises(ArgumentError) as built:
        _module(model=model, judgment=_judgment_term())
    assert str(built.value) == f"judgment: expected {problem.expected}"
    assert "NeuMF has none" in problem.expected


@pytest.mark.parametrize(
    ("validator", "good", "bad", "sentence"),
    [
        (SIZE, 1, 0, "an int >= 1"),
        (SIZE, 3, True, "an int >= 1"),  # a bool is no int
        (int_min(0, " (0: all)"), 0, -1, "an int >= 0 (0: all)"),
        (share(high_open=False), 1.0, 1.01, "a number in [0, 1]"),
        (share(low_open=True), 0.5, 0, "a number in (0, 1)"),
        (COMBINER_USER_BUCKETS, 1, 0, "an int >= 1 (1: off)"),
        (SIZE.or_null(), None, 0, "an int >= 1, or null"),
    ],
)
def test_a_validator_is_one_test_and_one_sentence(
    validator: Validator, good: object, bad: object, sentence: str
) -> None:
    assert validator(good) is None
    assert validator(bad) == sentence
    validator.require("key", good)
    with pytest.raises(ArgumentError, match=f"^key={bad!r}: expected ") as caught:
        validator.require("key", bad)
    assert str(caught.value).endswith(sentence)
