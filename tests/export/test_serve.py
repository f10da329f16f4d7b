"""The pyfunc model and `mlflow models serve`: a known user, an anonymous session, a session
holding a new product (cold: scored through its text), the popularity fallback, and malformed
requests answered 400 with one sentence."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from conftest import TINY_DATA, TINY_JUDGMENTS, mlflow_models_serve, post_invocations
from hybridrec.cli.export import main as export_main
from hybridrec.lit import load_model
from hybridrec.run.train import train

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str
) -> Iterator[tuple[str, str, str]]:
    """(model uri, run's best checkpoint, tracking uri) of a tiny hybrid on the synthetic
    catalogue with new products, exported with hybridrec-export."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from conftest import CONFIG_DIR

    root = tmp_path_factory.mktemp("serve")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            [
                f"paths.root_dir={root}",
                f"logger.tracking_uri={mlflow_uri}",
                "experiment=judgment_synthetic",
                *TINY_DATA,
                *TINY_JUDGMENTS,
                "model.dim=16",
                "trainer.max_epochs=1",
            ],
        )
    GlobalHydra.instance().clear()
    result = train(cfg)
    out = str(root / "export")
    args = [str(result.run_id), "--tracking-uri", mlflow_uri, "--out", out]
    assert export_main([*args, "--register", "hybridrec-test"]) == 0
    mlflow.set_tracking_uri(mlflow_uri)
    meta = json.loads((root / "export" / "export.json").read_text())
    yield meta["pyfunc_model_uri"], result.best_checkpoint, mlflow_uri


def test_pyfunc_predict_matches_the_model(exported: tuple[str, str, str]) -> None:
    model_uri, checkpoint, _ = exported
    # registered as a version with the alias; the alias loads the same model
    served = mlflow.pyfunc.load_model("models:/hybridrec-test@champion")
    answer = served.predict(pd.DataFrame([{"user": "3", "k": 5}]))
    row = answer.iloc[0]
    assert row["source"] == "user" and len(row["items"]) == 5
    model = load_model(checkpoint)
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)["hybridrec_model"]
    user = [str(u) for u in payload["id_maps"]["users"]].index("3")
    items = [str(i) for i in payload["id_maps"]["items"]]
    with torch.no_grad():
        vector = model.user_id(torch.tensor([user]))
        scores = model.scorer.score_all(vector, model.item_vectors(), torch.tensor([user]))[0]
    expected = [float(scores[items.index(i) + 1]) for i in row["items"]]
    assert row["scores"] == pytest.approx(expected, abs=1e-5)
    assert all(0 <= share <= 1 for share in row["id_share"])


def test_mlflow_models_serve_answers(exported: tuple[str, str, str]) -> None:
    model_uri, checkpoint, uri = exported
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)["hybridrec_model"]
    # a judged new product: an item of the model with an id past the 60 interacted ones
    new = next(str(i) for i in payload["id_maps"]["items"] if int(i) >= 60)
    with mlflow_models_serve(model_uri, uri, timeout=90) as port:
        records = [
            {"user": "3", "k": 3},  # a known user
            {"recent_items": ["5", "17", "no-such-item"], "k": 3},  # an anonymous session
            {"recent_items": [new], "k": 2},  # a new product (catalogue only: cold)
            {"k": 2},  # nobody: popularity
        ]
        status, answer = post_invocations(port, json.dumps({"dataframe_records": records}).encode())
        assert status == 200, answer
        rows = answer["predictions"]
        assert [r["source"] for r in rows] == ["user", "session", "session", "popularity"]
        assert [len(r["items"]) for r in rows] == [3, 3, 2, 2]
        assert rows[1]["unknown_items"] == ["no-such-item"]
        # the popularity answer's scores are training interactions, and says so
        assert [r["score_kind"] for r in rows] == ["model", "model", "model", "count"]
        assert all(float(score).is_integer() for score in rows[3]["scores"])
        # a session's own items are left out, as this run's evaluation (loo_full, known items
        # masked) left them out, unless the request says otherwise; k = the whole catalogue,
        # so the only items missing from an answer are the ones left out
        catalogue = len(payload["id_maps"]["items"])
        session = {"recent_items": ["5", "17"], "k": catalogue}
        both = [session, {**session, "exclude_recent": False}]
        status, answer = post_invocations(port, json.dumps({"dataframe_records": both}).encode())
        assert status == 200, answer
        default, kept = answer["predictions"]
        assert len(default["items"]) == catalogue - 2 and not {"5", "17"} & set(default["items"])
        assert len(kept["items"]) == catalogue and {"5", "17"} <= set(kept["items"])
        for body, words in [
            ({"dataframe_records": [{"user": "3", "k": 0}]}, "k=0: expected a whole number"),
            ({"dataframe_records": [{"user": "3", "k": 10**9}]}, "expected a whole number"),
            ({"dataframe_records": [{"user": "3", "recent_items": "5"}]}, "must be a list"),
            ({"dataframe_records": [{"user": "3", "k": "many"}]}, "k"),
            ({"dataframe_records": [{"usr": "3"}]}, "unknown field(s) ['usr']"),
            ({"dataframe_records": [{"user": "3"}] * 1001}, "at most 1000"),
            ({"dataframe_records": [{"exclude": ["x"] * 20_000}]}, "at most 10000"),
        ]:
            status, error = post_invocations(port, json.dumps(body).encode())
            assert status == 400, (body, error)
            assert words in error["message"] and "Traceback" not in error["message"]
            # our sentence alone, not MLflow's "Failed to predict data '<the table>'" around it
            assert error["error_code"] == "INVALID_PARAMETER_VALUE", error
            assert "Failed to predict" not in error["message"], error
        status, error = post_invocations(
            port, json.dumps({"dataframe_records": [{"usr": "7", "k": 5}]}).encode()
        )
        assert (status, error["error_code"], error["message"]) == (
            400,
            "INVALID_PARAMETER_VALUE",
            "unknown field(s) ['usr']; a request row may hold "
            "['user', 'recent_items', 'k', 'exclude', 'include_seen', 'exclude_recent', "
            "'cold_offset', 'lambda', 'segment']",
        )
        status, error = post_invocations(port, b"not json")
        assert status == 400
