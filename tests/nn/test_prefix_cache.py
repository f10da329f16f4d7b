"""GRU4Rec's prefix cache: a session's prefixes encoded in one pass (a PrefixEvalBatch) score
and rank exactly as encoding every prefix anew (a RowEvalBatch, the reference)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from conftest import prepare_tiny, random_sequences
from hybridrec.data.batch import EvalBatch, PrefixEvalBatch, RowEvalBatch
from hybridrec.data.batching.sequence_datamodule import SequenceDataModule
from hybridrec.data.batching.sequences import PrefixBatches
from hybridrec.data.preparation.sessions import SessionSplit
from hybridrec.lit import RecLitModule, adapter
from hybridrec.losses import CrossEntropyLoss
from hybridrec.metrics import positive_ranks, ranking_metrics
from hybridrec.nn import GRU4Rec
from hybridrec.optim import AdagradM

N_ITEMS = 29  # random_sequences draws items 1..29
LENGTHS = [2, 5, 3, 9, 2, 7, 4, 12, 3, 1, 6]  # one session of 1 click: no row


def _session_rows(
    lengths: list[int], batch_size: int, prefix_cache: bool, **kwargs: object
) -> PrefixBatches:
    """The session protocol's rows (as SequenceDataModule builds them): every click after a
    session's first is a target, the clicks before it the history."""
    flat, offsets = random_sequences(lengths)
    session = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    position = torch.arange(flat.numel())
    position = position[position != offsets[session]]  # (R,) not a session's first click
    return PrefixBatches(
        flat,
        offsets[session[position]],
        position,
        flat[position],
        session[position],
        batch_size,
        prefix_cache=prefix_cache,
        **kwargs,  # type: ignore[arg-type]
    )


Row = tuple[int, int, tuple[int, ...]]  # (user, history length, targets)


def _rows(batch: EvalBatch) -> list[Row]:
    if isinstance(batch, PrefixEvalBatch):
        lengths = batch.prefix_lengths
    else:
        assert isinstance(batch, RowEvalBatch)
        lengths = batch.history_lengths
    assert lengths is not None and batch.targets is not None
    return list(
        zip(batch.users.tolist(), lengths.tolist(), map(tuple, batch.targets.tolist()), strict=True)
    )


def _evaluate(model: nn.Module, batches: PrefixBatches) -> dict[Row, tuple[Tensor, Tensor]]:
    """Each row's masked full-ranking scores (N + 1,) and target ranks (P,), computed as
    RecLitModule's evaluation step does."""
    out: dict[Row, tuple[Tensor, Tensor]] = {}
    with torch.no_grad():
        for batch in batches:
            assert batch.targets is not None and batch.exclude is not None
            scores = adapter.scores_all(model, batch).clone()
            scores[:, 0] = -torch.inf
            scores[batch.exclude[0], batch.exclude[1]] = -torch.inf
            ranks = positive_ranks(scores, batch.targets, batch.targets > 0)
            for i, row in enumerate(_rows(batch)):
                assert row not in out
                out[row] = (scores[i], ranks[i])
    return out


def _assert_same(
    cached: dict[Row, tuple[Tensor, Tensor]], reference: dict[Row, tuple[Tensor, Tensor]]
) -> None:
    assert cached.keys() == reference.keys()
    for row, (scores, ranks) in reference.items():
        torch.testing.assert_close(cached[row][0], scores, atol=1e-5, rtol=0)  # -inf == -inf
        assert torch.equal(cached[row][1], ranks), row
    for k in (1, 5, 10):  # the metrics' means over all rows
        both = [
            ranking_metrics(torch.stack([r for _, r in result.values()]), k).as_dict(k)
            for result in (cached, reference)
        ]
        for name, values in both[1].items():
            assert abs(float(both[0][name].mean() - values.mean())) < 1e-5, name


@pytest.mark.parametrize(
    ("embedding", "layers"),
    [("constrained", [8]), ("separate", [8, 6]), ("none", [8, 6])],
)
@pytest.mark.parametrize("batch_size", [4, 7, 1024])  # small: sessions cut between batches
def test_cached_path_scores_and_ranks_as_reencoding(
    embedding: str, layers: list[int], batch_size: int
) -> None:
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=layers, embedding=embedding, embedding_dim=5).eval()
    reference = _session_rows(LENGTHS, batch_size, prefix_cache=False)
    cached = _session_rows(LENGTHS, batch_size, prefix_cache=True)
    assert not reference.prefix_cache and cached.prefix_cache
    assert sum(len(b) for b in cached) == sum(n - 1 for n in LENGTHS)
    _assert_same(_evaluate(model, cached), _evaluate(model, reference))


def test_one_pass_per_session_and_the_reference_function() -> None:
    """A batch holds each session once (cut only where the batch ends); its per-row layout is
    the reference batch, row for row, and GRU4Rec's states agree on both."""
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[8, 6]).eval()
    reference = {
        row: history[history > 0].tolist()
        for batch in _session_rows(LENGTHS, 1024, prefix_cache=False)
        for row, history in zip(_rows(batch), batch.history, strict=True)  # type: ignore[arg-type]
    }
    encoded = 0
    for batch in _session_rows(LENGTHS, 1024, prefix_cache=True):
        assert isinstance(batch, PrefixEvalBatch)
        assert sorted((batch.prefix_sequences > 0).sum(1).tolist()) == sorted(
            n - 1 for n in LENGTHS if n > 1
        )  # each session once, without its last click (no row after it)
        encoded += int((batch.prefix_sequences > 0).sum())
        per_row = batch.with_row_histories()
        assert isinstance(per_row, RowEvalBatch) and per_row.history is not None
        for row, history in zip(_rows(batch), per_row.history, strict=True):
            assert history[history > 0].tolist() == reference[row]
            assert history[-1] > 0 or row[1] == 0  # left-padded
        with torch.no_grad():
            torch.testing.assert_close(
                model.user_state(batch), model.user_state(per_row), atol=1e-5, rtol=0
            )
    assert encoded == sum(n - 1 for n in LENGTHS if n > 1)  # O(L), not O(L^2)


def test_shared_starts_empty_histories_and_known_item_masking() -> None:
    """Leave-one-out style rows: a user with no history, two rows with the same history (the
    cold_items protocol's cold and warm rows), several targets per row, known items masked."""
    flat, offsets = random_sequences([4, 0, 6, 3])
    users = torch.tensor([0, 1, 2, 2, 3])
    targets = torch.tensor([[5, 0], [7, 8], [9, 0], [3, 4], [1, 0]])  # (R, P)

    def rows(prefix_cache: bool) -> PrefixBatches:
        return PrefixBatches(
            flat,
            offsets[users],
            offsets[users + 1],
            targets,
            users,
            batch_size=3,
            mask_known=True,
            prefix_cache=prefix_cache,
        )

    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[8]).eval()
    assert rows(True).prefix_cache  # user 2's two rows share a sequence
    cached, reference = _evaluate(model, rows(True)), _evaluate(model, rows(False))
    _assert_same(cached, reference)
    for row, (scores, _) in cached.items():  # masked: the row's own history, nothing else
        start = int(offsets[row[0]])
        known = set(flat[start : start + row[1]].tolist())
        assert {i for i in range(1, N_ITEMS + 1) if scores[i] == -torch.inf} == known


def test_one_row_per_sequence_keeps_the_per_row_layout() -> None:
    """Leave-one-out: every sequence is one row's history, nothing to share."""
    flat, offsets = random_sequences([4, 0, 6, 3])
    users = torch.arange(4)
    batches = PrefixBatches(
        flat, offsets[users], offsets[users + 1], users + 1, users, 8, prefix_cache=True
    )
    assert not batches.prefix_cache
    assert all(batch.history is not None for batch in batches)


def test_max_history_uses_the_cache_only_where_it_is_the_same_function() -> None:
    """A truncated prefix does not start with its session: no cache then; with every prefix
    within max_history the cache is exact and used."""
    longest = max(LENGTHS) - 1
    truncating = _session_rows(LENGTHS, 8, prefix_cache=True, max_history=3)
    assert not truncating.prefix_cache
    plain = _session_rows(LENGTHS, 8, prefix_cache=False, max_history=3)
    for a, b in zip(truncating, plain, strict=True):
        assert isinstance(a, RowEvalBatch) and isinstance(b, RowEvalBatch)
        assert torch.equal(a.history, b.history)  # type: ignore[arg-type]
    within = _session_rows(LENGTHS, 8, prefix_cache=True, max_history=longest)
    assert within.prefix_cache
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[8]).eval()
    reference = _session_rows(LENGTHS, 8, prefix_cache=False, max_history=longest)
    _assert_same(_evaluate(model, within), _evaluate(model, reference))


def test_sampled_candidates_score_the_same() -> None:
    flat, offsets = random_sequences([5, 2, 8])
    users = torch.tensor([0, 1, 2])
    candidates = torch.tensor([[3, 4, 5], [6, 7, 0], [8, 9, 10]])  # column 0 the target
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[8]).eval()
    out = {}
    for cache in (False, True):
        batches = PrefixBatches(
            flat,
            offsets[users],
            offsets[users + 1],
            candidates[:, 0],
            users,
            batch_size=2,
            candidates=candidates,
            prefix_cache=cache,
        )
        with torch.no_grad():
            out[cache] = {
                user: row
                for batch in batches
                for user, row in zip(batch.users.tolist(), adapter.scores(model, batch))
            }
    assert out[True].keys() == out[False].keys()
    for user, row in out[False].items():
        torch.testing.assert_close(out[True][user], row, atol=1e-5, rtol=0)


class _LastItem(nn.Module):
    """A model that reads only ``history`` (as the baselines do): scores 1 for the last item."""

    def score_all(self, batch: RowEvalBatch) -> Tensor:
        batch.require("history")
        assert batch.history is not None
        scores = torch.zeros(len(batch), N_ITEMS + 1)
        return scores.scatter(1, batch.history[:, -1:], 1.0)


def test_other_models_get_the_per_row_layout() -> None:
    model = _LastItem()
    cached = _evaluate(model, _session_rows(LENGTHS, 5, prefix_cache=True))
    _assert_same(cached, _evaluate(model, _session_rows(LENGTHS, 5, prefix_cache=False)))


def test_validation_metrics_equal_with_the_datamodule_switch(tmp_path: Path) -> None:
    """End to end: Lightning's validation and test loops log the same metrics either way."""
    folder = prepare_tiny(
        tmp_path / "sessions", SessionSplit(min_item_support=1, test_days=30, val_days=30)
    )
    torch.manual_seed(0)
    model = GRU4Rec(24, layers=[8])  # prepare_tiny's sessions use 24 items
    module = RecLitModule(model, CrossEntropyLoss(), optimizer=lambda p: AdagradM(p), ks=(5, 10))
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = {}
    for cache in (False, True):
        dm = SequenceDataModule(folder, batch_size=4, eval_batch_size=16, prefix_cache=cache)
        (val,) = trainer.validate(module, datamodule=dm, verbose=False)
        (test,) = trainer.test(module, datamodule=dm, verbose=False)
        assert dm._val is not None and dm._val.prefix_cache is cache
        logged[cache] = {**val, **test}
    assert "val/ndcg@10" in logged[True] and "test/recall@5" in logged[True]
    assert logged[True].keys() == logged[False].keys()
    for name, value in logged[False].items():
        assert abs(logged[True][name] - value) < 1e-5, name


@pytest.mark.parametrize("embedding", ["constrained", "none"])
def test_stepping_only_the_rows_with_an_item_changes_nothing(embedding: str) -> None:
    """The encoder steps only the rows that hold an item at a column (left padding, rows by
    length); the masked loop steps every row and keeps the state under padding: the same
    states, final and at every column, whatever the rows' order. A 0 after an item (not left
    padding) takes the masked loop."""
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[8, 6], embedding=embedding).eval()
    lengths = torch.tensor([3, 0, 7, 1, 7, 4, 2])  # unsorted, an empty row, ties
    width = 8
    history = torch.randint(1, N_ITEMS + 1, (len(lengths), width))
    history[torch.arange(width) < width - lengths.unsqueeze(1)] = 0  # left-padded
    with torch.no_grad():
        fast = model._encode(history, every_step=True)
        masked = model._encode_masked(history, every_step=True)
        for a, b in zip(fast[0], masked[0], strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        torch.testing.assert_close(fast[1], masked[1], atol=1e-6, rtol=0)
        gap = history.clone()
        gap[2, 3] = 0  # row 2 skips a column in the middle
        expected = model._encode_masked(gap, every_step=False)[0][-1]
        torch.testing.assert_close(model._encode(gap)[0][-1], expected, atol=0, rtol=0)
        assert not torch.allclose(expected[2], fast[0][-1][2])
