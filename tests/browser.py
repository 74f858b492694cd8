"""Chromium for the browser tests: Debian's ``chromium`` (``.ci/run`` installs it), driven
by Playwright through ``executable_path`` (Playwright never downloads a browser here).

Without a ``chromium`` on PATH the browser tests skip with that reason; under ``CI=true``
they fail instead, so a CI machine without the browser cannot pass by skipping."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

NO_CHROMIUM = "no chromium on PATH (apt-get install -y chromium; .ci/run does)"


def chromium_path() -> str:
    """The Chromium binary, or a skip (a failure under CI=true)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {NO_CHROMIUM}")
        pytest.skip(NO_CHROMIUM)
    return found


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=path,
            headless=True,
            # root in containers: Chromium's sandbox needs a user namespace we may not have.
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            timeout=60_000,
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    """What the page said: console errors, uncaught exceptions, navigations."""

    errors: list[str] = field(default_factory=list)
    navigations: int = 0

    def watch(self, page: Page) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" or "Content Security Policy" in message.text:
                self.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

        def on_nav(frame: object) -> None:
            if frame is page.main_frame:
                self.navigations += 1

        page.on("framenavigated", on_nav)
        return page
