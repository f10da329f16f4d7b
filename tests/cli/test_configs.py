"""Every config file in every group composes, holds its own values, and instantiates (on synthetic
data) into the classes it names; each experiment trains the classes it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import (
    CONFIG_DIR,
    GROUPS,
    TINY_DATA,
    Compose,
    data_overrides,
    group_options,
    model_of,
    save_tiny_bert,
)
from hybridrec.cli.common import prepare_from_config, read_source
from hybridrec.data.batch import PairBatch, RowEvalBatch, WindowBatch
from hybridrec.data.raw import RawData
from hybridrec.lit import adapter
from hybridrec.losses import LossSum
from hybridrec.nn import GMF, MLP, SeqRec, TextItemTower
from hybridrec.run.parts import is_composed
from hybridrec.run.train import train
from hybridrec.text import train_wordpiece

#: what choosing each option must set, by group (dotted config key -> value): written out from
#: the yaml files, so a default that silently wins over the chosen option fails here. A new
#: option without a row fails too (KeyError): add its row.
CHOSEN: dict[str, dict[str, dict[str, Any]]] = {
    "data": {
        "beauty": {
            "data.name": "beauty",
            "data.source._target_": "hybridrec.data.readers.sequences.read_sequences",
            "data.source.name": "beauty",
        },
        "csv": {
            "data.name": "csv",
            "data.source._target_": "hybridrec.data.readers.tables.read_table",
        },
        "diginetica": {
            "data.name": "diginetica",
            "data.source._target_": "hybridrec.data.readers.sessions.read_diginetica",
        },
        "ml100k": {
            "data.name": "ml100k",
            "data.source._target_": "hybridrec.data.readers.movielens.read_movielens_100k",
        },
        "ml1m": {
            "data.name": "ml1m",
            "data.source._target_": "hybridrec.data.readers.movielens.read_movielens_1m",
        },
        "ml1m_pieces": {
            "data.name": "ml1m_pieces",
            "data.source._target_": "hybridrec.data.readers.sequences.read_sequences",
            "data.source.ordered": False,
        },
        "ml1m_pieces_text": {
            "data.name": "ml1m_pieces_text",
            "data.source._target_": "hybridrec.data.readers.tables.join_items",
            "data.source.items.item_id_offset": 1,
        },
        "ml_latest": {
            "data.name": "ml-latest",
            "data.source._target_": "hybridrec.data.readers.movielens.read_movielens_latest",
        },
        "ncf_ml1m": {
            "data.name": "ncf_ml1m",
            "data.source._target_": "hybridrec.data.readers.ncf.read_ncf",
        },
        "rsc15_100k": {
            "data.name": "rsc15_100k",
            "data.source._target_": "hybridrec.data.readers.sessions.read_sessions",
        },
        "scientific": {
            "data.name": "scientific",
            "data.source._target_": "hybridrec.data.readers.unisrec.read_unisrec",
            "data.source.name": "Scientific",
        },
        "sports": {
            "data.name": "sports",
            "data.source._target_": "hybridrec.data.readers.sequences.read_sequences",
            "data.source.name": "sports",
        },
        "synthetic": {
            "data.name": "synthetic",
            "data.source._target_": "hybridrec.data.readers.synthetic.read_synthetic",
            "data.source.n_users": 500,
            "data.judgments": None,
        },
        "ml1m_marketing": {
            "data.name": "ml1m_marketing",
            "data.source._target_": "hybridrec.data.readers.tables.join_items",
            "data.judgments.columns.rater": "editor",
            "data.judgments.segments": ["families", "cinephiles"],
        },
        "synthetic_scale": {
            "data.name": "synthetic_scale",
            "data.source._target_": "hybridrec.data.readers.scale.read_scale",
        },
        "synthetic_marketing": {
            "data.name": "synthetic_marketing",
            "data.source._target_": "hybridrec.data.readers.synthetic.read_synthetic",
            "data.source.n_raters": 5,
            "data.source.n_new_items": 60,
            "data.judgments.kind": "score",
            "data.judgments.held_out_raters": 1,
        },
        "video": {
            "data.name": "video",
            "data.source._target_": "hybridrec.data.readers.sequences.read_sequences",
            "data.source.name": "video",
        },
    },
    "protocol": {
        "cold_items": {
            "protocol.name": "cold_items",
            "protocol._target_": "hybridrec.data.preparation.protocols.ColdItems",
        },
        "loo_full": {
            "protocol.name": "loo_full",
            "protocol._target_": "hybridrec.data.preparation.protocols.LeaveOneOut",
            "protocol.eval_mode": "full",
        },
        "loo_sampled": {
            "protocol.name": "loo_sampled",
            "protocol._target_": "hybridrec.data.preparation.protocols.LeaveOneOut",
            "protocol.eval_mode": "sampled",
            "protocol.n_negatives": 99,
        },
        "session": {
            "protocol.name": "session",
            "protocol._target_": "hybridrec.data.preparation.sessions.SessionSplit",
        },
        "temporal": {
            "protocol.name": "temporal",
            "protocol._target_": "hybridrec.data.preparation.protocols.TemporalSplit",
        },
    },
    "model": {
        "gmf": {"model._target_": "hybridrec.nn.GMF", "model.embedding_dim": 8},
        "gru4rec": {"model._target_": "hybridrec.nn.GRU4Rec", "model.layers": [100]},
        "hybrid": {
            "model._target_": "hybridrec.nn.Hybrid",
            "model.history": "gru",
            "model.user_id": True,
            "model.item_id": True,
            "model.text._target_": "hybridrec.nn.TextItemTower",
            "model.text.encoder": "bag",
        },
        "itemknn": {"model._target_": "hybridrec.nn.ItemKNN", "model.neighbours": 100},
        "mf": {"model._target_": "hybridrec.nn.MF", "model.embedding_dim": 64},
        "mlp": {"model._target_": "hybridrec.nn.MLP", "model.hidden_dims": [32, 16, 8]},
        "neumf": {"model._target_": "hybridrec.nn.NeuMF", "model.gmf_dim": 8},
        "pop": {"model._target_": "hybridrec.nn.Popularity"},
        "sasrec": {
            "model._target_": "hybridrec.nn.SeqRec",
            "model.item_id": True,
            "model.text": None,
        },
        "seqtext": {
            "model._target_": "hybridrec.nn.SeqRec",
            "model.item_id": False,
            "model.text._target_": "hybridrec.nn.TextItemTower",
            "model.text.encoder": "bag",
        },
        "textrec": {"model._target_": "hybridrec.nn.TextRec", "model.encoder": "bag"},
    },
    "loss": {
        "bce": {
            "loss._target_": "hybridrec.losses.LossSum",
            "loss.terms.ranking._target_": "hybridrec.losses.BCELoss",
        },
        "bpr": {
            "loss._target_": "hybridrec.losses.LossSum",
            "loss.terms.ranking._target_": "hybridrec.losses.BPRLoss",
        },
        "bprmax": {
            "loss._target_": "hybridrec.losses.LossSum",
            "loss.terms.ranking._target_": "hybridrec.losses.BPRMaxLoss",
            "loss.terms.ranking.score_reg": 1.0,
        },
        "xe": {
            "loss._target_": "hybridrec.losses.LossSum",
            "loss.terms.ranking._target_": "hybridrec.losses.CrossEntropyLoss",
            "loss.terms.ranking.logq": 1.0,
        },
    },
    "optimizer": {
        "adagrad": {
            "optimizer._target_": "torch.optim.Adagrad",
            "optimizer._partial_": True,
            "optimizer.lr": 0.01,
        },
        "adagradm": {
            "optimizer._target_": "hybridrec.optim.AdagradM",
            "optimizer._partial_": True,
            "optimizer.lr": 0.05,
        },
        "adam": {
            "optimizer._target_": "torch.optim.Adam",
            "optimizer._partial_": True,
            "optimizer.lr": 0.005,
        },
        "adamw": {
            "optimizer._target_": "torch.optim.AdamW",
            "optimizer._partial_": True,
            "optimizer.lr": 0.001,
            "optimizer.weight_decay": 0.01,
        },
        "sgd": {
            "optimizer._target_": "torch.optim.SGD",
            "optimizer._partial_": True,
            "optimizer.lr": 0.001,
        },
    },
    "judgment": {
        "bt": {
            "judgment._target_": "hybridrec.losses.JudgmentLoss",
            "judgment.pairwise": 1.0,
            "judgment.pointwise": 0.0,
            "judgment.reliability": "weights",
        },
        "pointwise": {
            "judgment._target_": "hybridrec.losses.JudgmentLoss",
            "judgment.pairwise": 0.0,
            "judgment.pointwise": 1.0,
        },
        "crowd_bt": {
            "judgment._target_": "hybridrec.losses.JudgmentLoss",
            "judgment.reliability": "crowd_bt",
        },
        "head_bt": {
            "judgment._target_": "hybridrec.losses.JudgmentLoss",
            "judgment.pairwise": 1.0,
            "judgment.head._target_": "hybridrec.nn.judgment_head.HeadSpec",
            "judgment.head.source": "tokens",
            "judgment.head.shared": False,
        },
        "head_pointwise": {
            "judgment.pairwise": 0.0,
            "judgment.pointwise": 1.0,
            "judgment.head.source": "tokens",
        },
        "head_fields_id": {
            "judgment.pointwise": 1.0,
            "judgment.head.source": "tokens+id",
            "judgment.head.fields": 4,
            "judgment.head.map_l2": [0.001, 0.01, 0.1],
        },
    },
    "datamodule": {
        "default": {
            "datamodule._target_": "hybridrec.data.RecDataModule",
            "datamodule.batch_size": 256,
        },
        "next_item": {
            "datamodule._target_": "hybridrec.data.batching.sequence_datamodule.SequenceDataModule",
            "datamodule.training": "next_item",
            "datamodule.batch_size": 256,
            "datamodule.prefix_cache": False,
            "datamodule.negatives": 0,  # the whole catalogue unless an experiment samples
            "datamodule.negative_sampling": "uniform",
        },
        "sequence": {
            "datamodule._target_": "hybridrec.data.batching.sequence_datamodule.SequenceDataModule",
            "datamodule.training": "session_parallel",
            "datamodule.batch_size": 128,
            "datamodule.prefix_cache": True,
        },
    },
    "trainer": {
        "cpu": {
            "trainer._target_": "lightning.Trainer",
            "trainer.accelerator": "cpu",
            "trainer.devices": 1,
        },
        "ddp": {
            "trainer._target_": "lightning.Trainer",
            "trainer.strategy": "ddp",
            "trainer.devices": 2,
        },
        "default": {
            "trainer._target_": "lightning.Trainer",
            "trainer.max_epochs": 20,
            "trainer.precision": "32-true",
        },
        "gpu": {
            "trainer._target_": "lightning.Trainer",
            "trainer.accelerator": "gpu",
            "trainer.precision": "bf16-mixed",
        },
    },
    "logger": {
        "mlflow": {"logger._target_": "hybridrec.tracking.MLflowLogger", "logger.log_model": False},
    },
    "callbacks": {
        "default": {
            "callbacks.model_checkpoint._target_": "lightning.pytorch.callbacks.ModelCheckpoint",
            "callbacks.early_stopping._target_": "lightning.pytorch.callbacks.EarlyStopping",
            "callbacks.progress_bar._target_": "lightning.pytorch.callbacks.TQDMProgressBar",
            "callbacks.epoch_timer._target_": "hybridrec.lit.callbacks.EpochTimer",
            "callbacks.divergence._target_": "hybridrec.lit.callbacks.StopOnDivergence",
            "callbacks.epoch_seed._target_": "hybridrec.lit.callbacks.EpochSeed",
            "callbacks.throughput._target_": "hybridrec.lit.throughput.Throughput",
        },
    },
    "debug": {
        "fast_dev_run": {"task_name": "debug", "trainer.fast_dev_run": True},
        "overfit": {
            "task_name": "debug",
            "trainer.overfit_batches": 2,
            "trainer.max_epochs": 50,
            "callbacks.early_stopping": None,
        },
    },
}

#: per experiment, written out from its yaml (and the group defaults it picks):
#: (data.name, protocol.name, model, datamodule, loss term, optimizer, lr, batch_size,
#:  trainer.max_epochs, ks)
GRU, SEQREC = "hybridrec.nn.GRU4Rec", "hybridrec.nn.SeqRec"
SEQ, REC = (
    "hybridrec.data.batching.sequence_datamodule.SequenceDataModule",
    "hybridrec.data.RecDataModule",
)
BPRMAX, XE = "hybridrec.losses.BPRMaxLoss", "hybridrec.losses.CrossEntropyLoss"
BCE = "hybridrec.losses.BCELoss"
AGM, ADAM, SGD = "hybridrec.optim.AdagradM", "torch.optim.Adam", "torch.optim.SGD"
# fmt: off
EXPERIMENTS: dict[str, tuple[str, str, str, str, str, str, float, int, int, list[int]]] = {
    "gru4rec_beauty_bprmax":
        ("beauty", "loo_full", GRU, SEQ, BPRMAX, AGM, 0.05, 80, 10, [10, 20]),
    "gru4rec_beauty_xe":
        ("beauty", "loo_full", GRU, SEQ, XE, AGM, 0.2, 256, 10, [10, 20]),
    "gru4rec_rsc15_bprmax":
        ("rsc15_100k", "session", GRU, SEQ, BPRMAX, AGM, 0.05, 80, 10, [20]),
    "gru4rec_rsc15_xe":
        ("rsc15_100k", "session", GRU, SEQ, XE, AGM, 0.2, 32, 10, [20]),
    "gru4rec_sports_bprmax":
        ("sports", "loo_full", GRU, SEQ, BPRMAX, AGM, 0.05, 80, 10, [10, 20]),
    "gru4rec_video_bprmax":
        ("video", "loo_sampled", GRU, SEQ, BPRMAX, AGM, 0.05, 256, 10, [10, 20]),
    "gru4rec_video_xe":
        ("video", "loo_sampled", GRU, SEQ, XE, AGM, 0.2, 256, 10, [10, 20]),
    "ncf_gmf_ml1m":
        ("ncf_ml1m", "loo_sampled", "hybridrec.nn.GMF", REC, BCE, ADAM, 0.001, 1024, 20, [10]),
    "ncf_mf_ml1m":
        ("ncf_ml1m", "loo_sampled", "hybridrec.nn.MF", REC, BCE, ADAM, 0.002, 4096, 40, [10]),
    "ncf_mlp_ml1m":
        ("ncf_ml1m", "loo_sampled", "hybridrec.nn.MLP", REC, BCE, ADAM, 0.001, 1024, 20, [10]),
    "ncf_neumf_ml1m":
        ("ncf_ml1m", "loo_sampled", "hybridrec.nn.NeuMF", REC, BCE, ADAM, 0.001, 1024, 20, [10]),
    # ncf_neumf_ml1m's values, fine-tuned with SGD at lr 0.01
    "ncf_neumf_pretrain_ml1m":
        ("ncf_ml1m", "loo_sampled", "hybridrec.nn.NeuMF", REC, BCE, SGD, 0.01, 1024, 20, [10]),
    "sasrec_beauty":
        ("beauty", "loo_full", SEQREC, SEQ, XE, ADAM, 0.001, 128, 60, [10, 20]),
    "sasrec_scientific":
        ("scientific", "loo_full", SEQREC, SEQ, XE, ADAM, 0.001, 512, 200, [10, 50]),
    "seqtext_scientific":
        ("scientific", "loo_full", SEQREC, SEQ, XE, ADAM, 0.001, 512, 200, [10, 50]),
    "hybrid_scientific":
        ("scientific", "loo_full", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.001, 512, 200, [10, 50]),
    "hybrid_scientific_minilm":
        ("scientific", "loo_full", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.001, 512, 200, [10, 50]),
    "hybrid_beauty":
        ("beauty", "loo_full", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.005, 256, 40, [10, 20]),
    "hybrid_ml100k":
        ("ml100k", "loo_full", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.005, 128, 40, [10, 20]),
    "hybrid_ml1m_cold":
        ("ml1m_pieces_text", "cold_items", "hybridrec.nn.Hybrid", REC, BCE, ADAM, 0.005, 256, 20,
         [10]),
    "hybrid_rsc15":
        ("rsc15_100k", "session", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.005, 256, 10, [20]),
    "hybrid_synthetic":
        ("synthetic", "loo_full", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.003, 256, 60, [10]),
    "judgment_ml1m":
        ("ml1m_marketing", "loo_full", "hybridrec.nn.Hybrid", REC, BCE, ADAM, 0.002, 4096, 15,
         [10]),
    "judgment_synthetic":
        ("synthetic_marketing", "loo_full", "hybridrec.nn.Hybrid", SEQ, XE, ADAM, 0.003, 256, 80,
         [10]),
    "session_gru4rec_diginetica":
        ("diginetica", "session", GRU, SEQ, BPRMAX, AGM, 0.05, 80, 10, [20]),
    # count-based baselines: loss and optimizer are the unused defaults (bce, adam lr 0.005),
    # batch size and epochs the sequence datamodule's (128) and the trainer's (20) defaults
    "session_itemknn_rsc15":
        ("rsc15_100k", "session", "hybridrec.nn.ItemKNN", SEQ, BCE, ADAM, 0.005, 128, 20, [20]),
    "session_pop_rsc15":
        ("rsc15_100k", "session", "hybridrec.nn.Popularity", SEQ, BCE, ADAM, 0.005, 128, 20, [20]),
    "unisrec_minilm_scientific":
        ("scientific", "loo_full", SEQREC, SEQ, XE, ADAM, 0.001, 512, 200, [10, 50]),
}
# fmt: on
#: the text tower each sequence experiment uses (model.text.encoder; None = item IDs only)
EXPERIMENT_TEXT = {
    "sasrec_beauty": None,
    "sasrec_scientific": None,
    "seqtext_scientific": "bag",
    "hybrid_scientific": "bag",
    "hybrid_scientific_minilm": "bag",
    "hybrid_synthetic": "bag",
    "judgment_synthetic": "bag",
    "judgment_ml1m": "bag",
    "hybrid_beauty": None,
    "hybrid_ml100k": "bag",
    "hybrid_ml1m_cold": "bag",
    "hybrid_rsc15": None,
    "unisrec_minilm_scientific": "pretrained",
}


def _experiment_expected(name: str) -> dict[str, Any]:
    data, protocol, model, datamodule, loss, optimizer, lr, batch, epochs, ks = EXPERIMENTS[name]
    expected = {
        "task_name": name,  # every experiment names its runs after itself
        "data.name": data,
        "protocol.name": protocol,
        "model._target_": model,
        "datamodule._target_": datamodule,
        "loss.terms.ranking._target_": loss,
        "optimizer._target_": optimizer,
        "optimizer.lr": lr,
        "datamodule.batch_size": batch,
        "trainer.max_epochs": epochs,
        "ks": ks,
    }
    if name in EXPERIMENT_TEXT:
        text = EXPERIMENT_TEXT[name]
        expected["model.text.encoder" if text else "model.text"] = text
    return expected


def _assert_chosen(cfg: DictConfig, expected: dict[str, Any]) -> None:
    got = {}
    for key in expected:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
        got[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    assert got == expected


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert group_options(group), f"configs/{group}/ is empty"


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)])
def test_config_composes(compose_cfg: Compose, group: str, option: str, tmp_path: Path) -> None:
    """Each option composes and the composed config holds that option's own values."""
    if group == "ablation":  # switches of the hybrid: composed with model=hybrid
        cfg = compose_cfg("model=hybrid", "model.combine=joint", f"ablation={option}")
        own = yaml.safe_load((CONFIG_DIR / "ablation" / f"{option}.yaml").read_text())
        _assert_chosen(cfg, {f"model.{key}": value for key, value in own.items()})
        if "text" not in own:  # the text tower stays on
            assert cfg.model.text._target_ == "hybridrec.nn.TextItemTower"
        return
    cfg = compose_cfg(f"{group}={option}")
    if group == "experiment":
        _assert_chosen(cfg, _experiment_expected(option))
    elif group == "paths":  # default: everything under paths.root_dir (tmp_path here)
        assert option == "default"
        _assert_chosen(
            cfg,
            {
                "paths.root_dir": str(tmp_path),
                "paths.data_dir": f"{tmp_path}/data",
                "paths.output_dir": f"{tmp_path}/outputs/train",  # task_name train
            },
        )
    elif group == "hydra":  # the hydra node is only in the config Hydra itself composes
        assert option == "default"
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            full = compose("train", [f"hydra={option}"], return_hydra_config=True)
        run_dir = "${paths.root_dir}/outputs/${task_name}/${now:%Y-%m-%d}_${now:%H-%M-%S}"
        hydra_node = OmegaConf.to_container(full.hydra, resolve=False)  # ${now:} is Hydra's
        assert hydra_node["run"]["dir"] == run_dir
        assert hydra_node["sweep"]["subdir"] == "${hydra.job.num}"
        assert hydra_node["job"]["chdir"] is False
    else:
        _assert_chosen(cfg, CHOSEN[group][option])


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_sets_its_own_values(compose_cfg: Compose, experiment: str) -> None:
    """Every value an experiment file writes (outside its defaults list) is in the composed
    config: no group default or later override wins over it."""
    own = yaml.safe_load((CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text())
    own.pop("defaults", None)
    expected = _leaves(own)
    assert expected  # every experiment sets something of its own
    cfg = compose_cfg(f"experiment={experiment}")
    for key, value in expected.items():
        if value == "???":  # to be given on the command line
            parent, leaf = key.rsplit(".", 1)
            assert OmegaConf.is_missing(OmegaConf.select(cfg, parent), leaf), key
            continue
        got = OmegaConf.select(cfg, key, throw_on_missing=True)
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        assert got == value, key


def test_neumf_pretrain_experiment_asks_for_its_checkpoints(compose_cfg: Compose) -> None:
    """Without the GMF and MLP checkpoints the pretrain experiment stops before any data is
    read, naming both keys (a ??? in the experiment would lose the merge to neumf.yaml's
    null and train from scratch instead)."""
    from hybridrec.cli.checks import ConfigError, check_config

    cfg = compose_cfg("experiment=ncf_neumf_pretrain_ml1m")
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    assert [p.key for p in caught.value.problems] == [
        "model.pretrained_gmf",
        "model.pretrained_mlp",
    ]
    given = compose_cfg(
        "experiment=ncf_neumf_pretrain_ml1m",
        "model.pretrained_gmf=gmf.ckpt",
        "model.pretrained_mlp=mlp.ckpt",
    )
    check_config(given)


@pytest.mark.parametrize("name", group_options("data"))
def test_data_source_instantiates(
    compose_cfg: Compose, data_files: dict[str, str], name: str
) -> None:
    cfg = compose_cfg(*data_overrides(name, data_files))
    raw = read_source(cfg)
    assert isinstance(raw, RawData)
    assert len(raw.interactions) > 100
    assert {"user", "item"} <= set(raw.interactions.columns)
    if cfg.data.get("judgments") is not None:  # the judgments are read with the source
        assert raw.ratings is not None and {"rater", "item", "score"} <= set(raw.ratings.columns)


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
    # model=hybrid is the composed hybrid (built from trained parts: tests/cli/
    # test_composed_train.py); its joint model instantiates
    joint = ["model.combine=joint"] if model == "hybrid" else []
    cfg = _spec_cfg(compose_cfg, f"model={model}", *joint)
    net = model_of(cfg)
    assert type(net) is get_class(CHOSEN["model"][model]["model._target_"])
    if not getattr(net, "requires_training", True):  # count-based: fitted on sequences
        net.fit_sequences(torch.tensor([1, 2, 3, 2, 4, 5]), torch.tensor([0, 3, 6]))
    batch = RowEvalBatch(
        users=torch.tensor([0, 1]),
        items=torch.tensor([[1, 2, 3], [4, 5, 6]]),
        history=torch.tensor([[0, 1, 2], [3, 4, 5]]),  # sequence models read the history
    )
    assert adapter.scores(net, batch).shape == (2, 3)
    assert adapter.scores_all(net, batch).shape == (2, cfg.spec.n_items + 1)


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
    net = model_of(cfg)
    tower = net.items  # seqtext: items from their text alone, the text tower is the item tower
    assert isinstance(net, SeqRec) and isinstance(tower, TextItemTower)
    # minilm: a pretrained encoder (the tiny BERT here); bag and transformer: their own kind
    assert (
        tower.encoder_kind
        == {"bag": "bag", "minilm": "pretrained", "transformer": "transformer"}[text]
    )
    batch = WindowBatch(
        users=torch.tensor([0, 1]),
        history=torch.tensor([[0, 1, 2], [3, 4, 5]]),
        history_lengths=torch.tensor([2, 3]),
        sequence_targets=torch.tensor([[0, 2, 3], [4, 5, 6]]),
    )
    scores = adapter.scores(net.train(), batch)
    assert scores.shape == (5, cfg.spec.n_items + 1)
    scores.logsumexp(1).mean().backward()
    assert any(p.grad is not None for p in tower.parameters())


@pytest.mark.parametrize("loss", group_options("loss"))
def test_loss_instantiates(compose_cfg: Compose, loss: str) -> None:
    term = instantiate(compose_cfg(f"loss={loss}").loss)
    assert type(term) is LossSum and list(term.terms) == ["ranking"]
    expected = get_class(CHOSEN["loss"][loss]["loss.terms.ranking._target_"])
    assert type(term.terms["ranking"]) is expected
    batch = PairBatch(
        users=torch.zeros(4, dtype=torch.long),
        items=torch.tensor([[1, 2, 3]] * 4),
        labels=torch.tensor([[1.0, 0, 0]] * 4),
    )
    out = term(torch.randn(4, 3), batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])


@pytest.mark.parametrize("optimizer", group_options("optimizer"))
def test_optimizer_instantiates(compose_cfg: Compose, optimizer: str) -> None:
    factory = instantiate(compose_cfg(f"optimizer={optimizer}").optimizer)
    built = factory([torch.nn.Parameter(torch.zeros(2))])
    chosen = CHOSEN["optimizer"][optimizer]
    assert type(built) is get_class(chosen["optimizer._target_"])
    assert built.defaults["lr"] == chosen["optimizer.lr"]


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


@pytest.mark.parametrize("datamodule", group_options("datamodule"))
def test_datamodule_instantiates(compose_cfg: Compose, datamodule: str) -> None:
    # next_item reads its window length from the model: a sequence model goes with it
    model = {"default": "mf", "next_item": "sasrec", "sequence": "gru4rec"}[datamodule]
    cfg = _spec_cfg(compose_cfg, f"datamodule={datamodule}", f"model={model}")
    built = instantiate(cfg.datamodule)
    chosen = CHOSEN["datamodule"][datamodule]
    assert type(built) is get_class(chosen["datamodule._target_"])
    assert built.batch_size == chosen["datamodule.batch_size"]
    if "datamodule.training" in chosen:
        assert built.training == chosen["datamodule.training"]
    if "datamodule.prefix_cache" in chosen:
        assert built.prefix_cache == chosen["datamodule.prefix_cache"]


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
    callbacks = {name: instantiate(c) for name, c in cfg.callbacks.items()}
    targets = CHOSEN["callbacks"]["default"]
    assert {f"callbacks.{name}._target_" for name in callbacks} == set(targets)
    for name, callback in callbacks.items():
        assert type(callback) is get_class(targets[f"callbacks.{name}._target_"]), name


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
    for name, part in (cfg.model.get("parts") or {}).items():  # a composed hybrid's MiniLM part
        if any("minilm" in str(o) for o in part):
            given = [*map(str, part), *_tiny_pretrained(tmp_path)]
            overrides.append(f"model.parts.{name}=[{','.join(repr(o) for o in given)}]")
            cfg = compose_cfg(*overrides)
    pretrained = experiment == "ncf_neumf_pretrain_ml1m"  # needs GMF and MLP checkpoints
    if pretrained:  # its required checkpoints (config key `required`)
        cfg = compose_cfg(*overrides, *_pretrained_halves(cfg, tmp_path))
        assert cfg.model.pretrained_gmf.endswith("gmf.pt")
    with open_dict(cfg):  # record what train() really builds and fits
        cfg.callbacks.record_trained = {"_target_": f"{__name__}.RecordTrained"}
    RecordTrained.seen = {}
    results = train(cfg).metrics
    _, _, model, datamodule, loss, optimizer, lr, _, _, ks = EXPERIMENTS[experiment]
    if is_composed(cfg):  # its parts are trained as their own runs; it is evaluated
        names = {f"test/{m}@{k}" for m in ("hr", "recall", "ndcg", "mrr") for k in ks}
        assert names <= set(results)
        return
    seen = RecordTrained.seen
    assert seen["model"] is get_class(model)
    assert seen["datamodule"] is get_class(datamodule)
    assert seen["loss_terms"] == {"ranking": get_class(loss)}
    assert seen["ks"] == tuple(ks)
    if seen["model"].__name__ in ("ItemKNN", "Popularity"):  # counted, not trained
        assert "optimizer" not in seen
    else:
        assert seen["optimizer"] is get_class(optimizer) and seen["lr"] == lr
    if pretrained:  # training started from the saved GMF half's embeddings
        gmf = torch.load(tmp_path / "gmf.pt", weights_only=True)
        assert torch.equal(seen["state"]["gmf.user_embedding.weight"], gmf["user_embedding.weight"])
    # one test value per metric and cut-off of the experiment (ks [10, 20] -> @10 and @20)
    names = {f"test/{m}@{k}" for m in ("hr", "recall", "ndcg", "mrr") for k in ks}
    assert names <= set(results)


class RecordTrained(L.Callback):
    """Records the classes train() fits and tests (a callback added through the config)."""

    seen: ClassVar[dict[str, Any]] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        self.seen["optimizer"] = type(optimizer)
        self.seen["lr"] = optimizer.param_groups[0]["lr"]
        self.seen["state"] = {
            k: v.detach().clone() for k, v in pl_module.model.state_dict().items()
        }

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen["model"] = type(pl_module.model)
        self.seen["loss_terms"] = {n: type(t) for n, t in pl_module.loss.terms.items()}
        self.seen["datamodule"] = type(trainer.datamodule)  # type: ignore[attr-defined]
        self.seen["ks"] = pl_module.ks


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


@pytest.mark.parametrize(
    "option", sorted(p.stem for p in (CONFIG_DIR / "hydra" / "launcher").glob("*.yaml"))
)
def test_hydra_launcher_composes_and_instantiates(option: str) -> None:
    """hydra/launcher=parallel: the joblib launcher, n_jobs processes (tests/cli/test_concurrency.py
    runs four jobs with it against one store)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        full = compose("train", [f"hydra/launcher={option}"], return_hydra_config=True)
    launcher = full.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher.n_jobs == 4
    assert launcher.prefer == "processes"
    assert get_class(launcher._target_).__name__ == "JoblibLauncher"
    GlobalHydra.instance().clear()


COMPOSED = [e for e in group_options("experiment") if e.startswith("hybrid_")]


@pytest.mark.parametrize("experiment", COMPOSED)
def test_composed_experiment_parts_compose_and_check(compose_cfg: Compose, experiment: str) -> None:
    """Each part of each composed hybrid experiment composes from its overrides, passes the
    config checks as its own run would, and gets the parent's data and protocol."""
    from hybridrec.cli.checks import check_config
    from hybridrec.run.parts import default_parts, is_composed, part_config, part_key

    cfg = compose_cfg(f"experiment={experiment}")
    assert is_composed(cfg)
    parts = cfg.model.parts if cfg.model.parts is not None else default_parts(cfg)
    assert len(parts) >= 2
    keys = set()
    for name, overrides in parts.items():
        part = part_config(
            cfg, str(name), list(overrides), [f"logger.tracking_uri={cfg.logger.tracking_uri}"]
        )
        assert not is_composed(part)
        check_config(part)
        assert part.data == cfg.data and part.protocol == cfg.protocol
        if cfg.get("judgment") is None:  # no judgments: the node not added (earlier reuse keys)
            assert "judgment" not in part
        keys.add(part_key(part, "fingerprint"))
    assert len(keys) == len(parts)  # distinct parts, distinct reuse keys
