"""Browser tests: Debian's headless Chromium, driven by Playwright, against ``live_server``.

``live_server`` serves the whole world of a payment: the test shop's checkout page, the app
(checkout, return, push, result and status views) and the sandbox bank (API and hosted pages).
The sandbox pushes from its own threads (``PUSH_MODE`` "thread"), racing the browser's
redirect as the real bank does, so every test waits for its pushes before it ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from django.core.cache import cache
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from golomt_payments.models import Invoice
from golomt_payments.sandbox.models import PushDelivery, PushState

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

TOKEN = "browser-bearer-token"
SECRET = "browser-hmac-secret"
#: Short enough that a pending page turns within a second or two of the bank knowing.
POLL_SECONDS = 1
CHECK_INTERVAL_SECONDS = 1
PUSH_SETTLE_SECONDS = 15.0


class Screenshot(Protocol):
    """Saves a page as ``artifacts/screenshots/<test name>[-<step>].png``."""

    def __call__(self, tab: Page, step: str = "") -> Path: ...


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="package", autouse=True)
def allow_sync_django_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop in the test thread, and Django then refuses
    ORM calls from it; the test thread never runs async code, so the guard is switched off, only
    while this package's tests (and their Playwright) run."""
    key = "DJANGO_ALLOW_ASYNC_UNSAFE"
    previous = os.environ.get(key)
    os.environ[key] = "true"
    yield
    if previous is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = previous


@pytest.fixture(scope="package")
def browser(allow_sync_django_beside_playwright: None) -> Iterator[Browser]:
    """One headless Chromium for the package; each test gets its own context."""
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs the playwright package: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed test body, so its browser tabs are photographed before they close."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh English-speaking browser tab (own cookies), closed after the test.

    When the test fails, every tab it opened is saved as
    ``artifacts/screenshots/<test name>.failed-<n>.png``.
    """
    context = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    if request.node.stash.get(_FAILED, False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for number, opened in enumerate(context.pages, start=1):
            opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.failed-{number}.png"))
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    """Save a page as ``artifacts/screenshots/<test name>.png`` (``<test name>-<step>.png``
    when a test photographs more than one step)."""

    def take(tab: Page, step: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name}{f'-{step}' if step else ''}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take


class Shop:
    """The test shop and the sandbox bank in ``live_server``, and their settings."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self._settings = settings
        self.payments: dict[str, Any] = {
            "BEARER_TOKEN": TOKEN,
            "SECRET": SECRET,
            "BASE_URL": f"{url}/sandbox-bank",
            "CALLBACK_BASE_URL": url,
            "READ_RETRIES": 0,
            "STATUS_POLL_SECONDS": POLL_SECONDS,
            "STATUS_CHECK_INTERVAL_SECONDS": CHECK_INTERVAL_SECONDS,
        }
        self.sandbox: dict[str, Any] = {
            "BEARER_TOKEN": TOKEN,
            "SECRET": SECRET,
            "PUSH_URL": f"{url}/payments/push/",
            "PUSH_MODE": "thread",
        }
        self.configure()

    def configure(
        self, payments: dict[str, Any] | None = None, sandbox: dict[str, Any] | None = None
    ) -> None:
        """Override ``GOLOMT_PAYMENTS`` and ``GOLOMT_SANDBOX`` keys for this test."""
        self.payments.update(payments or {})
        self.sandbox.update(sandbox or {})
        self._settings.GOLOMT_PAYMENTS = dict(self.payments)
        self._settings.GOLOMT_SANDBOX = dict(self.sandbox)

    def checkout_url(self, reference: str, amount: str = "18000") -> str:
        return f"{self.url}/shop/checkout/?reference={reference}&amount={amount}"

    def result_url(self, invoice: Invoice) -> str:
        return f"{self.url}/payments/result/{invoice.key}/"

    def status_url(self, invoice: Invoice) -> str:
        return f"{self.url}/payments/status/{invoice.key}/"

    def settle(self, timeout: float = PUSH_SETTLE_SECONDS) -> None:
        """Wait until the sandbox's push threads have delivered (or given up on) every push.

        A push still in flight at the end of a test would reach the next test's database.
        """
        deadline = time.monotonic() + timeout
        busy = PushDelivery.objects.filter(state__in=[PushState.PENDING, PushState.SENDING])
        while busy.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"pushes still in flight after {timeout} s: {list(busy)}")
            time.sleep(0.1)


@pytest.fixture
def shop(settings: Settings, live_server: LiveServer) -> Iterator[Shop]:
    """The app pointed at the sandbox in ``live_server``, which pushes back to the app."""
    settings.ROOT_URLCONF = "tests.browser.urls"
    cache.clear()  # the status view's once-per-interval guard lives in the cache
    shop = Shop(live_server.url, settings)
    yield shop
    shop.settle()
