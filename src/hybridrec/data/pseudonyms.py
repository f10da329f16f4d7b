"""Pseudonymous ids: a keyed hash (HMAC-SHA256) in place of customers' (and raters') ids.

``data.pseudonymise=true`` (or a list of ``users``, ``sessions``, ``raters``) makes ``prepare``
write, in place of each raw id of those kinds, ``HMAC-SHA256(key, "<kind>:<raw id>")`` as 32 hex
digits behind a ``ps-`` prefix. The index of every id stays the one the raw id had (the sorted
raw ids): a pseudonymised run trains and measures exactly as the plain one.

The key is read from the environment only, never from a config: ``HYBRIDREC_PSEUDONYM_KEY``
(the key itself) or ``HYBRIDREC_PSEUDONYM_KEY_FILE`` (a file holding it). It is never logged,
never written to a file; the prepared folder records a *check value* of it
(``HMAC(key, "hybridrec key check")``, 16 hex digits), so that a server, or ``forget``, can
tell whether it holds the same key without anyone seeing it.

The same key in the server's environment lets the served model take a customer's raw id
(``hybridrec.export.pyfunc_model``); without it the model takes pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hybridrec.data.errors import DataError

KEY_ENV = "HYBRIDREC_PSEUDONYM_KEY"
KEY_FILE_ENV = "HYBRIDREC_PSEUDONYM_KEY_FILE"
#: what ``data.pseudonymise`` may list; ``true`` is ``[users]``
KINDS = ("users", "sessions", "raters")
PREFIX = "ps-"
_CHECK_MESSAGE = b"hybridrec key check"


class MissingKeyError(DataError):
    """Pseudonyms are asked for and no key is given (or the key file is unusable)."""


def pseudonymised_kinds(value: Any) -> tuple[str, ...]:
    """The kinds of id ``data.pseudonymise`` asks for: false/null -> (), true -> (users,), a
    list -> its kinds (ValueError naming the key for anything else)."""
    if value is None or value is False:
        return ()
    if value is True:
        return ("users",)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(
            f"data.pseudonymise={value!r}: expected true, false or a list of {list(KINDS)}"
        )
    kinds = [str(v) for v in value]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(
            f"data.pseudonymise: unknown kind(s) {unknown}; expected some of {list(KINDS)}"
        )
    return tuple(k for k in KINDS if k in kinds)


def read_key(environ: dict[str, str] | None = None) -> bytes | None:
    """The key from the environment (``HYBRIDREC_PSEUDONYM_KEY``, else the file named by
    ``HYBRIDREC_PSEUDONYM_KEY_FILE``, its trailing newline dropped), or None when neither is
    set. A named file that is missing or empty is a :class:`MissingKeyError`."""
    env = os.environ if environ is None else environ
    key = env.get(KEY_ENV)
    if key:
        return key.encode()
    file = env.get(KEY_FILE_ENV)
    if not file:
        return None
    path = Path(file)
    if not path.is_file():
        raise MissingKeyError(f"{KEY_FILE_ENV}={file}: no such file (expected the pseudonym key)")
    data = path.read_bytes().rstrip(b"\r\n")
    if not data:
        raise MissingKeyError(f"{KEY_FILE_ENV}={file}: the file is empty (expected the key)")
    return data


def require_key(what: str) -> bytes:
    """The key, or a :class:`MissingKeyError` in one sentence saying where to put it."""
    key = read_key()
    if key is None:
        raise MissingKeyError(
            f"{what} needs the pseudonym key: set {KEY_ENV} (the secret itself) or "
            f"{KEY_FILE_ENV} (a file holding it) in the environment; it is never written to a "
            "config, a log or an artifact"
        )
    return key


class Pseudonymiser:
    """``pseudonymiser("users", raw_id) -> "ps-<32 hex>"``. Holds the key; never shows it."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise MissingKeyError("the pseudonym key is empty")
        self._key = key

    def __repr__(self) -> str:  # the key never reaches a log through a repr
        return f"Pseudonymiser(check={self.check})"

    @property
    def check(self) -> str:
        """A check value of the key (16 hex digits): equal keys, equal checks."""
        return hmac.new(self._key, _CHECK_MESSAGE, hashlib.sha256).hexdigest()[:16]

    def __call__(self, kind: str, raw: Any) -> str:
        message = f"{kind}:{raw}".encode()
        return PREFIX + hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def many(self, kind: str, raws: Iterable[Any]) -> list[str]:
        return [self(kind, raw) for raw in raws]


def is_pseudonym(value: Any) -> bool:
    text = str(value)
    return (
        text.startswith(PREFIX)
        and len(text) == len(PREFIX) + 32
        and all(c in "0123456789abcdef" for c in text[len(PREFIX) :])
    )


class Pseudonyms:
    """What ``prepare`` is given: the kinds to pseudonymise, the key read only when an id is
    first written (a folder already prepared needs no key to train on)."""

    def __init__(self, kinds: Sequence[str], key: bytes | None = None) -> None:
        self.kinds = tuple(kinds)
        self._hasher = None if key is None else Pseudonymiser(key)

    def __repr__(self) -> str:
        return f"Pseudonyms(kinds={self.kinds})"

    @property
    def hasher(self) -> Pseudonymiser:
        if self._hasher is None:
            self._hasher = Pseudonymiser(require_key("data.pseudonymise=true"))
        return self._hasher

    def ids(self, kind: str, raws: Iterable[Any]) -> list[Any]:
        """``raws`` as pseudonyms when ``kind`` is pseudonymised, else unchanged."""
        return self.hasher.many(kind, raws) if kind in self.kinds else list(raws)

    def spec_entry(self) -> dict[str, Any]:
        """What spec.json records: the kinds and the key's check value (never the key)."""
        return {"kinds": list(self.kinds), "key_check": self.hasher.check}
