"""hybridrec-data's work beyond preparing (:mod:`hybridrec.cli.data`): the judgments checked as
``prepare`` will check them (``validate``), a prepared folder's training pairs summarised
(``describe``), users erased from prepared data and exported models (``forget``,
docs/privacy.md).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from hybridrec.data.errors import DataError
from hybridrec.data.raw import RawData
from hybridrec.data.spec import DataSpec
from hybridrec.overrides import UsageError


def judgments_summary(cfg: DictConfig, raw: RawData) -> str:
    """The judgments checked as prepare will check them (unknown items and users, NaN scores:
    a DataError naming the row), against every id the source holds; a summary line."""
    from hybridrec.data.preparation.judgments import JudgmentConfig, check_judgments

    assert raw.ratings is not None
    settings = OmegaConf.to_container(cfg.data.judgments, resolve=True)
    assert isinstance(settings, dict)
    judgment_cfg = JudgmentConfig.from_mapping({str(k): v for k, v in settings.items()})
    items = [raw.interactions["item"]]
    if raw.items is not None and cfg.data.get("catalogue_items", "judged") != "interacted":
        items.append(raw.items["item"])
    if raw.test is not None:
        items.append(raw.test["item"])
    item_ids = pd.Index(pd.unique(pd.concat(items, ignore_index=True)))
    user_ids = pd.Index(pd.unique(raw.interactions["user"]))
    rows, dropped = check_judgments(
        raw.ratings, f"{raw.name} judgments", user_ids, item_ids, judgment_cfg
    )
    left_out = ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)
    return f"{len(rows):,} rows" + (f" ({left_out} left out)" if left_out else "")


def train_summary(folder: Path, spec: DataSpec) -> str:
    """One line on a prepared folder's training pairs: their count, density, pairs per user and
    per item, items never trained on."""
    train_path = folder / spec.files["train"]
    try:
        train = pd.read_parquet(train_path)
    except (OSError, ValueError) as exc:  # pyarrow's errors are both
        raise DataError(
            f"cannot read Parquet ({' '.join(str(exc).split())}); expected the training pairs "
            "that `hybridrec-data prepare` writes: delete the folder and prepare again",
            path=train_path,
        ) from exc
    per_user = train.groupby("user").size()
    per_item = train.groupby("item").size()
    density = len(train) / (spec.n_users * spec.n_items)
    return (
        f"train: {len(train):,} pairs, density {density:.4%}; per user min/median/max "
        f"{per_user.min()}/{int(per_user.median())}/{per_user.max()}; per item "
        f"{per_item.min()}/{int(per_item.median())}/{per_item.max()}; items never trained on: "
        f"{spec.n_items - per_item.size}"
    )


def forget_users(
    users: list[str],
    folders: list[str],
    models: list[str],
    tracking_uri: str | None = None,
    tag: bool = True,
) -> None:
    """``hybridrec-data forget``: erase ``users`` (raw ids or pseudonyms) from prepared
    ``folders`` and exported ``models``, record it in each one's erasures.json, tag the MLflow
    runs trained on those folders (``tag``); one line printed per target."""
    from hybridrec.data.catalogue import read_id_maps
    from hybridrec.data.erasure import forget_in_folder, missing_users_message, user_rows
    from hybridrec.export.forget import forget_in_model, model_kind, user_ids

    if not folders and not models:
        raise UsageError("forget: give at least one --folder (prepared) or --model (exported)")
    # every target resolved before anything changes: a user found nowhere stops it all
    plans: list[tuple[Path, list[int]]] = []
    found_somewhere: set[str] = set()
    pseudonymised = False
    for folder in map(Path, folders):
        spec = DataSpec.load(folder)
        pseudonymised |= bool(spec.pseudonyms)
        found, _ = user_rows(users, read_id_maps(folder)["users"], spec.pseudonyms, str(folder))
        found_somewhere |= set(found)
        plans.append((folder, sorted(set(found.values()))))
    for model in map(Path, models):
        if model_kind(model) is None:
            raise FileNotFoundError(
                f"{model}: neither an export folder (export.json) nor a served model folder "
                "(MLmodel); give --model the folder hybridrec-export wrote or a saved pyfunc model"
            )
        # its checkpoint is read with weights_only: a file holding code is refused
        # (CheckpointError, one of ours: main prints its sentence)
        ids, pseudonyms = user_ids(model)
        pseudonymised |= bool(pseudonyms)
        found_somewhere |= set(user_rows(users, ids, pseudonyms, str(model))[0])
    missing = [u for u in users if u not in found_somewhere]
    if missing:
        where = ", ".join(map(str, [*folders, *models]))
        raise DataError(missing_users_message(missing, where, pseudonymised) + "; nothing erased")
    fingerprints: list[str] = []
    when = ""
    for folder, rows in plans:
        if not rows:
            print(f"{folder}: none of these users")
            continue
        record = forget_in_folder(folder, rows)
        fingerprints.append(record.fingerprint_before)
        when = record.when
        print(
            f"{folder}: {len(rows)} user(s) erased, rows removed {record.removed}; fingerprint "
            f"{record.fingerprint_before[:12]} -> {record.fingerprint_after[:12]} (erasures.json)"
        )
    for model in map(Path, models):
        record, _ = forget_in_model(model, users)
        print(f"{model}: {len(record.users)} user(s) erased, changed {record.removed}")
    if fingerprints and tag:
        from mlflow.tracking import MlflowClient

        from hybridrec.tracking import default_tracking_uri
        from hybridrec.tracking.erasure import ERASED_TAG, tag_runs_with_erased_users

        client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
        runs = tag_runs_with_erased_users(client, fingerprints, when)
        print(f"{len(runs)} MLflow run(s) trained on the data before tagged {ERASED_TAG}")
