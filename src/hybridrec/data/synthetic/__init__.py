"""The deterministic synthetic dataset: the embedded default data and the test fixture.

    generator.py   generate() -> SyntheticData (interactions, item text, marketer ratings and
                   the truth behind them); see its module doc for the planted structure
    writers.py     SyntheticData in each benchmark's on-disk format, so every reader is tested

The data as a reader (a ``data.source`` target) is
:func:`hybridrec.data.readers.read_synthetic`.
"""

from hybridrec.data.synthetic.generator import (
    EMPTY_DESCRIPTION_SHARE,
    QUALITY_WORDS,
    RATER_SCALES,
    START_TIMESTAMP,
    SyntheticData,
    generate,
    judgment_rule,
)
from hybridrec.data.synthetic.writers import (
    ML_GENRES,
    unisrec_asin,
    write,
    write_diginetica,
    write_movielens_1m,
    write_movielens_100k,
    write_ncf,
    write_sequences,
    write_sessions,
    write_unisrec,
)

__all__ = [
    "EMPTY_DESCRIPTION_SHARE",
    "ML_GENRES",
    "QUALITY_WORDS",
    "RATER_SCALES",
    "START_TIMESTAMP",
    "SyntheticData",
    "generate",
    "judgment_rule",
    "unisrec_asin",
    "write",
    "write_diginetica",
    "write_movielens_100k",
    "write_movielens_1m",
    "write_ncf",
    "write_sequences",
    "write_sessions",
    "write_unisrec",
]
