"""A real browser for the web page's tests: Playwright driving the system's Chromium.

``playwright install`` downloads a browser build, which cannot happen here, so
the tests launch Debian's ``chromium`` (``.ci/run`` installs it with apt) through
``executable_path``. Playwright speaks the DevTools protocol of the Chromium it
bundles; an installed Chromium too far from that major fails in odd ways, so
the session checks the two majors first and fails with a message saying
what to change. Without a browser the tests skip, except under CI (then fail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

#: How far the installed Chromium's major may trail (or lead) the one Playwright bundles.
MAX_MAJORS_BEHIND = 4
MAX_MAJORS_AHEAD = 1


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def bundled_major() -> int:
    """The Chromium major this Playwright release was built against (its browsers.json)."""
    package = resources.files("playwright") / "driver" / "package" / "browsers.json"
    browsers = json.loads(Path(str(package)).read_text())["browsers"]
    version = next(b["browserVersion"] for b in browsers if b["name"] == "chromium")
    return int(version.split(".")[0])


def installed_major(path: str) -> int:
    """The installed Chromium's major, from ``chromium --version``."""
    out = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    match = re.search(r"(\d+)\.\d+\.\d+", out)
    if match is None:
        raise RuntimeError(f"cannot read a version from {out!r}")
    return int(match.group(1))


def compatibility_problem(bundled: int, installed: int) -> str | None:
    """Why these majors cannot work together, or None when they can."""
    if bundled - MAX_MAJORS_BEHIND <= installed <= bundled + MAX_MAJORS_AHEAD:
        return None
    return (
        f"the installed chromium is major {installed} but this playwright was built for "
        f"Chromium {bundled} (supported here: {bundled - MAX_MAJORS_BEHIND} to "
        f"{bundled + MAX_MAJORS_AHEAD}); install a playwright release whose bundled Chromium "
        "matches (see playwright's browsers.json) or a matching chromium package"
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", name="browser")
def launched_browser() -> Iterator[Any]:
    """One headless Chromium per test module (launching one costs a second or two).

    Not per session: Playwright's sync API keeps its event loop set as the thread's
    running loop while it is open, so any later anyio test in the session would fail
    with "Cannot run the event loop while another loop is running".
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
        return
    path = chromium_path()
    if path is None:
        _unavailable("no chromium on PATH (apt-get install -y chromium)")
        return
    problem = compatibility_problem(bundled_major(), installed_major(path))
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


class ConsoleErrors(list[str]):
    """Console errors and uncaught page errors seen by one page."""


@pytest.fixture(name="page")
def browser_page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own context: no cookies or cache shared) that records errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors = ConsoleErrors()
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.console_errors = errors
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        context.close()
