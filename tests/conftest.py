"""Shared fixtures: composing the Hydra config in tests, synthetic data in every format."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hypothesis import settings as hypothesis_settings
from omegaconf import DictConfig

from hybridrec.cli.common import config_dir
from hybridrec.data import synthetic
from hybridrec.data.readers import read_synthetic

# the same examples on every run (a failure seen once is seen again), no example database
hypothesis_settings.register_profile("hybridrec", derandomize=True, database=None)
hypothesis_settings.load_profile("hybridrec")

CONFIG_DIR = Path(config_dir())
Compose = Callable[..., DictConfig]
#: every config group under configs/ (the config tests compose each option)
GROUPS = [
    "data",
    "protocol",
    "model",
    "loss",
    "optimizer",
    "datamodule",
    "trainer",
    "logger",
    "callbacks",
    "judgment",
    "debug",
    "experiment",
    "ablation",
    "paths",
    "hydra",
]
# small enough that one epoch takes well under a second
TINY_DATA = ["data.source.n_users=80", "data.source.n_items=60"]
TINY_SCALE = [
    "data.source.n_users=300",
    "data.source.n_items=200",
    "data.source.n_interactions=6000",
    "data.source.n_clusters=5",
]
# with data=synthetic_marketing: 12 new products, 5 raters x 40 judgments in sets of 10
TINY_JUDGMENTS = ["data.source.n_new_items=12", "data.source.ratings_per_rater=40"]
#: the judgment experiment at test size (the human-rating term and the judgment head)
SMALL_JUDGMENTS = ["experiment=judgment_synthetic", *TINY_DATA, *TINY_JUDGMENTS, "model.dim=16"]
#: the synthetic clicks span ~3 months: hold out 10 days for test and validation, not 1
SESSION_DAYS = ["protocol=session", "protocol.test_days=10", "protocol.val_days=10"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


# No test reaches the network (HF hub included). huggingface_hub reads HF_HUB_OFFLINE once, on
# import: set it at collection, before any test imports transformers, and patch the constant
# in every test in case something imported it earlier.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session: creating one runs MLflow's migrations (seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def compose_cfg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str
) -> Iterator[Callable[..., DictConfig]]:
    """compose_cfg(*overrides) -> the train config rooted in tmp_path (data, outputs, store)."""
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _compose(*overrides: str) -> DictConfig:
        return train_config(tmp_path, mlflow_uri, *overrides)

    yield _compose
    GlobalHydra.instance().clear()


def train_config(root: Path, uri: str, *overrides: str) -> DictConfig:
    """The train config with ``overrides``, data and outputs under ``root``, runs in ``uri``
    (for module-scoped fixtures, where ``compose_cfg`` cannot serve)."""
    GlobalHydra.instance().clear()
    base = [f"paths.root_dir={root}", f"logger.tracking_uri={uri}"]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="train", overrides=base + list(overrides))
    finally:
        GlobalHydra.instance().clear()


def train_in(root: Path, *overrides: str) -> tuple[Any, DictConfig, Path, str]:
    """Train ``overrides`` with data, outputs and the MLflow store (``sqlite:///root/mlflow.db``)
    under ``root``, from ``root`` (MLflow puts artifacts under ./mlruns; the prepared folder
    is relative). Returns (train's result, the config, the absolute prepared folder, the
    tracking URI)."""
    from hybridrec.run.train import train

    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = train_config(root, uri, *overrides)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = train(cfg)
    finally:
        os.chdir(cwd)
    data_dir = Path(str(cfg.datamodule.data_dir))
    return result, cfg, data_dir if data_dir.is_absolute() else root / data_dir, uri


def prefix_titles(data_dir: Path, prefix: str) -> None:
    """Put ``prefix`` before every item title of a prepared folder (titles are user data)."""
    import pandas as pd

    items = pd.read_parquet(data_dir / "items.parquet")
    items["title"] = prefix + " " + items["title"].astype(str)
    items.to_parquet(data_dir / "items.parquet", index=False)


@pytest.fixture(scope="session")
def syn_data() -> synthetic.SyntheticData:
    return synthetic.generate(n_users=80, n_items=60, mean_interactions=12, seed=3)


@pytest.fixture(scope="session")
def data_files(
    tmp_path_factory: pytest.TempPathFactory, syn_data: synthetic.SyntheticData
) -> dict[str, str]:
    """The synthetic data written in every format a data config reads, keyed by config name."""
    root = tmp_path_factory.mktemp("formats")
    paths: dict[str, str] = {}
    for name in ("ml100k", "ml1m", "ml_latest", "ncf_ml1m", "seq", "csv"):
        (root / name).mkdir()
    synthetic.write_movielens_100k(syn_data, root / "ml100k")
    paths["ml100k"] = str(root / "ml100k")
    synthetic.write_movielens_1m(syn_data, root / "ml1m")
    paths["ml1m"] = str(root / "ml1m")
    _write_ml_latest(syn_data, root / "ml_latest")
    paths["ml_latest"] = str(root / "ml_latest")
    synthetic.write_ncf(syn_data, root / "ncf_ml1m", name="ml-1m", n_negatives=20)
    paths["ncf_ml1m"] = str(root / "ncf_ml1m")
    paths["seq"] = str(synthetic.write_sequences(syn_data, root / "seq" / "seq.txt"))
    synthetic.write(syn_data, root / "csv", fmt="csv")
    paths["csv"] = str(root / "csv" / "interactions.csv")
    train, test = synthetic.write_sessions(syn_data, root / "sessions")
    paths["sessions_train"], paths["sessions_test"] = str(train), str(test)
    paths["diginetica"] = str(synthetic.write_diginetica(syn_data, root / "digi" / "views.csv"))
    # UniSRec atomic files; short histories so the reader has to stitch truncated ones
    synthetic.write_unisrec(syn_data, root / "unisrec", name="Scientific", max_len=5)
    paths["unisrec"] = str(root / "unisrec")
    # the ML-1M pieces number items MovieID - 1: 0-based lines, joined to ml1m's movies.dat
    pieces = synthetic.write_sequences(syn_data, root / "pieces" / "all.txt", offset=0)
    paths["pieces"] = str(pieces)
    # simulated editors' judgments of ml1m's movies.dat (ids MovieID - 1, as the pieces)
    from hybridrec.data.readers.movielens import read_movies_dat
    from hybridrec.data.synthetic.movie_judgments import simulate

    movies = read_movies_dat(root / "ml1m" / "movies.dat")
    movies["item"] = movies["item"] - 1
    judgments = root / "ml1m_judgments.csv"
    simulate(movies, per_rater=30, set_size=6).to_csv(judgments, index=False)
    paths["ml1m_judgments"] = str(judgments)
    return paths


def _write_ml_latest(data: synthetic.SyntheticData, folder: Path) -> None:
    frame = data.interactions
    ratings = frame.assign(userId=frame["user"] + 1, movieId=frame["item"] + 1)
    ratings[["userId", "movieId", "rating", "timestamp"]].to_csv(
        folder / "ratings.csv", index=False
    )
    items = data.items.assign(
        movieId=data.items["item"] + 1,
        title=data.items["title"] + " (2001)",
        genres=data.items["category"].str.title(),
    )
    items[["movieId", "title", "genres"]].to_csv(folder / "movies.csv", index=False)


def data_overrides(name: str, files: dict[str, str]) -> list[str]:
    """Overrides that point data config ``name`` at its synthetic copy."""
    if name == "synthetic":
        return ["data=synthetic", *TINY_DATA]
    if name == "synthetic_marketing":
        return ["data=synthetic_marketing", *TINY_DATA, *TINY_JUDGMENTS]
    if name == "synthetic_scale":
        return ["data=synthetic_scale", *TINY_SCALE]
    if name in ("ml100k", "ml1m", "ml_latest", "ncf_ml1m"):
        return [f"data={name}", f"data.source.path={files[name]}"]
    if name in ("beauty", "ml1m_pieces", "sports", "video"):
        return [f"data={name}", f"data.source.path=[{files['seq']}]"]
    if name == "csv":
        return ["data=csv", f"data.source.path={files['csv']}"]
    if name == "scientific":
        return ["data=scientific", f"data.source.path={files['unisrec']}"]
    if name == "ml1m_marketing":
        return [
            "data=ml1m_marketing",
            *data_overrides("ml1m_pieces_text", files)[1:],
            f"data.judgments.path={files['ml1m_judgments']}",
        ]
    if name == "ml1m_pieces_text":
        return [
            "data=ml1m_pieces_text",
            f"data.source.interactions.path=[{files['pieces']}]",
            f"data.source.items.path={files['ml1m']}/movies.dat",
        ]
    if name == "rsc15_100k":
        return [
            "data=rsc15_100k",
            f"data.source.path={files['sessions_train']}",
            f"data.source.test_path={files['sessions_test']}",
            *SESSION_DAYS,
        ]
    if name == "diginetica":
        return ["data=diginetica", f"data.source.path={files['diginetica']}", *SESSION_DAYS]
    raise KeyError(name)


def prepare_tiny(folder: Path, protocol: Any, n_users: int = 60, n_items: int = 40) -> Path:
    """A small synthetic dataset prepared under ``protocol`` into ``folder`` (returned)."""
    from hybridrec.data.preparation.prepare import prepare

    raw = read_synthetic(n_users=n_users, n_items=n_items, seed=0, ratings_per_rater=20)
    prepare(raw, protocol, folder)
    return folder


#: item text fields of the synthetic catalogue, as a data config's ``text`` section
ITEM_TEXT = {"fields": {"title": "", "category": "Category: ", "brand": "Brand: "}}


def prepare_with_text(folder: Path, n_users: int, n_items: int) -> tuple[Path, int, int]:
    """(folder, n_users, n_items) of synthetic data prepared leave-one-out (full ranking) with
    item text (``item_text.parquet``), for the text-tower models' tests."""
    from hybridrec.data.preparation.prepare import prepare
    from hybridrec.data.preparation.protocols import LeaveOneOut

    raw = read_synthetic(n_users=n_users, n_items=n_items, seed=0, ratings_per_rater=20)
    spec = prepare(raw, LeaveOneOut(eval_mode="full"), folder, item_text=ITEM_TEXT)
    return folder, spec.n_users, spec.n_items


def save_tiny_bert(folder: Path, tokenizer: Any) -> Path:
    """A 2-layer, 32-wide random BERT over ``tokenizer``'s vocabulary (a
    :class:`hybridrec.text.TextTokenizer`), saved with that tokenizer as one local folder: the
    stand-in for a hub model in tests (no network)."""
    import transformers  # a required dependency: a broken install must fail, not skip

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        pad_token_id=tokenizer.pad_id,
    )
    transformers.BertModel(config).save_pretrained(str(folder))
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend, pad_token="[PAD]", unk_token="[UNK]"
    ).save_pretrained(str(folder))
    return folder


def random_sequences(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(items (E,), offsets (n + 1,)) tensors of random sequences of the given lengths, items in
    1..29: the flat layout of :mod:`hybridrec.data.batching.sequences`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    items = torch.as_tensor(rng.integers(1, 30, size=sum(lengths)))
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.as_tensor(lengths), 0)
    return items, offsets


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


os.environ.setdefault("HYDRA_FULL_ERROR", "1")


def run_train_cli(
    cwd: Path, *args: str, uri: str | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """The ``hybridrec-train`` console script run in ``cwd`` as a user would: ``uri`` as
    MLFLOW_TRACKING_URI (None: unset, so the default store in ``cwd``), HYBRIDREC_ROOT unset."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "HYBRIDREC_ROOT"}
    }
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    script = Path(sys.executable).parent / "hybridrec-train"
    return subprocess.run(
        [str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def model_of(cfg: DictConfig) -> Any:
    """The model of a composed config whose data is prepared (``cfg.datamodule.data_dir``
    set), built as hybridrec-train builds it: with the run's catalogue."""
    from hybridrec.data.catalogue import Catalogue
    from hybridrec.lit.checkpoint import build_model

    return build_model(cfg.model, Catalogue.from_folder(cfg.datamodule.data_dir))


def built_task(compose: Callable[..., DictConfig], *overrides: str) -> tuple[Any, Any]:
    """The training task (RecLitModule) and its datamodule for ``SMALL_JUDGMENTS`` +
    ``overrides`` as hybridrec-train builds them (no trainer: a stand-in gives the task its
    datamodule)."""
    from types import SimpleNamespace

    from hydra.utils import instantiate
    from omegaconf import open_dict

    from hybridrec.cli.common import prepare_from_config
    from hybridrec.data.catalogue import Catalogue
    from hybridrec.run.task import build_task

    cfg = compose(*SMALL_JUDGMENTS, *overrides)
    spec, folder = prepare_from_config(cfg)
    with open_dict(cfg):
        cfg.spec = spec.summary()
        cfg.datamodule.data_dir = str(folder)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup()
    module = build_task(cfg, model_of(cfg), Catalogue.from_folder(folder))
    module._trainer = SimpleNamespace(datamodule=datamodule, global_step=0)
    return module, datamodule


def post_invocations(port: int, body: bytes, timeout: float = 60) -> tuple[int, dict]:
    """POST ``body`` (JSON) to a local served model's /invocations: (status, parsed answer)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def mlflow_models_serve(model_uri: str, tracking_uri: str, timeout: float = 180) -> Iterator[int]:
    """``mlflow models serve`` of ``model_uri`` on a free local port; yields the port once
    /ping answers (the test fails with the server's stderr when it does not start within
    ``timeout`` seconds); the server is stopped afterwards."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    stderr = server.stderr.read().decode() if server.stderr else ""
                    pytest.fail(f"the server did not start: {stderr[-2000:]}")
                time.sleep(0.5)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
