"""The composed hybrid: its scores are the weighted sum of the parts' standardised scores (by
hand), one part alone ranks as that part does, the combiner is never below its best part on
validation, cold items are scored by text parts only (or, with a text student, by its
estimates of the ID parts' vectors: it learns a teacher that a text map can express, on items it
never saw), and the checkpoint, the traced scorer and the served answer give the model's own
scores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from conftest import TINY_DATA, model_of
from hybridrec.cli.common import prepare_from_config
from hybridrec.data.batch import RowEvalBatch
from hybridrec.data.catalogue import Catalogue
from hybridrec.export import ExportedScorer, to_torchscript
from hybridrec.export.recommender import Recommender
from hybridrec.lit.checkpoint import PAYLOAD, load_model, model_payload
from hybridrec.lit.combiner import fit_combiner, simplex_grid
from hybridrec.lit.ranking import top_k_ranks
from hybridrec.lit.student import StudentOptions, confidence, fit_student
from hybridrec.lit.validation_rows import ValidationScores, collect_validation
from hybridrec.metrics import positive_ranks, ranking_metrics
from hybridrec.nn.composed import ComposedHybrid, popularity_buckets, text_tower_of
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.gru4rec import GRU4Rec, gru4rec_factorized
from hybridrec.nn.student import TextStudent

PARTS = {
    "mf": ["model=mf", "model.embedding_dim=8"],
    "ids": ["model=hybrid", "model.combine=joint", "model.dim=8", "model.text=null"],
    "text": ["model=hybrid", "model.combine=joint", "model.dim=8", "model.item_id=false"],
}


def _parts(
    compose: Callable[..., DictConfig], names: list[str]
) -> tuple[list[FactorizedModel], torch.Tensor, list[dict[str, Any]]]:
    """The parts (random weights) on one tiny dataset, its training counts, each part's
    resolved config (what a checkpoint stores)."""
    models, configs, cfg = [], [], None
    for seed, name in enumerate(names):
        cfg = compose(*TINY_DATA, "protocol=loo_full", *PARTS[name])
        spec, folder = prepare_from_config(cfg)
        with open_dict(cfg):
            cfg.spec = spec.summary()
            cfg.datamodule.data_dir = str(folder)
        torch.manual_seed(seed)
        model = model_of(cfg).eval()
        with torch.no_grad():  # trained-looking item biases (MF's start at zero)
            bias = getattr(model.scorer, "item_bias", None)
            if bias is not None:
                bias.weight.normal_()
        models.append(model)
        configs.append(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True)))
    assert cfg is not None
    counts = Catalogue.from_folder(cfg.datamodule.data_dir).item_counts
    return models, counts, configs


def _inputs(n_items: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users = torch.tensor([0, 3, 7])
    history = torch.randint(1, n_items + 1, (3, 5), generator=torch.Generator().manual_seed(1))
    history[1, :3] = 0
    return users, history, (history > 0).sum(1)


def _by_hand(
    parts: list[FactorizedModel], weights: torch.Tensor, bucket: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """sum_k w_k(b(i)) (s_k - mean_warm s_k) / std_warm s_k, every row, from score_all."""
    users, history, lengths = _inputs(len(counts) - 1)
    warm = counts > 0
    warm[0] = False
    total = 0
    for k, part in enumerate(parts):
        with torch.no_grad():
            scores = part.score_all(users, history, lengths)  # (B, N)
        mean = scores[:, warm].mean(1, keepdim=True)
        std = scores[:, warm].std(1, unbiased=False, keepdim=True)
        total = total + weights[k, bucket] * (scores - mean) / std
    return total


def test_scores_are_the_weighted_standardised_sum(compose_cfg: Callable[..., DictConfig]) -> None:
    parts, counts, _ = _parts(compose_cfg, ["mf", "ids", "text"])
    composed = ComposedHybrid(parts, ["mf", "ids", "text"], counts, n_buckets=3)
    weights = torch.tensor([[0.0, 0.5, 0.2], [0.0, 0.3, 0.7], [1.0, 0.2, 0.1]])
    composed.set_weights(weights)
    offsets = torch.tensor([-1.0, 0.0, 0.5])  # c(b): cold items down, popular ones up
    composed.set_offsets(offsets)
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)
    with torch.no_grad():
        got = composed.score_all(users, history, lengths)
        one_by_one = composed.score(users, torch.arange(1, 9).expand(3, -1), history, lengths)
    expected = _by_hand(parts, weights, composed.item_bucket, counts)
    expected = expected + offsets[composed.item_bucket]
    torch.testing.assert_close(got[:, 1:], expected[:, 1:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(one_by_one, got[:, 1:9], atol=1e-5, rtol=0)


def test_one_part_alone_ranks_as_that_part(compose_cfg: Callable[..., DictConfig]) -> None:
    parts, counts, _ = _parts(compose_cfg, ["mf", "ids"])
    composed = ComposedHybrid(parts, ["mf", "ids"], counts, n_buckets=1)
    composed.set_weights(torch.tensor([[0.0], [1.0]]))
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)
    with torch.no_grad():
        mine = composed.score_all(users, history, lengths)[:, 1:]
        theirs = parts[1].score_all(users, history, lengths)[:, 1:]
    assert torch.equal(mine.argsort(1, descending=True), theirs.argsort(1, descending=True))


def test_cold_items_take_text_parts_only(compose_cfg: Callable[..., DictConfig]) -> None:
    parts, counts, _ = _parts(compose_cfg, ["ids", "text"])
    counts = counts.clone()
    counts[5] = 0  # item 5: cold
    composed = ComposedHybrid(parts, ["ids", "text"], counts, n_buckets=3)
    assert composed.item_bucket[5] == 0 and composed.allowed[:, 0].tolist() == [False, True]
    with pytest.raises(ValueError, match="cold items"):
        composed.set_weights(torch.full((2, 3), 0.5))
    assert composed.weights[:, 0].tolist() == [0.0, 1.0]  # the default is allowed
    row = composed.item_vectors()[5]
    size = composed.block_sizes[0]
    assert torch.all(row[:size] == 0)  # the ID part's block of a cold item is empty


def test_popularity_buckets_split_warm_items_by_count() -> None:
    counts = torch.tensor([0, 0, 1, 1, 2, 5, 9, 40, 0])
    bucket, edges = popularity_buckets(counts, 4)
    assert bucket.tolist()[0] == 0 and bucket[1] == 0 and bucket[8] == 0  # padding, cold
    warm = bucket[counts > 0]
    assert warm.min() >= 1 and warm.max() <= 3 and len(edges) == 2
    assert torch.all(warm[:-1] <= warm[1:])  # monotone in count


def test_simplex_grid_holds_the_corners() -> None:
    grid = simplex_grid(torch.tensor([True, False, True]), 0.25)
    assert len(grid) == 5 and all(float(w.sum()) == pytest.approx(1.0) for w in grid)
    assert any(w.tolist() == [1.0, 0.0, 0.0] for w in grid)
    assert all(w[1] == 0 for w in grid)


def test_combiner_is_never_below_its_best_part(compose_cfg: Callable[..., DictConfig]) -> None:
    parts, counts, _ = _parts(compose_cfg, ["mf", "ids", "text"])
    composed = ComposedHybrid(parts, ["mf", "ids", "text"], counts, n_buckets=3)
    n = int(counts.shape[0])
    generator = torch.Generator().manual_seed(0)
    for trial in range(3):
        rows = 40
        targets = torch.randint(1, n, (rows, 1), generator=generator)
        scores = torch.randn(3, rows, n, generator=generator)
        # part `trial` knows the answer a little: it should be chosen, or beaten by a mix
        scores[trial, torch.arange(rows), targets[:, 0]] += 1.5
        masked = torch.zeros(rows, n, dtype=torch.bool)
        masked[:, 0] = True
        data = ValidationScores(scores, masked, targets, torch.ones(rows, 1, dtype=torch.bool))
        fit = fit_combiner(composed, data, k=10, step=0.25)
        assert fit.ndcg >= max(fit.part_ndcg.values()) - 1e-9
        assert torch.allclose(composed.weights.sum(0), torch.ones(3))
        assert torch.equal(composed.weights, fit.weights)


def test_checkpoint_export_and_serving_give_the_models_scores(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    parts, counts, configs = _parts(compose_cfg, ["mf", "ids", "text"])
    composed = ComposedHybrid(parts, ["mf", "ids", "text"], counts, n_buckets=3)
    composed.set_weights(torch.tensor([[0.0, 0.6, 0.1], [0.0, 0.2, 0.8], [1.0, 0.2, 0.1]]))
    composed.part_payloads = [model_payload(p, c, None) for p, c in zip(parts, configs)]
    config = configs[0]
    path = tmp_path / "composed.ckpt"
    state = {f"model.{k}": v for k, v in composed.state_dict().items()}
    torch.save({"state_dict": state, PAYLOAD: model_payload(composed, config, None)}, path)
    loaded = load_model(path)
    assert isinstance(loaded, ComposedHybrid)
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)
    with torch.no_grad():
        expected = composed.score_all(users, history, lengths)
        torch.testing.assert_close(loaded.score_all(users, history, lengths), expected)
    # the traced scorer: any batch and history width
    scorer = ExportedScorer(loaded)
    scripted = torch.jit.load(str(to_torchscript(scorer, tmp_path / "scorer.pt")))
    with torch.no_grad():
        torch.testing.assert_close(scripted(users, history, lengths), expected, atol=1e-5, rtol=0)
    # served: a known user with a session; a session alone (the MF part cannot read it: its
    # block is zero); neither (popularity)
    n_items = int(counts.shape[0]) - 1
    items = [str(i) for i in range(n_items + 1)]
    recommender = Recommender(loaded, items, [str(u) for u in range(50)], counts.numpy())
    recent = [str(i) for i in history[0].tolist()]
    answer = recommender.recommend(user="0", recent_items=recent, k=5)
    assert answer["source"] == "user+session" and len(answer["part_shares"]) == 5
    top = expected[0].clone()
    top[0] = -torch.inf
    assert answer["items"] == [str(i) for i in top.topk(5).indices.tolist()]
    shares = answer["part_shares"][0]
    assert set(shares) == {"mf", "ids", "text"}
    assert sum(abs(v) for v in shares.values()) == pytest.approx(1.0, abs=1e-3)
    session = recommender.recommend(recent_items=recent, k=3)
    assert session["source"] == "session" and len(session["items"]) == 3
    assert recommender.recommend(k=3)["source"] == "popularity"


def test_gru4rec_as_a_part_scores_as_gru4rec() -> None:
    torch.manual_seed(0)
    model = GRU4Rec(n_items=30, layers=[16], sparse=False).eval()
    part = gru4rec_factorized(model, n_users=4)
    history = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
    users = torch.zeros(3, dtype=torch.long)
    batch = RowEvalBatch(users=users, history=history)
    with torch.no_grad():
        torch.testing.assert_close(part.score_all(users, history), model.score_all(batch))
    composed = ComposedHybrid([part], ["gru4rec"], torch.ones(31), n_buckets=1)
    with torch.no_grad():
        ranked = composed.score_all(users, history)[:, 1:].argsort(1, descending=True)
        theirs = model.score_all(batch)[:, 1:].argsort(1, descending=True)
    assert torch.equal(ranked, theirs)


def test_validation_rows_are_drawn_from_the_whole_split(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """max_rows below the split: a seeded draw over all batches, each kept row with its own
    targets and masks (the same values as scoring it in its full batch)."""
    parts, counts, _ = _parts(compose_cfg, ["mf", "ids"])
    composed = ComposedHybrid(parts, ["mf", "ids"], counts, n_buckets=1)
    n = int(counts.shape[0])
    batches = []
    for b in range(3):
        users = torch.arange(4 * b, 4 * b + 4)
        history = torch.randint(1, n, (4, 3), generator=torch.Generator().manual_seed(b))
        exclude = torch.stack([torch.arange(4), history[:, 0]])
        targets = torch.randint(1, n, (4, 1), generator=torch.Generator().manual_seed(9 + b))
        batches.append(RowEvalBatch(users=users, history=history, targets=targets, exclude=exclude))
    every = collect_validation(composed, batches, max_rows=100)
    drawn = collect_validation(composed, batches, max_rows=5)
    assert every.rows == 12 and drawn.rows == 5
    matches = [
        next(j for j in range(12) if torch.allclose(every.scores[:, j], drawn.scores[:, i]))
        for i in range(5)
    ]
    assert matches == sorted(matches) and len(set(matches)) == 5
    for i, j in enumerate(matches):
        assert torch.equal(every.masked[j], drawn.masked[i])
        assert torch.equal(every.positives[j], drawn.positives[i])


def _with_cold(
    compose: Callable[..., DictConfig], names: list[str], cold: list[int]
) -> tuple[ComposedHybrid, list[FactorizedModel], torch.Tensor, list[dict[str, Any]]]:
    parts, counts, configs = _parts(compose, names)
    counts = counts.clone()
    counts[cold] = 0
    return ComposedHybrid(parts, names, counts, n_buckets=3), parts, counts, configs


def test_a_student_stands_in_for_the_id_parts_on_cold_items(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    composed, parts, counts, configs = _with_cold(compose_cfg, ["mf", "ids", "text"], [5, 6])
    # MF and the ID hybrid are its targets; the text part (items = text alone) is its source
    assert composed.text_parts == [2] and composed.student_parts == [0, 1]
    torch.manual_seed(3)
    student = TextStudent(int(composed.text_features().shape[1]), composed.student_sizes(), 8)
    with torch.no_grad():  # a non-trivial MLP (its head starts at zero)
        assert student.head is not None
        student.head.weight.normal_()
    composed.set_student(student)
    assert bool(composed.allowed[:, 0].all())  # every part may now weigh cold items
    weights = torch.tensor([[0.5, 0.6, 0.1], [0.3, 0.2, 0.8], [0.2, 0.2, 0.1]])
    composed.set_weights(weights)
    composed.set_offsets(torch.tensor([-0.5, 0.0, 0.25]))
    with torch.no_grad():
        table = composed.item_vectors()
        estimated = student.blocks(text_tower_of(parts[2]).item_vectors()[[5, 6]])  # type: ignore[union-attr]
    sizes = composed.block_sizes
    for k, block in zip([0, 1], estimated, strict=True):
        start = sum(sizes[:k])
        torch.testing.assert_close(table[[5, 6], start : start + sizes[k]], weights[k, 0] * block)
    # a warm item keeps the teacher's own vectors
    composed_plain = ComposedHybrid(parts, ["mf", "ids", "text"], counts, n_buckets=3)
    composed_plain.set_weights(weights * composed_plain.allowed)
    with torch.no_grad():
        plain = composed_plain.item_vectors()
    warm = 7 if counts[7] > 0 else 8
    assert torch.equal(table[warm, : sizes[0] + sizes[1]], plain[warm, : sizes[0] + sizes[1]])
    # a product added after training, from the same text: the cold item's row
    with torch.no_grad():
        text_vectors = text_tower_of(parts[2]).item_vectors()[[5]]  # type: ignore[union-attr]
        added = composed.new_item_vectors([None, None, text_vectors])
    torch.testing.assert_close(added[0], table[5])
    # the checkpoint carries the student
    composed.part_payloads = [model_payload(p, c, None) for p, c in zip(parts, configs)]
    path = tmp_path / "composed.ckpt"
    state = {f"model.{k}": v for k, v in composed.state_dict().items()}
    torch.save({"state_dict": state, PAYLOAD: model_payload(composed, configs[0], None)}, path)
    loaded = load_model(path)
    assert isinstance(loaded, ComposedHybrid) and loaded.student is not None
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.score_all(users, history, lengths), composed.score_all(users, history, lengths)
        )


def test_the_student_learns_a_teacher_its_text_can_express(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """MF's item vectors are made a fixed linear map of the text part's item vectors; the
    student, trained on the warm items only, must give the cold items (never seen) scores
    that agree with the teacher's own vectors for them."""
    cold = [3, 5, 6, 9]
    composed, parts, counts, _ = _with_cold(compose_cfg, ["mf", "text"], cold)
    text = text_tower_of(parts[1])
    assert text is not None
    with torch.no_grad():
        features = text.item_vectors()  # (N, D_t)
        mapping = torch.randn(features.shape[1], parts[0].items.table.weight.shape[1])  # type: ignore[union-attr]
        parts[0].items.table.weight.copy_(features @ mapping)  # type: ignore[union-attr]
        parts[0].scorer.item_bias.weight.zero_()  # type: ignore[union-attr]  # all from text
    composed = ComposedHybrid(parts, ["mf", "text"], counts, n_buckets=3)  # fresh statistics
    n_users = int(parts[0].n_users)
    users = torch.arange(n_users)
    generator = torch.Generator().manual_seed(0)
    history = torch.randint(1, int(counts.shape[0]), (n_users, 6), generator=generator)
    with torch.no_grad():
        vectors = composed.teacher_user_vectors(users, history, torch.full((n_users,), 6))
    warm = torch.nonzero(counts > 0).flatten()
    pairs = torch.stack(
        [
            torch.randint(0, n_users, (3000,), generator=generator),
            warm[torch.randint(len(warm), (3000,), generator=generator)],
        ],
        1,
    )
    options = StudentOptions(hidden=0, lr=0.03, max_epochs=60, patience=60, data=0.0)
    student, fit = fit_student(composed, users, vectors, pairs, options)
    assert fit.best_epoch > 1 and fit.users == n_users
    assert fit.train_items + fit.holdout_items == int((warm > 0).sum())
    with torch.no_grad():
        teacher = composed.part_item_vectors()[0][cold]  # MF's own vectors of the cold items
        mine = student.blocks(features[cold])[0]
        t_scores, s_scores = vectors[0] @ teacher.T, vectors[0] @ mine.T  # (U, 4)
    correlation = torch.corrcoef(torch.stack([t_scores.flatten(), s_scores.flatten()]))[0, 1]
    assert correlation > 0.9, float(correlation)


def test_teacher_confidence_grows_with_the_items_count() -> None:
    weight = confidence(torch.tensor([0.0, 0.0, 1.0, 3.0, 3.0, 50.0]))
    assert weight[0] == 0 and weight[1] == 0
    assert weight[2] < weight[3] < weight[5] < 1
    assert float(weight[3]) == pytest.approx(float(torch.tanh(torch.tensor(1.0))))  # the median


def test_top_k_ranks_give_the_full_ranks_metrics_at_k() -> None:
    """The combiner's fast ranks (k + 1 best scores) give exactly the metrics @k of the full
    ranks, with ties (small integer scores), masked candidates and padded positives."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (200, 40), generator=generator).float()
    scores[:, :3] = -torch.inf  # masked columns
    positives = torch.randint(3, 40, (200, 7), generator=generator)
    valid = torch.rand(200, 7, generator=generator) > 0.3
    valid[:, 0] = True
    for k in (1, 5, 10):
        fast = ranking_metrics(top_k_ranks(scores, positives, valid, k, "pessimistic"), k)
        full = ranking_metrics(positive_ranks(scores, positives, valid, "pessimistic"), k)
        for name in ("hr", "recall", "ndcg", "mrr"):
            torch.testing.assert_close(getattr(fast, name), getattr(full, name), rtol=0, atol=0)


def _script(name: str) -> Any:
    """scripts/<name>.py as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _seeded(
    compose: Callable[..., DictConfig], overrides: list[str], names: list[str]
) -> tuple[list[FactorizedModel], DictConfig]:
    """One model per name (PARTS), seeds 0, 1, ..., on the tiny data under ``overrides`` with
    the next-item datamodule; the last one's resolved config (the data is the same)."""
    models, cfg = [], None
    for seed, name in enumerate(names):
        cfg = compose(*TINY_DATA, *overrides, "datamodule=next_item", *PARTS[name])
        spec, folder = prepare_from_config(cfg)
        with open_dict(cfg):
            cfg.spec = spec.summary()
            cfg.datamodule.data_dir = str(folder)
        torch.manual_seed(seed)
        models.append(model_of(cfg).eval())
    assert cfg is not None
    return models, cfg


def _tested(model: Any, cfg: DictConfig, datamodule: Any) -> dict[str, float]:
    """The project's test loop's metrics for ``model`` (ks = [10])."""
    import lightning as L

    from hybridrec.lit import RecLitModule

    module = RecLitModule(
        model=model, loss=instantiate(cfg.loss), optimizer=instantiate(cfg.optimizer), ks=[10]
    )
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return tested


def test_the_cold_frontier_at_the_fitted_offset_is_the_models_evaluation(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """scripts/cold_frontier.py: its row for the model's own cold offset gives the cold and
    warm metrics that the project's test loop gives the model; its quota of cold places runs
    from no cold hit (m = 0) to no warm hit (m = k)."""
    script = _script("cold_frontier")
    models, cfg = _seeded(compose_cfg, ["protocol=cold_items"], ["ids", "text"])
    counts = Catalogue.from_folder(cfg.datamodule.data_dir).item_counts
    composed = ComposedHybrid(models, ["ids", "text"], counts, n_buckets=3)
    composed.set_offsets(torch.tensor([0.5, 0.0, 0.0]))
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("test")
    (row,) = script.frontier(composed, datamodule.test_dataloader(), [0.5], 10, "pessimistic")
    tested = _tested(composed, cfg, datamodule)
    assert row["cold_hr"] == pytest.approx(tested["test/cold/hr@10"], abs=1e-6)
    assert row["warm_ndcg"] == pytest.approx(tested["test/warm/ndcg@10"], abs=1e-6)
    assert row["cold_hr"] > 0 and row["warm_hr"] > 0
    # --slots: no cold place, no cold hit; every place cold, no warm hit; in between, both
    none, half, every = script.slot_frontier(
        composed, datamodule.test_dataloader(), [0, 5, 10], 10, "pessimistic"
    )
    assert none["cold_hr"] == 0 and every["warm_hr"] == 0
    assert none["warm_hr"] >= half["warm_hr"] and every["cold_hr"] >= half["cold_hr"]
    assert half["cold_hr"] > 0 and half["warm_hr"] > 0


def test_a_request_moves_the_cold_offset_of_its_answer(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """The served ``cold_offset``: every cold item's score moves by (requested - fitted) offset,
    nothing else moves (the offset column of the model's own item matrix, set per answer); a
    high one puts the cold items first; a model without a cold offset refuses it."""
    cold = [5, 6, 9]
    composed, parts, counts, _ = _with_cold(compose_cfg, ["ids", "text"], cold)
    composed.set_offsets(torch.tensor([-0.5, 0.0, 0.2]))
    n_items = int(counts.shape[0]) - 1
    items = [str(i) for i in range(n_items + 1)]
    recommender = Recommender(composed, items, [str(u) for u in range(50)], counts.numpy())
    fitted = recommender.recommend(user="3", k=n_items)
    lifted = recommender.recommend(user="3", k=n_items, cold_offset=6.0)
    before = dict(zip(fitted["items"], fitted["scores"], strict=True))
    after = dict(zip(lifted["items"], lifted["scores"], strict=True))
    assert set(before) == set(after) == set(items[1:])
    for item, score in after.items():
        shift = 6.5 if int(item) in cold else 0.0
        assert score == pytest.approx(before[item] + shift, abs=1e-4)
    assert set(lifted["items"][:3]) == {"5", "6", "9"}
    plain = Recommender(parts[0], items, [str(u) for u in range(50)], counts.numpy())
    with pytest.raises(ValueError, match="cold_offset: only a composed hybrid"):
        plain.recommend(user="3", cold_offset=1.0)


def test_user_buckets_scale_each_parts_share_by_history_length(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """With user-history buckets, row u's part k is weighted a_k(h(u)) w_k(b(i)): by hand; the
    bucket is the history's length where one is read, else the user's training count; the
    checkpoint, the traced scorer and the served answer give the same scores."""
    parts, counts, configs = _parts(compose_cfg, ["mf", "ids", "text"])
    n_users = int(parts[0].n_users)
    user_counts = torch.arange(n_users + 1).float() % 7  # the edge at the median count
    user_counts[3] = 1.0  # user 3: a short training history
    composed = ComposedHybrid(
        parts, ["mf", "ids", "text"], counts, 2, user_counts=user_counts, n_user_buckets=2
    )
    weights = torch.tensor([[0.0, 0.5], [0.0, 0.3], [1.0, 0.2]])  # cold: the text part
    composed.set_weights(weights)
    factors = torch.tensor([[3.0, 0.0], [0.0, 1.5], [0.0, 1.5]])  # short: mf alone; long: no mf
    composed.set_user_weights(factors)
    edge = float(composed.user_edges[0])
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)  # lengths 5, 2, 5
    # users 0 and 7 have no training count: their histories' lengths (5, 5); user 3 its count 1
    assert 1 < edge <= 5 and user_counts[users].tolist() == [0, 1, 0]
    rows = torch.tensor([1, 0, 1])
    assert composed.user_bucket(users, lengths).tolist() == rows.tolist()
    by_count = composed.user_bucket(torch.tensor([1, 6, -1, 10**6]))
    assert by_count.tolist() == [int(1 >= edge), int(6 >= edge), 0, 0]  # unknown users: 0
    with torch.no_grad():
        got = composed.score_all(users, history, lengths)
    expected = 0
    for k in range(3):
        one = torch.zeros(3, 2)
        one[k] = weights[k]
        term = _by_hand(parts, one, composed.item_bucket, counts)  # part k's weighted z
        expected = expected + factors[k, rows].unsqueeze(1) * term
    torch.testing.assert_close(got[:, 1:], expected[:, 1:], atol=1e-4, rtol=1e-4)
    # checkpoint, trace, serving
    composed.part_payloads = [model_payload(p, c, None) for p, c in zip(parts, configs)]
    path = tmp_path / "composed.ckpt"
    state = {f"model.{k}": v for k, v in composed.state_dict().items()}
    torch.save({"state_dict": state, PAYLOAD: model_payload(composed, configs[0], None)}, path)
    loaded = load_model(path)
    assert isinstance(loaded, ComposedHybrid) and loaded.n_user_buckets == 2
    scripted = torch.jit.load(str(to_torchscript(ExportedScorer(loaded), tmp_path / "s.pt")))
    with torch.no_grad():
        torch.testing.assert_close(loaded.score_all(users, history, lengths), got)
        torch.testing.assert_close(scripted(users, history, lengths), got, atol=1e-5, rtol=0)
    items = [str(i) for i in range(int(counts.shape[0]))]
    recommender = Recommender(loaded, items, [str(u) for u in range(n_users + 1)], counts.numpy())
    short = [str(i) for i in history[1, 3:].tolist()]  # user 3 (count 1: bucket 0)
    answer = recommender.recommend(user="3", recent_items=short, k=4, include_seen=True)
    top = got[1].clone()
    top[0] = -torch.inf
    assert answer["items"][:4] == [str(i) for i in top.topk(4).indices.tolist()]


def test_the_combiner_mixes_the_parts_per_user_bucket(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """Part 0 knows the short-history rows' answers, part 1 the long ones': one mix for every
    row loses to a mix per user bucket, which the fit finds (and is never below a part)."""
    parts, counts, _ = _parts(compose_cfg, ["mf", "ids"])
    user_counts = torch.arange(int(parts[0].n_users) + 1).float()
    composed = ComposedHybrid(
        parts, ["mf", "ids"], counts, 1, user_counts=user_counts, n_user_buckets=2
    )
    n, rows = int(counts.shape[0]), 80
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(1, n, (rows, 1), generator=generator)
    scores = torch.randn(2, rows, n, generator=generator)
    bucket = torch.arange(rows) % 2  # (R,) alternate rows short / long
    scores[bucket, torch.arange(rows), targets[:, 0]] += 2.5
    masked = torch.zeros(rows, n, dtype=torch.bool)
    masked[:, 0] = True
    valid = torch.ones(rows, 1, dtype=torch.bool)
    data = ValidationScores(scores, masked, targets, valid, user_bucket=bucket)
    fit = fit_combiner(composed, data, k=10, step=0.25)
    global_only = fit_combiner(
        ComposedHybrid(parts, ["mf", "ids"], counts, 1), ValidationScores(*data.__dict__.values())
    )
    assert fit.ndcg > global_only.ndcg + 0.05 and fit.ndcg >= max(fit.part_ndcg.values())
    assert fit.user_weights is not None
    assert fit.user_weights[0, 0] > fit.user_weights[1, 0]  # short rows: part 0
    assert fit.user_weights[1, 1] > fit.user_weights[0, 1]  # long rows: part 1
    assert torch.equal(composed.user_weights, fit.user_weights)
    assert "user_weights" in fit.as_dict(["mf", "ids"])


@pytest.mark.gpu
def test_the_composed_model_scores_alike_on_cuda(compose_cfg: Callable[..., DictConfig]) -> None:
    """On the GPU (buffers moved with the module: counts, buckets, user-history edges and
    multipliers) the composed scores equal the CPU's."""
    parts, counts, _ = _parts(compose_cfg, ["mf", "ids", "text"])
    user_counts = torch.arange(int(parts[0].n_users) + 1).float() % 7
    composed = ComposedHybrid(
        parts, ["mf", "ids", "text"], counts, 3, user_counts=user_counts, n_user_buckets=2
    )
    composed.set_weights(torch.tensor([[0.0, 0.5, 0.2], [0.0, 0.3, 0.7], [1.0, 0.2, 0.1]]))
    composed.set_user_weights(torch.tensor([[2.0, 0.5], [0.5, 1.5], [0.5, 1.0]]))
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)
    with torch.no_grad():
        expected = composed.score_all(users, history, lengths)
        composed.cuda()
        got = composed.score_all(users.cuda(), history.cuda(), lengths.cuda()).cpu()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_the_repeat_offset_moves_the_rows_known_items_everywhere(
    compose_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """r at the items of the row's history, nowhere else: in score_all, score, the saved and
    reloaded model, the traced and ONNX scorers and the served answer (a session whose items
    are ranked: include_seen, exclude_recent=false); a checkpoint written before r loads
    with r = 0."""
    import onnxruntime

    from hybridrec.export import to_onnx

    parts, counts, configs = _parts(compose_cfg, ["mf", "ids", "text"])
    composed = ComposedHybrid(parts, ["mf", "ids", "text"], counts, n_buckets=3)
    composed.set_weights(torch.tensor([[0.0, 0.6, 0.1], [0.0, 0.2, 0.8], [1.0, 0.2, 0.1]]))
    users, history, lengths = _inputs(int(counts.shape[0]) - 1)
    with torch.no_grad():
        before = composed.score_all(users, history, lengths)
        composed.set_repeat(3.0)
        got = composed.score_all(users, history, lengths)
        candidates = torch.arange(1, 9).expand(3, -1)
        one_by_one = composed.score(users, candidates, history, lengths)
    known = torch.zeros_like(before, dtype=torch.bool)
    known[torch.arange(3).unsqueeze(1), history] = True
    known[:, 0] = False
    torch.testing.assert_close(got, before + 3.0 * known.float())
    torch.testing.assert_close(one_by_one, got[:, 1:9], atol=1e-5, rtol=0)
    composed.part_payloads = [model_payload(p, c, None) for p, c in zip(parts, configs)]
    path = tmp_path / "composed.ckpt"
    state = {f"model.{k}": v for k, v in composed.state_dict().items()}
    torch.save({"state_dict": state, PAYLOAD: model_payload(composed, configs[0], None)}, path)
    loaded = load_model(path)
    assert isinstance(loaded, ComposedHybrid) and float(loaded.repeat) == 3.0
    scorer = ExportedScorer(loaded)
    scripted = torch.jit.load(str(to_torchscript(scorer, tmp_path / "s.pt")))
    session = onnxruntime.InferenceSession(str(to_onnx(scorer, tmp_path / "s.onnx")))
    given = {"users": users.numpy(), "history": history.numpy(), "lengths": lengths.numpy()}
    feed = {i.name: given[i.name] for i in session.get_inputs()}
    assert not any(m.training for m in loaded.modules())  # the exporters left it in eval mode
    with torch.no_grad():
        torch.testing.assert_close(loaded.score_all(users, history, lengths), got)
        torch.testing.assert_close(scripted(users, history, lengths), got, atol=1e-5, rtol=0)
    (onnx_scores,) = session.run(["scores"], feed)
    torch.testing.assert_close(torch.from_numpy(onnx_scores), got, atol=1e-5, rtol=0)
    items = [str(i) for i in range(int(counts.shape[0]))]
    recommender = Recommender(loaded, items, [str(u) for u in range(50)], counts.numpy())
    recent = [str(i) for i in history[0].tolist()]  # user 0 and the row's history
    answer = recommender.recommend(user="0", recent_items=recent, k=8, include_seen=True)
    top = got[0].clone()
    top[0] = -torch.inf
    assert answer["items"] == [str(i) for i in top.topk(8).indices.tolist()]
    without = before[0].clone()
    without[0] = -torch.inf
    assert answer["items"] != [str(i) for i in without.topk(8).indices.tolist()]  # r moved it
    del state["model.repeat"]  # a checkpoint of before the repeat offset
    torch.save({"state_dict": state, PAYLOAD: model_payload(composed, configs[0], None)}, path)
    old = load_model(path)
    assert isinstance(old, ComposedHybrid) and float(old.repeat) == 0.0
    with torch.no_grad():
        torch.testing.assert_close(old.score_all(users, history, lengths), before)


def test_paired_rows_give_each_models_test_metrics_and_their_difference(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """scripts/paired_rows.py: per kind of row, each model's mean is what the project's test
    loop gives that model, and A - B is the mean of the per-row differences with its standard
    error (0 for a model against itself)."""
    script = _script("paired_rows")
    models, cfg = _seeded(compose_cfg, ["protocol=cold_items"], ["text", "text"])
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("test")
    values, kinds = script.per_row(models, datamodule.test_dataloader(), 10, "pessimistic")
    rows = {(r["rows"], r["metric"]): r for r in script.summary(values, kinds)}
    assert set(rows) == {("cold", "HR"), ("cold", "NDCG"), ("warm", "HR"), ("warm", "NDCG")}
    for j, model in enumerate(models):
        tested = _tested(model, cfg, datamodule)
        side = "a" if j == 0 else "b"
        for kind in ("cold", "warm"):
            got = rows[(kind, "HR")][side]
            assert got == pytest.approx(tested[f"test/{kind}/hr@10"], abs=1e-6)
            got = rows[(kind, "NDCG")][side]
            assert got == pytest.approx(tested[f"test/{kind}/ndcg@10"], abs=1e-6)
    for r in rows.values():
        assert r["diff"] == pytest.approx(r["a"] - r["b"], abs=1e-6)
    same = script.summary(values[[0, 0]], kinds)
    assert all(r["diff"] == 0 and r["se"] == 0 for r in same)


def test_the_repeat_sweep_at_the_fitted_value_is_the_models_evaluation(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """scripts/repeat_sweep.py: with known items ranked (mask_known=false), its row for the
    model's own r gives the metrics the project's test loop gives the model, r moves them, and
    the model keeps its r afterwards."""
    script = _script("repeat_sweep")
    overrides = ["protocol=loo_full", "protocol.mask_known=false"]
    models, cfg = _seeded(compose_cfg, overrides, ["ids", "text"])
    counts = Catalogue.from_folder(cfg.datamodule.data_dir).item_counts
    composed = ComposedHybrid(models, ["ids", "text"], counts, n_buckets=1)
    composed.set_repeat(1.0)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("test")
    rows = script.sweep(composed, datamodule.test_dataloader(), [-100.0, 1.0], 10, "pessimistic")
    assert float(composed.repeat) == 1.0  # restored
    tested = _tested(composed, cfg, datamodule)
    never, fitted = rows
    assert fitted["hr"] == pytest.approx(tested["test/hr@10"], abs=1e-6)
    assert fitted["ndcg"] == pytest.approx(tested["test/ndcg@10"], abs=1e-6)
    assert (never["hr"], never["ndcg"]) != (fitted["hr"], fitted["ndcg"])  # r acts
