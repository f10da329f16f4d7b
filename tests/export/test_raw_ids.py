"""The served model of a pseudonymised run: a raw id with the server's key, a pseudonym
always; another key refused in one sentence."""

from __future__ import annotations

import pytest

from hybridrec.data.pseudonyms import KEY_ENV, KEY_FILE_ENV, Pseudonymiser
from hybridrec.export.pyfunc_model import raw_id_key
from hybridrec.lit.checkpoint import PAYLOAD


def _saved(kinds: list[str], layout: str = "pairs") -> dict[str, object]:
    spec = {
        "layout": layout,
        "pseudonyms": {"kinds": kinds, "key_check": Pseudonymiser(b"k").check},
    }
    return {PAYLOAD: {"spec": spec}}


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def test_with_the_key_a_raw_id_becomes_its_pseudonym(monkeypatch: pytest.MonkeyPatch) -> None:
    assert raw_id_key(_saved(["users"])) is None  # no key: pseudonyms only
    monkeypatch.setenv(KEY_ENV, "k")
    assert raw_id_key(_saved(["users"]))("cust-1") == Pseudonymiser(b"k")("users", "cust-1")
    sessions = raw_id_key(_saved(["sessions"], layout="sessions"))
    assert sessions("s1") == Pseudonymiser(b"k")("sessions", "s1")
    assert raw_id_key(_saved([])) is None  # a plain run: raw ids as they are
    assert raw_id_key({PAYLOAD: {"spec": {}}}) is None


def test_another_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-k")
    with pytest.raises(ValueError, match="not the one this model's data was pseudonymised"):
        raw_id_key(_saved(["users"]))
