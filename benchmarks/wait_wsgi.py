"""gunicorn entry point for ``customer_wait.py``: the app, each request timed in its worker.

``gunicorn benchmarks.wait_wsgi:application`` with ``BENCH_REQUEST_LOG`` naming a file: one JSON
line when a request reaches a worker thread (``begin``) and one when the thread lets it go, after
the response was sent (``end``, with ``seconds`` held). A line names the request's method,
path, status, ``X-Bench-Flow`` header and the transaction id it carries (the push's
``transactionId``, the return's ``invoice``), so the benchmark can tell which customer's flow
it belonged to and whether it is still running.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.wait_settings")
django_application = get_wsgi_application()

LOG = os.environ.get("BENCH_REQUEST_LOG", "")
MAX_PEEK = 64 * 1024
_ids = itertools.count(1)
_lock = threading.Lock()


def _write(record: dict[str, Any]) -> None:
    if not LOG:
        return
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    with _lock:  # one write() per line with O_APPEND: lines of two workers never interleave
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _transaction_id(environ: dict[str, Any], body: bytes) -> str:
    """The transaction id a bank message carries: a push's JSON, a return's form or query."""
    try:
        if environ.get("CONTENT_TYPE", "").startswith("application/json"):
            value = json.loads(body).get("transactionId", "")
        else:
            form = parse_qs(body.decode("latin-1")) if body else {}
            query = parse_qs(environ.get("QUERY_STRING", ""))
            value = (form.get("invoice") or query.get("invoice") or [""])[0]
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


class _Timed:
    """The response, writing the ``end`` line once the server has sent it and closes it."""

    def __init__(self, inner: Iterable[bytes], record: dict[str, Any], started: float) -> None:
        self.inner = inner
        self.record = record
        self.started = started

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.inner)

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.record.update(ev="end", seconds=round(time.monotonic() - self.started, 4))
            _write(self.record)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    started = time.monotonic()
    body = b""
    length = environ.get("CONTENT_LENGTH") or ""
    if environ.get("REQUEST_METHOD") == "POST" and length.isdigit() and int(length) <= MAX_PEEK:
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
    record: dict[str, Any] = {
        "id": f"{os.getpid()}-{next(_ids)}",
        "pid": os.getpid(),
        "thread": threading.get_ident(),
        "at": round(time.time(), 4),
        "method": environ.get("REQUEST_METHOD", ""),
        "path": environ.get("PATH_INFO", ""),
        "flow": environ.get("HTTP_X_BENCH_FLOW", ""),
        "tid": _transaction_id(environ, body),
    }
    _write({**record, "ev": "begin"})

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        record["status"] = int(status.split(" ", 1)[0])
        return start_response(status, headers, exc_info)

    try:
        response = django_application(environ, start)
    except BaseException:
        record.update(ev="end", status=500, seconds=round(time.monotonic() - started, 4))
        _write(record)
        raise
    return _Timed(response, record, started)
