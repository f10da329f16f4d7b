"""Readers: one function per source format, each returning :class:`RawData`.

    tables.py      generic CSV/TSV/Parquet by column mapping (read_table), item tables
                   (read_items_table) and join_items, which adds an item table to any source
    movielens.py   MovieLens 100K / 1M / latest, movies.dat as an item table
    ncf.py         the NCF paper's files (.train.rating or .train.pairs, .test.rating,
                   .test.negative)
    sequences.py   one-user-per-line sequence files (``user item item ...``)
    unisrec.py     UniSRec / RecBole atomic files with item text (Amazon 2018)
    sessions.py    session click files (GRU4Rec's TSV) and Diginetica's item views
    synthetic.py   the generated dataset of :mod:`hybridrec.data.synthetic`
    scale.py       synthetic interactions at any scale (speed and memory sweeps)

They are Hydra ``_target_`` functions, so they take plain keyword arguments (paths as ``str`` or
``Path``). Ids stay raw; bad input raises :class:`DataError` naming file, row and column.
Every reader of interactions takes ``duplicates`` (``"error"``, ``"drop"`` to keep the first,
``"keep"``) for repeated ``(user, item)`` pairs; the data configs expose it as
``data.source.duplicates``.
"""

from hybridrec.data.readers.movielens import (
    ML100K_GENRES,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_items,
    read_movielens_latest,
    read_movies_dat,
)
from hybridrec.data.readers.ncf import read_ncf
from hybridrec.data.readers.scale import read_scale
from hybridrec.data.readers.sequences import read_sequences
from hybridrec.data.readers.sessions import read_diginetica, read_sessions
from hybridrec.data.readers.synthetic import read_synthetic
from hybridrec.data.readers.tables import join_items, read_items_table, read_table
from hybridrec.data.readers.unisrec import read_unisrec

__all__ = [
    "ML100K_GENRES",
    "join_items",
    "read_diginetica",
    "read_items_table",
    "read_movielens_100k",
    "read_movielens_1m",
    "read_movielens_items",
    "read_movielens_latest",
    "read_movies_dat",
    "read_ncf",
    "read_sequences",
    "read_sessions",
    "read_scale",
    "read_synthetic",
    "read_table",
    "read_unisrec",
]
