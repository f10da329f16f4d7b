"""hybridrec-data: synthesize, validate, prepare, describe, and a clear error on bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridrec.cli.data import main
from hybridrec.data.spec import DataSpec


def test_synthesize_writes_the_three_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synthesize", "--out", str(tmp_path), "--users", "40", "--items", "30"]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in written) == ["interactions.csv", "items.csv", "ratings.csv"]
    frame = pd.read_csv(tmp_path / "interactions.csv")
    assert frame["user"].nunique() == 40 and {"user", "item", "timestamp"} <= set(frame.columns)


def test_prepare_then_describe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    overrides = [
        f"paths.root_dir={tmp_path}",
        "data.source.n_users=50",
        "data.source.n_items=40",
        "protocol=loo_full",
    ]
    assert main(["prepare", *overrides]) == 0
    folders = list((tmp_path / "data" / "prepared").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("synthetic-loo_full-")
    spec = DataSpec.load(folders[0])
    assert spec.n_users == 50 and spec.eval_mode == "full"
    capsys.readouterr()
    assert main(["describe", str(folders[0])]) == 0
    out = capsys.readouterr().out
    assert '"protocol": "loo_full"' in out and "train:" in out


def test_validate_reports_counts(
    data_files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "data=ncf_ml1m", f"data.source.path={data_files['ncf_ml1m']}"]) == 0
    out = capsys.readouterr().out
    assert "interactions" in out and "given negatives" in out


def test_validate_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", "data=ml100k", f"data.source.path={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/u.data" in err and "u.data" in err
