"""A headless Chromium driven through chromedriver's W3C WebDriver protocol: plain JSON over HTTP
(urllib), so the browser tests need no Python package beyond the standard library — only
Debian's ``chromium`` and ``chromium-driver`` (``make test-browser`` installs them)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

#: Where Debian puts the two programs (``apt-get install chromium chromium-driver``).
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


def find_program(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200 or ``timeout_s`` passes (then raise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


class Browser:
    """One headless Chromium session: ``open`` a URL, ``run`` JavaScript, ``screenshot``."""

    def __init__(self, chromium: str, chromedriver: str, width: int = 1400, height: int = 900):
        self.port = free_port()
        self.driver = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            wait_for_http(f"{self.base}/status", 20)
            options = {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",  # root in a container: Chromium's sandbox cannot start
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    f"--window-size={width},{height}",
                ],
            }
            capabilities = {"alwaysMatch": {"goog:chromeOptions": options}}
            answer = self._call("POST", "/session", {"capabilities": capabilities})
            self.session = f"/session/{answer['sessionId']}"
        except BaseException:
            self.driver.kill()
            raise

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())["value"]
        except urllib.error.HTTPError as exc:  # the driver's own error message, not a bare 500
            detail = json.loads(exc.read() or b"{}").get("value", {})
            raise RuntimeError(f"webdriver {method} {path}: {detail.get('message', exc)}") from exc

    def open(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        """The value of ``script`` (a function body: ``return …``) run in the page."""
        return self._call(
            "POST", f"{self.session}/execute/sync", {"script": script, "args": list(args)}
        )

    def type(self, css: str, text: str) -> None:
        """Type ``text`` into the first element ``css`` selects, as keystrokes."""
        found = self._call(
            "POST", f"{self.session}/element", {"using": "css selector", "value": css}
        )
        element = next(iter(found.values()))  # the W3C element reference
        self._call("POST", f"{self.session}/element/{element}/value", {"text": text})

    def text(self) -> str:
        return str(self.run("return document.body ? document.body.innerText : '';"))

    def wait_for_text(self, wanted: list[str], timeout_s: float = 60) -> str:
        """The page's visible text once every string of ``wanted`` is in it (the UI renders
        after its API calls answer); on timeout, raise with what the page did show."""
        deadline = time.monotonic() + timeout_s
        while True:
            shown = self.text()
            if all(w in shown for w in wanted):
                return shown
            if time.monotonic() > deadline:
                missing = [w for w in wanted if w not in shown]
                raise AssertionError(f"not on the page after {timeout_s:.0f} s: {missing}\n{shown}")
            time.sleep(1)

    def screenshot(self, path: Path) -> Path:
        png = base64.b64decode(self._call("GET", f"{self.session}/screenshot"))
        path.write_bytes(png)
        return path

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        except (urllib.error.URLError, ConnectionError, AttributeError):
            pass
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
