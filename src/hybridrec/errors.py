"""The base of every error hybridrec raises on purpose.

Each says, in one sentence for the person at the keyboard, what was wrong, where (the file,
row, column, config key or run) and what to do. The console scripts print such an error alone
and exit 2; anything else is a bug and keeps its traceback. A program using hybridrec as a
library catches ``HybridrecError`` for all of them. The subclasses keep their standard bases
(``ValueError``, ``LookupError``, ...) too, so code that caught those still does:

    ConfigError (cli/checks)        a config value, key or combination
    ArgumentError (validators)      a constructor argument outside its rule (the same rule
                                    and sentence as the config check's)
    UsageError (overrides)          a command line that cannot be parsed or composed
    DataError (data/errors)         an input file: its row and column
    MissingKeyError                 the pseudonym key is not set (a DataError)
    EvalError (run/eval_config)     what hybridrec-eval was given
    RequestError (export)           a served request's field
    ReviewError (export/review)     what hybridrec-review was given
    TrackingError (tracking/runs)   the MLflow store
    RunIdError (tracking/run_ids)   a run id or prefix
    DivergenceError (lit)           a training loss that stopped being finite
    BatchLayoutError (data/batch)   a batch of a layout the model or loss does not read
    CheckpointError (here)          a file that is not a checkpoint hybridrec-train wrote
    ExportError (here)              a model that cannot be exported as asked
    QueryError (here)               what was asked of the tracking store cannot be answered as
                                    asked (a study's trials, a param the runs did not log)
    NotFoundError (here)            no run, checkpoint, study or experiment matches

The last four live here, not beside their raise sites, because several layers raise them
(``lit``, ``export``, ``tracking`` and the console scripts).
"""


class HybridrecError(Exception):
    """See the module docstring."""


class CheckpointError(HybridrecError, ValueError):
    """A file that is not a checkpoint hybridrec-train wrote, or one holding more than
    tensors and plain data (refused: nothing in it runs)."""


class ExportError(HybridrecError, ValueError):
    """A model that cannot be exported as asked (``--add-items`` without item text, ...)."""


class QueryError(HybridrecError, ValueError):
    """What was asked of the tracking store cannot be answered as asked."""


class NotFoundError(HybridrecError, LookupError):
    """No run, checkpoint, study or experiment matches what was asked."""
