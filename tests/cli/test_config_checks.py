"""check_config: every shipped config passes; wrong types, out-of-range values and keys nothing
reads are reported before any data is read, each naming the key, the value and what was
expected."""

from __future__ import annotations

import statistics
import time
from typing import Any, Literal

import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import CONFIG_DIR, GROUPS, Compose, group_options
from hybridrec.cli import checks
from hybridrec.cli.checks import ConfigError, check_config

#: options that only make sense with another choice (next_item reads ${model.max_length})
PARTNERS = {
    "datamodule=next_item": ("model=sasrec", "loss=xe"),
    # the hybrid's default GRU history reads sequences; and its switches
    "model=hybrid": ("datamodule=next_item", "loss=xe"),
    **{
        f"ablation={name}": (
            "model=hybrid",
            "model.combine=joint",
            "datamodule=next_item",
            "loss=xe",
        )
        for name in group_options("ablation")
    },
    # the human-rating term: data with judgments and a model with the tower contract
    **{
        f"judgment={name}": ("data=synthetic_marketing", "model=mf")
        for name in group_options("judgment")
    },
    # its `required` keys: the GMF and MLP checkpoints it starts from
    "experiment=ncf_neumf_pretrain_ml1m": (
        "model.pretrained_gmf=gmf.ckpt",
        "model.pretrained_mlp=mlp.ckpt",
    ),
}


def _shipped() -> list[tuple[str, ...]]:
    cases: list[tuple[str, ...]] = [()]
    for group in GROUPS:
        for option in group_options(group):
            choice = f"{group}={option}"
            cases.append((choice, *PARTNERS.get(choice, ())))
    cases += [("model=seqtext", f"model/text={o}") for o in group_options("model/text")]
    return cases


@pytest.mark.parametrize("overrides", _shipped(), ids=lambda o: " ".join(o) or "default")
def test_shipped_config_passes(compose_cfg: Compose, overrides: tuple[str, ...]) -> None:
    check_config(compose_cfg(*overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        ("trainer=gpu", "trainer.devices=[0,1]", "trainer.precision=16"),
        ("trainer=ddp", "trainer.devices=auto", "trainer.max_epochs=-1"),
        ("protocol=cold_items", "monitor=val/cold/ndcg@10"),
        ("ks=[5,10,20]", "monitor=val/mrr@20", "threads=null", "embedding_l2=0.005"),
        ("model=textrec", "model.encoder=transformer", "model.transformer_layers=1"),
        # every column the reader knows is a key of data=csv: no `+` needed
        (
            "data=csv",
            "data.source.path=clicks.csv",
            "data.source.columns.timestamp=ts",
            "data.source.columns.rating=stars",
            "data.source.columns.session=visit",
        ),
        ("+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor",),
        ("resume=0123456789abcdef0123456789abcdef", "ckpt_path=outputs/x/checkpoints/last.ckpt"),
        ("callbacks.divergence.check_every_n_steps=1", "callbacks.epoch_seed=null"),
        # a target taking **kwargs takes any key
        ("+callbacks.extra._target_=builtins.dict", "+callbacks.extra.anything=1"),
        (
            "+scheduler._target_=torch.optim.lr_scheduler.StepLR",
            "+scheduler._partial_=true",
            "+scheduler.step_size=5",
        ),
    ],
    ids=lambda o: " ".join(o),
)
def test_valid_overrides_pass(compose_cfg: Compose, overrides: tuple[str, ...]) -> None:
    check_config(compose_cfg(*overrides))


def test_nothing_is_read_or_instantiated(
    compose_cfg: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data files do not exist (paths are rooted in tmp_path), and nothing is built: the
    constructors every instantiation of a model, tower, datamodule, trainer or optimiser runs,
    and the readers of tables, are traps (patched on the classes, so a name imported anywhere
    still reaches them); the last lines show that the traps catch an instantiation."""
    import lightning
    import pandas
    import pyarrow.parquet
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("check_config must not instantiate or read anything")

    for target in (
        "torch.nn.Module.__init__",
        "torch.optim.Optimizer.__init__",
        "lightning.LightningDataModule.__init__",
        "lightning.Trainer.__init__",
        "pandas.read_csv",
        "pandas.read_parquet",
        "pyarrow.parquet.read_table",
    ):
        monkeypatch.setattr(target, boom)
    assert lightning and pandas and pyarrow.parquet  # imported: the targets exist
    cfg = compose_cfg("data=ml1m", "protocol=temporal")
    check_config(cfg)
    with pytest.raises(InstantiationException, match="must not instantiate"):
        instantiate(cfg.trainer)  # Hydra wraps the trap's AssertionError


def _line(error: ConfigError, key: str) -> str:
    """The problem line of ``key``."""
    lines = [str(problem) for problem in error.problems]
    if len(lines) == 1:  # one problem: one sentence, the problem after the header
        assert str(error) == f"invalid config (nothing was run): {lines[0]}"
    found = [line for line in lines if line.startswith(f"{key}: got ")]
    assert found, f"no problem line for {key!r} in:\n{error}"
    return found[0]


# (overrides, key, value as shown, fragments of what was expected)
FAILING: list[tuple[tuple[str, ...], str, str, tuple[str, ...]]] = [
    (("trainer.max_epochs=abc",), "trainer.max_epochs", "'abc' (str)", ("int or null",)),
    (("trainer.max_epochs=0",), "trainer.max_epochs", "0 (int)", ("an int >= 1, or -1",)),
    (("trainer.devices=0",), "trainer.devices", "0 (int)", ("an int >= 1", "'auto'")),
    (("optimizer.lr=abc",), "optimizer.lr", "'abc' (str)", ("float (lr of torch.optim.Adam)",)),
    (("optimizer.lr=-0.1",), "optimizer.lr", "-0.1 (float)", ("a number > 0",)),
    (
        ("optimizer=sgd", "optimizer.momentum=1.0"),
        "optimizer.momentum",
        "1.0 (float)",
        ("[0, 1)",),
    ),
    (
        ("+resume_from=x.ckpt",),
        "resume_from",
        "'x.ckpt' (str)",
        ("nothing reads 'resume_from'", "did you mean resume"),
    ),
    (
        ("+trainer.max_epoch=3",),
        "trainer.max_epoch",
        "3 (int)",
        ("a parameter of lightning.Trainer", "did you mean max_epochs"),
    ),
    (
        ("model=mf", "+model.embedding_dimm=8"),
        "model.embedding_dimm",
        "8 (int)",
        ("a parameter of hybridrec.nn.MF", "did you mean embedding_dim"),
    ),
    (
        ("model=textrec", "+model.vocab_sz=100"),
        "model.vocab_sz",
        "100 (int)",
        ("hybridrec.nn.TextItemTower", "did you mean vocab_size"),
    ),
    (
        ("+data.min_user_interaction=5",),
        "data.min_user_interaction",
        "5 (int)",
        ("nothing reads 'min_user_interaction'", "did you mean min_user_interactions"),
    ),
    (
        ("data.min_item_interactions=-2",),
        "data.min_item_interactions",
        "-2 (int)",
        ("an int >= 0",),
    ),
    (("data.text.sep=1",), "data.text.sep", "1 (int)", ("str (sep of", "TextConfig")),
    (
        ("data=csv", "data.source.path=clicks.csv", "+data.source.columns.price=cost"),
        "data.source.columns",
        "{'user': 'user', 'item': 'item', 'timestamp': None",
        ("keys among user, item, timestamp, rating, session", "not 'price'"),
    ),
    (("datamodule.batch_size=0",), "datamodule.batch_size", "0 (int)", ("an int >= 1",)),
    (("ks=[0]",), "ks", "[0] (list)", ("a non-empty list of ints >= 1",)),
    (("ks=10",), "ks", "10 (int)", ("a list of int",)),
    (("ties=best",), "ties", "'best' (str)", ("pessimistic, optimistic, average",)),
    (
        ("monitor=val/foo@10",),
        "monitor",
        "'val/foo@10' (str)",
        ("val/<metric>@<k>", "hr, recall, ndcg, mrr"),
    ),
    (("monitor=val/ndcg@20",), "monitor", "'val/ndcg@20' (str)", ("<k> in ks [10]",)),
    (
        ("monitor=val/cold/ndcg@10",),
        "monitor",
        "'val/cold/ndcg@10' (str)",
        ("only with protocol=cold_items",),
    ),
    (("seed=-1",), "seed", "-1 (int)", ("an int >= 0",)),
    (("threads=0",), "threads", "0 (int)", ("an int >= 1, or null",)),
    (("model.dropout=1.5",), "model.dropout", "1.5 (float)", ("a number in [0, 1)",)),
    (
        ("model=gru4rec", "model.dropout_hidden=1.5"),
        "model.dropout_hidden",
        "1.5 (float)",
        ("a number in [0, 1)",),
    ),
    (
        ("model=seqtext", "model/text=minilm", "model.text.adaptor_dropout=1.5"),
        "model.text.adaptor_dropout",
        "1.5 (float)",
        ("a number in [0, 1)",),
    ),
    (("model.gmf_dim=0",), "model.gmf_dim", "0 (int)", ("an int >= 1",)),
    (("model.hidden_dims=[]",), "model.hidden_dims", "[] (list)", ("a non-empty list",)),
    (
        ("experiment=gru4rec_beauty_xe", "loss.terms.ranking.logq=abc"),
        "loss.terms.ranking.logq",
        "'abc' (str)",
        ("float (logq of hybridrec.losses.CrossEntropyLoss)",),
    ),
    (
        ("callbacks.early_stopping.patience=-1",),
        "callbacks.early_stopping.patience",
        "-1 (int)",
        ("an int >= 0",),
    ),
    (
        ("callbacks.model_checkpoint.mode=min",),
        "callbacks.model_checkpoint.mode",
        "'min' (str)",
        ("one of max",),
    ),
    (
        ("~callbacks.early_stopping.monitor",),
        "callbacks.early_stopping.monitor",
        "nothing",
        ("EarlyStopping requires it",),
    ),
    (
        ("protocol=temporal", "protocol.test_fraction=1.5"),
        "protocol.test_fraction",
        "1.5 (float)",
        ("a number in (0, 1)",),
    ),
    (
        ("datamodule=next_item",),
        "datamodule.max_length",
        "'${model.max_length}' (interpolation)",
        ("a reference to a key that exists", "model.max_length"),
    ),
    (
        ("model._target_=hybridrec.nn.Nope",),
        "model._target_",
        "'hybridrec.nn.Nope' (str)",
        ("a class or function Hydra can import",),
    ),
    (
        (
            "+scheduler._target_=torch.optim.lr_scheduler.StepLR",
            "+scheduler._partial_=true",
            "+scheduler.step_size=abc",
        ),
        "scheduler.step_size",
        "'abc' (str)",
        ("int (step_size of torch.optim.lr_scheduler.StepLR)",),
    ),
    (("scheduler=abc",), "scheduler", "'abc' (str)", ("a node with _target_ or null",)),
    (
        ("model=hybrid", "model.combine=joint"),
        "model.history",
        "'gru' (str)",
        ("null with the pair datamodule", "datamodule=next_item loss=xe"),
    ),
    (
        ("experiment=hybrid_synthetic", "model.head=mlp"),
        "model.head",
        "'mlp' (str)",
        ("one of dot, neumf",),
    ),
    (  # the judgment term without model=mf: knowable before any data is prepared
        ("data=synthetic_marketing", "judgment=bt"),
        "model._target_",
        "'hybridrec.nn.NeuMF' (str)",
        ("tower contract", "NeuMF has none", "model=mf", "judgment=null"),
    ),
    (
        ("data=synthetic_marketing", "judgment=pointwise", "model=gru4rec"),
        "model._target_",
        "'hybridrec.nn.GRU4Rec' (str)",
        ("tower contract", "GRU4Rec has none"),
    ),
    (
        ("experiment=hybrid_synthetic", "model.fusion=sum"),
        "model.fusion",
        "'sum' (str)",
        ("one of mix, residual",),
    ),
    # the composed hybrid's combiner and text student (searched by hparams_search=hybrid_optuna)
    (("model=hybrid", "model.combiner.buckets=0"), "model.combiner.buckets", "0 (int)", (">= 1",)),
    (("model=hybrid", "model.combiner.step=0.3"), "model.combiner.step", "0.3", ("divides 1",)),
    (
        ("model=hybrid", "model.combiner.student.holdout=1.0"),
        "model.combiner.student.holdout",
        "1.0 (float)",
        ("(0, 1)",),
    ),
    (
        ("model=hybrid", "model.combiner.student.data=-0.1"),
        "model.combiner.student.data",
        "-0.1 (float)",
        ("a number >= 0",),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "key", "shown", "expected"), FAILING, ids=lambda o: " ".join(o)
)
def test_problem_names_key_value_and_expectation(
    compose_cfg: Compose,
    overrides: tuple[str, ...],
    key: str,
    shown: str,
    expected: tuple[str, ...],
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_config(compose_cfg(*overrides))
    line = _line(caught.value, key)
    assert line.startswith(f"{key}: got {shown}"), line
    assert "; expected " in line
    for fragment in expected:
        assert fragment in line.split("; expected ", 1)[1], line
    assert len(caught.value.problems) == 1, str(caught.value)  # nothing else is blamed


def test_every_problem_is_reported_together(compose_cfg: Compose) -> None:
    cfg = compose_cfg(
        "trainer.max_epochs=abc",
        "optimizer.lr=-0.1",
        "+resume_from=x.ckpt",
        "ties=best",
        "model.dropout=1.5",
    )
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    keys = {p.key for p in caught.value.problems}
    assert keys == {"trainer.max_epochs", "optimizer.lr", "resume_from", "ties", "model.dropout"}
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid config, 5 problems (nothing was run):"
    assert len(lines) == 6 and all(": got " in line for line in lines[1:])
    assert isinstance(caught.value, ValueError)


def test_config_error_from_a_message() -> None:
    error = ConfigError("refit_on_val=true: no validation split; set refit_on_val=false")
    assert str(error).startswith("refit_on_val=true") and error.problems == ()
    assert isinstance(error, ValueError)


def test_inside_a_running_hydra_app(compose_cfg: Compose) -> None:
    """hybridrec-train calls check_config inside @hydra.main: GlobalHydra is initialised, and
    the shipped configs are composed there (caches cleared to take that path)."""
    cfg = compose_cfg("+resume_from=x.ckpt", "+data.foo=1")
    checks.default_keys.cache_clear()
    checks.group_keys.cache_clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        assert GlobalHydra.instance().is_initialized()
        with pytest.raises(ConfigError) as caught:
            check_config(cfg)
        assert GlobalHydra.instance().is_initialized()
    assert {p.key for p in caught.value.problems} == {"resume_from", "data.foo"}


def test_check_is_fast_after_the_first_call(compose_cfg: Compose) -> None:
    cfg = compose_cfg("experiment=seqtext_scientific")
    check_config(cfg)  # the first call composes the default config and inspects signatures
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        check_config(cfg)
        seconds.append(time.perf_counter() - start)
    assert statistics.median(seconds) < 0.25, seconds


@pytest.mark.parametrize(
    ("value", "annotation", "ok"),
    [
        ("abc", float | torch.Tensor, False),  # torch optimisers' lr: a string is refused
        (0.1, float | torch.Tensor, True),
        (3, float, True),  # an int is fine for a float
        (True, int, False),
        (3.0, int, False),
        (None, int | None, True),
        ("32-true", Literal[32, "32-true"], True),
        (True, Literal[1, "1"], False),
        ([1, 2], list[int], True),
        ([1, "a"], list[int], False),
        ({"a": 1.0}, dict[str, float], True),
        ({"a": "x"}, dict[str, float], False),
        ("abc", torch.Tensor, True),  # exotic: not type-checked
        ({"_target_": "x.Y"}, int, True),  # a node with _target_: not type-checked
        ([0.9, 0.999], tuple[float, float], True),
        ([0.9], tuple[float, float], False),
    ],
)
def test_annotations(value: Any, annotation: Any, ok: bool) -> None:
    assert checks.matches(value, annotation) is ok


def test_positional_args_of_a_target_are_any_list(compose_cfg: Compose) -> None:
    """``_args_`` (positional arguments) is a list of anything: no crash, no problem."""
    check_config(compose_cfg("+optimizer._args_=[1]"))
