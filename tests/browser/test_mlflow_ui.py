"""The MLflow UI as a user sees it, in a real headless Chromium: a store with a composed hybrid
(its two parts nested under it), served by ``mlflow server``, opened by the link that
``hybridrec-train`` prints. MLflow 3 opens an experiment on its GenAI overview in a fresh
browser whatever the experiment's kind (mlflow/mlflow#24498: the sidebar's GenAI | Model
training switch lives in the browser's localStorage, default GenAI); the links the project
prints carry ``workflowType=machine_learning`` so they land on the runs. Screenshots are kept in
the test's folder (``make test-browser`` keeps them under outputs/browser-tests/).

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test-browser`` installs them);
skipped, saying so, without them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from webdriver_client import (
    CHROMEDRIVER,
    CHROMIUM,
    Browser,
    find_program,
    free_port,
    wait_for_http,
)

from conftest import TINY_DATA, run_train_cli
from hybridrec.tracking.runs import UI_VIEW

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_BIN = find_program(CHROMIUM)
CHROMEDRIVER_BIN = find_program(CHROMEDRIVER)

#: What only MLflow's GenAI view shows (its sidebar and overview page).
GENAI_ONLY = ("Observability", "Judges", "Detect Issues")


@pytest.fixture(scope="module", autouse=True)
def chromium() -> None:
    """Skip (before any run is trained) where the browser is missing; a skip, not a module-level
    one, so the default suite, which deselects these tests, reports nothing."""
    if CHROMIUM_BIN is None or CHROMEDRIVER_BIN is None:
        pytest.skip(
            "chromium and chromedriver are not installed: `make test-browser` installs them "
            "(apt-get install chromium chromium-driver)"
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store with one finished composed hybrid run (parts ``ids`` and ``text`` nested under
    it); returns the folder and the link the run's summary printed."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = run_train_cli(
        folder, "experiment=hybrid_synthetic", *TINY_DATA, "trainer.max_epochs=2", uri=uri
    )
    assert done.returncode == 0, done.stderr[-3000:]
    links = re.findall(r"then (http://127\.0\.0\.1:5000/\S+)\)", done.stdout)
    assert links, done.stdout[-2000:]
    return folder, links[-1]  # the hybrid's own (each part's summary comes first)


@pytest.fixture(scope="module")
def server(store: tuple[Path, str]) -> Iterator[str]:
    """``mlflow server --workers 1`` on a free loopback port over the store; its base URL."""
    folder, _ = store
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 90)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM_BIN is not None and CHROMEDRIVER_BIN is not None
    session = Browser(CHROMIUM_BIN, CHROMEDRIVER_BIN)
    try:
        yield session
    finally:
        session.close()


def _assert_model_training_view(shown: str) -> None:
    assert "Model registry" in shown, shown  # the Model training sidebar
    genai = [w for w in GENAI_ONLY if w in shown]
    assert not genai, f"the GenAI view is showing ({genai}):\n{shown}"


def _parent(folder: Path) -> Run:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (parent,) = client.search_runs(["1"], "tags.`hybridrec.combine` = 'composed'")
    return parent


def test_the_printed_link_opens_the_run_with_its_metrics(
    store: tuple[Path, str], server: str, browser: Browser, tmp_path: Path
) -> None:
    folder, link = store
    parent = _parent(folder)
    assert link.endswith(f"/#/experiments/1/runs/{parent.info.run_id}?{UI_VIEW}")
    browser.open(link.replace("http://127.0.0.1:5000", server))
    ndcg = parent.data.metrics["test/ndcg10"]
    # the metrics table: name and value as stored (JavaScript and Python print a double alike)
    shown = browser.wait_for_text([parent.info.run_name, "test/ndcg10", repr(ndcg), "Parameters"])
    _assert_model_training_view(shown)
    browser.screenshot(tmp_path / "run.png")


def test_the_runs_table_shows_the_hybrid_over_its_parts_and_their_curves(
    store: tuple[Path, str], server: str, browser: Browser, tmp_path: Path
) -> None:
    folder, _ = store
    parent = _parent(folder)
    parts = sorted(
        r.info.run_name
        for r in MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_runs(
            ["1"], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
    )
    assert parts == ["part-ids-synthetic-loo_full", "part-text-synthetic-loo_full"]
    browser.open(f"{server}/#/experiments/1/runs?{UI_VIEW}")
    shown = browser.wait_for_text([parent.info.run_name, "Dataset", "synthetic-loo_full ("])
    _assert_model_training_view(shown)
    assert "3 matching runs" in shown  # the parts are there, folded under the hybrid
    assert not any(p in shown for p in parts)
    # close the assistant pane MLflow opens on a first visit; unfold the hybrid's row
    clicked = browser.run(
        """const close = document.querySelector('button[aria-label="Close"]');
        if (close) close.click();
        const unfold = document.querySelector(
            'button[data-component-id*="runnamecellrenderer"]');
        if (unfold) unfold.click();
        return !!unfold;"""
    )
    assert clicked, "no button to unfold the hybrid's row"
    browser.wait_for_text(parts, 30)
    # the parts' rows come right under the hybrid's (the tree): run names by row
    rows = browser.run(
        """return Array.from(document.querySelectorAll('[role=gridcell] a[href*="/runs/"]'))
          .map(a => [Number(a.closest('[role=row]').getAttribute('row-index')), a.innerText]);"""
    )
    assert [name for _, name in sorted(rows)][:1] == [parent.info.run_name], rows
    assert sorted(name for _, name in sorted(rows)[1:]) == parts, rows
    browser.screenshot(tmp_path / "runs.png")
    # the chart view: a curve per run of a metric logged per epoch
    browser.run("document.querySelector('input[name=runs-view-mode][value=CHART]').click();")
    browser.wait_for_text(["Add chart"], 30)
    browser.type("input[placeholder='Search metric charts']", "val/ndcg10")
    # the best value per run (bars), then the curve per run (its legend names each run)
    wanted = ["best/val/ndcg10", *(f"{n} (val/ndcg10)" for n in [parent.info.run_name, *parts])]
    charts = browser.wait_for_text(wanted, 30)
    assert "combiner/" not in charts  # the search left only the chosen metric's charts
    browser.screenshot(tmp_path / "charts.png")


def test_a_fresh_browser_opens_the_bare_experiment_on_genai_until_switched(
    store: tuple[Path, str], server: str, browser: Browser
) -> None:
    """What the ``workflowType`` in our links works around (mlflow/mlflow#24498), and the
    README's advice: one click on "Model training" is remembered by the browser. When the first
    check fails, MLflow opens experiments by their kind and the query can go. (Last in the
    file: it changes the browser's stored choice.)"""
    folder, _ = store
    browser.open(f"{server}/#/experiments/1")
    shown = browser.wait_for_text(["Detect Issues"])
    assert "workflowType=genai" in str(browser.run("return location.href;"))
    assert "Model registry" not in shown
    browser.run(
        """Array.from(document.querySelectorAll('[role=button]'))
          .find(e => e.textContent.trim() === 'Model training').click();"""
    )
    browser.wait_for_text(["Model registry"], 30)
    browser.open(f"{server}/#/experiments")
    browser.open(f"{server}/#/experiments/1")
    shown = browser.wait_for_text([_parent(folder).info.run_name, "Dataset"])
    _assert_model_training_view(shown)
