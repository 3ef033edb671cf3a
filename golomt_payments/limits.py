"""What one client may cost us: how much of a request body is read, and how many requests an
address may make per minute (counted in the shared cache, so every host sees one count)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

#: Bytes read from the request stream at a time.
_CHUNK = 64 * 1024
#: Without ``DATA_UPLOAD_MAX_MEMORY_SIZE``, the most of a body read (to learn its size and hash).
_DEFAULT_READ_CAP = 2_621_440


@dataclass(frozen=True, slots=True)
class Body:
    """A request body read within bounds: its first ``keep`` bytes, and what is known of the
    whole (``size``: bytes sent, or declared when not read; ``sha256``: of the whole, ``""``
    when it was not read whole). ``problem`` is the status and reason to refuse it with."""

    data: bytes
    size: int
    sha256: str
    problem: tuple[int, str] | None = None


def read_body(request: HttpRequest, keep: int) -> Body:
    """Read the request body, keeping at most ``keep`` bytes and hashing the whole.

    A body without ``Content-Length`` (``Transfer-Encoding: chunked``) is read where the server
    passes the whole stream on and says so (``wsgi.input_terminated``, as gunicorn does); one
    over ``keep`` is refused with 413 after it is hashed, up to Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (beyond it, it is not read at all).
    """
    cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or _DEFAULT_READ_CAP
    too_large = (413, f"body larger than {keep} bytes")
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared:
        if not (declared.isascii() and declared.isdigit()):  # "²".isdigit() is True
            return Body(b"", 0, "", (400, f"Content-Length {declared[:40]!r} is not a number"))
        length = int(declared)
        if length <= keep:
            data = request.body
            return Body(data, len(data), hashlib.sha256(data).hexdigest())
        if length > cap:
            return Body(b"", length, "", too_large)
        return _hashed(request.read, keep, cap, too_large)
    if request.META.get("wsgi.input_terminated"):
        return _hashed(request.META["wsgi.input"].read, keep, cap, too_large)
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return Body(
            b"",
            0,
            "",
            (411, "this server does not pass on a body sent without Content-Length"),
        )
    return Body(b"", 0, hashlib.sha256(b"").hexdigest())


def _hashed(read: Callable[[int], bytes], keep: int, cap: int, too_large: tuple[int, str]) -> Body:
    """Read a stream to its end or past ``cap``, keeping the first ``keep`` bytes."""
    digest, kept, size = hashlib.sha256(), bytearray(), 0
    while size <= cap:
        chunk = read(_CHUNK)
        if not chunk:
            break
        digest.update(chunk)
        if len(kept) <= keep:
            kept += chunk[: keep + 1 - len(kept)]
        size += len(chunk)
    whole = size <= cap
    if size > keep:
        return Body(bytes(kept[:keep]), size, digest.hexdigest() if whole else "", too_large)
    return Body(bytes(kept), size, digest.hexdigest())


def over_limit(scope: str, address: str | None, per_minute: int) -> int:
    """Count one request from ``address`` in the current minute; return by how many requests
    it is over ``per_minute`` (0: within). One cache operation in the common case."""
    key = f"golomt_payments:rate:{scope}:{address or '-'}:{int(time.time() // 60)}"
    try:
        count = cache.incr(key)
    except ValueError:  # the minute's first request
        count = 1 if cache.add(key, 1, 120) else cache.incr(key)
    return max(0, count - per_minute)


def retry_after() -> int:
    """Seconds until the current minute's count starts again."""
    return 60 - int(time.time()) % 60
