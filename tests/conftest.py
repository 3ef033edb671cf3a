"""Suite-wide settings: in CI nothing may be skipped."""

from __future__ import annotations

import os

import pytest

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
