"""GRU4Rec: shapes, the carried state, embedding options, overfitting a tiny session set."""

from __future__ import annotations

import pytest
import torch

from hybridrec.data.batch import RowEvalBatch, SessionBatch
from hybridrec.data.batching.sequences import SessionParallelBatches
from hybridrec.losses import BPRMaxLoss, CrossEntropyLoss
from hybridrec.nn import GRU4Rec
from hybridrec.nn.gru4rec import OneHotGRUCell
from hybridrec.optim import AdagradM

N_ITEMS = 12


def _batches(lengths: list[int], batch_size: int, seed: int = 0) -> SessionParallelBatches:
    gen = torch.Generator().manual_seed(seed)
    items = torch.randint(1, N_ITEMS + 1, (sum(lengths),), generator=gen)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), 0)
    return SessionParallelBatches(items, offsets, batch_size, 4, 0.5, 0, N_ITEMS)


@pytest.mark.parametrize("embedding", ["constrained", "separate", "none"])
def test_carried_state_equals_encoding_the_prefix(embedding: str) -> None:
    """With dropout off, the state a row carries at every step is the encoding of its
    sequence's prefix from a zero state: reset exactly where a new sequence takes the row."""
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[8, 6], embedding=embedding, embedding_dim=5).eval()
    batches = _batches([3, 5, 2, 4, 6, 2, 3], batch_size=3)
    items, offsets = batches.items, batches.offsets
    position: dict[int, int] = {}  # slot -> position of its current input in its sequence
    for batch in batches:
        scores = model(batch)
        assert batch.negatives is not None and batch.session_starts is not None
        assert scores.shape == (len(batch), len(batch) + batch.negatives.numel())
        assert batch.session_slots is not None and batch.session_inputs is not None
        carried = model._state[-1][batch.session_slots]  # (B, H) after this step
        for i in range(len(batch)):
            slot = int(batch.session_slots[i])
            position[slot] = 0 if bool(batch.session_starts[i]) else position[slot] + 1
            start = int(offsets[int(batch.users[i])])
            prefix = items[start : start + position[slot] + 1]  # up to this input
            assert prefix[-1] == batch.session_inputs[i]
            expected = model.user_state(RowEvalBatch(users=torch.zeros(1), history=prefix[None]))
            assert torch.allclose(carried[i], expected[0], atol=1e-5)


def test_training_scores_are_output_layer_dot_products() -> None:
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[4]).eval()
    batch = next(iter(_batches([3, 3], batch_size=2)))
    scores = model(batch)
    assert batch.items is not None and batch.negatives is not None
    columns = torch.cat([batch.items[:, 0], batch.negatives])
    h = model._state[-1][batch.session_slots]
    expected = h @ model.item_out.weight[columns].T + model.item_bias.weight[columns].T
    assert torch.allclose(scores, expected, atol=1e-6)


def test_eval_paths_agree_and_padding_is_ignored() -> None:
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[6]).eval()
    history = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    batch = RowEvalBatch(
        users=torch.zeros(2), history=history, items=torch.tensor([[5, 6], [7, 1]])
    )
    full = model.score_all(batch)
    assert full.shape == (2, N_ITEMS + 1)
    assert torch.allclose(model(batch), full.gather(1, batch.items), atol=1e-6)
    short = RowEvalBatch(users=torch.zeros(1), history=torch.tensor([[3, 4]]))
    assert torch.allclose(model.user_state(short)[0], model.user_state(batch)[0], atol=1e-6)


def _rows_changed(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Rows of an item table that are not bit-identical after the step."""
    return [i for i in range(before.shape[0]) if not torch.equal(before[i], after[i])]


@pytest.mark.parametrize("embedding", ["constrained", "separate"])
def test_sparse_gradients_touch_only_the_batch_rows(embedding: str) -> None:
    """One AdagradM step changes exactly the item rows the batch used; every other row of
    every item table stays bit-identical."""
    torch.manual_seed(0)
    model = GRU4Rec(N_ITEMS, layers=[4], embedding=embedding, embedding_dim=3)
    # a hand-built session-parallel batch: 2 rows see items 2 and 4, their next items are 3
    # and 7, and 5 and 9 are the shared sampled negatives
    batch = SessionBatch(
        users=torch.tensor([0, 1]),
        items=torch.tensor([[3], [7]]),
        negatives=torch.tensor([5, 9]),
        column_logq=torch.zeros(4),
        session_inputs=torch.tensor([2, 4]),
        session_slots=torch.tensor([0, 1]),
        session_starts=torch.tensor([True, True]),
    )
    tables = {"item_out": model.item_out.weight, "item_bias": model.item_bias.weight}
    if model.item_in is not None:
        tables["item_in"] = model.item_in.weight
    before = {name: table.detach().clone() for name, table in tables.items()}
    optimizer = AdagradM(model.parameters(), lr=0.1)
    CrossEntropyLoss()(model(batch), batch)["loss"].backward()
    for name, table in tables.items():
        assert table.grad is not None and table.grad.is_sparse, name
    optimizer.step()
    changed = {name: _rows_changed(before[name], table.detach()) for name, table in tables.items()}
    scored = [3, 5, 7, 9]  # the output columns: the batch's next items + the negatives
    inputs = [2, 4]  # the items the rows have just seen
    if embedding == "constrained":  # one table: input embedding and output layer
        assert changed == {"item_out": sorted(inputs + scored), "item_bias": scored}
    else:  # the input table gets the inputs, the output table the scored columns
        assert changed == {"item_out": scored, "item_bias": scored, "item_in": inputs}


def test_one_hot_cell_is_the_official_gru_embedding() -> None:
    """embedding=none: reset gate before the recurrent product, update gate on the candidate
    (the official GRUEmbedding), written out by hand for two items."""
    torch.manual_seed(0)
    cell = OneHotGRUCell(n_rows=5, hidden=3, sparse=False)
    with torch.no_grad():
        cell.bias.uniform_(-0.5, 0.5)
    items, h = torch.tensor([1, 4]), torch.randn(2, 3)
    table = cell.input_table.weight[items] + cell.bias  # (2, 9): candidate, reset, update
    w_r, w_z = cell.weight_rz[:, :3], cell.weight_rz[:, 3:]
    r = torch.sigmoid(table[:, 3:6] + h @ w_r)
    z = torch.sigmoid(table[:, 6:] + h @ w_z)
    expected = (1 - z) * h + z * torch.tanh(table[:, :3] + (r * h) @ cell.weight_c)
    torch.testing.assert_close(cell(items, h), expected)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="embedding"):
        GRU4Rec(5, embedding="onehot")
    with pytest.raises(ValueError, match="embedding_dim"):
        GRU4Rec(5, embedding="separate")
    with pytest.raises(ValueError, match="layers"):
        GRU4Rec(5, layers=[])


@pytest.mark.parametrize(
    ("loss", "embedding"),
    [(CrossEntropyLoss(), "constrained"), (BPRMaxLoss(score_reg=0.5), "separate")],
)
def test_overfits_a_tiny_session_set(loss: torch.nn.Module, embedding: str) -> None:
    """Deterministic sessions (each item is always followed by the same item): after training
    the model predicts the next item at the top for nearly every position."""
    torch.manual_seed(0)
    successor = torch.randperm(N_ITEMS) + 1  # item i -> successor[i - 1]
    sessions = []
    for start in range(1, N_ITEMS + 1):
        seq = [start]
        for _ in range(4):
            seq.append(int(successor[seq[-1] - 1]))
        sessions.append(seq)
    items = torch.tensor([i for s in sessions for i in s])
    offsets = torch.arange(0, items.numel() + 1, 5)
    batches = SessionParallelBatches(items, offsets, 4, 6, 0.0, 0, N_ITEMS, order="random")
    model = GRU4Rec(N_ITEMS, layers=[16], embedding=embedding, embedding_dim=16)
    opt = AdagradM(model.parameters(), lr=0.1)
    for _ in range(60):
        for batch in batches:
            opt.zero_grad()
            loss(model(batch), batch)["loss"].backward()
            opt.step()
    model.eval()
    history = torch.tensor([[0, 0, 0, 0] + [s[0]] for s in sessions])
    top = model.score_all(RowEvalBatch(users=torch.zeros(N_ITEMS), history=history))[:, 1:].argmax(
        1
    )
    expected = torch.tensor([s[1] for s in sessions]) - 1
    assert (top == expected).float().mean() >= 0.9


def test_session_parallel_step_under_bf16_autocast_keeps_the_state_dtype() -> None:
    """trainer.precision=bf16-mixed: the GRU's output is bf16, the carried state fp32 (the H200
    run of scripts/gpu_check.sh failed here with an index_put dtype mismatch)."""
    model = GRU4Rec(n_items=20, layers=[8], sparse=False)
    batch = SessionBatch(
        users=torch.zeros(3, dtype=torch.long),
        items=torch.tensor([[1], [2], [3]]),
        negatives=torch.tensor([4, 5]),
        column_logq=torch.zeros(5),
        session_inputs=torch.tensor([6, 7, 8]),
        session_slots=torch.tensor([0, 1, 2]),
        session_starts=torch.tensor([True, True, True]),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model(batch)
    assert scores.shape == (3, 5) and model._state[0].dtype == torch.float32


def test_a_batch_of_the_wrong_layout_names_the_expected_types() -> None:
    """GRU4Rec trains session-parallel: next-item windows are refused with the types it reads."""
    from hybridrec.data.batch import BatchLayoutError, WindowBatch

    model = GRU4Rec(N_ITEMS, layers=[4])
    windows = WindowBatch(
        users=torch.tensor([0]),
        history=torch.tensor([[1, 2]]),
        history_lengths=torch.tensor([2]),
        sequence_targets=torch.tensor([[2, 3]]),
    )
    with pytest.raises(BatchLayoutError, match="GRU4Rec reads a batch of type SessionBatch or"):
        model(windows)
    with pytest.raises(BatchLayoutError, match="RowEvalBatch or PrefixEvalBatch"):
        model.user_state(windows)  # type: ignore[arg-type]
