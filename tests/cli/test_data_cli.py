"""hybridrec-data: synthesize, validate, prepare, describe, and a clear error on bad input."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from conftest import CONFIG_DIR
from hybridrec.cli.common import read_source
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


# ----------------------------------------------------------------------------- duplicates


def test_duplicates_error_suggests_the_override_that_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], compose_cfg: Callable[..., DictConfig]
) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text("user,item\n1,10\n2,11\n1,12\n1,10\n")
    args = ["validate", "data=csv", f"data.source.path={path}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hybridrec-data: error: file {path}, row 5: rows 2 and 5 are the same")
    assert "to keep the first row of each repeated pair, add the override" in err
    override = re.search(r"add the override (\S+)", err)
    assert override is not None and override.group(1) == "data.source.duplicates=drop"
    # exactly the suggested string, as typed: through hybridrec-data ...
    assert main([*args, override.group(1)]) == 0
    assert "3 interactions" in capsys.readouterr().out
    # ... and through the composition hybridrec-train makes
    cfg = compose_cfg("data=csv", f"data.source.path={path}", override.group(1))
    assert len(read_source(cfg).interactions) == 3


def _data_configs() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))


def _readers(source: DictConfig) -> dict[str, Any]:
    """Where data.source's reader and any reader nested in it sit -> its ``_target_`` callable."""
    tree = OmegaConf.to_container(source, resolve=False)  # ``???`` left alone
    assert isinstance(tree, dict)
    nested = {f"{k}.": v for k, v in tree.items() if isinstance(v, dict) and "_target_" in v}
    return {where: get_method(node["_target_"]) for where, node in {"": tree, **nested}.items()}


@pytest.mark.parametrize("name", _data_configs())
def test_every_reader_with_duplicates_has_the_key(
    name: str, compose_cfg: Callable[..., DictConfig]
) -> None:
    source = compose_cfg(f"data={name}").data.source
    takes = [
        where
        for where, reader in _readers(source).items()
        if "duplicates" in inspect.signature(reader).parameters
    ]
    if not takes:  # session and synthetic readers: nothing to set
        assert "duplicates" not in source
        return
    assert "duplicates" in source  # data.source.duplicates, wherever the reader sits
    drop = compose_cfg(f"data={name}", "data.source.duplicates=drop").data.source
    for where in takes:  # a nested reader takes data.source.duplicates by interpolation
        assert OmegaConf.select(drop, f"{where}duplicates") == "drop"


# ----------------------------------------------------------------------------- bad overrides


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["validate", "data=csv", "data.source.path=clicks.csv", "duplicates=drop"],
            "duplicates=drop: 'duplicates' is not a config key; "
            "did you mean data.source.duplicates=drop?",
        ),
        (["validate", "data=nope"], "data=nope: there is no data config 'nope'; choose one of"),
        (["validate", "a=[1"], "cannot parse the override 'a=[1'"),
        (
            ["validate", "clicks.csv"],
            "'clicks.csv' is not an override: overrides look like key=value, e.g. "
            "hybridrec-data validate data=csv data.source.path=clicks.csv",
        ),
        (
            ["prepare", "data=ml100k", "u.data"],
            "'u.data' is not an override: overrides look like key=value, e.g. "
            "hybridrec-data prepare data=ml100k data.source.path=u.data",
        ),
        (
            ["validate", "ml100k"],
            "'ml100k' is not an override: overrides look like key=value, e.g. "
            "hybridrec-data validate data=ml100k",
        ),
        (
            ["prepare", "protocol.n_negative=3"],
            "protocol.n_negative=3: 'protocol.n_negative' is not a config key; "
            "did you mean protocol.n_negatives=3?",
        ),
        (
            ["validate", "data.source.nope=1"],
            "'data.source.nope' is not a key of this data config; to pass another argument "
            "to its reader (data.source._target_), add it with +data.source.nope=1",
        ),
        (
            ["validate", "data=csv"],
            "data.source.path is not set (??? in the config); add data.source.path=... ",
        ),
        (
            ["validate", "+data.source.foo=1"],
            "invalid config (nothing was run): data.source.foo: got 1 (int); expected a "
            "parameter of hybridrec.data.readers.synthetic.read_synthetic",
        ),
    ],
)
def test_bad_override_is_one_line_without_traceback(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.startswith("hybridrec-data: error: ")
    assert captured.err.count("\n") == 1, captured.err
    assert expected in captured.err


def test_prepare_checks_the_config_before_reading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong type in the protocol is refused before the source is read, in one message."""
    code = main(["prepare", f"paths.root_dir={tmp_path}", "protocol.n_negatives=abc"])
    err = capsys.readouterr().err
    assert code == 2
    assert "protocol.n_negatives: got 'abc' (str)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()
