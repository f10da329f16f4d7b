"""hybridrec-data forget on a prepared folder: the user's rows are gone, every other row and
index is as it was, the fingerprint is new, the record holds no raw id, the runs trained on the
folder before are tagged."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from hybridrec.cli.data import main
from hybridrec.data.catalogue import read_id_maps
from hybridrec.data.erasure import ERASURES_FILE, USER_FILES, erased_fingerprints
from hybridrec.data.preparation.prepare import FILE_ROLES, prepare
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.pseudonyms import KEY_ENV, KEY_FILE_ENV, Pseudonymiser, Pseudonyms
from hybridrec.data.raw import RawData
from hybridrec.data.readers import read_synthetic
from hybridrec.data.spec import DataSpec, fingerprint_files
from hybridrec.tracking.erasure import ERASED_TAG


def _customers(raw_ids: bool) -> RawData:
    raw = read_synthetic(n_users=30, n_items=25, seed=0, ratings_per_rater=20)
    if raw_ids:  # ids a person would recognise, not numbers
        raw.interactions["user"] = "cust-" + raw.interactions["user"].astype(str)
    return raw


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    prepare(_customers(raw_ids=True), LeaveOneOut(eval_mode="sampled"), tmp_path / "prep")
    return tmp_path / "prep"


def _frames(folder: Path) -> dict[str, pd.DataFrame]:
    spec = DataSpec.load(folder)
    return {role: pd.read_parquet(folder / name) for role, name in spec.files.items()}


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def test_the_user_is_gone_and_everything_else_identical(
    folder: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before, spec, ids = _frames(folder), DataSpec.load(folder), read_id_maps(folder)["users"]
    user = ids.index("cust-7")
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("erasure") or client.get_experiment(
        client.create_experiment("erasure")
    )
    runs = [
        client.create_run(experiment.experiment_id, tags={"data_fingerprint": fingerprint})
        for fingerprint in (spec.fingerprint, "0" * 64)  # trained on it; on other data
    ]

    assert main(["forget", "cust-7", "--folder", str(folder), "--tracking-uri", mlflow_uri]) == 0
    after, new = _frames(folder), DataSpec.load(folder)
    for role in USER_FILES:
        assert user in set(before[role]["user"]) and user not in set(after[role]["user"])
        pd.testing.assert_frame_equal(  # the other users' rows: the same, in the same order
            before[role][before[role]["user"] != user].reset_index(drop=True), after[role]
        )
    assert read_id_maps(folder)["users"] == [None if i == user else v for i, v in enumerate(ids)]
    pd.testing.assert_frame_equal(before["items"], after["items"])
    assert (new.n_users, new.n_items) == (spec.n_users, spec.n_items)  # indices unchanged
    assert new.n_train == spec.n_train - int((before["train"]["user"] == user).sum())
    assert new.fingerprint != spec.fingerprint
    assert new.fingerprint == fingerprint_files(
        [folder / new.files[r] for r in FILE_ROLES if r in new.files]
    )
    record = json.loads((folder / ERASURES_FILE).read_text())
    assert record[0]["users"] == [{"index": user, "pseudonym": None}]  # never the raw id
    assert record[0]["fingerprint_before"] == spec.fingerprint
    assert "cust-7" not in (folder / ERASURES_FILE).read_text()
    assert erased_fingerprints(folder) == [spec.fingerprint]
    assert client.get_run(runs[0].info.run_id).data.tags[ERASED_TAG] == record[0]["when"]
    assert ERASED_TAG not in client.get_run(runs[1].info.run_id).data.tags
    assert "1 MLflow run(s)" in capsys.readouterr().out


def test_an_unknown_user_changes_nothing(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = DataSpec.load(folder)
    assert main(["forget", "cust-7", "cust-nobody", "--folder", str(folder), "--no-tag"]) == 2
    err = capsys.readouterr().err
    assert "1 requested user(s) are in none of" in err and "nothing erased" in err
    assert "cust-nobody" not in err  # the id is not repeated in logs
    assert DataSpec.load(folder).fingerprint == spec.fingerprint
    assert not (folder / ERASURES_FILE).exists()


def test_a_pseudonymised_folder_by_raw_id_with_the_key_or_by_pseudonym(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "hashed"
    key = b"the-key"
    prepare(
        _customers(raw_ids=True),
        LeaveOneOut(eval_mode="sampled"),
        folder,
        pseudonyms=Pseudonyms(["users"], key),
    )
    hasher = Pseudonymiser(key)
    # without the key a raw id cannot be found: the sentence says how
    assert main(["forget", "cust-7", "--folder", str(folder), "--no-tag"]) == 2
    assert f"set {KEY_ENV} to give raw ids" in capsys.readouterr().err
    # a pseudonym needs no key
    assert main(["forget", hasher("users", "cust-8"), "--folder", str(folder), "--no-tag"]) == 0
    monkeypatch.setenv(KEY_ENV, key.decode())
    assert main(["forget", "cust-7", "--folder", str(folder), "--no-tag"]) == 0
    records = json.loads((folder / ERASURES_FILE).read_text())
    assert [r["users"][0]["pseudonym"] for r in records] == [
        hasher("users", "cust-8"),
        hasher("users", "cust-7"),
    ]
    users = read_id_maps(folder)["users"]
    assert users.count(None) == 2 and hasher("users", "cust-9") in users
    assert len(erased_fingerprints(folder)) == 2
    monkeypatch.setenv(KEY_ENV, "another-key")
    assert main(["forget", "cust-9", "--folder", str(folder), "--no-tag"]) == 2
    assert "not the one these ids were pseudonymised with" in capsys.readouterr().err


def test_whole_number_ids_stay_whole_numbers(tmp_path: Path) -> None:
    """MovieLens users are numbers: a gap left by an erased one must not turn them into
    floats (1.0 would no longer match a request for user 1)."""
    folder = tmp_path / "numbers"
    prepare(_customers(raw_ids=False), LeaveOneOut(eval_mode="sampled"), folder)
    assert main(["forget", "4", "--folder", str(folder), "--no-tag"]) == 0
    users = read_id_maps(folder)["users"]
    assert users[4] is None and all(isinstance(u, int) for i, u in enumerate(users) if i != 4)


def test_forget_needs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forget", "cust-1"]) == 2
    assert "give at least one --folder" in capsys.readouterr().err


def test_a_model_trained_before_still_evaluates_on_the_erased_folder(folder: Path) -> None:
    """hybridrec-eval refuses data whose ids differ from the model's; an erased user (null)
    is no difference: the other indices are those the model was trained on."""
    from hybridrec.run.eval_config import EvalError
    from hybridrec.run.evaluate import check_same_ids

    trained = read_id_maps(folder)
    assert main(["forget", "cust-7", "--folder", str(folder), "--no-tag"]) == 0
    check_same_ids(trained, {}, folder)
    changed = {**trained, "users": ["cust-x", *trained["users"][1:]]}
    with pytest.raises(EvalError, match="differ from those the model was trained on"):
        check_same_ids(changed, {}, folder)
