"""Every config file in every group composes and instantiates (on synthetic data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import TINY_DATA, data_overrides, group_options, save_tiny_bert
from hybridrec.cli.common import prepare_from_config, read_source
from hybridrec.cli.train import train
from hybridrec.data.batch import RecBatch
from hybridrec.data.raw import RawData
from hybridrec.nn import GMF, MLP, SeqRec, TextItemTower
from hybridrec.text import train_wordpiece

Compose = Callable[..., DictConfig]
GROUPS = [
    "data",
    "protocol",
    "model",
    "loss",
    "optimizer",
    "datamodule",
    "trainer",
    "logger",
    "callbacks",
    "debug",
    "experiment",
    "paths",
    "hydra",
]


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert group_options(group), f"configs/{group}/ is empty"


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)])
def test_config_composes(compose_cfg: Compose, group: str, option: str) -> None:
    cfg = compose_cfg(f"{group}={option}")
    assert cfg.seed == 42
    assert cfg.model._target_.startswith("hybridrec.nn.")


@pytest.mark.parametrize("name", group_options("data"))
def test_data_source_instantiates(
    compose_cfg: Compose, data_files: dict[str, str], name: str
) -> None:
    cfg = compose_cfg(*data_overrides(name, data_files))
    raw = read_source(cfg)
    assert isinstance(raw, RawData)
    assert len(raw.interactions) > 100
    assert {"user", "item"} <= set(raw.interactions.columns)


@pytest.mark.parametrize("protocol", group_options("protocol"))
def test_protocol_prepares(compose_cfg: Compose, data_files: dict[str, str], protocol: str) -> None:
    if protocol == "session":  # sessions come from click files
        cfg = compose_cfg(*data_overrides("rsc15_100k", data_files), f"protocol={protocol}")
    else:
        cfg = compose_cfg(f"protocol={protocol}", *TINY_DATA)
    spec, folder = prepare_from_config(cfg)
    assert spec.protocol == protocol
    assert spec.n_test > 0 and spec.n_val > 0 and spec.n_train > spec.n_test
    assert (folder / "spec.json").is_file()
    # the same config reuses the prepared folder
    assert prepare_from_config(cfg)[1] == folder


def _spec_cfg(compose_cfg: Compose, *overrides: str) -> DictConfig:
    cfg = compose_cfg(*TINY_DATA, *overrides)
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)  # as train sets it: text models read item text
    return cfg


@pytest.mark.parametrize("model", group_options("model"))
def test_model_instantiates_and_scores(compose_cfg: Compose, model: str) -> None:
    cfg = _spec_cfg(compose_cfg, f"model={model}")
    net = instantiate(cfg.model)
    if not getattr(net, "requires_training", True):  # count-based: fitted on sequences
        net.fit_sequences(torch.tensor([1, 2, 3, 2, 4, 5]), torch.tensor([0, 3, 6]))
    batch = RecBatch(
        users=torch.tensor([0, 1]),
        items=torch.tensor([[1, 2, 3], [4, 5, 6]]),
        history=torch.tensor([[0, 1, 2], [3, 4, 5]]),  # sequence models read the history
    )
    assert net(batch).shape == (2, 3)
    assert net.score_all(batch).shape == (2, cfg.spec.n_items + 1)


def _tiny_pretrained(tmp_path: Path) -> list[str]:
    """Overrides pointing model.text at a tiny random BERT saved under tmp_path."""
    tokenizer = train_wordpiece(["a tiny vocabulary for a tiny model"], vocab_size=120)
    tiny = save_tiny_bert(tmp_path / "tiny_bert", tokenizer)
    return [
        f"model.text.pretrained={tiny}",
        "model.text.max_length=16",
        f"model.text.cache_dir={tmp_path / 'text_vectors'}",
    ]


@pytest.mark.parametrize("text", group_options("model/text"))
def test_text_tower_options_instantiate(compose_cfg: Compose, text: str, tmp_path: Path) -> None:
    """Each model/text option builds the sequence model's item tower and trains one step."""
    overrides = ["model=seqtext", f"model/text={text}"]
    if text == "minilm":  # the real MiniLM is an optional extra: a tiny local BERT stands in
        overrides += _tiny_pretrained(tmp_path)
    cfg = _spec_cfg(compose_cfg, *overrides)
    net = instantiate(cfg.model)
    assert isinstance(net, SeqRec) and isinstance(net.text, TextItemTower)
    assert net.text.encoder_kind == cfg.model.text.encoder
    batch = RecBatch(
        users=torch.tensor([0, 1]),
        history=torch.tensor([[0, 1, 2], [3, 4, 5]]),
        sequence_targets=torch.tensor([[0, 2, 3], [4, 5, 6]]),
    )
    scores = net.train()(batch)
    assert scores.shape == (5, cfg.spec.n_items + 1)
    scores.logsumexp(1).mean().backward()
    assert any(p.grad is not None for p in net.text.parameters())


@pytest.mark.parametrize("loss", group_options("loss"))
def test_loss_instantiates(compose_cfg: Compose, loss: str) -> None:
    term = instantiate(compose_cfg(f"loss={loss}").loss)
    batch = RecBatch(users=torch.zeros(4, dtype=torch.long), labels=torch.tensor([[1.0, 0, 0]] * 4))
    out = term(torch.randn(4, 3), batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])


@pytest.mark.parametrize("optimizer", group_options("optimizer"))
def test_optimizer_instantiates(compose_cfg: Compose, optimizer: str) -> None:
    factory = instantiate(compose_cfg(f"optimizer={optimizer}").optimizer)
    assert isinstance(factory([torch.nn.Parameter(torch.zeros(2))]), torch.optim.Optimizer)


@pytest.mark.parametrize("trainer", group_options("trainer"))
def test_trainer_instantiates(compose_cfg: Compose, trainer: str) -> None:
    overrides = [f"trainer={trainer}"]
    if trainer == "gpu" and not torch.cuda.is_available():
        overrides += ["trainer.accelerator=cpu", "trainer.precision=32-true"]
    if trainer == "ddp":
        overrides += ["trainer.accelerator=cpu", "trainer.strategy=ddp_spawn"]
    cfg = compose_cfg(*overrides)
    built = instantiate(cfg.trainer, logger=False)
    assert isinstance(built, L.Trainer)
    if trainer == "ddp":
        assert built.world_size == 2


def test_datamodule_logger_callbacks_instantiate(compose_cfg: Compose) -> None:
    cfg = _spec_cfg(compose_cfg)
    _, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.datamodule.data_dir = str(folder)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup()
    assert len(datamodule.train_dataloader()) > 0
    logger = instantiate(cfg.logger)
    assert logger._tracking_uri.startswith("sqlite:///")
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert len(callbacks) == 4


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_fast_dev_run(
    compose_cfg: Compose, data_files: dict[str, str], experiment: str, tmp_path: Path
) -> None:
    """Each experiment runs end to end for one batch, on synthetic data in its format."""
    name = str(compose_cfg(f"experiment={experiment}").data.name)
    overrides = [
        f"experiment={experiment}",
        "debug=fast_dev_run",
        *data_overrides(name, data_files)[1:],
    ]
    cfg = compose_cfg(*overrides)
    text = cfg.model.get("text")
    if text is not None and text.encoder == "pretrained":
        # the real MiniLM is an optional extra (not a CI install): a tiny local BERT stands in
        overrides += _tiny_pretrained(tmp_path)
        cfg = compose_cfg(*overrides)
    if OmegaConf.is_missing(cfg.model, "pretrained_gmf"):
        cfg = compose_cfg(*overrides, *_pretrained_halves(cfg, tmp_path))
        assert cfg.model.pretrained_gmf.endswith("gmf.pt")
    results = train(cfg).metrics
    k = cfg.ks[0]
    assert f"test/hr@{k}" in results and 0.0 <= results[f"test/hr@{k}"] <= 1.0


def _pretrained_halves(cfg: DictConfig, tmp_path: Path) -> list[str]:
    """Save GMF / MLP weights shaped like the NeuMF halves (one plain state dict, one
    Lightning-style checkpoint) and return the overrides that point the config at them."""
    spec, _ = prepare_from_config(cfg)
    m = cfg.model
    gmf = GMF(spec.n_users, spec.n_items, m.gmf_dim)
    mlp = MLP(spec.n_users, spec.n_items, m.mlp_embedding_dim, list(m.hidden_dims))
    torch.save(gmf.state_dict(), tmp_path / "gmf.pt")
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in mlp.state_dict().items()}},
        tmp_path / "mlp.ckpt",
    )
    return [
        f"model.pretrained_gmf={tmp_path / 'gmf.pt'}",
        f"model.pretrained_mlp={tmp_path / 'mlp.ckpt'}",
    ]
