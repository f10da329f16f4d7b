"""The data layer: source files -> validated ``RawData`` -> a prepared folder -> batches.

Shared contracts (this folder):
    errors.py      DataError, naming the file, row and column of bad input
    raw.py         RawData, what every reader returns
    spec.py        DataSpec (spec.json), the contract between ``prepare`` and the rest
    batch.py       the batch types, one per layout (PairBatch, SessionBatch, WindowBatch,
                   RowEvalBatch, PrefixEvalBatch), told apart by their class
    sampling.py    negative sampling: training negatives (batching) and the fixed evaluation
                   negatives (preparation's protocols)

Packages:
    readers/       one module per source family (MovieLens, NCF, sequences, UniSRec, sessions,
                   generic tables, synthetic), each returning RawData
    preparation/   validation, item text, protocols (splits), ``prepare`` -> the prepared folder
    batching/      prepared folder -> batch iterables and the Lightning DataModules
    synthetic/     the deterministic synthetic dataset and writers of every benchmark format

``RecDataModule`` is imported lazily so reading and validating data does not pay for
importing Lightning.
"""

from typing import Any

from hybridrec.data.batch import (
    Batch,
    EvalBatch,
    PairBatch,
    PrefixEvalBatch,
    RowEvalBatch,
    SessionBatch,
    WindowBatch,
)
from hybridrec.data.errors import DataError
from hybridrec.data.raw import RawData
from hybridrec.data.spec import DataSpec

__all__ = [
    "Batch",
    "DataError",
    "DataSpec",
    "EvalBatch",
    "PairBatch",
    "PrefixEvalBatch",
    "RawData",
    "RecDataModule",
    "RowEvalBatch",
    "SessionBatch",
    "WindowBatch",
]


def __getattr__(name: str) -> Any:
    if name == "RecDataModule":
        from hybridrec.data.batching.pairs import RecDataModule

        return RecDataModule
    raise AttributeError(f"module 'hybridrec.data' has no attribute {name!r}")
