"""What one client may cost us: how much of a request body is read, and how many requests an
address may make per minute (counted in the shared cache, so every host sees one count)."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest

logger = logging.getLogger(__name__)

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
    passes the whole stream on and says so (``wsgi.input_terminated``, as gunicorn does), and
    under ASGI (Django's handler has read the whole body before the view runs); one
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
    if isinstance(request, ASGIRequest):  # the ASGI handler has the whole body already
        return _hashed(request.read, keep, cap, too_large)
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


@dataclass(frozen=True, slots=True)
class Count:
    """One request counted: by how many requests its address is over the limit (0: within),
    and the seconds until the window's count starts again."""

    over: int
    retry_after: int


#: Nothing counted: an address we cannot read, or a cache that cannot count right now.
NOT_COUNTED = Count(0, 0)


def rate_key(address: str | None) -> str | None:
    """Whose count a request joins: an IPv4 address itself (also when a dual-stack socket shows
    it as ``::ffff:a.b.c.d``), an IPv6 address by its /64 (one subscriber's whole network), or
    ``None`` when there is no address to read."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def count_request(scope: str, address: str | None, limit: int, period: int = 60) -> Count:
    """Count one request of ``address`` against ``limit`` per ``period`` seconds (a fixed
    window, shared by every host through the cache). One cache operation in the common case.

    Fails open, with a warning: for a request whose address cannot be read (a server on a unix
    socket without ``TRUSTED_PROXY_COUNT``: counted together, one client would lock everybody
    out) and when the cache cannot be reached (a limit is not worth a lost push).
    """
    key = rate_key(address)
    if key is None:
        _warn_once(
            "unreadable-address",
            "Requests without a readable client address are not "
            "rate limited: set TRUSTED_PROXY_COUNT behind a proxy.",
        )
        return NOT_COUNTED
    now = time.time()
    window = f"golomt_payments:rate:{scope}:{key}:{period}:{int(now // period)}"
    try:
        try:
            count = cache.incr(window)
        except ValueError:  # the window's first request
            count = 1 if cache.add(window, 1, period * 2) else cache.incr(window)
    except Exception as exc:  # any cache backend's failure
        logger.warning("Rate limit not counted: the cache failed (%s: %s)", type(exc).__name__, exc)
        return NOT_COUNTED
    return Count(max(0, count - limit), period - int(now) % period)


_warned: set[str] = set()


def _warn_once(topic: str, text: str) -> None:
    if topic not in _warned:
        _warned.add(topic)
        logger.warning(text)
