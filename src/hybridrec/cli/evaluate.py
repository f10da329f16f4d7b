"""hybridrec-eval: re-evaluate a trained model, on its own protocol or another one.

    hybridrec-eval RUN_ID|CHECKPOINT [protocol=NAME] [data=NAME] [key=value ...]
                   [--tracking-uri URI] [--same-run] [--no-mask] [--lambdas 0,0.3,1]

The checkpoint (a run's best one, or a file) carries the run's resolved config; overrides
change it (``protocol=cold_items`` takes configs/protocol/cold_items.yaml, ``ties=average`` or
``protocol.mask_known=false`` set one key), the data is prepared for the result (cached like
training's), and the model is tested on it with the run's own metrics and tie rule. The model
must see the same users and items: prepared data whose raw id maps differ from the checkpoint's
is refused (its scores would belong to other items). ``--no-mask`` ranks the user's known items
too (the official GRU4Rec evaluation) on the same prepared split, without preparing it again.

Results go to a new MLflow run in the original run's experiment (a bare checkpoint without a
run: an experiment named after the data), named ``eval-<run name>-<protocol>`` and tagged
``hybridrec.evaluates=<run id>``, ``protocol``, ``dataset``, ``data_fingerprint``; it ends
FINISHED, or FAILED when the evaluation raises. With ``--same-run`` they go into the original
run as ``eval/<protocol>/<metric>``. ``<protocol>`` reads ``<name>-unmasked`` when full ranking
keeps the known items in.

``--lambdas 0,0.1,0.3,1,3`` (a run trained with a judgment head, ``judgment=head_bt``): the
test once per lambda, ranking by ``z(s(u, i)) + lambda z(s_J(c, i))`` (each standardised per
row, docs/judgments.md), from the one checkpoint; metrics as ``lambda_<value>/test/…`` and the
accuracy-vs-agreement front (front.csv / .json / .md / .png, :mod:`hybridrec.tracking.
lambda_front`) under the eval run's ``front/`` artifacts, tagged ``hybridrec.front=lambda``.

Mistakes (unknown run, missing or foreign file, bad override, other ids) print one sentence and
exit 2; bad input data found while preparing it exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from hydra.errors import InstantiationException
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf.errors import OmegaConfBaseException

from hybridrec.cli.quiet import quiet_third_party
from hybridrec.config_errors import config_error
from hybridrec.data.errors import DataError
from hybridrec.errors import HybridrecError
from hybridrec.run.eval_config import EvalError
from hybridrec.run.evaluate import evaluate
from hybridrec.tracking import default_tracking_uri, mlflow_key
from hybridrec.tracking.lambda_front import parse_lambdas
from hybridrec.tracking.runs import check_tracking_uri


def _lambdas(text: str) -> list[float]:
    """``--lambdas`` parsed; its plain ValueError (a parser of a command-line value) becomes
    ours, with the same sentence."""
    try:
        return parse_lambdas(text)
    except ValueError as exc:
        raise EvalError(str(exc)) from None


def _table(results: dict[str, float]) -> str:
    """``metric  value`` lines, sorted, under MLflow's names (``test/hr10``)."""
    named = {mlflow_key(k): v for k, v in results.items()}
    width = max((len(k) for k in named), default=0)
    return "\n".join(f"  {k:<{width}}  {v:.4f}" for k, v in sorted(named.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybridrec-eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("source", help="an MLflow run id (or a unique prefix) or a .ckpt file")
    parser.add_argument(
        "overrides", nargs="*", help="protocol=NAME, data=NAME, key=value (e.g. ties=average)"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--same-run", action="store_true", help="log into the original run as eval/<protocol>/…"
    )
    parser.add_argument(
        "--no-mask", action="store_true", help="rank the user's known items too (full ranking)"
    )
    parser.add_argument(
        "--lambdas",
        default=None,
        help="serving lambdas, e.g. 0,0.1,0.3,1,3: the accuracy-vs-agreement front of a run "
        "with a judgment head, from its one checkpoint",
    )
    args = parser.parse_args(argv)
    from hybridrec.runtime import tune_allocator

    tune_allocator()
    quiet_third_party()
    # the checkpoint download's progress bar would bury the one-line errors on stderr
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = args.tracking_uri or default_tracking_uri()
    try:
        check_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri)
        lambdas = _lambdas(args.lambdas) if args.lambdas is not None else None
        results, where = evaluate(
            args.source,
            args.overrides,
            client,
            same_run=args.same_run,
            no_mask=args.no_mask,
            lambdas=lambdas,
        )
    except DataError as exc:  # bad input data: the message names the file, row and column
        print(f"hybridrec-eval: bad input data: {exc}", file=sys.stderr)
        return 1
    except (HybridrecError, FileNotFoundError) as exc:  # ours: one sentence; a bug: traceback
        print(f"hybridrec-eval: error: {exc}", file=sys.stderr)
        return 2
    except (InstantiationException, OmegaConfBaseException) as exc:
        print(f"hybridrec-eval: error: {config_error(exc)}", file=sys.stderr)
        return 2
    except MlflowException as exc:
        message = " ".join(str(exc).split())[:300]
        print(f"hybridrec-eval: error: MLflow store {uri}: {message}", file=sys.stderr)
        return 2
    print(_table(results))
    print(f"logged to {where} in {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
