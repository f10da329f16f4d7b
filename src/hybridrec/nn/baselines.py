"""Training-free baselines for next-item recommendation: popularity and item-KNN.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016,
report both as the sanity baselines of session recommendation; the item-KNN similarity is the
one of Ludewig & Jannach's session-rec ``iknn``:

    sim(i, j) = co(i, j) / ((supp_i + lam)^alpha * (supp_j + lam)^(1 - alpha))

where ``co(i, j)`` is the number of training sequences containing both items and ``supp_i``
the number containing ``i`` (each sequence counts once per item: set semantics). ``i`` is
the current item, ``j`` the candidate; ``alpha = 0.5`` is the regularised cosine.

Neither model has a parameter: :meth:`fit_sequences` computes their statistics from the
training sequences and stores them as buffers (so ``.to(device)`` and ``state_dict`` carry
them). Shapes: B = batch rows, C = candidates per row, T = history length, N = n_items + 1
(item 0 is padding), K = neighbours kept per item.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hybridrec.data.batch import EvalBatch, RowEvalBatch, layout_error


def _check_sequences(items: Tensor, offsets: Tensor, n_items: int) -> None:
    """Raise ValueError unless ``items`` / ``offsets`` are flat sequences of items 1..n_items."""
    if items.ndim != 1 or offsets.ndim != 1:
        raise ValueError(
            f"fit_sequences: expected 1-D items and offsets, got shapes "
            f"{tuple(items.shape)} and {tuple(offsets.shape)}"
        )
    if items.dtype != torch.long or offsets.dtype != torch.long:
        raise ValueError(
            f"fit_sequences: expected long items and offsets, got {items.dtype} / {offsets.dtype}"
        )
    if offsets.numel() == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != items.numel():
        raise ValueError(
            f"fit_sequences: offsets must start at 0 and end at len(items) = {items.numel()}"
        )
    if bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError("fit_sequences: offsets must be non-decreasing")
    if items.numel() and (int(items.min()) < 1 or int(items.max()) > n_items):
        raise ValueError(
            f"fit_sequences: item indices must lie in 1..{n_items} (0 is padding), got "
            f"{int(items.min())}..{int(items.max())}"
        )


class _Baseline(nn.Module):
    """Shared plumbing: the fitted flag (a buffer, so it survives state_dict) and forward."""

    requires_training = False
    n_items: int
    fitted: Tensor

    def __init__(self, n_items: int) -> None:
        super().__init__()
        if n_items < 1:
            raise ValueError(f"model.n_items: expected at least 1 item, got {n_items}")
        self.n_items = n_items
        self.register_buffer("fitted", torch.tensor(False))

    def _require_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError(
                f"{type(self).__name__} has no statistics yet: call "
                "fit_sequences(items, offsets) on the training sequences before scoring"
            )

    def fit_sequences(self, items: Tensor, offsets: Tensor) -> None:
        raise NotImplementedError

    def score_all(self, batch: EvalBatch) -> Tensor:
        raise NotImplementedError

    def forward(self, batch: EvalBatch) -> Tensor:
        """(B, C) scores of ``batch.items`` (an evaluation batch with sampled candidates),
        gathered from :meth:`score_all`. Never trained: a training batch is refused."""
        if not isinstance(batch, EvalBatch):
            raise layout_error(
                type(self).__name__, batch, RowEvalBatch, "a baseline is fitted, not trained"
            )
        batch.require("items")
        assert batch.items is not None
        return self.score_all(batch).gather(1, batch.items)


class Popularity(_Baseline):
    """Scores every item by its number of training events, the same for every row.

    Args:
        n_items: catalogue size from the data spec (item 0 is padding and scores 0).
    """

    counts: Tensor

    def __init__(self, n_items: int) -> None:
        super().__init__(n_items)
        self.register_buffer("counts", torch.zeros(n_items + 1))

    @torch.no_grad()
    def fit_sequences(self, items: Tensor, offsets: Tensor) -> None:
        _check_sequences(items, offsets, self.n_items)
        items = items.to(self.counts.device)
        counts = torch.bincount(items, minlength=self.n_items + 1).to(self.counts.dtype)
        counts[0] = 0
        self.counts.copy_(counts)
        self.fitted.fill_(True)

    def score_all(self, batch: EvalBatch) -> Tensor:
        self._require_fitted()
        return self.counts.unsqueeze(0).expand(len(batch), -1).clone()  # (B, N)


class ItemKNN(_Baseline):
    """Item-KNN on sequence co-occurrence: recommends the neighbours of the last item seen.

    Keeps, for each item, its ``neighbours`` most similar other items (ties broken by the
    lower item index; slots beyond the items it co-occurs with hold item 0 with similarity
    0). A row's scores are the similarities of the last item of ``batch.history`` to its
    neighbours and 0 elsewhere; an empty history scores 0 everywhere.

    Similarities are computed in float64 and ranked, and kept, in float32. Equal similarities
    reached through different counts (3 / (6 r) and 4 / (8 r): ``co`` 3 and 4 with candidate
    supports 36 and 64) come out of float64 one last bit apart, so ranking those would order
    them by rounding -- against the tie rule, and differently per device: torch's float64
    ``sqrt`` is not always correctly rounded on the CPU and is on CUDA (9 of 301 supports one
    bit apart on an H200), so a GPU fit put two such neighbours in the other order. In float32
    they are equal and the lower index comes first; the fit is the same on every device unless
    a float64 value lies within its last bit of a float32 rounding boundary (~2^-29 odds).

    Co-occurrences are counted in a dense (N, N) table when ``n_items <= dense_max_items``
    (its rows then ranked ``block_elements`` at a time); otherwise only the non-zero ones,
    for blocks of current items of about ``pair_budget`` (current, other item) pairs each.

    Args:
        n_items: catalogue size from the data spec.
        neighbours: K, the most similar items kept per item (session-rec's ``n_sims``).
        lam: support regulariser lambda, damping the similarity of rarely seen items.
        alpha: exponent of the current item's support (0.5 = cosine; the candidate's support
            gets ``1 - alpha``).
    """

    dense_max_items = 4096
    block_elements = 1 << 22
    pair_budget = 1 << 23

    neighbour_items: Tensor
    neighbour_sims: Tensor

    def __init__(
        self, n_items: int, neighbours: int = 100, lam: float = 20.0, alpha: float = 0.5
    ) -> None:
        super().__init__(n_items)
        if neighbours < 1:
            raise ValueError(f"model.neighbours: expected at least 1, got {neighbours}")
        if lam < 0:
            raise ValueError(f"model.lam: expected a non-negative regulariser, got {lam}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"model.alpha: expected a value in [0, 1], got {alpha}")
        self.neighbours, self.lam, self.alpha = neighbours, float(lam), float(alpha)
        self.register_buffer(
            "neighbour_items", torch.zeros(n_items + 1, neighbours, dtype=torch.long)
        )
        self.register_buffer("neighbour_sims", torch.zeros(n_items + 1, neighbours))

    # -- fitting --------------------------------------------------------------------------

    @torch.no_grad()
    def fit_sequences(self, items: Tensor, offsets: Tensor) -> None:
        _check_sequences(items, offsets, self.n_items)
        device = self.neighbour_items.device
        items, offsets = items.to(device), offsets.to(device)
        n = self.n_items + 1
        n_seq = offsets.numel() - 1
        seq = torch.repeat_interleave(torch.arange(n_seq, device=device), offsets.diff())
        # set semantics: one entry per (sequence, item), sorted by sequence then item
        keys = torch.unique(seq * n + items)
        entry_seq, entry_item = keys // n, keys % n  # (U,), (U,)
        seq_len = torch.bincount(entry_seq, minlength=n_seq)  # (n_seq,) distinct items
        seq_start = torch.cumsum(seq_len, 0) - seq_len
        support = torch.bincount(entry_item, minlength=n)  # (N,) sequences holding each item
        # sim(i, j) = co(i, j) / (current[i] * candidate[j]); both paths divide the same way
        regularised = support.to(torch.float64) + self.lam
        current, candidate = regularised.pow(self.alpha), regularised.pow(1.0 - self.alpha)
        pairs = _PairExpander(entry_item, seq_start, seq_len, self.pair_budget)

        self.neighbour_items.zero_()
        self.neighbour_sims.zero_()
        if self.n_items <= self.dense_max_items:
            self._fit_dense(pairs, entry_item, entry_seq, current, candidate)
        else:
            self._fit_sparse(pairs, entry_item, entry_seq, support, current, candidate)
        self.fitted.fill_(True)

    def _fit_dense(
        self,
        pairs: _PairExpander,
        entry_item: Tensor,
        entry_seq: Tensor,
        current: Tensor,
        candidate: Tensor,
    ) -> None:
        """Count every co-occurrence into one dense (N, N) table, then keep each row's top K."""
        n = self.n_items + 1
        co = torch.zeros(n * n, dtype=torch.float64, device=entry_item.device)
        pairs.accumulate(co, entry_item, entry_seq, n)  # anchors in sequence order
        co = co.view(n, n)
        rows_per_block = max(1, self.block_elements // n)
        for start in range(0, n, rows_per_block):
            block = co[start : start + rows_per_block]  # (rows, N)
            rows = len(block)
            row_items = torch.arange(start, start + rows, device=co.device)
            norm = current[row_items].unsqueeze(1) * candidate.unsqueeze(0)
            sims = block / torch.where(norm == 0, torch.ones_like(norm), norm)
            sims[:, 0] = 0  # padding is never a neighbour
            sims[torch.arange(rows, device=co.device), row_items] = 0  # nor the item itself
            idx, vals = self._top_k_dense(sims.to(torch.float32))  # see the class doc
            self.neighbour_items[start : start + rows] = idx
            self.neighbour_sims[start : start + rows] = vals.to(self.neighbour_sims.dtype)

    def _top_k_dense(self, sims: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, N) similarities -> (rows, K) neighbours and similarities, decreasing, ties
        to the lower item index; slots past the positive similarities hold item 0, sim 0."""
        rows, n = sims.shape
        k = min(self.neighbours, n)
        threshold = sims.topk(k, dim=1).values[:, -1:]  # (rows, 1) k-th largest
        above = sims > threshold
        tied = sims == threshold
        room = k - above.sum(1, keepdim=True)
        chosen = above | (tied & (tied.cumsum(1) <= room))  # exactly k per row
        idx = chosen.nonzero()[:, 1].view(rows, k)  # ascending item index per row
        vals = sims.gather(1, idx)
        order = vals.sort(dim=1, descending=True, stable=True).indices
        idx, vals = idx.gather(1, order), vals.gather(1, order)
        idx = idx.masked_fill(vals == 0, 0)
        if k < self.neighbours:
            pad = self.neighbours - k
            idx = torch.cat([idx, idx.new_zeros(rows, pad)], 1)
            vals = torch.cat([vals, vals.new_zeros(rows, pad)], 1)
        return idx, vals

    def _fit_sparse(
        self,
        pairs: _PairExpander,
        entry_item: Tensor,
        entry_seq: Tensor,
        support: Tensor,
        current: Tensor,
        candidate: Tensor,
    ) -> None:
        """Count the non-zero co-occurrences of blocks of current items (about ``pair_budget``
        pairs per block, one item's pairs at least) and keep each item's top K."""
        n, k = self.n_items + 1, self.neighbours
        order = torch.argsort(entry_item, stable=True)
        anchor_item, anchor_seq = entry_item[order], entry_seq[order]  # sorted by item
        lengths = pairs.seq_len[anchor_seq]  # (U,) pairs each anchor expands to
        item_ptr = torch.cat([support.new_zeros(1), torch.cumsum(support, 0)])  # (N + 1,)
        pairs_before = torch.cat([lengths.new_zeros(1), torch.cumsum(lengths, 0)])[item_ptr]
        start = 1  # item 0 (padding) never occurs
        while start < n:
            limit = pairs_before[start] + pairs.budget
            stop = int(torch.searchsorted(pairs_before, limit, right=True)) - 1
            stop = min(n, max(stop, start + 1))
            lo, hi = int(item_ptr[start]), int(item_ptr[stop])
            rows, cols = pairs.expand(anchor_item[lo:hi], anchor_seq[lo:hi], lengths[lo:hi])
            keep = rows != cols
            keys, counts = torch.unique(rows[keep] * n + cols[keep], return_counts=True)
            row, col = keys // n, keys % n  # sorted by row, then column
            sims = counts.to(torch.float64) / (current[row] * candidate[col])
            sims = sims.to(torch.float32)  # ranked in float32: see the class doc
            by_sim = torch.argsort(sims, descending=True, stable=True)
            ranked = by_sim[torch.argsort(row[by_sim], stable=True)]  # row, -sim, column
            row, col, sims = row[ranked], col[ranked], sims[ranked]
            rank = torch.arange(len(row), device=row.device) - torch.searchsorted(row, row)
            top = rank < k
            row, rank = row[top], rank[top]
            self.neighbour_items[row, rank] = col[top]
            self.neighbour_sims[row, rank] = sims[top].to(self.neighbour_sims.dtype)
            start = stop

    # -- scoring --------------------------------------------------------------------------

    def score_all(self, batch: EvalBatch) -> Tensor:
        self._require_fitted()
        if not isinstance(batch, RowEvalBatch):  # hybridrec.lit.adapter converts prefixes
            raise layout_error("ItemKNN", batch, RowEvalBatch)
        batch.require("history")
        assert batch.history is not None
        last = batch.history[:, -1]  # (B,) left-padded: the most recent item, 0 when empty
        scores = self.neighbour_sims.new_zeros(len(batch), self.n_items + 1)
        scores.scatter_(1, self.neighbour_items[last], self.neighbour_sims[last])
        scores[:, 0] = 0
        return scores  # (B, N)


class _PairExpander:
    """Expands (row, sequence) anchors into (row, item) pairs, one per item of the sequence,
    and counts them into a flat (rows * N) table, at most ``budget`` pairs at a time."""

    def __init__(self, entry_item: Tensor, seq_start: Tensor, seq_len: Tensor, budget: int):
        self.entry_item, self.seq_start, self.seq_len = entry_item, seq_start, seq_len
        self.budget = max(1, budget)

    def accumulate(self, table: Tensor, anchor_row: Tensor, anchor_seq: Tensor, n: int) -> None:
        lengths = self.seq_len[anchor_seq]  # (A,) pairs each anchor expands to
        ends = torch.cumsum(lengths, 0)
        lo, done = 0, 0
        while lo < len(ends):
            hi = int(torch.searchsorted(ends, done + self.budget, right=True))
            hi = max(hi, lo + 1)
            rows, cols = self.expand(anchor_row[lo:hi], anchor_seq[lo:hi], lengths[lo:hi])
            table.index_add_(0, rows * n + cols, torch.ones_like(rows, dtype=table.dtype))
            done, lo = int(ends[hi - 1]), hi

    def expand(self, row: Tensor, seq: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        total = int(lengths.sum())
        rows = torch.repeat_interleave(row, lengths, output_size=total)
        first = torch.cumsum(lengths, 0) - lengths  # each anchor's first pair
        within = torch.arange(total, device=row.device) - torch.repeat_interleave(
            first, lengths, output_size=total
        )
        start = torch.repeat_interleave(self.seq_start[seq], lengths, output_size=total)
        return rows, self.entry_item[start + within]
