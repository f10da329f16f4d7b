"""The composed hybrid with a judgment head (``model.combine=composed judgment=head_pointwise``):
the head is fitted after the combiner on the frozen composed model, its held-out agreement is
logged to the composed run and reproduced from the checkpoint, a served request at lambda 0
is the composed model's own answer and at lambda > 0 the hand-computed z(s) + lambda z(s_J),
and the review page shows the run (part shares beside the judgments' share). A served request
with a segment and no user ranks for the segment's audience as the review page does (the
composed hybrid and a plain model)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import SMALL_JUDGMENTS, train_in
from hybridrec.data.batching.judgments import JudgmentData
from hybridrec.export.judgment import served_judgment
from hybridrec.export.pyfunc import audience_file, popularity
from hybridrec.export.pyfunc_model import HybridrecRecommender
from hybridrec.export.recommender import Recommender
from hybridrec.export.review import _Scoring, build_review
from hybridrec.lit.checkpoint import PAYLOAD, load_model, safe_load
from hybridrec.metrics import agreement
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.contexts import SEGMENT, USER
from hybridrec.nn.judgment_head import standardise_rows

COMPOSED_HEAD = [
    *SMALL_JUDGMENTS,
    "model.combine=composed",
    "judgment=head_pointwise",
    "judgment.head.source=tokens+item",
    "judgment.head.map_l2=[0.001,0.1]",
    "debug=fast_dev_run",
]


@pytest.fixture(scope="module")
def composed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("composed_head")
    result, cfg, data_dir, uri = train_in(root, *COMPOSED_HEAD)
    run = MlflowClient(uri).get_run(str(result.run_id))
    checkpoint = str(result.best_checkpoint)
    yield {
        "root": root,
        "uri": uri,
        "cfg": cfg,
        "data_dir": data_dir,
        "run": run,
        "checkpoint": checkpoint,
        "saved": safe_load(checkpoint),
        "model": load_model(checkpoint),
    }


def test_the_composed_run_logs_the_heads_agreement(composed_run: dict[str, Any]) -> None:
    metrics = composed_run["run"].data.metrics
    for stage in ("val", "test"):
        for prefix in ("", "by_rater/"):
            value = metrics[f"{stage}/head/{prefix}marketer_agreement"]
            assert 0.0 <= value <= 1.0
        assert f"{stage}/marketer_agreement" in metrics  # the composed model's own (lambda 0)
    assert metrics["val/head/map_l2"] in (0.001, 0.1)  # the copy validation chose
    assert metrics["val/head/l2"] in (1e-5, 1e-4, 1e-3, 1e-2)
    assert "test/hr10" in metrics and "test/ndcg10" in metrics
    # the head in the checkpoint is the one measured: its test agreement, reproduced
    model, saved = composed_run["model"], composed_run["saved"]
    assert isinstance(model, ComposedHybrid)
    head = served_judgment(saved, model)
    assert head is not None
    assert any(k.startswith("head_losses.") for k in saved["state_dict"])  # as a plain run's
    segments = list(composed_run["cfg"].data.judgments.segments)
    seed = int(composed_run["cfg"].datamodule.seed)
    data = JudgmentData.load(composed_run["data_dir"], model.n_users, seed=seed)
    assert data is not None
    held = data.eval_sets("test")[""]
    scores = torch.stack(
        [
            head.scores(
                int(c) if int(k) == USER else None, segments[int(c)] if int(k) == SEGMENT else None
            )[int(i)]
            for k, c, i in zip(held.kind, held.context, held.items)
        ]
    )
    found = agreement(scores, held.targets, held.groups, held.pairs).agreement
    assert found == pytest.approx(metrics["test/head/marketer_agreement"], abs=1e-6)


def _served(composed_run: dict[str, Any]) -> HybridrecRecommender:
    served = HybridrecRecommender()  # the pyfunc model, loaded as mlflow loads it
    served.load_context(SimpleNamespace(artifacts={"checkpoint": composed_run["checkpoint"]}))
    return served


def test_lambda_zero_is_the_composed_models_answer_and_lambda_adds_the_head(
    composed_run: dict[str, Any],
) -> None:
    model, saved = composed_run["model"], composed_run["saved"]
    maps = saved[PAYLOAD]["id_maps"]
    served = _served(composed_run)
    n = model.n_items
    user = str(maps["users"][3])
    segment = str(composed_run["cfg"].data.judgments.segments[1])
    every = {"user": user, "k": n, "include_seen": True}
    requests = pd.DataFrame(
        [
            {**every, "lambda": 0.0},
            {**every, "lambda": 2.0},
            {**every, "lambda": 2.0, "segment": segment},
        ]
    )
    answers = served.predict(None, requests)
    # lambda 0: exactly the composed model's own answer (the same model without a head)
    alone = Recommender(model, [None, *maps["items"]], maps["users"])
    own = alone.recommend(user=user, k=n, include_seen=True)
    assert list(answers.iloc[0]["items"]) == own["items"]
    assert list(answers.iloc[0]["scores"]) == pytest.approx(own["scores"], abs=1e-6)
    # lambda 2: z(s) + 2 z(s_J) over the catalogue, by hand from the checkpoint's head
    index = alone.item_index
    s = torch.zeros(n + 1)
    for raw, value in zip(own["items"], own["scores"]):
        s[index[raw]] = value
    head = served_judgment(saved, model)
    assert head is not None
    row = 3  # the user's index
    for answer, m_c in (
        (answers.iloc[1], head.everyone + head.user_offsets[row]),
        (answers.iloc[2], head.segments[segment]),
    ):
        s_j = head.phi @ m_c
        expected = standardise_rows(s.unsqueeze(0))[0] + 2.0 * standardise_rows(s_j.unsqueeze(0))[0]
        got = torch.tensor([float(v) for v in answer["scores"]])
        items = [index[raw] for raw in answer["items"]]
        assert got == pytest.approx(expected[items], abs=1e-4)
        assert got.tolist() == sorted(got.tolist(), reverse=True)
        assert set(items) == set(range(1, n + 1))
    assert list(answers.iloc[1]["items"]) != own["items"]  # the head moved the ranking


def test_hybridrec_eval_gives_the_front_of_the_composed_run(composed_run: dict[str, Any]) -> None:
    """``hybridrec-eval RUN --lambdas 0,1``: at lambda 0 exactly the composed run's own test
    metrics and agreement; at lambda 1 the head moves the agreement."""
    from hybridrec.cli.evaluate import main as eval_main
    from hybridrec.tracking.lambda_front import FRONT_TAG

    run_id, uri = composed_run["run"].info.run_id, composed_run["uri"]
    cwd = os.getcwd()
    os.chdir(composed_run["root"])  # MLflow puts artifacts under ./mlruns
    try:
        assert eval_main([run_id, "--lambdas", "0,1", "--tracking-uri", uri]) == 0
    finally:
        os.chdir(cwd)
    client = MlflowClient(uri)
    own = composed_run["run"].data.metrics
    (front,) = client.search_runs(
        [composed_run["run"].info.experiment_id], f"tags.`{FRONT_TAG}` = 'lambda'"
    )
    metrics = front.data.metrics
    assert metrics["lambda_0/test/ndcg10"] == pytest.approx(own["test/ndcg10"])
    assert metrics["lambda_0/test/hr10"] == pytest.approx(own["test/hr10"])
    assert metrics["lambda_0/test/marketer_agreement"] == pytest.approx(
        own["test/marketer_agreement"]
    )
    assert metrics["lambda_1/test/marketer_agreement"] != pytest.approx(
        own["test/marketer_agreement"]
    )


def test_the_review_page_shows_the_composed_run(composed_run: dict[str, Any]) -> None:
    cwd = os.getcwd()
    os.chdir(composed_run["root"])  # the run's config names its data folder relative to here
    try:
        review = build_review(Path(composed_run["checkpoint"]), k=5)
    finally:
        os.chdir(cwd)
    assert review.kind == "head" and review.model == "ComposedHybrid"
    everyone = review.audiences[0]
    assert everyone.chosen is not None
    shares = [item.part_shares for item in everyone.chosen]
    assert all(s is not None and set(s) == {"ids", "text"} for s in shares)
    assert any(item.judgment_part != 0 for item in everyone.chosen)
    assert all(item.judgment_part == 0 for item in everyone.base)
    # lambda 0 pooled by item = the run's own logged agreement (the same contexts and items)
    logged = composed_run["run"].data.metrics["test/marketer_agreement"]
    assert review.pooled["by_item@0"] == pytest.approx(logged, abs=1e-6)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("plain_head")
    result, _, data_dir, _ = train_in(
        root, *SMALL_JUDGMENTS, "judgment=head_pointwise", "trainer.max_epochs=1"
    )
    return {"root": root, "data_dir": data_dir, "checkpoint": str(result.best_checkpoint)}


@pytest.mark.parametrize("which", ["composed_run", "plain_run"])
def test_a_segment_without_a_user_ranks_for_its_audience(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run = request.getfixturevalue(which)
    checkpoint = Path(run["checkpoint"])
    cwd = os.getcwd()
    os.chdir(run["root"])  # the run's config names its data folder relative to here
    try:
        audience = audience_file(checkpoint, tmp_path)  # as the export writes it
        scoring = _Scoring(checkpoint, None, "run")  # the review page's audiences
    finally:
        os.chdir(cwd)
    assert audience is not None
    np.save(tmp_path / "popularity.npy", popularity(checkpoint))
    artifacts = {
        "checkpoint": str(checkpoint),
        "audience": str(audience),
        "popularity": str(tmp_path / "popularity.npy"),
    }
    served = HybridrecRecommender()
    served.load_context(SimpleNamespace(artifacts=artifacts))
    segment = scoring.segments[1]
    vector = scoring.context_rows(torch.tensor([SEGMENT]), torch.tensor([1]))  # (1, D)
    answers = []
    for lam in (0.0, 2.0):
        rows = pd.DataFrame([{"segment": segment, "lambda": lam, "k": 8}])
        answer = served.predict(None, rows).iloc[0]
        expected = scoring.recommender.recommend_audience(vector, 8, lam, segment)
        assert answer["source"] == "segment" and answer["score_kind"] == "model"
        assert list(answer["items"]) == expected["items"]
        assert list(answer["scores"]) == pytest.approx(expected["scores"], abs=1e-5)
        answers.append(list(answer["items"]))
    assert answers[0] != answers[1]  # lambda is no longer ignored
    # no user, no session, no segment: still the popularity answer
    anonymous = served.predict(None, pd.DataFrame([{"k": 8}])).iloc[0]
    assert anonymous["source"] == "popularity"
