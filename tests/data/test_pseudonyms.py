"""data.pseudonymise: keyed hashes in place of user (session, rater) ids, the same indices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridrec.data.errors import DataError
from hybridrec.data.preparation.prepare import prepare
from hybridrec.data.preparation.protocols import LeaveOneOut
from hybridrec.data.pseudonyms import (
    KEY_ENV,
    KEY_FILE_ENV,
    MissingKeyError,
    Pseudonymiser,
    Pseudonyms,
    is_pseudonym,
    pseudonymised_kinds,
    read_key,
    require_key,
)
from hybridrec.data.readers import read_synthetic
from hybridrec.data.spec import DataSpec


def test_a_pseudonym_is_a_keyed_hash_that_hides_the_key() -> None:
    one, other = Pseudonymiser(b"k1"), Pseudonymiser(b"k2")
    assert one("users", 7) == one("users", "7")  # what a CSV and a request both give
    assert one("users", 7) != other("users", 7)  # another key, another pseudonym
    assert one("users", "a") != one("raters", "a")  # kinds never link
    assert is_pseudonym(one("users", 7)) and not is_pseudonym("cust-7")
    assert one.check == Pseudonymiser(b"k1").check != other.check
    assert "k1" not in repr(one) and "k1" not in repr(Pseudonyms(["users"], b"k1"))


def test_kinds() -> None:
    assert pseudonymised_kinds(False) == pseudonymised_kinds(None) == ()
    assert pseudonymised_kinds(True) == ("users",)
    assert pseudonymised_kinds(["raters", "users"]) == ("users", "raters")
    with pytest.raises(ValueError, match="unknown kind"):
        pseudonymised_kinds(["customers"])


def test_the_key_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert read_key({}) is None
    assert read_key({KEY_ENV: "abc"}) == b"abc"
    file = tmp_path / "key"
    file.write_text("from-file\n")
    assert read_key({KEY_FILE_ENV: str(file)}) == b"from-file"
    with pytest.raises(MissingKeyError, match="no such file"):
        read_key({KEY_FILE_ENV: str(tmp_path / "nope")})


def test_no_key_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(MissingKeyError) as info:
        require_key("data.pseudonymise=true")
    message = str(info.value)
    assert message.count(". ") == 0 and KEY_ENV in message and KEY_FILE_ENV in message


def test_prepare_writes_pseudonyms_and_nothing_else_changes(tmp_path: Path) -> None:
    raw = read_synthetic(n_users=40, n_items=30, seed=0, ratings_per_rater=20)
    plain = prepare(raw, LeaveOneOut(), tmp_path / "plain")
    hashed = prepare(
        raw, LeaveOneOut(), tmp_path / "hashed", pseudonyms=Pseudonyms(["users"], b"secret")
    )
    users = pd.read_parquet(tmp_path / "plain" / "users.parquet")
    pseudo = pd.read_parquet(tmp_path / "hashed" / "users.parquet")
    hasher = Pseudonymiser(b"secret")
    assert pseudo["raw_id"].tolist() == [hasher("users", u) for u in users["raw_id"]]
    assert pseudo["index"].tolist() == users["index"].tolist()  # each index as before
    for name in ("train", "val", "test", "items"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "plain" / f"{name}.parquet"),
            pd.read_parquet(tmp_path / "hashed" / f"{name}.parquet"),
        )
    assert hashed.pseudonyms == {"kinds": ["users"], "key_check": hasher.check}
    assert DataSpec.load(tmp_path / "hashed").pseudonyms == hashed.pseudonyms
    assert "pseudonyms" not in (tmp_path / "plain" / "spec.json").read_text()
    assert "secret" not in (tmp_path / "hashed" / "spec.json").read_text()
    assert plain.summary().keys() < hashed.summary().keys()


def test_prepare_without_a_key_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    raw = read_synthetic(n_users=20, n_items=20, seed=0, ratings_per_rater=20)
    with pytest.raises(MissingKeyError, match=f"set {KEY_ENV}"):
        prepare(raw, LeaveOneOut(), tmp_path / "f", pseudonyms=Pseudonyms(["users"]))
    assert not (tmp_path / "f").exists()


def test_another_key_than_the_folders_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridrec.cli.data import main

    root = [f"paths.root_dir={tmp_path}", "data.source.n_users=30", "data.source.n_items=20"]
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    assert main(["prepare", *root, "data.pseudonymise=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hybridrec-data: error: data.pseudonymise=true needs the pseudonym key")
    assert "\n" not in err
    monkeypatch.setenv(KEY_ENV, "first")
    assert main(["prepare", *root, "data.pseudonymise=true"]) == 0
    monkeypatch.setenv(KEY_ENV, "second")
    with pytest.raises(DataError, match="pseudonymised with another key"):
        from hybridrec.cli.common import prepare_from_config
        from hybridrec.overrides import compose_checked

        prepare_from_config(compose_checked("t", [*root, "data.pseudonymise=true"]))
    monkeypatch.delenv(KEY_ENV)  # a prepared folder needs no key to be used
    assert main(["prepare", *root, "data.pseudonymise=true"]) == 0


SEGMENTS = ["young_families", "students", "retirees", "professionals", "outdoor_enthusiasts"]


def test_raters_by_pseudonym_and_the_same_judgments(tmp_path: Path) -> None:
    """Rater names as pseudonyms (spec, and so MLflow's judgment metrics); held-out raters may
    be named by pseudonym in the config: the same split as the plain run's by name."""
    raw = read_synthetic(n_users=40, n_items=30, seed=0, ratings_per_rater=20)
    hasher = Pseudonymiser(b"k")
    plain = prepare(
        raw,
        LeaveOneOut(),
        tmp_path / "plain",
        judgments={"segments": SEGMENTS, "held_out_raters": ["rater_1"]},
    )
    hashed = prepare(
        raw,
        LeaveOneOut(),
        tmp_path / "hashed",
        judgments={"segments": SEGMENTS, "held_out_raters": [hasher("raters", "rater_1")]},
        pseudonyms=Pseudonyms(["users", "raters"], b"k"),
    )
    assert hashed.judgments["raters"] == [hasher("raters", r) for r in plain.judgments["raters"]]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "plain" / "judgments.parquet"),
        pd.read_parquet(tmp_path / "hashed" / "judgments.parquet"),
    )
    spec_text = (tmp_path / "hashed" / "spec.json").read_text()
    assert not [name for name in plain.judgments["raters"] if f'"{name}"' in spec_text]


def test_session_ids(tmp_path: Path) -> None:
    from hybridrec.data.preparation.sessions import SessionSplit

    raw = read_synthetic(n_users=40, n_items=30, seed=0, ratings_per_rater=20)
    raw.interactions["user"] = raw.interactions["session"]
    kinds = Pseudonyms(["sessions"], b"k")
    spec = prepare(
        raw, SessionSplit(min_item_support=1, test_days=10), tmp_path / "s", pseudonyms=kinds
    )
    plain = prepare(raw, SessionSplit(min_item_support=1, test_days=10), tmp_path / "p")
    ids = pd.read_parquet(tmp_path / "p" / "users.parquet")["raw_id"]
    hashed = pd.read_parquet(tmp_path / "s" / "users.parquet")["raw_id"]
    assert hashed.tolist() == [Pseudonymiser(b"k")("sessions", s) for s in ids]
    assert spec.pseudonyms["kinds"] == ["sessions"] and plain.n_train == spec.n_train


def test_the_switch_is_checked_and_off_changes_no_folder_name() -> None:
    from hybridrec.cli.checks import ConfigError, check_config
    from hybridrec.cli.common import data_config, prepared_folder
    from hybridrec.overrides import compose_checked

    default = compose_checked("t", [])
    assert default.data.pseudonymise is False
    assert "pseudonymise" not in data_config(default)["data"]  # folders named as before
    on = compose_checked("t", ["data.pseudonymise=[raters,users]"])
    check_config(on)
    assert data_config(on)["data"]["pseudonymise"] == ["users", "raters"]
    assert prepared_folder(on) != prepared_folder(default)
    with pytest.raises(ConfigError, match="data.pseudonymise: got"):
        check_config(compose_checked("t", ["data.pseudonymise=[customers]"]))
