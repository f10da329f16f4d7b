"""Silence what third-party libraries print that is not the user's business.

Kept: Lightning's model summary, progress bar and device lines, every error. Dropped: the
LitLogger advertisement, MLflow's database-migration INFO lines, a PyTorch-internal
deprecation warning and the "fewer batches than the logging interval" warning (hybridrec logs
each epoch's mean training loss, so short epochs lose nothing).
"""

from __future__ import annotations

import logging
import warnings

_DROPPED_MESSAGES = ("💡 Tip:",)


class _DropMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith(_DROPPED_MESSAGES)


def quiet_third_party() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropMessages())
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
