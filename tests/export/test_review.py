"""hybridrec-review on a tiny trained judgment-head run: the audiences' lists are the served
ranking z(s) + lambda z(s_J) (a hand computation, and the served answer for a user's vector),
the judgments' share is 0 at lambda 0, the pooled agreement at lambda 0 is the run's own logged
test agreement, titles are escaped, a joint-term run has no lambda to choose, and mistakes are
one sentence."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import SMALL_JUDGMENTS, prefix_titles, train_in
from hybridrec.cli.review import main as review_main
from hybridrec.export.review import (
    Audience,
    RaterRow,
    Review,
    ReviewError,
    ReviewItem,
    _Scoring,
    build_review,
)
from hybridrec.export.review_html import render
from hybridrec.export.source import resolve_checkpoint
from hybridrec.nn.contexts import EVERYONE
from hybridrec.nn.judgment_head import standardise_rows

EVIL = '<script>alert("x")</script> & Co'


def _item(title: str = "Lamp", part: float = 0.0) -> ReviewItem:
    return ReviewItem("7", title, True, 1.0, 1.5, part, id_share=0.25)


def test_the_page_escapes_data_and_needs_nothing_outside() -> None:
    review = Review(
        run_id="ab" * 16,
        run_name="<i>run</i>",
        model="Hybrid",
        kind="head",
        lam=1.0,
        serving_lambda=0.0,
        training_weight=1.0,
        k=1,
        audiences=[Audience("<seg>", "<seg>", [_item(EVIL)], [_item(EVIL, 0.5)])],
        raters=[RaterRow("<rater>", 1.0, 0.9, "items", 3, 0.5, 0.6, 0.7)],
    )
    page = render(review)
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&amp; Co" in page and "&lt;seg&gt;" in page and "&lt;rater&gt;" in page
    assert "&lt;i&gt;run&lt;/i&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page


def test_the_judgments_share_is_zero_without_them() -> None:
    assert _item(part=0.0).judgment_share == 0.0
    assert _item(part=1.5).judgment_share == pytest.approx(0.5)
    assert _item(part=-4.5).judgment_share == pytest.approx(0.75)


@pytest.fixture(scope="module")
def head_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One tiny synthetic run with a pointwise judgment head (1 epoch); every item's title in
    its prepared folder then holds markup (titles are user data)."""
    root = tmp_path_factory.mktemp("review")
    result, cfg, data_dir, uri = train_in(
        root, *SMALL_JUDGMENTS, "judgment=head_pointwise", "trainer.max_epochs=1"
    )
    run_id = str(result.run_id)
    prefix_titles(data_dir, EVIL)
    cwd = os.getcwd()
    os.chdir(root)  # the run's config names its data folder relative to where it trained
    try:
        client = MlflowClient(tracking_uri=uri)
        checkpoint, _ = resolve_checkpoint(run_id, client)
        yield {
            "root": root,
            "uri": uri,
            "run_id": run_id,
            "client": client,
            "checkpoint": checkpoint,
            "data_dir": data_dir,
            "segments": list(cfg.data.judgments.segments),
        }
    finally:
        os.chdir(cwd)


def test_the_lists_are_the_served_ranking(head_run: dict[str, Any]) -> None:
    lam, k = 2.0, 8
    review = build_review(
        head_run["checkpoint"], head_run["run_id"], lam=lam, k=k, data_dir=head_run["data_dir"]
    )
    assert [a.name for a in review.audiences] == ["everyone", *head_run["segments"]]
    scoring = _Scoring(head_run["checkpoint"], head_run["data_dir"], "run")
    model, head = scoring.model, scoring.head
    assert head is not None
    # everyone, by hand: the audience's vector, z(s) + lambda z(s_J) over the catalogue
    vector = scoring.context_rows(torch.tensor([EVERYONE]), torch.tensor([0]))
    with torch.no_grad():
        own = model.scorer.score_all(vector, model.item_vectors(), torch.zeros(1).long())
    total = standardise_rows(own) + lam * standardise_rows(head.scores(None, None).unsqueeze(0))
    total[:, 0] = -torch.inf
    expected = [str(scoring.recommender.item_ids[i]) for i in total[0].topk(k).indices.tolist()]
    everyone = review.audiences[0]
    assert everyone.chosen is not None
    assert [i.raw_id for i in everyone.chosen] == expected
    # lambda 0: the model alone, no share from the judgments; at lambda: some
    assert all(i.judgment_share == 0.0 for a in review.audiences for i in a.base)
    assert any(i.judgment_share > 0 for i in everyone.chosen)
    assert all(i.id_share is not None for i in everyone.chosen)  # the joint hybrid's gate
    # a segment, through a user's own vector: exactly the served answer for that user
    user = next(r for r in scoring.recommender.user_index if r is not None)
    row = scoring.recommender.user_index[user]
    with torch.no_grad():
        vector = model.combine_users(model.user_id(torch.tensor([row])), None)
    segment = head_run["segments"][1]
    served = scoring.recommender.recommend(
        user=user, k=k, include_seen=True, judgment_lambda=lam, segment=segment
    )
    mine = scoring.recommender.recommend_audience(vector, k, lam, segment)
    assert mine["items"] == served["items"]
    assert mine["scores"] == pytest.approx(served["scores"])


def test_pooled_agreement_at_zero_is_the_runs_own(head_run: dict[str, Any]) -> None:
    logged = head_run["client"].get_run(head_run["run_id"]).data.metrics
    review = build_review(
        head_run["checkpoint"],
        head_run["run_id"],
        k=3,
        data_dir=head_run["data_dir"],
        logged=logged,
    )
    assert review.lam == 1.0 and review.serving_lambda == 0.0  # the fallback, said on the page
    assert any("serving λ is 0" in n for n in review.notes)
    assert review.pooled["by_item@0"] == pytest.approx(logged["test/marketer_agreement"], abs=1e-6)
    if "by_rater@0" in review.pooled:
        assert review.pooled["by_rater@0"] == pytest.approx(
            logged["test/by_rater/marketer_agreement"], abs=1e-6
        )
    raters = {r.rater for r in review.raters}
    assert len(raters) == 5 and all(r.weight is not None for r in review.raters)
    assert any(r.held_out == "rater" for r in review.raters)  # the held-out rater


def test_the_command_writes_logs_and_escapes(
    head_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = head_run["root"] / "page.html"
    args = ["--tracking-uri", head_run["uri"], "--data-dir", str(head_run["data_dir"])]
    assert review_main([head_run["run_id"][:8], *args, "--out", str(out), "-k", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(out.resolve()))
    page = out.read_text()
    assert page.count('<tr class="item">') == 4 * 2 * (1 + len(head_run["segments"]))
    assert "<script" not in page and "&lt;script&gt;" in page
    logged = head_run["client"].list_artifacts(head_run["run_id"], "review")
    assert [a.path for a in logged] == ["review/review.html"]


def _without(checkpoint: Path, folder: Path, drop: str) -> Path:
    """A copy of ``checkpoint`` whose config lacks ``judgment`` (drop="judgment") or the head
    (drop="head": what a run trained with the joint term looks like to the page)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if drop == "judgment":
        saved["hybridrec_config"].pop("judgment")
    else:
        saved["hybridrec_config"]["judgment"]["head"] = None
    path = folder / f"without_{drop}.ckpt"
    torch.save(saved, path)
    return path


def test_a_joint_run_has_no_lambda_to_choose(head_run: dict[str, Any], tmp_path: Path) -> None:
    joint = _without(head_run["checkpoint"], tmp_path, "head")
    review = build_review(joint, k=3, data_dir=head_run["data_dir"])
    assert review.kind == "joint" and review.lam is None
    assert all(a.chosen is None for a in review.audiences)
    page = render(review)
    assert "There is no serving λ" in page and "<th>from judgments</th>" not in page
    assert page.count('<tr class="item">') == 3 * len(review.audiences)  # one list each
    with pytest.raises(ReviewError, match="joint judgment term .* leave --lambda out"):
        build_review(joint, lam=0.5, data_dir=head_run["data_dir"])


def test_mistakes_are_one_sentence(
    head_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = head_run["uri"]
    assert review_main(["0000ffff", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert "no run id starts with 0000ffff" in err and "\n" not in err
    plain = _without(head_run["checkpoint"], tmp_path, "judgment")
    with pytest.raises(ReviewError, match="trained without marketers' judgments"):
        build_review(plain, data_dir=head_run["data_dir"])
    client = head_run["client"]  # the same, as a run in the store
    experiment = client.get_run(head_run["run_id"]).info.experiment_id
    run = client.create_run(experiment).info.run_id
    client.log_artifact(run, str(plain), artifact_path="checkpoints")
    client.set_tag(run, "best_checkpoint", plain.name)
    client.set_terminated(run)
    assert review_main([run, "--tracking-uri", uri, "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"run {run} was trained without marketers' judgments" in err and "\n" not in err
    with pytest.raises(ReviewError, match="prepared data folder .* is not here"):
        build_review(head_run["checkpoint"], data_dir=tmp_path / "gone")
    with pytest.raises(ReviewError, match="-k 0"):
        build_review(head_run["checkpoint"], k=0, data_dir=head_run["data_dir"])
