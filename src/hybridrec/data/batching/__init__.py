"""Batching: a prepared folder -> batch iterables and the Lightning DataModules that hold them.

The batch types are in :mod:`hybridrec.data.batch`: ``PairBatch`` (pairs.py training),
``SessionBatch`` / ``WindowBatch`` (sequences.py training), ``RowEvalBatch`` and
``PrefixEvalBatch`` (evaluation).

    pairs.py                 (user, item) pairs: CSR, TrainBatches, EvalBatches, RecDataModule
    sequences.py             sequence iterables: session-parallel, next-item windows, prefix rows
    sequence_datamodule.py   SequenceDataModule, the sequences of a prepared folder

Nothing is imported here: pairs.py and sequence_datamodule.py import Lightning, sequences.py
does not.
"""
