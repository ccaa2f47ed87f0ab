"""The page in Debian's chromium (headless, Playwright) behind a real nginx, the gateway, a Celery worker
and the five lite stage services: nothing simulated.

Upload two photos, watch the progress bar name the stages, see the result beside the original, compare,
download, try another garment, delete; the example button; an API error shown to the user. Screenshots
(desktop and phone) go to $TRYON_ARTIFACTS (or the test's tmp dir).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tryon.local_nginx import nginx_binary, running_nginx

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
pytest.importorskip("tests.gateway.stack", reason="the orchestrator (worker) is not in this tree")

pytestmark = [
    pytest.mark.slow,  # ~25 s: a browser, nginx and a gateway
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs it)"),
    pytest.mark.skipif(
        nginx_binary() is None, reason="nginx is not installed (make setup installs nginx-light)"
    ),
]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("TRYON_ARTIFACTS")
    path = Path(root) / "browser" if root else tmp_path_factory.mktemp("browser-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def site(full_stack: Any) -> Iterator[str]:
    with running_nginx(full_stack.gateway.url.removeprefix("http://")) as nginx:
        yield nginx.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield instance
        instance.close()


@pytest.fixture
def open_page(browser: Any, site: str) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []
    problems: list[str] = []

    def opener(viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        context = browser.new_context(viewport=viewport, accept_downloads=True, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(site)
        return page

    yield opener
    for context in contexts:
        context.close()
    # No script errors and no CSP violations (Chromium logs those as console errors) on any page.
    # Failed API calls the test provoked on purpose show up as "Failed to load resource"; those are fine.
    assert [text for text in problems if "Failed to load resource" not in text] == []


def stage_labels_until_result(page: Any) -> list[str]:
    """The progress label's texts while the job runs, until the result shows."""
    labels: list[str] = []
    for _ in range(400):
        label = page.inner_text("#progress-label")
        if not labels or labels[-1] != label:
            labels.append(label)
        if page.is_visible("#result-section"):
            break
        page.wait_for_timeout(25)
    return labels


def test_upload_progress_result_download_another_delete(
    open_page: Callable[..., Any],
    person_png: bytes,
    garment_png: bytes,
    artifacts: Path,
) -> None:
    page = open_page()
    page.set_input_files("#person-input", {"name": "me.png", "mimeType": "image/png", "buffer": person_png})
    page.set_input_files(
        "#garment-input", {"name": "shirt.png", "mimeType": "image/png", "buffer": garment_png}
    )
    # Shown once each image has loaded (an <img> with no size yet is not visible): waited for, not polled
    # once, which raced the garment's decode on a busy machine.
    for preview in ("#person-preview", "#garment-preview"):
        page.wait_for_selector(preview, state="visible", timeout=10_000)
    page.select_option("#category", "upper_body")
    page.click("#submit")
    labels = stage_labels_until_result(page)

    stage_words = [
        "Finding the clothes",
        "Estimating the pose",
        "Fitting the garment",
        "Painting",
        "Blending",
    ]
    shown = [word for word in stage_words if any(word in label for label in labels)]
    assert len(shown) >= 2, labels  # the bar named the stages as they ran
    assert page.is_visible("#result-section")
    page.wait_for_function("() => document.getElementById('result-image').naturalWidth > 0")
    width = page.evaluate("document.getElementById('result-image').naturalWidth")
    assert page.evaluate("document.getElementById('original-image').naturalWidth") == 512
    assert "Done" in page.inner_text("#live")
    # The before/after slider moves with the keyboard.
    page.focus("#compare-range")
    page.keyboard.press("End")
    assert page.get_attribute("#compare-range", "aria-valuetext") == "100% result shown"
    page.screenshot(path=str(artifacts / "desktop-result.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    downloaded = Path(download.path()).read_bytes()
    result_url = page.get_attribute("#result-image", "src")
    shown_bytes = page.evaluate(f"fetch('{result_url}').then(r => r.arrayBuffer()).then(b => b.byteLength)")
    assert len(downloaded) == shown_bytes
    assert Image.open(io.BytesIO(downloaded)).width == width
    (artifacts / "downloaded-result.png").write_bytes(downloaded)

    # Another garment, same person: only the garment needs choosing again.
    page.click("#another")
    assert not page.is_visible("#garment-preview") and page.is_visible("#person-preview")
    assert page.evaluate("document.activeElement.id") == "garment-input"
    page.click("#submit")
    assert "garment photo first" in page.inner_text("#error")

    # The second try sends only the garment: the person photo is reused on the server (person_from).
    page.set_input_files(
        "#garment-input", {"name": "shirt.png", "mimeType": "image/png", "buffer": garment_png}
    )
    is_submission = lambda request: request.method == "POST" and "/api/tryon" in request.url  # noqa: E731
    with page.expect_request(is_submission) as sent:
        page.click("#submit")
    # (Playwright does not expose multipart bodies; the declared length shows the photo was not sent.)
    assert int(sent.value.all_headers()["content-length"]) < len(person_png) / 4
    stage_labels_until_result(page)
    # Delete the (succeeded) job: the page forgets it and so does the API.
    job_url = page.evaluate("document.getElementById('download').getAttribute('href')").removesuffix(
        "/result"
    )
    page.click("#delete")
    page.wait_for_selector("#result-section", state="hidden")
    assert page.evaluate(f"fetch('{job_url}').then(r => r.status)") == 404


def test_example_flow_on_a_phone(open_page: Callable[..., Any], artifacts: Path) -> None:
    page = open_page(PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page.select_option("#category", "dress")
    page.click("#example")
    page.wait_for_function("() => !document.getElementById('garment-preview').hidden")
    assert page.evaluate("document.getElementById('person-preview').naturalWidth") == 512
    assert "example" in page.inner_text("#garment-text")
    assert page.input_value("#category") == "upper_body"  # the category the example has a garment for
    page.screenshot(path=str(artifacts / "phone-form.png"), full_page=True)
    # The page fits the phone: nothing wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.click("#submit")
    stage_labels_until_result(page)
    assert page.is_visible("#result-section")
    page.wait_for_function("() => document.getElementById('result-image').naturalWidth > 0")
    page.screenshot(path=str(artifacts / "phone-result.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_api_errors_are_shown_clearly(
    open_page: Callable[..., Any], garment_png: bytes, artifacts: Path
) -> None:
    page = open_page()
    page.set_input_files(
        "#person-input", {"name": "me.png", "mimeType": "image/png", "buffer": b"not a photo"}
    )
    page.set_input_files(
        "#garment-input", {"name": "shirt.png", "mimeType": "image/png", "buffer": garment_png}
    )
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    text = page.inner_text("#error")
    assert "Unsupported image format" in text and "person" in text
    assert page.evaluate("document.activeElement.id") == "error"  # focus moves to the message
    assert not page.is_visible("#progress-section")
    page.screenshot(path=str(artifacts / "desktop-error.png"), full_page=True)
    # A tiny image gets the 422 message naming the limit.
    tiny = io.BytesIO()
    Image.new("RGB", (20, 20)).save(tiny, "PNG")
    page.set_input_files(
        "#person-input", {"name": "tiny.png", "mimeType": "image/png", "buffer": tiny.getvalue()}
    )
    page.click("#submit")
    page.wait_for_function("() => document.getElementById('error-title').textContent === 'Invalid image'")
    assert "too small" in page.inner_text("#error")


def test_keyboard_order_and_labels(open_page: Callable[..., Any]) -> None:
    page = open_page()
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert order[:6] == ["A", "example", "person-input", "garment-input", "category", "SUMMARY"], order
    for control in ("person-input", "garment-input", "category", "compare-range"):
        assert page.evaluate(f"document.getElementById('{control}').labels.length") >= 1, control
    assert page.get_attribute("#live", "aria-live") == "polite"


def test_drag_and_drop_sets_the_photo(open_page: Callable[..., Any], garment_png: bytes) -> None:
    page = open_page()
    transfer = page.evaluate_handle(
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            return transfer;
        }""",
        list(garment_png),
    )
    page.dispatch_event("#garment-drop", "dragover", {"dataTransfer": transfer})
    assert "dragging" in (page.get_attribute("#garment-drop", "class") or "")
    page.dispatch_event("#garment-drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function("() => document.getElementById('garment-preview').naturalWidth > 0")
    assert "dropped.png" in page.inner_text("#garment-text")
    assert "dragging" not in (page.get_attribute("#garment-drop", "class") or "")


def test_without_event_source_the_page_polls(browser: Any, site: str, full_stack: Any) -> None:
    context = browser.new_context(viewport=DESKTOP)
    try:
        context.add_init_script("delete window.EventSource;")
        page = context.new_page()
        polls: list[str] = []
        page.on("request", lambda request: "/api/tryon/" in request.url and polls.append(request.url))
        page.goto(site)
        page.click("#example")
        page.wait_for_function("() => !document.getElementById('garment-preview').hidden")
        page.click("#submit")
        stage_labels_until_result(page)
        assert page.is_visible("#result-section")
        assert not any(url.endswith("/events") for url in polls)
        assert len(polls) >= 2  # status polled until the job ended
    finally:
        context.close()
