"""The browser flow against the real stack (Debian's chromium, headless, Playwright): the page's example
photos submitted, the real worker and services run the job, the result shows and downloads."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tryon.localstack import LocalStack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs it)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield instance
        instance.close()


def test_example_try_on_in_the_browser(browser: Any, stack: LocalStack, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    problems: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(stack.config.url)
        page.click("#example")
        page.wait_for_function("() => !document.getElementById('garment-preview').hidden")
        page.click("#submit")
        page.wait_for_selector("#result-section", state="visible", timeout=60_000)
        page.wait_for_function("() => document.getElementById('result-image').naturalWidth > 0")
        page.screenshot(path=str(tmp_path / "result.png"), full_page=True)
        with page.expect_download() as download_info:
            page.click("#download")
        result = Image.open(download_info.value.path())
        assert result.format == "PNG" and min(result.size) > 0
    finally:
        context.close()
    assert problems == []
