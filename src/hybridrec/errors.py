"""The base of every error hybridrec raises on purpose.

Each says, in one sentence for the person at the keyboard, what was wrong, where (the file,
row, column, config key or run) and what to do. The console scripts print such an error alone
and exit 2; anything else is a bug and keeps its traceback. A program using hybridrec as a
library catches ``HybridrecError`` for all of them. The subclasses keep their standard bases
(``ValueError``, ``LookupError``, ...) too, so code that caught those still does:

    ConfigError (cli/checks)        a config value, key or combination
    ArgumentError (validators)      a constructor argument outside its rule (the same rule
                                    and sentence as the config check's)
    UsageError (cli/overrides)      a command line that cannot be parsed or composed
    DataError (data/errors)         an input file: its row and column
    MissingKeyError                 the pseudonym key is not set (a DataError)
    EvalError (cli/evaluate)        what hybridrec-eval was given
    RequestError (export)           a served request's field
    ReviewError (export/review)     what hybridrec-review was given
    TrackingError (tracking/runs)   the MLflow store
    RunIdError (tracking/run_ids)   a run id or prefix
    DivergenceError (lit)           a training loss that stopped being finite
    BatchLayoutError (data/batch)   a batch of a layout the model or loss does not read
"""


class HybridrecError(Exception):
    """See the module docstring."""
