"""A real `kestra-trio server` and a real headless browser (Debian's chromium driven by Selenium
through chromium-driver: nothing is downloaded at test time). The browser tests skip, saying
why, only where chromium or chromium-driver is not installed (.ci/run installs both)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {**os.environ, "NO_COLOR": "1"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: where the test run saves its screenshots; docs/images/web when regenerating the docs' images
SCREENSHOT_DIR_ENV = "KESTRA_TRIO_SCREENSHOTS"


@dataclass
class Server:
    url: str
    db: Path
    workflows: Path
    proc: subprocess.Popen

    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + "/api/v1" + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def start(self, workflow: str, inputs: dict | None = None) -> str:
        status, body = self.api("POST", "/executions", {"workflow": workflow, "inputs": inputs or {}})
        assert status == 201, body
        return body["id"]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args, "--db", str(self.db)], capture_output=True, env=ENV, timeout=120)


@pytest.fixture(scope="module")
def workflow_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workflows")


@contextlib.contextmanager
def running_server(here: Path, workflow_dir: Path) -> Iterator[Server]:
    """`kestra-trio server --port 0` on a new database; SIGTERM (the drain) on the way out."""
    db = here / "kt.sqlite"
    with open(here / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [CLI, "server", "--workflows", str(workflow_dir), "--db", str(db), "--port", "0",
             "--drain-timeout", "2s"],  # a run a test left going must not hold the teardown 30 s
            stdout=subprocess.PIPE, stderr=log, env=ENV, text=True,
        )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # the address is printed once it listens
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url, (here / "server.log").read_text()
        yield Server(url, db, workflow_dir, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, workflow_dir: Path) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server"), workflow_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,720",
                "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    chosen = os.environ.get(SCREENSHOT_DIR_ENV)
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
