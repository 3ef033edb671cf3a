"""Start a server in a child process for a test, and always stop it (by its own pid)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from golomt_payments.testing.plugin import stop

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment without this test run's Django settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@contextmanager
def serving(command: Sequence[str], port: int, env: Mapping[str, str]) -> Iterator[None]:
    """Run ``command`` until the block ends; its output is shown if it dies early."""
    process = subprocess.Popen(  # noqa: S603 - a fixed command line built by the tests
        list(command),
        cwd=REPO,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield
    finally:
        stop(process)


EXAMPLE_MANAGE = str(REPO / "example_project" / "manage.py")


@contextmanager
def example_shop(directory: Path, *, seeds: int = 1) -> Iterator[tuple[str, str]]:
    """The example shop as ``make demo`` runs it: ``migrate``, ``seed_shop`` (``seeds`` times)
    and ``runserver``, on a fresh SQLite file in ``directory`` and a free port. Yields its URL
    and what the last ``seed_shop`` printed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env(
        {"SHOP_URL": url, "SHOP_DB_PATH": str(directory / "db.sqlite3"), "DJANGO_DEBUG": "1"}
    )
    output = ""
    for command in (["migrate", "--noinput"], *[["seed_shop"]] * seeds):
        done = subprocess.run(  # noqa: S603 - a fixed command line built by the tests
            [sys.executable, EXAMPLE_MANAGE, *command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        output = done.stdout
    runserver = [sys.executable, EXAMPLE_MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"]
    with serving(runserver, port, env):
        yield url, output
