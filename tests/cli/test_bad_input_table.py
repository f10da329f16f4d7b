"""Bad input through the real entry points, as one table.

Every case runs ``hybridrec-data validate`` / ``hybridrec-data prepare`` or ``hybridrec-train``
in-process (``main`` as the console script calls it) and must give: a non-zero exit, one
message naming the file and row / column (or the config key) and what was expected, no
traceback, no prepared folder or other partial output, and no MLflow run left FINISHED (or
RUNNING) by a job that failed. A few cases run again as real processes (the console scripts),
and hypothesis feeds the readers and the override parser random bytes, tables and overrides.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

import hybridrec.cli.train  # noqa: F401  (Lightning loads before any case, as in the script)
from hybridrec.cli import data as data_cli
from hybridrec.cli import train_app as train_cli
from hybridrec.data.errors import DataError
from hybridrec.data.raw import RawData
from hybridrec.data.readers import read_table

# 6 users x 4 items each: enough for every leave-one-out protocol
GOOD = "user,item\n" + "".join(f"{u},{i}\n" for u in range(6) for i in range(u, u + 4))
INTERACTIONS = "interactions table (columns user, item[, timestamp, rating, session])"
JUDGMENTS = "judgments table (columns rater, item, score[, context, set, timestamp])"


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


GOOD_PARQUET = _parquet(pd.DataFrame({"user": [1, 2, 3], "item": [10, 11, 12]}))


@dataclass(frozen=True)
class Case:
    """``command`` (validate | prepare | train) run with ``args`` on ``files`` (written to a
    folder that ``{dir}`` stands for); the one error message holds every ``expect`` fragment."""

    command: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)


def _csv(name: str, content: str | bytes, *args: str, command: str = "validate") -> Case:
    """A case whose interactions file (data=csv) is ``name`` holding ``content``."""
    body = content.encode() if isinstance(content, str) else content
    return Case(
        command,
        ("data=csv", f"data.source.path={{dir}}/{name}", *args),
        (),
        {name: body},
    )


def _expect(case: Case, *fragments: str) -> Case:
    return Case(case.command, case.args, fragments, case.files)


def _judged(content: str, command: str = "prepare") -> Case:
    """Good interactions and the judgments file ``judgments.csv`` holding ``content``."""
    return Case(
        command,
        (
            "data=csv",
            "data.source.path={dir}/clicks.csv",
            "data.judgments={path:{dir}/judgments.csv}",
            "protocol=loo_full",
            *(("model=mf", "trainer.max_epochs=1") if command == "train" else ()),
        ),
        (),
        {"clicks.csv": GOOD.encode(), "judgments.csv": content.encode()},
    )


F = "file {dir}/"  # every data message starts with the file it is about

CASES = [
    # --- truncated, non-UTF-8, UTF-16 and binary files
    pytest.param(
        _expect(
            _csv("cut.csv", "user,item,rating\n1,10,4\n2,11,5\n3"),
            F + "cut.csv, row 4, column 'item': missing value (empty field, short or blank line)",
        ),
        id="truncated-last-line",
    ),
    pytest.param(
        _expect(
            _csv("cutq.csv", 'user,item\n1,10\n2,"sku-'),
            F + "cutq.csv, row 3: a quoted field opened here is never closed",
            f"expected {INTERACTIONS}",
        ),
        id="truncated-inside-quotes",
    ),
    pytest.param(
        _expect(
            _csv("latin1.csv", "user,item\nbob,10\njérôme,11\n".encode("latin-1")),
            F + "latin1.csv, row 3: bytes b'\\xe9' (in b'j\\xe9r\\xf4me,11\\n') are not utf-8",
            "expected utf-8 text",
            "save the file as UTF-8",
        ),
        id="non-utf8",
    ),
    pytest.param(
        _expect(
            _csv("u16.csv", "user,item\n1,10\n".encode("utf-16")),
            F + "u16.csv: the file is UTF-16 text; expected UTF-8 text, " + INTERACTIONS,
        ),
        id="utf16-with-bom",
    ),
    pytest.param(
        _expect(
            _csv("u16le.csv", "user,item\n1,10\n".encode("utf-16-le")),
            F + "u16le.csv: the file is UTF-16 text; expected UTF-8 text",
        ),
        id="utf16-without-bom",
    ),
    pytest.param(
        _expect(
            _csv("blob.csv", b"user,item\n1,10\n" + bytes(range(256))),
            F + "blob.csv, row 3: binary data (a NUL byte at byte 15), not a text table; "
            f"expected {INTERACTIONS}",
        ),
        id="binary",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", gzip.compress(GOOD.encode())),
            F + "clicks.csv, row 1: binary data",
        ),
        id="gzip-named-csv",
    ),
    pytest.param(
        Case(
            "validate",
            ("data=beauty", "data.source.path=[{dir}/seq.txt]"),
            (
                F + "seq.txt, row 2: bytes b'\\xe9' (in b'2 \\xe9 4\\n') are not utf-8 text",
                "expected utf-8 text, one user per line: 'user item item ...'",
            ),
            {"seq.txt": b"1 2 3\n2 \xe9 4\n"},
        ),
        id="non-utf8-sequence-file",
    ),
    pytest.param(
        Case(
            "validate",
            ("data=ml100k", "data.source.path={dir}"),
            (F + "u.data: the file is UTF-16 text; expected UTF-8 text, MovieLens 100K's u.data",),
            {"u.data": "1\t2\t3\t4\n".encode("utf-16"), "u.item": b""},
        ),
        id="utf16-movielens",
    ),
    pytest.param(
        Case(
            "validate",
            ("data=ncf_ml1m", "data.source.path={dir}"),
            (F + "ml-1m.train.rating, row 1: binary data (a NUL byte at byte 0)",),
            {"ml-1m.train.rating": bytes(range(256))},
        ),
        id="binary-ncf",
    ),
    # --- separators and line endings
    pytest.param(
        _expect(
            _csv("pipes.csv", "user|item\n1|10\n"),
            F + "pipes.csv, column 'user': missing columns 'user' (did you mean 'user|item'?)",
            "expected columns ['user', 'item'], found ['user|item']",
        ),
        id="wrong-separator-sniffed",
    ),
    pytest.param(
        _expect(
            _csv("tabs.tsv", "user\titem\n1\t10\n", "data.source.sep=';'"),
            F + "tabs.tsv, column 'user': missing columns 'user'",
            "found ['user\\titem']",
        ),
        id="wrong-separator-given",
    ),
    pytest.param(
        _expect(
            _csv("crlf.csv", "user,item\r\n1,10\r\nx7.5,11\r\n2,12\r\n3,13\r\n"),
            F + "crlf.csv, row 3, column 'user': id 'x7.5' is not an integer, while 3 of 4 user "
            "ids are numbers",
        ),
        id="windows-line-endings",
    ),
    # --- missing, extra and renamed columns
    pytest.param(
        _expect(
            _csv("nocol.csv", "user,rating\n1,4\n"),
            F + "nocol.csv, column 'item': missing column 'item'",
            "expected columns ['user', 'item', 'rating'], found ['user', 'rating']",
        ),
        id="missing-column",
    ),
    pytest.param(
        _expect(
            _csv("extra.csv", "user,item\n1,10\n2,11,5\n"),
            F + "extra.csv, row 3: line has 3 fields, expected 2",
            "(separator ',', header line)",
        ),
        id="extra-field-in-a-row",
    ),
    pytest.param(
        _expect(
            _csv(
                "renamed.csv",
                "customer,sku\n1,10\n",
                "data.source.columns.user=customer_id",
                "data.source.columns.item=sku",
            ),
            F + "renamed.csv, column 'customer_id': missing column 'customer_id' "
            "(did you mean 'customer'?)",
        ),
        id="renamed-column",
    ),
    # --- ids
    pytest.param(
        _expect(
            _csv("huge.csv", "user,item\n99999999999999999999999,10\n2,11\n"),
            F + "huge.csv, row 2, column 'user': id '99999999999999999999999' is too large",
            "64-bit integers",
        ),
        id="huge-id",
    ),
    pytest.param(
        _expect(
            _csv("u64.csv", "user,item\n1,10\n2,12345678901234567890\n"),
            F + "u64.csv, row 3, column 'item': id 12345678901234567890 is too large",
        ),
        id="huge-id-uint64",
    ),
    pytest.param(
        _expect(
            _csv("frac.csv", "user,item\n1,10\n2.5,11\n"),
            F + "frac.csv, row 3, column 'user': id 2.5 is not an integer; ids are integers or "
            "strings",
        ),
        id="non-integer-id",
    ),
    # --- scores and numbers
    pytest.param(
        _expect(
            _csv("nan.csv", "user,item,rating\n1,10,4\n2,11,nan\n"),
            F + "nan.csv, row 3, column 'rating': rating 'nan' is not a number",
        ),
        id="nan-rating",
    ),
    pytest.param(
        _expect(
            _csv("inf.csv", "user,item,rating\n1,10,4\n2,11,inf\n"),
            F + "inf.csv, row 3, column 'rating': rating inf is not a finite number",
        ),
        id="infinite-rating",
    ),
    pytest.param(
        _expect(
            _csv("ts.csv", "user,item,timestamp\n1,10,5\n2,11,-inf\n"),
            F + "ts.csv, row 3, column 'timestamp': timestamp -inf is not a finite number",
        ),
        id="infinite-timestamp",
    ),
    pytest.param(
        _expect(
            _csv("dup.csv", "user,item\n1,10\n2,11\n1,10\n"),
            F + "dup.csv, row 4: rows 2 and 4 are the same (user, item) pair",
            "add the override data.source.duplicates=drop",
        ),
        id="duplicate-rows",
    ),
    # --- empty files
    pytest.param(
        _expect(
            _csv("empty.csv", b""),
            F + f"empty.csv: empty file: no header line; expected {INTERACTIONS}",
        ),
        id="empty-file",
    ),
    pytest.param(
        _expect(_csv("header.csv", "user,item\n"), F + "header.csv: empty file: no data rows"),
        id="header-only-file",
    ),
    pytest.param(
        _expect(
            _csv("once.csv", "user,item\n1,10\n2,11\n3,12\n", command="prepare"),
            F + "once.csv: protocol loo_sampled left no test interactions (users need at least 3)",
        ),
        id="users-with-one-interaction",
    ),
    # --- Parquet
    pytest.param(
        _expect(
            _csv("zero.parquet", b""),
            F
            + "zero.parquet: cannot read Parquet (Parquet file size is 0 bytes); expected "
            + INTERACTIONS,
        ),
        id="parquet-0-bytes",
    ),
    pytest.param(
        _expect(
            _csv("cut.parquet", GOOD_PARQUET[: len(GOOD_PARQUET) // 2]),
            F + "cut.parquet: cannot read Parquet (Parquet magic bytes not found in footer",
        ),
        id="parquet-truncated",
    ),
    pytest.param(
        _expect(
            _csv("text.parquet", GOOD),
            F + "text.parquet: cannot read Parquet (",
            f"expected {INTERACTIONS}",
        ),
        id="parquet-that-is-csv",
    ),
    pytest.param(
        _expect(
            _csv("cols.parquet", _parquet(pd.DataFrame({"user": [1], "sku": [2]}))),
            F + "cols.parquet, column 'item': missing column 'item'",
            "found ['user', 'sku']",
        ),
        id="parquet-missing-column",
    ),
    pytest.param(
        _expect(
            _csv("nan.parquet", _parquet(pd.DataFrame({"user": [1.0, np.nan], "item": [2, 3]}))),
            F + "nan.parquet, row 2, column 'user': missing value",
        ),
        id="parquet-nan-id",
    ),
    # --- configs and overrides
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "protocol.n_negative=3", command="prepare"),
            "protocol.n_negative=3: 'protocol.n_negative' is not a config key; did you mean "
            "protocol.n_negatives=3?",
        ),
        id="config-unknown-key",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "data.source.item_columns.item=sku", command="prepare"),
            "data.source.item_columns.item=sku: data.source.item_columns is null, so it has no "
            "key 'item' yet; set it as a whole: 'data.source.item_columns={item: sku}'",
        ),
        id="config-key-under-a-null-node",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "+protocol.foo=3", command="prepare"),
            "invalid config (nothing was run): protocol.foo: got 3 (int); expected a parameter "
            "of hybridrec.data.preparation.protocols.LeaveOneOut, which has no 'foo'",
        ),
        id="config-added-key-nothing-reads",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "protocol.n_negatives=abc", command="prepare"),
            "protocol.n_negatives: got 'abc' (str); expected int",
        ),
        id="config-wrong-type",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "protocol.n_negatives=-5", command="prepare"),
            "protocol.n_negatives: got -5 (int); expected an int >= 0",
        ),
        id="config-out-of-range",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "data.source.sep=;"),
            "cannot parse the override 'data.source.sep=;'",
            "quote a value that holds spaces, brackets, commas or semicolons: "
            "'key=\"a value\"', 'key=\";\"'",
        ),
        id="config-unparsable-override",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "data.source.duplicates=maybe", command="prepare"),
            "data.source: duplicates='maybe'; expected one of ('error', 'drop', 'keep')",
        ),
        id="config-bad-choice",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "~protocol=0"),
            "~protocol=0: Config group override deletion value must be a string; a config "
            "group is chosen with group=name (data=csv) and removed with ~group",
        ),
        id="config-group-deleted-with-a-number",
    ),
    pytest.param(
        Case(
            "validate",
            ("clicks.csv",),
            (
                "'clicks.csv' is not an override: overrides look like key=value, e.g. "
                "hybridrec-data validate",
                "data=csv data.source.path=clicks.csv",
            ),
        ),
        id="bare-path-validate",
    ),
    pytest.param(
        Case(
            "prepare",
            ("data=csv", "{dir}/clicks.csv"),
            ("is not an override", "data.source.path={dir}/clicks.csv"),
            {"clicks.csv": GOOD.encode()},
        ),
        id="bare-path-prepare",
    ),
    # --- judgments
    pytest.param(
        _expect(
            _judged("rater,item,score\na,1,3\na,2,4\na,77,5\n"),
            F + "judgments.csv, row 4, column 'item': item is in neither the interactions nor "
            "the item table",
        ),
        id="judgment-unknown-item",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score\na,1,3\na,2,4\na,77,5\n", command="validate"),
            F + "judgments.csv, row 4, column 'item': item is in neither the interactions nor "
            "the item table",
        ),
        id="judgment-unknown-item-validate",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score,context\na,1,3,\na,2,4,u99\n", command="validate"),
            F + "judgments.csv, row 3, column 'context': context 'u99' is no known user and no "
            "segment",
        ),
        id="judgment-unknown-user-validate",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score\na,1,3\na,2,nan\n"),
            F + "judgments.csv, row 3, column 'score': score is NaN or infinite; scores must be "
            "finite numbers",
        ),
        id="judgment-nan-score",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score\na,1,3\na,2,nan\n", command="validate"),
            F + "judgments.csv, row 3, column 'score': score is NaN or infinite",
        ),
        id="judgment-nan-score-validate",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score\na,1,3\na,2,-inf\n"),
            F + "judgments.csv, row 3, column 'score': score is NaN or infinite",
        ),
        id="judgment-infinite-score",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,stars\na,1,3\n", command="validate"),
            F + "judgments.csv, column 'score': missing column 'score'",
            "expected columns ['rater', 'item', 'score'], found ['rater', 'item', 'stars']",
        ),
        id="judgment-renamed-column",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score\n", command="validate"),
            F + "judgments.csv: empty judgments: no rows; expected columns rater, item, score",
        ),
        id="judgment-header-only",
    ),
    # --- hybridrec-train: the same inputs, and the run they must not leave FINISHED
    pytest.param(
        _expect(
            _csv("header.csv", "user,item\n", command="train"),
            "bad input data: " + F + "header.csv: empty file: no data rows",
        ),
        id="train-header-only-file",
    ),
    pytest.param(
        _expect(
            _csv("latin1.csv", "user,item\njérôme,10\n".encode("latin-1"), command="train"),
            F + "latin1.csv, row 2: bytes b'\\xe9'",
            "save the file as UTF-8",
        ),
        id="train-non-utf8",
    ),
    pytest.param(
        _expect(
            _csv("cut.parquet", GOOD_PARQUET[:-7], command="train"),
            F + "cut.parquet: cannot read Parquet (",
        ),
        id="train-corrupt-parquet",
    ),
    pytest.param(
        _expect(
            _judged("rater,item,score\na,1,3\na,77,5\n", command="train"),
            F + "judgments.csv, row 3, column 'item': item is in neither the interactions",
        ),
        id="train-judgment-unknown-item",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "trainer.max_epochs=abc", command="train"),
            "bad config: invalid config (nothing was run): trainer.max_epochs: got 'abc' (str); "
            "expected int or null",
        ),
        id="train-config-wrong-type",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "optimizer.lr=-0.1", command="train"),
            "optimizer.lr: got -0.1 (float); expected a number > 0",
        ),
        id="train-config-out-of-range",
    ),
    pytest.param(
        _expect(
            _csv("clicks.csv", GOOD, "trainer.max_epoch=2", command="train"),
            "hybridrec-train: error: trainer.max_epoch=2: 'trainer.max_epoch' is not a config "
            "key; did you mean trainer.max_epochs=2?",
        ),
        id="train-config-unknown-key",
    ),
    pytest.param(
        Case(
            "train",
            ("clicks.csv",),
            ("hybridrec-train: error: 'clicks.csv' is not an override", "data.source.path="),
        ),
        id="train-bare-path",
    ),
]


# ----------------------------------------------------------------------------- running a case


@dataclass
class Result:
    code: int
    out: str
    err: str


def _restore_logging() -> Iterator[None]:
    """Hydra's job logging replaces the root handlers (and opens train.log): put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def run_case(
    command: str,
    args: list[str],
    root: Path,
    uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Result:
    """``command`` in-process as its console script runs it, data and outputs under ``root``."""
    GlobalHydra.instance().clear()
    capsys.readouterr()
    if command == "train":
        argv = ["hybridrec-train", *args, f"paths.root_dir={root}", f"logger.tracking_uri={uri}"]
        monkeypatch.setattr(sys, "argv", argv)
        sigterm = signal.getsignal(signal.SIGTERM)
        restore = _restore_logging()
        next(restore)
        try:
            train_cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            signal.signal(signal.SIGTERM, sigterm)
            next(restore, None)
            GlobalHydra.instance().clear()
    else:
        code = data_cli.main([command, *args, f"paths.root_dir={root}"])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def _runs(uri: str) -> dict[str, str]:
    """run id -> status of every run in the store."""
    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id: r.info.status for r in client.search_runs(ids)} if ids else {}


def _error_lines(command: str, result: Result) -> list[str]:
    """The lines that report the error: both commands write one line to stderr (and none to
    stdout: hybridrec-train keeps its error out of Hydra's console handler)."""
    assert "error" not in result.out.lower(), result.out
    return result.err.splitlines()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # MLflow and Hydra write relative to the working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_clear_message(
    case: Case,
    workdir: Path,
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = workdir / "in"
    files.mkdir()
    for name, body in case.files.items():
        (files / name).write_bytes(body)
    root = workdir / "root"
    before = _runs(mlflow_uri) if case.command == "train" else {}
    args = [a.replace("{dir}", str(files)) for a in case.args]

    result = run_case(case.command, args, root, mlflow_uri, monkeypatch, capsys)

    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.out + result.err
    lines = _error_lines(case.command, result)
    assert len(lines) == 1, lines  # one message
    if case.command != "train":
        assert lines[0].startswith("hybridrec-data: error: ")
    for fragment in case.expect:
        assert fragment.replace("{dir}", str(files)) in lines[0], lines[0]
    # no partial output: no prepared folder, no staging folder, no checkpoint; the input folder
    # holds what the test wrote, nothing else
    assert sorted(p.name for p in files.iterdir()) == sorted(case.files)
    assert not (root / "data").exists()
    if case.command == "train":
        # Hydra's own run folder (the resolved config and train.log) is all there is
        assert {p.name for p in root.iterdir()} <= {"outputs"} if root.exists() else True
        assert not list(root.rglob("*.ckpt"))
        new = {k: v for k, v in _runs(mlflow_uri).items() if k not in before}
        assert all(status == "FAILED" for status in new.values()), new
    else:
        assert not root.exists()


# ----------------------------------------------------------------------------- accepted inputs


@pytest.mark.parametrize(
    ("content", "n_rows", "user_ids"),
    [
        pytest.param("user,item\r\n1,10\r\n2,11\r\n", 2, [1, 2], id="windows-line-endings"),
        pytest.param("\ufeffuser,item\n1,10\n2,11\n", 2, [1, 2], id="utf8-bom-from-excel"),
        pytest.param("user,item,note\n1,10,a\n2,11,b\n", 2, [1, 2], id="extra-column-ignored"),
        pytest.param("user,item\n-1,10\n-2,11\n", 2, [-1, -2], id="negative-ids-are-raw-ids"),
        pytest.param(
            "user,item\n1152921504606846977,10\n1152921504606846976,11\n",
            2,
            [1152921504606846977, 1152921504606846976],
            id="large-ids-kept-exact",
        ),
    ],
)
def test_inputs_that_look_odd_but_are_fine(
    tmp_path: Path, content: str, n_rows: int, user_ids: list[int]
) -> None:
    """Not errors: each is read exactly (ids are raw ids, mapped later by prepare)."""
    path = tmp_path / "clicks.csv"
    path.write_bytes(content.encode())
    frame = read_table(path).interactions
    assert len(frame) == n_rows
    assert frame["user"].tolist() == user_ids


def test_validate_checks_judgments_as_prepare_does(
    workdir: Path,
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With ``invalid=drop`` the unknown item is left out and counted, as prepare would."""
    case = _judged("rater,item,score\na,1,3\na,2,4\na,77,5\n", command="validate")
    (workdir / "clicks.csv").write_bytes(case.files["clicks.csv"])
    (workdir / "judgments.csv").write_bytes(case.files["judgments.csv"])
    args = [a.replace("{dir}", str(workdir)) for a in case.args] + ["+data.judgments.invalid=drop"]
    result = run_case("validate", args, workdir / "root", mlflow_uri, monkeypatch, capsys)
    assert result.code == 0, result.err
    assert "  judgments: 2 rows (1 unknown_item left out)" in result.out


def test_users_with_one_interaction_among_others_stay_in_training(
    workdir: Path,
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A user with one interaction is not an error when others can be evaluated: it is only
    trained on (the protocol holds out the last of users with enough interactions)."""
    path = workdir / "clicks.csv"
    path.write_text(GOOD + "9,1\n")
    root = workdir / "root"
    args = ["data=csv", f"data.source.path={path}", "protocol=loo_full"]
    result = run_case("prepare", args, root, mlflow_uri, monkeypatch, capsys)
    assert result.code == 0, result.err
    (folder,) = (root / "data" / "prepared").iterdir()
    test = pd.read_parquet(folder / "test.parquet")
    assert len(test) == 6  # the six users with four interactions, not user 9


# ----------------------------------------------------------------------------- prepared folders


@pytest.fixture
def prepared(
    workdir: Path,
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[list[str], Path, Path]:
    """(prepare's arguments, root, the prepared folder) of GOOD, prepared once."""
    path = workdir / "clicks.csv"
    path.write_text(GOOD)
    root = workdir / "root"
    args = ["data=csv", f"data.source.path={path}", "protocol=loo_full"]
    assert run_case("prepare", args, root, mlflow_uri, monkeypatch, capsys).code == 0
    (folder,) = (root / "data" / "prepared").iterdir()
    return args, root, folder


@pytest.mark.parametrize(
    ("name", "body", "why"),
    [
        pytest.param("train.parquet", b"", "is not readable Parquet", id="0-byte-parquet"),
        pytest.param("test.parquet", b"PAR1 cut", "is not readable Parquet", id="corrupt-parquet"),
        pytest.param("spec.json", b'{"name": "clic', "not a readable spec.json", id="cut-spec"),
    ],
)
def test_a_broken_prepared_folder_is_prepared_again(
    prepared: tuple[list[str], Path, Path],
    mlflow_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    name: str,
    body: bytes,
    why: str,
) -> None:
    """A cached folder with a cut or emptied file (a full disk, a killed copy) is not reused:
    prepare says which file and writes the folder again."""
    args, root, folder = prepared
    (folder / name).write_bytes(body)
    result = run_case("prepare", args, root, mlflow_uri, monkeypatch, capsys)
    assert result.code == 0, result.err
    # a warning (on stderr from the console script; pytest's log capture holds it here)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{folder / name}" in warning and why in warning and "preparing" in warning
    assert "Traceback" not in result.err
    assert len(pd.read_parquet(folder / "train.parquet")) > 0
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging left


@pytest.mark.parametrize(
    ("name", "body", "first", "then"),
    [
        pytest.param(
            "train.parquet",
            b"",
            "train.parquet: cannot read Parquet (Could not open Parquet input source",
            "Parquet file size is 0 bytes); expected the training pairs that `hybridrec-data "
            "prepare` writes: delete the folder and prepare again",
            id="0-byte-parquet",
        ),
        pytest.param(
            "spec.json",
            b"[1, 2",
            "spec.json: not a readable spec.json (",
            "expected the JSON object that `hybridrec-data prepare` writes",
            id="cut-spec",
        ),
    ],
)
def test_describe_a_broken_folder_names_the_file(
    prepared: tuple[list[str], Path, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    body: bytes,
    first: str,
    then: str,
) -> None:
    _, _, folder = prepared
    (folder / name).write_bytes(body)
    capsys.readouterr()
    assert data_cli.main(["describe", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hybridrec-data: error: file {folder}/{first}") and then in err
    assert err.count("\n") == 1 and "Traceback" not in err


# ----------------------------------------------------------------------------- real processes


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        pytest.param(
            "hybridrec-data",
            ["validate", "clicks.csv"],
            "hybridrec-data: error: 'clicks.csv' is not an override: overrides look like "
            "key=value, e.g. hybridrec-data validate data=csv data.source.path=clicks.csv",
            id="data-bare-path",
        ),
        pytest.param(
            "hybridrec-data",
            ["validate", "data=csv", "data.source.path=blob.csv"],
            "hybridrec-data: error: file blob.csv, row 1: binary data (a NUL byte at byte 0)",
            id="data-binary",
            marks=pytest.mark.slow,  # a cold start of the console script: seconds
        ),
        pytest.param(
            "hybridrec-data",
            ["prepare", "data=csv", "data.source.path=zero.parquet"],
            "hybridrec-data: error: file zero.parquet: cannot read Parquet (Parquet file size "
            "is 0 bytes)",
            id="data-0-byte-parquet",
            marks=pytest.mark.slow,  # a cold start of the console script: seconds
        ),
        pytest.param(
            "hybridrec-train",
            ["data=csv", "data.source.path=latin1.csv"],
            "bad input data: file latin1.csv, row 2: bytes b'\\xe9'",
            id="train-non-utf8",
        ),
    ],
)
def test_console_scripts_print_no_traceback(
    tmp_path: Path, mlflow_uri: str, script: str, args: list[str], expected: str
) -> None:
    (tmp_path / "blob.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "zero.parquet").write_bytes(b"")
    (tmp_path / "latin1.csv").write_bytes("user,item\njérôme,10\n".encode("latin-1"))
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    before = _runs(mlflow_uri)  # the session's store, created and migrated here
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    proc = subprocess.run(
        [_script(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert expected in proc.stdout + proc.stderr
    if script == "hybridrec-data":
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(expected[:22])
    assert not (tmp_path / "data").exists()
    new = {k: v for k, v in _runs(mlflow_uri).items() if k not in before}
    assert all(status == "FAILED" for status in new.values()), new


# ----------------------------------------------------------------------------- hypothesis


def _one_message(err: str) -> None:
    """One message: one line, or (several config problems) a header line and one indented
    line per problem."""
    first, *rest = err.rstrip("\n").split("\n")
    if rest:
        assert first.endswith("(nothing was run):"), err
        assert all(line.startswith("  ") for line in rest), err


def _read_or_error(path: Path) -> RawData | None:
    """read_table's result, or None after a DataError that names the file."""
    try:
        return read_table(path)
    except DataError as exc:
        assert str(path) in str(exc) and exc.path == str(path)
        return None


@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".parquet"]))
def test_random_bytes_are_a_data_error_or_a_valid_table(body: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clicks{suffix}"
        path.write_bytes(body)
        raw = _read_or_error(path)
        if raw is not None:
            assert len(raw.interactions) > 0
            assert raw.interactions[["user", "item"]].notna().all().all()


_FIELD = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6),
    st.sampled_from(["", "nan", "NA", "inf", "-inf", "1e400", '"', "1.0", " 3 ", "0x10"]),
)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a silent overflow in a cast fails too
@settings(max_examples=200, deadline=None)
@given(
    header=st.sampled_from(
        [
            ["user", "item"],
            ["user", "item", "rating"],
            ["user", "item", "timestamp"],
            ["user", "item", "rating", "timestamp"],
            ["item", "user", "extra"],
        ]
    ),
    rows=st.lists(st.lists(_FIELD, min_size=1, max_size=5), max_size=8),
    sep=st.sampled_from([",", ";", "\t", "|"]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_garbage_tables_are_a_data_error_or_clean_data(
    header: list[str], rows: list[list[str]], sep: str, newline: str
) -> None:
    """Whatever the fields, a table is refused with a DataError naming the file, or read with
    integer-or-string ids without gaps and finite numbers."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clicks.csv"
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=sep, lineterminator=newline).writerows([header, *rows])
        path.write_text(buffer.getvalue(), encoding="utf-8")
        raw = _read_or_error(path)
        if raw is None:
            return
        frame = raw.interactions
        for col in ("user", "item"):
            ids = frame[col]
            assert ids.dtype == np.int64 or all(isinstance(v, str) and v.strip() for v in ids)
        for col in ("rating", "timestamp"):
            if col in frame:
                assert np.isfinite(frame[col].to_numpy(dtype=np.float64)).all()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=200))
def test_random_bytes_through_the_command_line(
    body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clicks.csv"
    path.write_bytes(body)
    GlobalHydra.instance().clear()
    capsys.readouterr()
    code = data_cli.main(["validate", "data=csv", f"data.source.path={path}"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    if code != 0:
        assert code == 2
        assert captured.err.startswith(f"hybridrec-data: error: file {path}")
        assert captured.err.count("\n") == 1


_KEYS = st.sampled_from(
    [
        "trainer.max_epochs",
        "protocol.n_negatives",
        "optimizer.lr",
        "protocol",
        "model",
        "seed",
        "ks",
        "nope",
        "data.source.duplicates",
        "data.source.columns.user",
        "data.min_user_interactions",
        "+data.source.extra",
        "+protocol.extra",
        "~protocol",
    ]
)
_VALUES = st.one_of(
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "S"]), max_size=8),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from(["null", "[1,2", "[]", "{a:1}", "${nope}", "1e999", "-0.0", "'x y'", "true"]),
)
_OVERRIDE = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _KEYS, _VALUES),
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "S"]), max_size=12),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(overrides=st.lists(_OVERRIDE, min_size=1, max_size=3))
@example(overrides=["-:"])  # starts with '-': argparse answers (found by hypothesis)
def test_random_overrides_are_one_line_and_exit_2(
    overrides: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the overrides, validate ends with one ``error:`` line and exit 2 (the data file
    does not exist, so even a valid command line stops with a message), never a traceback."""
    GlobalHydra.instance().clear()
    capsys.readouterr()
    missing = tmp_path / "missing.csv"
    args = ["validate", "data=csv", f"data.source.path={missing}", *overrides]
    try:
        code = data_cli.main(args)
    except SystemExit as stop:  # an argument that starts with '-': argparse's own answer
        code = stop.code
        captured = capsys.readouterr()
        assert code == 2 and "Traceback" not in captured.out + captured.err
        usage, error = captured.err.rstrip("\n").split("\n")
        assert usage.startswith("usage: hybridrec-data"), captured.err
        assert error.startswith("hybridrec-data: error: unrecognized arguments"), captured.err
        return
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.startswith("hybridrec-data: error: ")
    _one_message(captured.err)
