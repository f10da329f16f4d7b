"""Ranges and cross-key rules, and the types of the top-level keys: the declarative tables.

``RULES`` maps key patterns (fnmatch, ``*`` spans dots) to a check of the value, built from the
validators of :mod:`hybridrec.validators` (``int_min(1)``, ``share()``, ``one_of(...)``,
``.or_null()``; the named ones, ``SIZE``, ``EMBEDDING_L2``, ..., are those a constructor checks
too) or a cross-key check below that reads the whole config; the first rule whose pattern
matches a key applies (:func:`rule_for`). ``TOP_LEVEL_TYPES``
gives the types of the top-level keys of ``configs/train.yaml``, ``UNREAD_HINTS`` why a key
people try is not read.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from hybridrec.cli.checks.annotations import TargetNode
from hybridrec.cli.checks.targets import load_target, same_target
from hybridrec.data.batching.sequences import NEGATIVE_SAMPLINGS, ORDERS, TRAININGS
from hybridrec.data.preparation.judgments import (
    INVALID_MODES,
    KINDS,
    NORMALISE_MODES,
)
from hybridrec.data.preparation.judgments import RELIABILITY_MODES as DATA_RELIABILITY
from hybridrec.data.preparation.prepare import CATALOGUE_MODES
from hybridrec.data.preparation.protocols import EVAL_MODES
from hybridrec.data.preparation.text import MISSING_MODES
from hybridrec.data.pseudonyms import KINDS as PSEUDONYM_KINDS
from hybridrec.data.raw import INTERACTION_COLUMNS
from hybridrec.losses.human import EVERYONE_MODES
from hybridrec.losses.human import RELIABILITY_MODES as LOSS_RELIABILITY
from hybridrec.metrics import TIE_MODES, RankingMetrics
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.gru4rec import EMBEDDINGS
from hybridrec.nn.hybrid import FUSIONS, HEADS, HISTORY_ENCODERS, INITS, USER_COMBINES
from hybridrec.nn.judgment_head import SOURCES as HEAD_SOURCES
from hybridrec.nn.seqrec import ENCODERS as USER_ENCODERS
from hybridrec.nn.textrec import ADAPTORS, ENCODERS
from hybridrec.validators import (
    COMBINER_BUCKETS,
    COMBINER_USER_BUCKETS,
    COUNT,
    EMBEDDING_L2,
    JUDGMENT_BLEND,
    SIZE,
    Validator,
    int_list,
    int_min,
    is_int,
    is_number,
    number_above,
    number_min,
    one_of,
    share,
    tower_contract,
)

# -- cross-key checks ---------------------------------------------------------------------------
#: A check takes the value and the whole config; returns None, or what was expected.
Check = Callable[[Any, DictConfig], "str | None"]


def _check_pseudonymise(value: Any, cfg: DictConfig) -> str | None:
    """``data.pseudonymise``: true, false or a list of the kinds of id to hash."""
    if isinstance(value, bool):
        return None
    kinds = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if kinds is not None and kinds and all(k in PSEUDONYM_KINDS for k in kinds):
        return None
    return f"true, false or a non-empty list of {', '.join(PSEUDONYM_KINDS)}"


def _devices_ok(value: Any) -> bool:
    if is_int(value):
        return value >= 1 or value == -1
    if isinstance(value, str):
        return value == "auto" or re.fullmatch(r"-1|\d+(,\s*\d+)*,?", value.strip()) is not None
    return isinstance(value, list) and bool(value) and all(is_int(v) and v >= 0 for v in value)


def _batches_ok(value: Any) -> bool:
    return (is_int(value) and value >= 0) or (isinstance(value, float) and 0 <= value <= 1)


def _valid_ks(cfg: DictConfig) -> list[int] | None:
    """The config's ``ks`` as a list, or None where it is not a valid one (its own rule says)."""
    ks = cfg.get("ks") if isinstance(cfg, DictConfig) else None
    plain = OmegaConf.to_container(ks) if isinstance(ks, ListConfig) else None
    return plain if int_list(plain) else None  # type: ignore[return-value]


# val/ndcg@10, val/cold/recall@20: an optional slice, a metric, a cut-off
_MONITOR = re.compile(r"val/(?:(?P<slice>cold|warm)/)?(?P<metric>[^/@]+)@(?P<k>\d+)")


_JUDGMENT_MONITOR = re.compile(
    r"val/(?:(?:cold|by_rater)/)?(?:marketer_agreement|kendall_tau)|val/blend"
)


def _check_monitor(value: Any, cfg: DictConfig) -> str | None:
    """``val/<metric>@<k>``: a metric the module logs, at a cut-off in ``ks``; or, with
    judgments, ``val/[cold/|by_rater/]marketer_agreement|kendall_tau`` and ``val/blend``."""
    if isinstance(value, str) and _JUDGMENT_MONITOR.fullmatch(value):
        if OmegaConf.select(cfg, "data.judgments", default=None) is None:
            return "a ranking metric: judgment metrics need data.judgments (docs/judgments.md)"
        if value == "val/blend" and not OmegaConf.select(cfg, "judgment_blend", default=0):
            return "val/blend is logged only with judgment_blend > 0"
        return None
    metrics = [f.name for f in dataclasses.fields(RankingMetrics)]
    ks = _valid_ks(cfg)
    expected = f"val/<metric>@<k> with <metric> one of {', '.join(metrics)}"
    if ks is not None:
        expected += f" and <k> in ks {ks}"
    match = _MONITOR.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["metric"] not in metrics:
        return expected
    if ks is not None and int(match["k"]) not in ks:
        return f"{expected} (add {match['k']} to ks, or monitor a k in ks)"
    protocol = OmegaConf.select(cfg, "protocol._target_", default=None)
    if match["slice"] and not (
        isinstance(protocol, str)
        and same_target(protocol, "hybridrec.data.preparation.protocols.ColdItems")
    ):
        return f"{expected}; val/{match['slice']}/... only with protocol=cold_items"
    return None


def _check_judgment_weight(value: Any, cfg: DictConfig) -> str | None:
    """lambda >= 0, and a term needs data with judgments."""
    if not (is_number(value) and value >= 0):
        return "a number >= 0 (lambda; 0 = the base loss)"
    if OmegaConf.select(cfg, "data.judgments", default=None) is None:
        return (
            "a term without judgments to learn from: this data has none (data.judgments is "
            "null); use data=synthetic_marketing or set data.judgments (docs/judgments.md), or "
            "judgment=null"
        )
    return None


def _check_head_source(value: Any, cfg: DictConfig) -> str | None:
    """``judgment.head.source``: one of the head's sources; ``shared`` needs the model's own."""
    if value not in HEAD_SOURCES:
        return f"one of {', '.join(HEAD_SOURCES)}"
    if value == "tokens" and OmegaConf.select(cfg, "judgment.head.shared", default=False):
        return "text, id or item with judgment.head.shared=true (tokens are the head's own map)"
    return None


def _check_judgment_model(value: Any, cfg: DictConfig) -> str | None:
    """With a judgment term, a model with the tower contract: the term scores judged items
    through its user and item vectors (the check ``RecLitModule`` makes when built, known here
    from the config before any data is prepared)."""
    if OmegaConf.select(cfg, "judgment", default=None) is None or not isinstance(value, str):
        return None
    model = load_target(value)
    if isinstance(model, str) or not isinstance(model, type):
        return None  # a target that does not import is reported as such
    return tower_contract(model.__name__, issubclass(model, FactorizedModel))


def _check_table_columns(value: Any, cfg: DictConfig) -> str | None:
    """``data.source.columns`` of ``data=csv``: our names (each a key of configs/data/csv.yaml)
    -> the file's column, or null (a same-named column if the file has one)."""
    if not isinstance(value, dict):
        return None  # its type is checked against read_table's annotation
    unknown = [str(k) for k in value if k not in INTERACTION_COLUMNS]
    if unknown:
        return (
            f"keys among {', '.join(INTERACTION_COLUMNS)} (the columns the reader knows), "
            f"not {', '.join(repr(k) for k in unknown)}"
        )
    return None


def _check_history(value: Any, cfg: DictConfig) -> str | None:
    """The hybrid's history tower: one of the encoders, and only with sequence batches."""
    expected = f"one of {', '.join(HISTORY_ENCODERS)}, or null"
    if value is not None and value not in HISTORY_ENCODERS:
        return expected
    if OmegaConf.select(cfg, "model.combine", default="joint") == "composed":
        return None  # the joint model's keys: each part is checked as its own run
    datamodule = OmegaConf.select(cfg, "datamodule._target_", default=None)
    sequences = isinstance(datamodule, str) and same_target(
        datamodule, "hybridrec.data.batching.sequence_datamodule.SequenceDataModule"
    )
    if value is not None and isinstance(datamodule, str) and not sequences:
        return (
            "null with the pair datamodule, which gives no user sequences (a history tower "
            "needs datamodule=next_item loss=xe)"
        )
    return None


def _grid_step(value: Any) -> bool:
    """The combiner's grid step: the simplex grid has round(1 / step) steps of it."""
    return is_number(value) and 0 < value <= 1 and abs(round(1 / value) * value - 1) < 1e-9


# -- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """``check`` applies to every key whose dotted path matches ``pattern`` (fnmatch: ``*``
    spans dots), under a node whose ``_target_`` is ``target`` when one is given. The first
    matching rule applies."""

    pattern: str
    check: Check
    target: str | None = None


RULES: tuple[Rule, ...] = (
    # the run
    Rule("seed", int_min(0)),
    Rule("*.seed", int_min(0)),
    Rule("threads", int_min(1).or_null()),
    Rule("ks", Validator("a non-empty list of ints >= 1", int_list)),
    Rule("ties", one_of(TIE_MODES)),
    Rule("monitor", _check_monitor),
    Rule("embedding_l2", EMBEDDING_L2),
    # trainer
    Rule(
        "trainer.max_epochs",
        Validator(
            "an int >= 1, or -1 for no limit", lambda v: is_int(v) and (v >= 1 or v == -1)
        ).or_null(),
    ),
    Rule("trainer.min_epochs", int_min(0).or_null()),
    Rule(
        "trainer.devices",
        Validator("an int >= 1 (or -1: all), 'auto', or a list of device indices", _devices_ok),
    ),
    Rule("trainer.num_nodes", SIZE),
    Rule("trainer.check_val_every_n_epoch", SIZE.or_null()),
    Rule("trainer.accumulate_grad_batches", SIZE),
    Rule(
        "trainer.*_batches",
        Validator("an int >= 0 (batches) or a float in [0, 1] (a share)", _batches_ok).or_null(),
    ),
    # optimizer
    Rule("optimizer.lr", number_above(0)),
    Rule("optimizer.weight_decay", number_min(0)),
    Rule("optimizer.momentum", share()),
    Rule("optimizer.eps", number_above(0)),
    # datamodule
    Rule("datamodule.*batch_size", SIZE),
    Rule("datamodule.num_negatives", COUNT),
    Rule("datamodule.n_negatives", int_min(0)),
    Rule("datamodule.negatives", int_min(0, " (0: the whole catalogue)")),
    Rule("datamodule.negative_sampling", one_of(NEGATIVE_SAMPLINGS)),
    Rule("datamodule.sample_alpha", share(high_open=False)),
    Rule("datamodule.max_history", int_min(0, " (0: all)")),
    Rule("datamodule.max_length", SIZE),
    Rule("datamodule.order", one_of(ORDERS)),
    Rule("datamodule.training", one_of(TRAININGS)),
    # protocol
    Rule("protocol.eval_mode", one_of(EVAL_MODES)),
    Rule("protocol.n_negatives", int_min(0)),
    Rule("protocol.cold_share", share(low_open=True)),
    Rule("protocol.val_share", share()),
    Rule("protocol.candidates", one_of(("all", "cold", "slice"))),
    Rule("protocol.other_slice", one_of(("keep", "mask"))),
    Rule("protocol.*_fraction", share(low_open=True)),
    Rule("protocol.test_days", number_above(0)),
    Rule("protocol.val_days", number_min(0)),
    Rule("protocol.min_session_length", SIZE),
    Rule("protocol.min_item_support", SIZE),
    # data
    Rule("data.name", Validator("a non-empty str", lambda v: isinstance(v, str) and bool(v))),
    Rule("data.min_*_interactions", int_min(0, " (0: keep all)")),
    Rule("data.text.missing", one_of(MISSING_MODES)),
    Rule("data.catalogue_items", one_of(CATALOGUE_MODES)),
    Rule("data.pseudonymise", _check_pseudonymise),
    Rule(
        "data.source.columns",
        _check_table_columns,
        target="hybridrec.data.readers.tables.read_table",
    ),
    Rule("data.judgments.kind", one_of(KINDS)),
    Rule("data.judgments.invalid", one_of(INVALID_MODES)),
    Rule("data.judgments.normalise", one_of(NORMALISE_MODES)),
    Rule("data.judgments.reliability", one_of(DATA_RELIABILITY)),
    Rule("data.judgments.held_out_items", share()),
    Rule("data.judgments.max_pairs_per_group", SIZE),
    # the human-rating term
    Rule("judgment_blend", JUDGMENT_BLEND),
    Rule("judgment.weight", _check_judgment_weight),
    Rule("model._target_", _check_judgment_model),
    Rule("judgment.warmup_steps", int_min(0)),
    Rule("judgment.pairwise", number_min(0)),
    Rule("judgment.pointwise", number_min(0)),
    Rule("judgment.reliability", one_of(LOSS_RELIABILITY)),
    Rule("judgment.everyone", one_of(EVERYONE_MODES)),
    Rule("judgment.head.source", _check_head_source),
    Rule("judgment.head.lr", number_above(0).or_null()),
    Rule("judgment.head.serving_lambda", number_min(0)),
    Rule(
        "judgment.head.l2",
        Validator(
            "a non-empty list of numbers >= 0",
            lambda v: (
                isinstance(v, (list, ListConfig))
                and len(v) > 0
                and all(is_number(x) and x >= 0 for x in v)
            ),
        ),
    ),
    Rule(
        "judgment.crowd_bt_init",
        Validator("a number in (0.5, 1)", lambda v: is_number(v) and 0.5 < v < 1),
    ),
    # model (and its sub-nodes such as model.text)
    Rule("*dropout*", share()),
    Rule(
        "model.embedding_dim",
        int_min(0, " (0: none, unless embedding=separate)"),
        target="hybridrec.nn.GRU4Rec",
    ),
    Rule("*ffn_dim", int_min(0, " (0: 4 * dim)")),
    Rule("*_dim", SIZE),  # embedding_dim, gmf_dim, mlp_embedding_dim
    Rule("*.dim", SIZE),
    Rule("*hidden_dims", Validator("a non-empty list of ints >= 1", int_list)),
    Rule(
        "model.layers",
        Validator(
            "an int >= 1 or a non-empty list of ints >= 1",
            lambda v: (is_int(v) and v >= 1) or int_list(v),
        ),
    ),
    Rule("*heads", SIZE),
    Rule("*transformer_layers", SIZE),
    Rule("*trainable_layers", int_min(0, " (0: frozen)")),
    Rule("*experts", SIZE),
    Rule("*vocab_size", SIZE),
    Rule("model*.max_length", SIZE),
    Rule("model*.init_std", number_min(0)),
    Rule("model.temperature", number_above(0).or_null()),
    Rule("model.neighbours", SIZE),
    Rule("model.lam", number_min(0)),
    Rule("model.alpha", share(high_open=False)),
    Rule("model.embedding", one_of(EMBEDDINGS)),
    Rule("model.encoder", one_of(USER_ENCODERS), target="hybridrec.nn.SeqRec"),
    Rule("model.history", _check_history, target="hybridrec.nn.Hybrid"),
    Rule("model.combine", one_of(("composed", "joint")), target="hybridrec.nn.Hybrid"),
    Rule("model.fusion", one_of(FUSIONS), target="hybridrec.nn.Hybrid"),
    Rule("model.head", one_of(HEADS), target="hybridrec.nn.Hybrid"),
    Rule("model.init", one_of(INITS), target="hybridrec.nn.Hybrid"),
    Rule("model.user_combine", one_of(USER_COMBINES), target="hybridrec.nn.Hybrid"),
    Rule("model.id_shrinkage", number_min(0), target="hybridrec.nn.Hybrid"),
    Rule("model.align", number_min(0), target="hybridrec.nn.Hybrid"),
    Rule("model.gate_bias", Validator("a number", is_number), target="hybridrec.nn.Hybrid"),
    Rule("model.head_layers", Validator("a non-empty list of ints >= 1", int_list)),
    # the composed hybrid's combiner and its text student (lit/combiner.py, lit/student.py)
    Rule("model.combiner.buckets", COMBINER_BUCKETS),
    Rule("model.combiner.user_buckets", COMBINER_USER_BUCKETS),
    Rule(
        "model.combiner.step",
        Validator("a number in (0, 1] that divides 1 (0.05, 0.1, 0.25)", _grid_step),
    ),
    Rule(
        "model.combiner.search",
        one_of(("auto", "grid", "greedy"), " (auto: the grid up to three parts, greedy above)"),
    ),
    Rule("model.combiner.min_gain", number_min(0)),
    Rule("model.combiner.max_rows", SIZE),
    Rule("model.combiner.student.hidden", int_min(0, " (0: the linear map alone)")),
    Rule("model.combiner.student.lr", number_above(0)),
    Rule("model.combiner.student.weight_decay", number_min(0)),
    Rule("model.combiner.student.patience", int_min(0)),
    Rule("model.combiner.student.holdout", share(low_open=True)),
    Rule("model.combiner.student.batch_size", SIZE),
    Rule("model.combiner.student.max_epochs", SIZE),
    Rule("model.combiner.student.pairs_per_epoch", SIZE),
    Rule("model.combiner.student.max_users", SIZE),
    Rule("model.combiner.student.rating", number_min(0)),
    Rule("model.combiner.student.ranking", number_min(0)),
    Rule("model.combiner.student.data", number_min(0)),
    Rule("model*.encoder", one_of(ENCODERS)),
    Rule("model*.adaptor", one_of(ADAPTORS)),
    # loss
    Rule("loss.weights.*", number_min(0)),
    Rule("loss.terms.*.score_reg", number_min(0)),
    Rule("loss.terms.*.elu", number_min(0)),
    Rule("loss.terms.*.logq", number_min(0)),
    # callbacks
    Rule("callbacks.*.patience", int_min(0)),
    Rule("callbacks.*.mode", one_of(("max",), " (every val/ metric is higher-is-better)")),
    Rule("callbacks.*.save_top_k", int_min(-1, " (-1: all)")),
    Rule("callbacks.*.refresh_rate", int_min(0)),
)


@functools.lru_cache(maxsize=4096)
def rule_for(path: str, target: str | None) -> Rule | None:
    """The first rule for the key at ``path`` under a node with ``_target_`` ``target``."""
    for rule in RULES:
        if fnmatchcase(path, rule.pattern) and (
            rule.target is None or (target is not None and same_target(rule.target, target))
        ):
            return rule
    return None


# -- top-level keys --------------------------------------------------------------------------
#: Types of the top-level keys of configs/train.yaml (its comments say the same).
TOP_LEVEL_TYPES: dict[str, Any] = {
    "task_name": str,
    "seed": int,
    "threads": int | None,
    "ks": list[int],
    "ties": str,
    "monitor": str,
    "test_after_fit": bool,
    "refit_on_val": bool,
    "scheduler": TargetNode | None,
    "embedding_l2": float,
    "judgment_blend": float,
    "required": list[str],
}
#: Why a key people try is not read (added to its problem line).
UNREAD_HINTS: dict[str, str] = {}
