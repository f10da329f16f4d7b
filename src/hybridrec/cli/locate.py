"""Where hybridrec's configs are (kept apart from :mod:`hybridrec.cli.common`, which loads the
data layer: an entry point that only needs the folder, ``hybridrec-train --help``, stays fast)."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    """The ``configs/`` folder: packaged inside a wheel, or at the repository root."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "configs", here.parents[3] / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError("hybridrec's configs/ folder was not found next to the package")
