"""What browser tests share: Debian's Chromium (Playwright's own browser download is not
reachable from every machine, so `make test` installs the distribution's), and a screenshot
of the page when a test fails."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RESULTS = Path(__file__).resolve().parents[2] / "test-results"


@asynccontextmanager
async def screenshot_on_failure(page: Page, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Yield; afterwards, if the test's call failed, write test-results/<test>/page.png."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        folder = RESULTS / re.sub(r"[^\w.-]+", "_", request.node.name)
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / "page.png"), full_page=True)
