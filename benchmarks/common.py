"""Shared by the benchmark scripts: servers on 127.0.0.1 started and stopped by their own pid."""

# ruff: noqa: S603 - argv built here from sys.executable and fixed arguments

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://golomt:golomt@127.0.0.1:5432/golomt_bench"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server pid {proc.pid} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes], pid: int | None = None) -> None:
    """SIGTERM the given pid (default: the process we started), then wait; SIGKILL if stuck."""
    target = pid or proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(target, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), out.get("PYTHONPATH", "")]))
    out.update(extra)
    return out


def seed_sandbox(db: str, ids: Sequence[str], state: str = "paid") -> None:
    subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / "sandbox_seed.py"), "--db", db, "--state", state],
        input="\n".join(ids).encode(),
        check=True,
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def sandbox(db: str, *, latency_ms: int, token: str, secret: str) -> Iterator[str]:
    """The standalone sandbox bank (push off) on a free loopback port; yields its BASE_URL."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-sandbox-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            PYTHON, "-m", "golomt_payments.sandbox.standalone",
            "--host", HOST, "--port", str(port), "--latency-ms", str(latency_ms),
            "--push-mode", "off", "--token", token, "--secret", secret, "--db", db,
        ],
        cwd=ROOT, env=env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_port(port, proc)
        yield f"http://{HOST}:{port}"
    except BaseException:
        print(f"sandbox log kept: {log.name}", file=sys.stderr)
        raise
    else:
        Path(log.name).unlink(missing_ok=True)
    finally:
        stop(proc)
        log.close()


def ensure_database(url: str) -> None:
    """CREATE DATABASE when the one DATABASE_URL names does not exist yet."""
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    conninfo = dict(
        host=cfg["HOST"] or HOST, port=cfg["PORT"] or 5432, user=cfg["USER"],
        password=cfg["PASSWORD"], dbname="postgres",
    )  # fmt: skip
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]])
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine_state() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
