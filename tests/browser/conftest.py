"""Browser fixtures: Debian's Chromium driven by Playwright, against the real stack (`devstack`).

Playwright's own browser download can't work offline, so the tests launch /usr/bin/chromium
(tests/browser/install-chromium.sh installs it) and are skipped, not failed, where it is missing.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Console lines Chromium writes for failed requests (a 401 answer, an offline socket): not bugs.
NETWORK_NOISE = ("Failed to load resource", "WebSocket connection to")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One Chromium for the session; skips the browser tests where /usr/bin/chromium is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run tests/browser/install-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def webapp_url(chromium: Any, devstack: Any) -> str:
    """The gateway of the real stack (asked for after `chromium`, so a skip starts nothing)."""
    return str(devstack.gateway_url)


class Session:
    """One browser context (one person), its page, and the JavaScript errors it raised."""

    def __init__(self, context: Any, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.error: {msg.text}")
                if msg.type == "error" and not any(n in msg.text for n in NETWORK_NOISE)
                else None
            ),
        )
        self.page.set_default_timeout(15_000)

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base_url + path)

    def signup(self, name: str | None = None, password: str = "correct horse battery") -> tuple[str, str]:
        """Sign up through the form and land on the try-on page; returns (email, password)."""
        page = self.page
        email = f"{name or 'user'}-{uuid.uuid4().hex[:8]}@example.test".lower()
        page.get_by_role("link", name="Sign up").click()
        page.locator("#signup-name").fill(name or "Tester")
        page.locator("#signup-email").fill(email)
        page.locator("#signup-password").fill(password)
        page.get_by_role("button", name="Create account").click()
        page.get_by_role("heading", name="New try-on").wait_for()
        return email, password

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Save a screenshot under test-artifacts/ (git-ignored) for a person to look at."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def new_session(chromium: Any, webapp_url: str) -> Iterator[Callable[..., Session]]:
    """Makes a fresh browser context (its own cookies) per call; all are closed after the test."""
    sessions: list[Session] = []

    def make(viewport: dict[str, int] | None = None, **options: Any) -> Session:
        context = chromium.new_context(viewport=viewport or DESKTOP, base_url=webapp_url, **options)
        session = Session(context, webapp_url)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.context.close()
    errors = [e for s in sessions for e in s.errors]
    assert not errors, "the page raised JavaScript errors:\n" + "\n".join(errors)


def make_jpeg(path: Path, kind: str, size: tuple[int, int] = (240, 320)) -> Path:
    """A small JPEG: a figure for 'person', a shirt shape for 'garment'."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (236, 232, 224))
    draw = ImageDraw.Draw(image)
    w, h = size
    if kind == "person":
        draw.ellipse((w * 0.38, h * 0.06, w * 0.62, h * 0.24), fill=(205, 160, 130))
        draw.rectangle((w * 0.3, h * 0.26, w * 0.7, h * 0.62), fill=(60, 90, 160))
        draw.rectangle((w * 0.34, h * 0.62, w * 0.48, h * 0.95), fill=(40, 40, 60))
        draw.rectangle((w * 0.52, h * 0.62, w * 0.66, h * 0.95), fill=(40, 40, 60))
    else:
        draw.polygon(
            [
                (w * 0.3, h * 0.15),
                (w * 0.5, h * 0.22),
                (w * 0.7, h * 0.15),
                (w * 0.92, h * 0.35),
                (w * 0.78, h * 0.45),
                (w * 0.72, h * 0.4),
                (w * 0.72, h * 0.88),
                (w * 0.28, h * 0.88),
                (w * 0.28, h * 0.4),
                (w * 0.22, h * 0.45),
                (w * 0.08, h * 0.35),
            ],
            fill=(200, 40, 60),
        )
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    return {
        "person": make_jpeg(tmp_path / "person.jpg", "person"),
        "garment": make_jpeg(tmp_path / "garment.jpg", "garment"),
    }
