"""A pseudonymised job end to end (prepare -> train -> export -> serve a known customer by raw
id): no file it writes holds a raw customer id or a rater's name, and it measures exactly what
the plain job measures on the same data and seed (docs/privacy.md quotes this test's result).

Every raw id starts with ``cust-7f3a-`` and every rater's name with ``Jane-7f3a-``: strings that
cannot appear by chance, so the scan looks for those prefixes in every byte of every file the
job wrote, inside zip archives (checkpoints, ``.npz``) and in the rows of Parquet files (whose
pages may be compressed) too. The scan is checked against the plain job, where it must find
them.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import run_train_cli
from hybridrec.cli.export import main as export_main
from hybridrec.data import synthetic
from hybridrec.data.pseudonyms import KEY_ENV, KEY_FILE_ENV, Pseudonymiser

pytestmark = pytest.mark.slow

RAW = ("cust-7f3a-", "Jane-7f3a-")
KEY = "test-key-never-written-9c1d"
SEGMENTS = "[young_families, students, retirees, professionals, outdoor_enthusiasts]"


def _customer(user: int) -> str:
    return f"cust-7f3a-{user:04d}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clicks by customer id, the item table, judgments by named raters (a third of them for
    one customer): written outside every folder the scan reads."""
    folder = tmp_path_factory.mktemp("customer_files")
    data = synthetic.generate(n_users=80, n_items=60, mean_interactions=12, seed=3)
    clicks, items, ratings = synthetic.write(data, folder / "raw", fmt="csv")
    frame = pd.read_csv(clicks)
    frame["user"] = frame["user"].map(_customer)
    frame.to_csv(folder / "clicks.csv", index=False)
    judged = pd.read_csv(ratings, dtype={"context": str})
    judged["rater"] = "Jane-7f3a-" + judged["rater"]
    for_one = judged.index % 3 == 0
    judged.loc[for_one, "context"] = [_customer(i % 80) for i in judged.index[for_one]]
    judged.to_csv(folder / "judgments.csv", index=False)
    return {"clicks": folder / "clicks.csv", "items": items, "judgments": folder / "judgments.csv"}


def _job(inputs: dict[str, Path]) -> list[str]:
    return [
        "data=csv",
        f"data.source.path={inputs['clicks']}",
        f"data.source.items_path={inputs['items']}",
        f"data.judgments={{path: {inputs['judgments']}, segments: {SEGMENTS}}}",
        "model=mf",
        "trainer.max_epochs=2",
        "seed=7",
    ]


def _train(root: Path, *args: str) -> tuple[str, str]:
    """(run id, tracking uri) of hybridrec-train run in ``root`` with its own store."""
    uri = f"sqlite:///{root}/mlflow.db"
    proc = run_train_cli(root, *args, f"paths.root_dir={root}", uri=uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.search(r"MLflow run ([0-9a-f]{32})", proc.stdout)
    assert found, proc.stdout[-2000:]
    return found[1], uri


def _contents(path: Path) -> Iterator[tuple[str, bytes]]:
    """The bytes of ``path``, of each member of a zip archive, of a Parquet file's rows."""
    yield str(path), path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                yield f"{path}!{name}", archive.read(name)
    if path.suffix == ".parquet":
        yield f"{path} (rows)", pd.read_parquet(path).to_csv().encode()


def raw_ids_in(root: Path) -> list[str]:
    """Where under ``root`` a raw customer id or rater name occurs (file, member, prefix)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for where, data in _contents(path):
            found += [f"{where}: {raw}" for raw in RAW if raw.encode() in data]
    return found


@pytest.fixture(scope="module")
def jobs(
    inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Path, str, str]]]:
    """The plain job and the pseudonymised one (users and raters), each in its own folder
    with its own tracking store: {name: (root, run id, tracking uri)}."""
    patch = pytest.MonkeyPatch()
    patch.delenv(KEY_FILE_ENV, raising=False)
    patch.delenv(KEY_ENV, raising=False)
    plain = tmp_path_factory.mktemp("plain")
    out = {"plain": (plain, *_train(plain, *_job(inputs)))}
    patch.setenv(KEY_ENV, KEY)
    hashed = tmp_path_factory.mktemp("pseudonymised")
    out["pseudonymised"] = (
        hashed,
        *_train(hashed, *_job(inputs), "data.pseudonymise=[users,raters]"),
    )
    yield out
    patch.undo()


def test_the_pseudonymised_job_measures_what_the_plain_one_does(
    jobs: dict[str, tuple[Path, str, str]],
) -> None:
    metrics = {}
    for name, (_, run_id, uri) in jobs.items():
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
        metrics[name] = {
            k: v for k, v in run.data.metrics.items() if k.startswith(("test/", "best/val"))
        }
    assert metrics["plain"]["test/hr10"] > 0  # a trained model, not a blank one
    assert {"test/ndcg10", "test/marketer_agreement"} <= set(metrics["plain"])
    assert metrics["plain"] == metrics["pseudonymised"]  # exactly, not approximately


def test_no_file_of_the_pseudonymised_job_holds_a_raw_id_and_the_served_model_takes_one(
    jobs: dict[str, tuple[Path, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, run_id, uri = jobs["pseudonymised"]
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    before = mlflow.get_tracking_uri()
    try:
        exports = root / "exports" / run_id
        assert export_main([run_id, "--tracking-uri", uri, "--out", str(exports)]) == 0
        meta = (exports / "export.json").read_text()
        model_uri = re.search(r'"pyfunc_model_uri": "([^"]+)"', meta)
        assert model_uri is not None
        served = mlflow.pyfunc.load_model(model_uri[1])
        monkeypatch.delenv(KEY_ENV)
        unkeyed = mlflow.pyfunc.load_model(model_uri[1])
    finally:
        mlflow.set_tracking_uri(before)

    # the whole job: store, artifacts, Hydra outputs, prepared folder, exports
    assert {p.name for p in root.iterdir()} >= {"mlflow.db", "mlruns", "outputs", "data", "exports"}
    found = raw_ids_in(root)
    scanned = sum(1 for p in root.rglob("*") if p.is_file())
    print(f"\nscanned {scanned} files of the pseudonymised job; raw ids found: {len(found)}")
    assert found == []
    assert raw_ids_in(jobs["plain"][0])  # the scan finds them where they are

    pseudonym = Pseudonymiser(KEY.encode())("users", _customer(3))
    by_raw = served.predict(pd.DataFrame([{"user": _customer(3), "k": 5}])).iloc[0]
    by_pseudonym = served.predict(pd.DataFrame([{"user": pseudonym, "k": 5}])).iloc[0]
    assert by_raw["source"] == "user" and list(by_raw["items"]) == list(by_pseudonym["items"])
    # without the key the server takes pseudonyms only: a raw id is an unknown customer
    assert unkeyed.predict(pd.DataFrame([{"user": _customer(3)}])).iloc[0]["source"] == (
        "popularity"
    )
    assert unkeyed.predict(pd.DataFrame([{"user": pseudonym}])).iloc[0]["source"] == "user"


def test_the_key_is_in_no_file(jobs: dict[str, tuple[Path, str, str]]) -> None:
    root = jobs["pseudonymised"][0]
    leaks = [
        where
        for path in root.rglob("*")
        if path.is_file()
        for where, data in _contents(path)
        if KEY.encode() in data
    ]
    assert leaks == []


def test_forget_a_customer_of_the_pseudonymised_job(
    jobs: dict[str, tuple[Path, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """By raw id with the key: their rows, the judgments made for them and their model state
    go; the run trained on the folder is tagged; the records hold the pseudonym only."""
    from hybridrec.cli.data import main as data_main
    from hybridrec.data.catalogue import read_id_maps
    from hybridrec.data.erasure import ERASURES_FILE
    from hybridrec.tracking.erasure import ERASED_TAG

    root, run_id, uri = jobs["pseudonymised"]
    exports = root / "exports" / run_id
    if not exports.is_dir():  # the export test did not run first
        assert export_main([run_id, "--tracking-uri", uri, "--out", str(exports), "--no-log"]) == 0
    (folder,) = (root / "data" / "prepared").iterdir()
    pseudonym = Pseudonymiser(KEY.encode())("users", _customer(5))
    index = read_id_maps(folder)["users"].index(pseudonym)
    judgments = pd.read_parquet(folder / "judgments.parquet")
    for_them = (judgments["context_kind"] == 1) & (judgments["context"] == index)
    assert for_them.any()

    monkeypatch.setenv(KEY_ENV, KEY)
    args = ["forget", _customer(5), "--folder", str(folder), "--model", str(exports)]
    assert data_main([*args, "--tracking-uri", uri]) == 0
    after = pd.read_parquet(folder / "judgments.parquet")
    assert len(after) == len(judgments) - int(for_them.sum())
    assert index not in set(pd.read_parquet(folder / "train.parquet")["user"])
    assert json.loads((exports / "users.json").read_text())[index] is None
    assert MlflowClient(tracking_uri=uri).get_run(run_id).data.tags[ERASED_TAG]
    for record in (folder / ERASURES_FILE, exports / ERASURES_FILE):
        assert json.loads(record.read_text())[0]["users"] == [
            {"index": index, "pseudonym": pseudonym}
        ]
    assert raw_ids_in(root) == []
