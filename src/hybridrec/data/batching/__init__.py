"""Batching: a prepared folder -> RecBatch iterables and the Lightning DataModules that hold them.

    pairs.py                 (user, item) pairs: CSR, TrainBatches, EvalBatches, RecDataModule
    sequences.py             sequence iterables: session-parallel, next-item windows, prefix rows
    sequence_datamodule.py   SequenceDataModule, the sequences of a prepared folder

Nothing is imported here: pairs.py and sequence_datamodule.py import Lightning, sequences.py
does not.
"""
