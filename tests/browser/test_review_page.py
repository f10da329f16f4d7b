"""The review page (``hybridrec-review``) as a marketer sees it, in a real headless Chromium: a
tiny synthetic run with a judgment head, the page written by the console script, opened from
disk. Its audience sections and item rows render, a title holding ``<script>`` shows as text
and runs nothing, and nothing outside the file is loaded. The screenshot is kept in the test's
folder (``make test-browser`` keeps it under outputs/browser-tests/).

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test-browser`` installs them);
skipped, saying so, without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from webdriver_client import CHROMEDRIVER, CHROMIUM, Browser, find_program

from conftest import SMALL_JUDGMENTS, prefix_titles, train_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_BIN = find_program(CHROMIUM)
CHROMEDRIVER_BIN = find_program(CHROMEDRIVER)
EVIL = "<script>window.__reviewed = 1</script>"
K = 5


def test_the_review_page_renders(tmp_path: Path) -> None:
    if CHROMIUM_BIN is None or CHROMEDRIVER_BIN is None:
        pytest.skip(
            "chromium and chromedriver are not installed: `make test-browser` installs them "
            "(apt-get install chromium chromium-driver)"
        )
    result, cfg, data_dir, uri = train_in(
        tmp_path, *SMALL_JUDGMENTS, "judgment=head_pointwise", "trainer.max_epochs=2"
    )
    run_id = str(result.run_id)
    prefix_titles(data_dir, EVIL)  # titles are user data
    page = tmp_path / "review.html"
    review = Path(sys.executable).parent / "hybridrec-review"
    done = subprocess.run(
        [str(review), run_id[:8], "-k", str(K), "--lambda", "1", "--out", str(page)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the run's data folder is relative to where it trained
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(page.resolve())

    segments = list(cfg.data.judgments.segments)
    browser = Browser(CHROMIUM_BIN, CHROMEDRIVER_BIN, width=1400, height=1600)
    try:
        browser.open(page.as_uri())
        headings = [f"Segment: {s}" for s in segments]
        shown = browser.wait_for_text(["Everyone", *headings, "Raters: held-out agreement"], 30)
        browser.screenshot(tmp_path / "review_page.png")
        sections = browser.run("return document.querySelectorAll('section.audience').length;")
        rows = browser.run("return document.querySelectorAll('tr.item').length;")
        raters = browser.run("return document.querySelectorAll('tr.rater').length;")
        ran = browser.run("return window.__reviewed === undefined ? 'no' : 'yes';")
        loaded = browser.run("return performance.getEntriesByType('resource').map(e => e.name);")
    finally:
        browser.close()
    assert sections == 1 + len(segments)
    assert rows == 2 * K * (1 + len(segments))  # λ = 0 and λ = 1, K items each
    assert raters == 5
    assert ran == "no" and EVIL in shown  # the title is text, not markup
    assert "λ = 0 (the model alone)" in shown and "λ = 1 (with the judgments)" in shown
    assert loaded == []  # self-contained: no stylesheet, image or script fetched
    assert (tmp_path / "review_page.png").stat().st_size > 10_000
