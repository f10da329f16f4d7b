"""One line for an error in a composed config's values (a missing ``???`` value, a bad argument
to a ``_target_``), shared by the console scripts that compose configs (hybridrec-data,
hybridrec-eval). Only Hydra and OmegaConf load here."""

from __future__ import annotations

import re

from hydra.errors import InstantiationException
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException


def config_error(exc: Exception) -> str:
    """One line for an error in a composed config's values (a missing value, a bad argument)."""
    if isinstance(exc, MissingMandatoryValue):
        key = exc.full_key or "a key"
        return f"{key} is not set (??? in the config); add {key}=... to the overrides"
    if isinstance(exc, InstantiationException):
        where = re.search(r"full_key: (\S+)", str(exc))
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if isinstance(cause, OmegaConfBaseException):
            return config_error(cause)
        prefix = f"{where.group(1)}: " if where is not None else ""
        return prefix + " ".join(str(cause).split())
    if isinstance(exc, OmegaConfBaseException) and getattr(exc, "full_key", None):
        return f"{exc.full_key}: {' '.join(str(exc).splitlines()[0].split())}"
    return " ".join(str(exc).split())
