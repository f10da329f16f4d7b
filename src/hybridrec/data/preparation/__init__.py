"""Preparation: RawData -> checked, mapped, split -> a prepared folder (parquet files + spec.json).

    validate.py    the checks the readers run on what they read (DataError with file/row/column)
    text.py        item text: TextConfig (``data.text``), assembling and loading item_text.parquet
    protocols.py   evaluation protocols (LeaveOneOut, TemporalSplit, ColdItems) -> Split
    sessions.py    the ``session`` protocol (SessionSplit) and its prepare step
    staging.py     what both prepare steps share: atomic folder writes, the negatives file reader
    prepare.py     prepare / prepare_cached: the prepared folder for every other protocol

Nothing is imported here, so importing one module does not import the others.
"""
