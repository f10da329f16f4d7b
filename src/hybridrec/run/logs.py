"""What a run says about its inputs and logs beside Lightning's metrics: the data and the
judgments it learns from, the raters' reliability (Crowd-BT), the judgment head's choice."""

from __future__ import annotations

import logging
from pathlib import Path

from hybridrec.data.preparation.judgments import rater_summary
from hybridrec.data.spec import DataSpec
from hybridrec.lit import RecLitModule
from hybridrec.tracking import MLflowLogger
from hybridrec.tracking.mlflow_run import mlflow_key

log = logging.getLogger("hybridrec.train")


def log_data(spec: DataSpec, data_dir: Path) -> None:
    log.info(
        "data: %s (%d users, %d items, protocol %s) in %s",
        spec.name,
        spec.n_users,
        spec.n_items,
        spec.protocol,
        data_dir,
    )


def log_judgments(spec: DataSpec) -> None:
    """What the run learns from: judgments kept, held out, dropped (data.judgments.invalid=drop)
    per reason, and the raters' reliability weights in summary (every rater's in MLflow:
    judgments/raters.csv and judgments/weight/<rater>)."""
    info = spec.judgments
    if not info:
        return
    counts = info.get("counts", {})
    split = counts.get("judgments_rater_split_by_item", 0)  # docs/judgments.md, "The split"
    log.info(
        "judgments: %d (train %d, held out by item %d + %d, by rater %d + %d%s); %s "
        "(every rater: run artifact judgments/raters.csv)",
        counts.get("judgments", 0),
        counts.get("judgments_train", 0),
        counts.get("judgments_item_val", 0),
        counts.get("judgments_item_test", 0),
        counts.get("judgments_rater_val", 0),
        counts.get("judgments_rater_test", 0),
        ", split by item: their groups (rater, context, set) all fell on one side" if split else "",
        rater_summary(info),
    )
    dropped = {k.removeprefix("judgments_dropped_"): v for k, v in counts.items() if "dropped" in k}
    if dropped:
        log.warning(
            "judgments: %d rows dropped (data.judgments.invalid=drop): %s",
            sum(dropped.values()),
            ", ".join(f"{k} {v}" for k, v in dropped.items()),
        )


def head_choice(module: RecLitModule) -> dict[str, float]:
    """The judgment head's copy kept on validation: ``val/head/map_l2``, the L2 of its linear
    map of the model's vector (``judgment.head.map_l2``; without it, the map's L2 is ``l2``,
    logged by the module as ``<stage>/head/l2``). Empty without a head."""
    head = module.head
    if head is None:
        return {}
    spec = head.spec
    maps = spec.l2 if spec.map_l2 is None else spec.map_l2
    return {"val/head/map_l2": float(maps[int(head.chosen)])}


def log_rater_reliability(logger: MLflowLogger, module: RecLitModule, spec: DataSpec) -> None:
    """Crowd-BT: each rater's learned reliability eta at the end of training."""
    eta = module.rater_reliability()
    if eta is None or logger.run_id is None:
        return
    for rater, value in zip(spec.judgments.get("raters", []), eta.tolist(), strict=False):
        logger.experiment.log_metric(
            logger.run_id, f"judgment/eta/{mlflow_key(str(rater))}", float(value)
        )
