"""Named value rules, each written once: what a value must be, as a test and as a sentence.

A :class:`Validator` holds the test (``ok``) and the sentence that says what was expected
(``expected``: "an int >= 1"). Two callers read the same object:

* the config check (:mod:`hybridrec.cli.checks`), before any data is read, calls it as a rule
  (``validator(value, cfg)`` -> None or the sentence) and reports every problem at once, each
  line naming the config key: ``datamodule.batch_size: got 0 (int); expected an int >= 1``;
* a constructor, for a library user who built it by hand, calls
  ``validator.require("datamodule.batch_size", value)``, which raises :class:`ArgumentError`
  with the same sentence: ``datamodule.batch_size=0: expected an int >= 1``.

So a range changes in one place and both callers agree. Rules that read other keys of the
config (the monitored metric against ``ks``, a term against the data) stay with the config
check; a rule a constructor makes too is named here (``SIZE``, ``EMBEDDING_L2``, ...).

This module imports nothing of hybridrec but :mod:`hybridrec.errors`: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hybridrec.errors import HybridrecError


class ArgumentError(HybridrecError, ValueError):
    """An argument outside its rule, raised by a constructor: ``key=value: expected ...``."""


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Validator:
    """A rule of one value: ``ok(value)``, and in words what it expects (``expected``)."""

    expected: str
    ok: Callable[[Any], bool]

    def __call__(self, value: Any, cfg: Any = None) -> str | None:
        """None where the value passes, else what was expected (the config check's rule;
        ``cfg``, the whole config, is not read by a one-value rule)."""
        return None if self.ok(value) else self.expected

    def require(self, key: str, value: Any) -> None:
        """Raise :class:`ArgumentError` ``key=value: expected ...`` where the value fails."""
        if not self.ok(value):
            raise ArgumentError(f"{key}={value!r}: expected {self.expected}")

    def or_null(self) -> Validator:
        """The same rule, null allowed too."""
        ok = self.ok
        return Validator(f"{self.expected}, or null", lambda v: v is None or ok(v))


# -- builders ---------------------------------------------------------------------------------
def int_min(low: int, note: str = "") -> Validator:
    """An int >= ``low``; ``note`` says what a special value means (" (0: all)")."""
    return Validator(f"an int >= {low}{note}", lambda v: is_int(v) and v >= low)


def number_min(low: float, note: str = "") -> Validator:
    return Validator(f"a number >= {low}{note}", lambda v: is_number(v) and v >= low)


def number_above(low: float) -> Validator:
    return Validator(f"a number > {low}", lambda v: is_number(v) and v > low)


def share(low_open: bool = False, high_open: bool = True) -> Validator:
    """A number in [0, 1), (0, 1), [0, 1] ..."""
    text = f"a number in {'(' if low_open else '['}0, 1{')' if high_open else ']'}"

    def ok(v: Any) -> bool:
        above = v > 0 if low_open else v >= 0
        below = v < 1 if high_open else v <= 1
        return is_number(v) and above and below

    return Validator(text, ok)


def one_of(options: Iterable[str], note: str = "") -> Validator:
    choices = tuple(options)
    return Validator(f"one of {', '.join(choices)}{note}", lambda v: v in choices)


def int_list(value: Any) -> bool:
    """A non-empty list of ints >= 1."""
    return isinstance(value, list) and bool(value) and all(is_int(v) and v >= 1 for v in value)


# -- the rules a constructor makes too ----------------------------------------------------------
#: Sizes and counts: batch sizes, dimensions, buckets.
SIZE = int_min(1)
#: Counts that may be 0: negatives per positive, patience.
COUNT = int_min(0)
#: ``embedding_l2`` (RecLitModule): the L2 weight on the embeddings of a batch.
EMBEDDING_L2 = number_min(0)
#: ``judgment_blend`` (RecLitModule's ``blend``): the judgment metric's share of val/blend.
JUDGMENT_BLEND = share(high_open=False)
#: ``model.combiner.buckets`` (ComposedHybrid's ``n_buckets``): popularity buckets, cold included.
COMBINER_BUCKETS = SIZE
#: ``model.combiner.user_buckets`` (ComposedHybrid's ``n_user_buckets``).
COMBINER_USER_BUCKETS = int_min(1, " (1: off)")


def tower_contract(model_name: str, has_towers: bool) -> str | None:
    """With a judgment term: None where the model has user and item vectors (the term scores
    judged items through them), else what was expected, naming the model."""
    if has_towers:
        return None
    return (
        "a model with the tower contract (user and item vectors, through which the judgment "
        f"term scores judged items; {model_name} has none): add model=mf, textrec, seqtext "
        "or hybrid, or drop the term (judgment=null)"
    )
