"""Self-contained checkpoints: load_model rebuilds a trained model from its checkpoint alone
(``weights_only``), with the prepared data folder gone, to identical scores."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import TINY_DATA, model_of
from hybridrec.lit import load_model
from hybridrec.lit.checkpoint import PAYLOAD
from hybridrec.run.train import train

SEQUENCE = ["protocol=loo_full", "datamodule=next_item", "loss=xe", "model.dim=16"]
CASES = {
    "mf": ["model=mf"],
    "neumf": [],
    "textrec": ["model=textrec", "model.dim=16", "model.vocab_size=300"],
    "sasrec": ["model=sasrec", *SEQUENCE],
    "sasrec-gru": ["model=sasrec", "model.encoder=gru", *SEQUENCE],
    "seqtext": ["model=seqtext", "model.text.vocab_size=300", *SEQUENCE],
    "hybrid": ["model=hybrid", "model.combine=joint", *SEQUENCE],
    "hybrid-pairs": ["model=hybrid", "model.combine=joint", "model.history=null", "model.dim=16"],
    "unisrec-style": [
        "model=seqtext",
        "model.text.vocab_size=300",
        "model.item_id=true",
        "model.temperature=0.1",
        *SEQUENCE,
    ],
}


@pytest.mark.parametrize("name", list(CASES))
def test_checkpoint_rebuilds_the_model_without_the_data_folder(
    compose_cfg: Callable[..., DictConfig], name: str
) -> None:
    cfg = compose_cfg(*TINY_DATA, "trainer.max_epochs=1", *CASES[name])
    result = train(cfg)
    folder = Path(cfg.datamodule.data_dir)
    users = torch.arange(8)
    history = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]] * 4)  # (8, 5) left-padded
    lengths = (history > 0).sum(1)

    # the reference: the model built from its config and prepared data, weights loaded
    reference = model_of(cfg)
    saved = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    weights = {k.removeprefix("model."): v for k, v in saved["state_dict"].items()}
    reference.load_state_dict(weights)
    reference.eval()
    raw_users = pd.read_parquet(folder / "users.parquet").sort_values("index")["raw_id"].tolist()

    shutil.rmtree(folder)  # nothing of the prepared data is left
    model = load_model(result.best_checkpoint)
    assert type(model) is type(reference) and not model.training
    with torch.no_grad():
        if hasattr(model, "history"):  # factorised: a history tower reads the history
            expected = reference.score_all(users, history, lengths)
            got = model.score_all(users, history, lengths)
        else:
            expected, got = reference.score_all(users), model.score_all(users)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    payload = saved[PAYLOAD]
    assert payload["id_maps"]["users"] == raw_users
    assert len(payload["id_maps"]["items"]) == cfg.spec.n_items
    assert payload["spec"]["fingerprint"] == cfg.spec.fingerprint


def test_a_checkpoint_without_the_payload_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="has no 'hybridrec_model' entry"):
        load_model(path)


@pytest.mark.parametrize("name", ["textrec", "hybrid"])
def test_a_checkpoint_written_before_the_catalogue_still_loads(
    compose_cfg: Callable[..., DictConfig], name: str, tmp_path: Path
) -> None:
    """Checkpoints written before the Catalogue object named the prepared folder in the model
    config (``data_dir``) and kept the text tower's tokens under ``catalogue``: they rebuild
    to the same scores."""
    from hybridrec.cli.common import prepare_from_config
    from hybridrec.data.catalogue import Catalogue
    from hybridrec.lit.checkpoint import model_payload

    cfg = compose_cfg(*TINY_DATA, *CASES[name])
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)
    torch.manual_seed(0)
    model = model_of(cfg).eval()
    run_config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(run_config, dict)
    payload = model_payload(model, run_config, Catalogue.from_folder(folder).id_maps)
    payload["catalogue"] = payload.pop("text")  # the old layout
    config = payload["config"]
    assert "catalogue" in config or "catalogue" in config["text"]
    config.pop("catalogue", None)
    config["data_dir"] = str(folder)
    if isinstance(config.get("text"), dict):
        config["text"].pop("catalogue")
        config["text"]["data_dir"] = str(folder)
    state = {"model." + k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, PAYLOAD: payload}, tmp_path / "old.ckpt")
    shutil.rmtree(folder)  # the folder the old config names is gone: never read

    rebuilt = load_model(tmp_path / "old.ckpt")
    users = torch.arange(4)
    history = torch.tensor([[0, 1, 2, 3]] * 4)
    lengths = (history > 0).sum(1)
    with torch.no_grad():
        if name == "textrec":
            torch.testing.assert_close(rebuilt.score_all(users), model.score_all(users))
        else:
            torch.testing.assert_close(
                rebuilt.score_all(users, history, lengths), model.score_all(users, history, lengths)
            )
