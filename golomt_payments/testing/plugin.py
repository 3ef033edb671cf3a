"""pytest fixtures for a shop's own tests (registered as the ``golomt_payments`` plugin).

``golomt_sandbox``
    The app pointed at a sandbox bank answering in-process through the app's real HTTP
    client: ``golomt_sandbox.start_payment(...)``, then ``golomt_sandbox.pay(invoice)`` and
    your ``payment_succeeded`` receiver runs, as it would in production. Needs
    ``golomt_payments.sandbox`` in the test settings' ``INSTALLED_APPS``.

``golomt_sandbox_server``
    The sandbox as its own process on a free loopback port, pushing to the shop's
    ``live_server``, for browser tests and anything that needs real sockets.

Both import Django lazily, so the plugin costs nothing in projects that do not use them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from golomt_payments.testing.sandbox import SandboxBank


@pytest.fixture
def golomt_sandbox(db: None) -> Iterator[SandboxBank]:
    """An in-process sandbox bank; see :class:`golomt_payments.testing.sandbox.SandboxBank`."""
    from golomt_payments.testing.sandbox import in_process_sandbox

    with in_process_sandbox() as bank:
        yield bank


@dataclass(frozen=True)
class SandboxServer:
    """A running standalone sandbox: its ``base_url`` is the app's ``BASE_URL``."""

    base_url: str
    bearer_token: str
    secret: str
    pid: int


_ANNOUNCE = re.compile(r"BASE_URL (http://\S+)")


@pytest.fixture
def golomt_sandbox_server(live_server: Any, settings: Any) -> Iterator[SandboxServer]:
    """Start ``python -m golomt_payments.sandbox.standalone`` for this test and point the app
    (served by ``live_server``) at it; stopped by its own pid afterwards."""
    from django.urls import reverse

    token, secret = "server-sandbox-token", "server-sandbox-secret"
    push_url = live_server.url + reverse("golomt_payments:push")
    with tempfile.TemporaryDirectory(prefix="golomt-sandbox-") as folder:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [
                sys.executable,
                "-m",
                "golomt_payments.sandbox.standalone",
                "--port=0",
                f"--push-url={push_url}",
                "--push-mode=sync",
                f"--token={token}",
                f"--secret={secret}",
                f"--db={folder}/bank.sqlite3",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base_url = _wait_for_announcement(process)
            settings.GOLOMT_PAYMENTS = {
                "BEARER_TOKEN": token,
                "SECRET": secret,
                "BASE_URL": base_url,
                "CALLBACK_BASE_URL": live_server.url,
                "READ_RETRIES": 0,
            }
            yield SandboxServer(base_url, token, secret, process.pid)
        finally:
            stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Stop a server this test started, by its own pid: politely, then firmly."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()


def _wait_for_announcement(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the server prints its address once it listens
        seen.append(line)
        found = _ANNOUNCE.search(line)
        if found:
            return found[1]
    raise RuntimeError("the sandbox server exited before listening:\n" + "".join(seen))
