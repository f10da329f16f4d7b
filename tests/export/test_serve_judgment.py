"""A run with a judgment head under ``mlflow models serve``: requests with ``lambda`` and
``segment`` are answered over HTTP as the recommender answers them in process, a request without
``lambda`` gets the run's ``serving_lambda``, and an unknown segment is a 400 with one sentence
(slow: trains, exports and starts a server)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import SMALL_JUDGMENTS, mlflow_models_serve, post_invocations, train_in
from hybridrec.cli.export import main as export_main
from hybridrec.export.judgment import served_judgment
from hybridrec.export.recommender import Recommender
from hybridrec.lit.checkpoint import PAYLOAD, load_model, safe_load

BIN = Path(sys.executable).parent
SERVING_LAMBDA = 0.5

pytestmark = pytest.mark.slow


def _records(rows: list[dict]) -> bytes:
    return json.dumps({"dataframe_records": rows}).encode()


def test_lambda_and_segment_over_http(tmp_path: Path) -> None:
    result, cfg, _, uri = train_in(
        tmp_path,
        *SMALL_JUDGMENTS,
        "judgment=head_pointwise",
        f"judgment.head.serving_lambda={SERVING_LAMBDA}",
        "trainer.max_epochs=2",
    )
    out = tmp_path / "export"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the run's config names its data folder relative to where it trained
    try:
        assert export_main([str(result.run_id), "--tracking-uri", uri, "--out", str(out)]) == 0
    finally:
        os.chdir(cwd)
    model_uri = json.loads((out / "export.json").read_text())["pyfunc_model_uri"]
    checkpoint = str(result.best_checkpoint)
    saved = safe_load(checkpoint)
    model = load_model(checkpoint)
    maps = saved[PAYLOAD]["id_maps"]
    local = Recommender(
        model, [None, *maps["items"]], maps["users"], judgment=served_judgment(saved, model)
    )
    segment = str(cfg.data.judgments.segments[1])
    user = str(maps["users"][3])
    requests = [
        {"user": user, "k": 5, "include_seen": True, "lambda": 0},
        {"user": user, "k": 5, "include_seen": True, "lambda": 3.0},
        {"user": user, "k": 5, "include_seen": True, "lambda": 3.0, "segment": segment},
        {"user": user, "k": 5, "include_seen": True},  # the run's serving_lambda
    ]
    expected = [
        local.recommend(
            user=r["user"],
            k=5,
            include_seen=True,
            judgment_lambda=r.get("lambda"),
            segment=r.get("segment"),
        )
        for r in requests
    ]
    with mlflow_models_serve(model_uri, uri) as port:
        status, answer = post_invocations(port, _records(requests))
        assert status == 200, answer
        rows = answer["predictions"]
        for row, want in zip(rows, expected, strict=True):
            assert row["items"] == want["items"]
            assert row["scores"] == pytest.approx(want["scores"], abs=1e-5)
        # lambda moves the answer: with the head at 3, not the recommender's own order
        assert rows[0]["scores"] != pytest.approx(rows[1]["scores"])
        status, error = post_invocations(
            port, _records([{"user": user, "k": 5, "segment": "nobody"}])
        )
        assert status == 400 and error["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "segment='nobody': expected one of" in error["message"]
        assert "\n" not in error["message"] and "Traceback" not in error["message"]

    # the request without lambda was answered at the run's serving_lambda, not at 0
    assert local.judgment is not None and local.judgment.default_lambda == SERVING_LAMBDA
    at_default = local.recommend(user=user, k=5, include_seen=True, judgment_lambda=SERVING_LAMBDA)
    assert expected[3]["items"] == at_default["items"]
