"""The data layer: readers, validation, protocols, negative sampling, the DataModule.

``RecDataModule`` is imported lazily so reading and validating data does not pay for
importing Lightning.
"""

from typing import Any

from hybridrec.data.batch import RecBatch
from hybridrec.data.errors import DataError
from hybridrec.data.raw import RawData
from hybridrec.data.spec import DataSpec

__all__ = ["DataError", "DataSpec", "RawData", "RecBatch", "RecDataModule"]


def __getattr__(name: str) -> Any:
    if name == "RecDataModule":
        from hybridrec.data.datamodule import RecDataModule

        return RecDataModule
    raise AttributeError(f"module 'hybridrec.data' has no attribute {name!r}")
