"""``judgment=head_fields_id``, the ready-made best synthetic head, composes into the values it
names and trains; the L2 of the head's map of the model's vector that validation chose is
logged (``val/head/map_l2``), and is the one of the copy the checkpoint keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from conftest import SMALL_JUDGMENTS, train_config, train_in
from hybridrec.lit.checkpoint import safe_load
from hybridrec.losses.human import JudgmentLoss
from hybridrec.nn.judgment_head import HeadSpec

MAP_L2 = (0.001, 0.01, 0.1)


def test_the_ready_made_head_composes_and_instantiates(tmp_path: Path) -> None:
    cfg = train_config(
        tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", *SMALL_JUDGMENTS, "judgment=head_fields_id"
    )
    with open_dict(cfg):  # the data spec's sizes, as training fills them in
        cfg.spec = {"n_raters": 5, "n_segments": 5}
    judgment = instantiate(cfg.judgment)
    assert isinstance(judgment, JudgmentLoss)
    assert (judgment.pairwise, judgment.pointwise) == (0.0, 1.0)  # head_pointwise's term
    head = judgment.head
    assert isinstance(head, HeadSpec)
    assert (head.source, head.fields, head.shared) == ("tokens+id", 4, False)
    # the copies: every (l2, map_l2) pair
    assert len(head.l2) == 4 * len(MAP_L2) and set(head.map_l2 or ()) == set(MAP_L2)


def test_the_chosen_map_l2_is_logged(tmp_path: Path) -> None:
    result, _, _, uri = train_in(
        tmp_path, *SMALL_JUDGMENTS, "judgment=head_fields_id", "trainer.max_epochs=2"
    )
    metrics = MlflowClient(uri).get_run(str(result.run_id)).data.metrics
    chosen = metrics["val/head/map_l2"]
    assert chosen in MAP_L2
    saved = safe_load(result.best_checkpoint)
    head = saved["hybridrec_config"]["judgment"]["head"]
    spec = HeadSpec(**{k: v for k, v in head.items() if k != "_target_"})
    kept = int(saved["state_dict"]["head.chosen"])
    assert spec.map_l2 is not None and spec.map_l2[kept] == pytest.approx(chosen)
    assert spec.l2[kept] == pytest.approx(metrics["test/head/l2"])
