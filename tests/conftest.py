"""Suite-wide settings: in CI nothing may be skipped."""

from __future__ import annotations

import os
import types
from collections.abc import Iterator

import pytest
import responses
from django.core.cache import cache
from django.utils import timezone

from tests.helpers import Clock, FakeBank, Later, SignalRecorder

REQUIRE_ALL = os.environ.get("GOLOMT_REQUIRE_ALL_TESTS") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With GOLOMT_REQUIRE_ALL_TESTS=1 (set by .ci/run) a skipped test fails the run."""
    if not REQUIRE_ALL:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped:
            print(f"\nNot allowed to skip in CI: {report.nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- Django layer: fake bank and signal recorder --------------------------------------------


@pytest.fixture
def fake_bank() -> Iterator[FakeBank]:
    """The bank at https://bank.test; any unregistered call fails as a connection error."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeBank(mock)


@pytest.fixture
def signal_log() -> Iterator[SignalRecorder]:
    """Every app signal received during the test."""
    recorder = SignalRecorder()
    recorder.connect()
    yield recorder
    recorder.disconnect()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Time as the cache sees it, so a test can let the inquiry throttle's interval pass."""
    clock = Clock()
    fake = types.SimpleNamespace(time=clock.time)
    monkeypatch.setattr("django.core.cache.backends.base.time", fake)
    monkeypatch.setattr("django.core.cache.backends.locmem.time", fake)
    return clock


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Later:
    """Time as the app sees it (``timezone.now``), so a test can let a lease or a cool-down
    run out: ``later.move(minutes=1)``."""
    later = Later(timezone.now)
    monkeypatch.setattr(timezone, "now", later.now)
    return later


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """The inquiry throttle lives in the cache: every test starts and ends with it empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def rate_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-address limits count in fixed windows of the clock: every test runs inside one
    window (30 s into a minute), so no count starts again half-way through a test."""
    monkeypatch.setattr(
        "golomt_payments.limits.time", types.SimpleNamespace(time=lambda: 1_800_000_030.0)
    )
