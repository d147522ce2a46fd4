"""The dashboard as a user gets it: `loraforge serve` and `loraforge ui` in subprocesses on free ports, and
Debian's chromium driven by Playwright (never `playwright install`), with screenshots per step."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
STEP_TIMEOUT_MS = 30_000
SCREENSHOTS_ENV = os.environ.get("LORAFORGE_SCREENSHOTS")
"""Read at import: the stack fixtures clear LORAFORGE_* variables before a test runs."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dashboard:
    api_url: str
    ui_url: str
    logs: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api_url}/api/v1", timeout=60)


@contextmanager
def running_dashboard(env: dict[str, str], logs: Path) -> Iterator[Dashboard]:
    """`loraforge serve` and `loraforge ui` on free loopback ports, stopped (with what they started) after."""
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")} | env
    full_env["PYTHONUNBUFFERED"] = "1"  # the logs are read when a start fails
    api_port, ui_port = free_port(), free_port()
    api_url, ui_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in (
            ("api", [exe, "serve", "--port", str(api_port)]),
            ("ui", [exe, "ui", "--port", str(ui_port), "--api-url", api_url]),
        ):
            with (logs / f"{name}.log").open("wb") as log:
                # A process group each: `loraforge ui` runs streamlit as its child, and the whole group goes.
                processes.append(
                    subprocess.Popen(
                        args, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        _wait_for(f"{api_url}/api/v1/health", processes[0], logs / "api.log")
        _wait_for(f"{ui_url}/_stcore/health", processes[1], logs / "ui.log")
        yield Dashboard(api_url=api_url, ui_url=ui_url, logs=logs)
    finally:
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # whatever of the group is left
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(240):  # the bound only stops a hung start; it takes a few seconds
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium browser (Playwright's `Browser`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Screenshots:
    """One numbered screenshot per step, under $LORAFORGE_SCREENSHOTS or the test's temporary folder."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Any, step: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=False)
        self.taken.append(path)
        return path


def screenshots_folder(tmp_path: Path) -> Path:
    folder = Path(SCREENSHOTS_ENV or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def failure_screenshot(shots: Screenshots, browser: Any) -> Iterator[Any]:
    """A page whose last state is saved as a screenshot when a step fails."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    try:
        yield page
    except BaseException:
        shots.take(page, "failed")
        page.screenshot(path=str(shots.folder / "failed-full-page.png"), full_page=True)
        print("failed at", page.url, page.get_by_test_id("stAlert").all_inner_texts())
        raise


def settle(page: Any) -> None:
    """Wait until Streamlit has finished the rerun a click or key press started."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=STEP_TIMEOUT_MS
    )
    page.wait_for_timeout(100)


def open_page(page: Any, name: str) -> None:
    page.get_by_test_id("stSidebar").get_by_text(name, exact=True).click()
    settle(page)


def pick_option(page: Any, label: str, option: str, *, sidebar: bool = False) -> None:
    scope = page.get_by_test_id("stSidebar") if sidebar else page
    scope.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def no_tracebacks(page: Any) -> None:
    assert page.get_by_test_id("stException").count() == 0
    assert "Traceback" not in page.locator("body").inner_text()


def cards(api: httpx.Client, dataset_id: str) -> dict[str, dict[str, Any]]:
    return {c["original_filename"]: c for c in api.get(f"/datasets/{dataset_id}/cards").json()["data"]}


def wait_for_task(api: httpx.Client, task_id: str) -> dict[str, Any]:
    for _ in range(480):  # the bound only stops a hung run
        task = api.get(f"/tasks/{task_id}").json()
        if task["status"] not in ("PENDING", "RUNNING"):
            return task
        time.sleep(0.25)
    raise AssertionError("the run never ended")
