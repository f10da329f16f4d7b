"""Row lookups for the NCF towers: ``F.embedding(index, table)`` rather than ``table[index]``.

Both give the same values; their backward passes differ. Advanced indexing's is an
``index_put_`` with accumulation, and its forward is slower too: gathering 20,480 rows of a
(3,707, 128) table on one CPU core took 3.78 ms with ``table[index]`` against 0.86 ms with
``index_select`` (what ``F.embedding`` runs), and the two backward passes 3.1 and 3.3 ms
(docs/benchmarks.md "Issue 15"). NeuMF's item half gathers from a projected table (not an
``nn.Embedding``), so it goes through here. A custom gather with an ``index_add_`` backward and
gathering bf16 copies of the tables under autocast were both measured too, and were slower in
the whole training step than this (docs/benchmarks.md).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def rows(table: Tensor, index: Tensor) -> Tensor:
    """table (N, D), index (*S) -> (*S, D): ``table[index]``, differentiable in ``table``."""
    return F.embedding(index, table)
