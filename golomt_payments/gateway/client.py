"""The HTTP client for the bank's E-Commerce API: one ``requests.Session``, strict timeouts.

Calls that move money or create something (invoice, pay, confirmation) are never retried: a
timeout leaves their outcome unknown, and only a later inquiry may decide. Read-only calls are
retried on transient errors. Every attempt is reported as an :class:`Exchange` for the audit
log, without the bearer token or the secret.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeGuard, TypeVar
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import ReadTimeoutError
from urllib3.response import HTTPResponse
from urllib3.util import Timeout

from . import checksum
from .amounts import format_amount
from .errors import (
    RETRYABLE,
    BadResponse,
    BankRefused,
    BankServerError,
    BankTimeout,
    BankUnreachable,
    PaymentNotFound,
    Unauthorized,
)
from .ids import is_valid_transaction_id
from .messages import (
    CreatedInvoice,
    SettlementPage,
    SettlementRow,
    TokenResult,
    TransactionResult,
    parse_created_invoice,
    parse_settlement_page,
    parse_token_result,
    parse_transaction_result,
)

__all__ = ["MAX_RESPONSE_BYTES", "MAX_RESPONSE_TEXT", "Exchange", "GolomtClient"]

logger = logging.getLogger(__name__)

MAX_RESPONSE_TEXT = 64 * 1024
"""Characters of a response body kept in an :class:`Exchange`."""

MAX_RESPONSE_BYTES = 1024 * 1024
"""Bytes of a response body read by a call with a deadline: the read stops there, and a 2xx
answer that long is a :class:`BadResponse` (never fewer than :data:`MAX_RESPONSE_TEXT`
characters, so the :class:`Exchange` keeps what it would keep of the whole body)."""

# Bytes asked for per read of a body under a deadline (one read from the socket at most).
_CHUNK = 64 * 1024
# Without ``read1`` (urllib3 before 2.3) a read of n bytes waits on the socket until it has all
# n: one byte at a time is slow (a few microseconds a byte) but waits at most once.
_FALLBACK_CHUNK = 1

_EXCERPT = 500
_REDACTED = "[redacted]"
_RETURN_TYPES = ("POST", "GET", "MOBILE")
_PAY_LANGS = ("MN", "EN")
_PAGE_LANGS = ("mn", "en")
_PAGE_METHODS = ("payment", "socialpay")
# Printable ASCII without spaces: anything else would be refused by the HTTP layer with an
# error message that quotes the header value, i.e. the token.
_HEADER_SAFE = re.compile(r"[!-~]+")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One attempt of one outbound call, for the caller's audit log (never holds credentials).

    ``attempt`` counts from 1 when a read is retried.
    """

    endpoint: str
    request_body: dict[str, Any]
    status_code: int | None
    response_text: str | None
    duration_ms: int
    error: str | None
    transaction_id: str | None
    attempt: int = 1


class GolomtClient:
    """Talks to one merchant account of the bank; safe to share between threads' calls."""

    def __init__(
        self,
        *,
        base_url: str,
        bearer_token: str,
        secret: str,
        timeout: tuple[float, float] = (5.0, 20.0),
        read_retries: int = 2,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s):// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("base_url must not contain credentials")
        if not isinstance(bearer_token, str) or not _HEADER_SAFE.fullmatch(bearer_token):
            raise ValueError(
                "bearer_token must be a non-empty string of printable ASCII without spaces"
            )
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be a non-empty string")
        if (
            not isinstance(timeout, tuple)
            or len(timeout) != 2
            or not all(_positive_number(part) for part in timeout)
        ):
            raise ValueError("timeout must be a (connect, read) pair of positive seconds")
        if isinstance(read_retries, bool) or not isinstance(read_retries, int) or read_retries < 0:
            raise ValueError("read_retries must be a non-negative integer")
        if not _number(backoff) or backoff < 0:
            raise ValueError("backoff must be a non-negative number of seconds")

        self._base_url = base_url.rstrip("/")
        self._bearer_token = bearer_token
        self._secret = secret
        self._timeout = (float(timeout[0]), float(timeout[1]))
        self._read_retries = read_retries
        self._backoff = float(backoff)
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._on_exchange = on_exchange
        # Tests patch this to avoid real waits between retries.
        self._sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        """The bank's base URL without a trailing slash."""
        return self._base_url

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release pooled connections (a session passed in by the caller is left open)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GolomtClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- payments ----------------------------------------------------------------------------

    def create_invoice(
        self,
        *,
        transaction_id: str,
        amount: Decimal | int | str,
        callback: str,
        return_type: str = "POST",
        gen_token: bool = False,
        social_deeplink: bool = False,
    ) -> CreatedInvoice:
        """Create a payment page. Never retried: a repeat would reuse the transactionId."""
        _require_transaction_id(transaction_id)
        return_type = _choice("return_type", return_type, _RETURN_TYPES, str.upper)
        _require_text("callback", callback)
        amount_text = format_amount(amount)  # the same string goes in the body and the hash
        body = {
            "amount": amount_text,
            "callback": callback,
            "checksum": checksum.invoice_request(
                self._secret,
                transaction_id=transaction_id,
                amount=amount_text,
                return_type=return_type,
                callback=callback,
            ),
            "genToken": _yes_no("gen_token", gen_token),
            "returnType": return_type,
            "transactionId": transaction_id,
            "socialDeeplink": _yes_no("social_deeplink", social_deeplink),
        }

        def parse(payload: dict[str, Any]) -> CreatedInvoice:
            created = parse_created_invoice(payload, self._secret, kind="invoice")
            _same_transaction("/api/invoice", transaction_id, created.transaction_id)
            return created

        return self._call("/api/invoice", body, parse, transaction_id=transaction_id, retries=0)

    def inquiry(self, transaction_id: str, *, within: float | None = None) -> TransactionResult:
        """Ask the bank for a payment's state: the only source of truth. Retried, all tries
        together within ``within`` seconds when given (see :meth:`_call`)."""
        _require_transaction_id(transaction_id)
        body = {
            "transactionId": transaction_id,
            "checksum": checksum.inquiry_request(self._secret, transaction_id=transaction_id),
        }
        return self._call(
            "/api/inquiry",
            body,
            self._result_parser("/api/inquiry", "inquiry", transaction_id),
            transaction_id=transaction_id,
            retries=self._read_retries,
            within=within,
        )

    def pay(
        self, *, transaction_id: str, amount: Decimal | int | str, token: str, lang: str = "MN"
    ) -> TransactionResult:
        """Charge a saved card token synchronously. Never retried: it moves money."""
        _require_transaction_id(transaction_id)
        _require_text("token", token)
        lang = _choice("lang", lang, _PAY_LANGS, str.upper)
        amount_text = format_amount(amount)
        body = {
            "amount": amount_text,
            "transactionId": transaction_id,
            "lang": lang,
            "token": token,
            "checksum": checksum.pay_request(
                self._secret, amount=amount_text, transaction_id=transaction_id, token=token
            ),
        }
        return self._call(
            "/api/pay",
            body,
            self._result_parser("/api/pay", "pay", transaction_id),
            transaction_id=transaction_id,
            retries=0,
            redact=("token",),  # the card token can charge the card: kept out of the log
        )

    def check(self, transaction_id: str, *, within: float | None = None) -> TransactionResult:
        """Ask for the state of a token payment (``/api/check``). Retried, like
        :meth:`inquiry`."""
        _require_transaction_id(transaction_id)
        body = {
            "transactionId": transaction_id,
            "checksum": checksum.check_request(self._secret, transaction_id=transaction_id),
        }
        return self._call(
            "/api/check",
            body,
            self._result_parser("/api/check", "check", transaction_id),
            transaction_id=transaction_id,
            retries=self._read_retries,
            within=within,
        )

    # -- card tokens without a purchase --------------------------------------------------------

    def create_token(
        self, *, transaction_id: str, callback: str, return_type: str = "POST"
    ) -> CreatedInvoice:
        """Start the save-a-card flow (``/api/confirmation``). Never retried."""
        _require_transaction_id(transaction_id)
        return_type = _choice("return_type", return_type, _RETURN_TYPES, str.upper)
        _require_text("callback", callback)
        body = {
            "callback": callback,
            "returnType": return_type,
            "transactionId": transaction_id,
            "checksum": checksum.confirmation_request(
                self._secret,
                transaction_id=transaction_id,
                return_type=return_type,
                callback=callback,
            ),
        }

        def parse(payload: dict[str, Any]) -> CreatedInvoice:
            created = parse_created_invoice(payload, self._secret, kind="confirmation")
            _same_transaction("/api/confirmation", transaction_id, created.transaction_id)
            return created

        return self._call(
            "/api/confirmation", body, parse, transaction_id=transaction_id, retries=0
        )

    def get_token(self, transaction_id: str, *, within: float | None = None) -> TokenResult:
        """Read the card token created by the confirmation flow. Retried, like
        :meth:`inquiry`."""
        _require_transaction_id(transaction_id)
        body = {
            "transactionId": transaction_id,
            "checksum": checksum.get_token_request(self._secret, transaction_id=transaction_id),
        }

        def parse(payload: dict[str, Any]) -> TokenResult:
            result = parse_token_result(payload, self._secret)
            _same_transaction("/api/get/token", transaction_id, result.transaction_id)
            return result

        return self._call(
            "/api/get/token",
            body,
            parse,
            transaction_id=transaction_id,
            retries=self._read_retries,
            within=within,
        )

    # -- settlement ------------------------------------------------------------------------

    def settlement_details(
        self,
        *,
        merchant_id: str,
        token: str,
        start: date,
        end: date,
        page: int = 0,
        size: int = 50,
    ) -> SettlementPage:
        """One page of settled transactions between two dates (inclusive). Retried."""
        _require_text("merchant_id", merchant_id)
        _require_text("token", token)
        if not isinstance(start, date) or not isinstance(end, date):
            raise ValueError("start and end must be dates")
        if start > end:
            raise ValueError("start must not be after end")
        if isinstance(page, bool) or not isinstance(page, int) or page < 0:
            raise ValueError("page must be a non-negative integer")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError("size must be a positive integer")
        params = {
            "page": str(page),
            "size": str(size),
            "start": f"{start:%Y-%m-%d}",
            "end": f"{end:%Y-%m-%d}",
        }
        body = {
            "merchantId": merchant_id,
            "token": token,
            "checksum": checksum.settlement_request(
                self._secret, merchant_id=merchant_id, token=token
            ),
        }
        return self._call(
            "/api/getSettlementDetails",
            body,
            parse_settlement_page,
            transaction_id=None,
            retries=self._read_retries,
            params=params,
            # The meaning of this token is unclear (it may be a credential): keep it out of logs.
            redact=("token",),
        )

    def iter_settlements(
        self,
        *,
        merchant_id: str,
        token: str,
        start: date,
        end: date,
        size: int = 50,
        on_page: Callable[[SettlementPage], None] | None = None,
    ) -> Iterator[SettlementRow]:
        """Every settled row between two dates, fetching pages until the bank says ``last``.

        ``on_page`` sees each page as it arrives (to count pages, or compare ``total_elements``).
        """
        page_number = 0
        while True:
            page = self.settlement_details(
                merchant_id=merchant_id,
                token=token,
                start=start,
                end=end,
                page=page_number,
                size=size,
            )
            if on_page is not None:
                on_page(page)
            yield from page.rows
            # Guard against a bank page that never says last: stop on an empty page too.
            if page.last or not page.rows or page_number + 1 >= page.total_pages:
                return
            page_number += 1

    # -- browser pages ---------------------------------------------------------------------

    def payment_url(
        self,
        invoice: str,
        *,
        method: Literal["payment", "socialpay"] = "payment",
        lang: str = "mn",
    ) -> str:
        """The bank's hosted page for an invoice: card form or SocialPay."""
        page = _choice("method", method, _PAGE_METHODS, None)
        return self._page_url(page, invoice, lang)

    def confirmation_url(self, invoice: str, *, lang: str = "mn") -> str:
        """The bank's hosted page of the save-a-card (confirmation) flow."""
        return self._page_url("confirmation", invoice, lang)

    def _page_url(self, kind: str, invoice: str, lang: str) -> str:
        _require_text("invoice", invoice)
        lang = _choice("lang", lang, _PAGE_LANGS, str.lower)
        return f"{self._base_url}/{kind}/{lang}/{quote(invoice, safe='')}"

    # -- transport -------------------------------------------------------------------------

    def _result_parser(
        self, endpoint: str, kind: Literal["inquiry", "check", "pay"], transaction_id: str
    ) -> Callable[[dict[str, Any]], TransactionResult]:
        def parse(payload: dict[str, Any]) -> TransactionResult:
            result = parse_transaction_result(payload, self._secret, kind=kind)
            _same_transaction(endpoint, transaction_id, result.transaction_id)
            return result

        return parse

    def _call(
        self,
        endpoint: str,
        body: dict[str, Any],
        parse: Callable[[dict[str, Any]], _T],
        *,
        transaction_id: str | None,
        retries: int,
        params: dict[str, str] | None = None,
        redact: tuple[str, ...] = (),
        within: float | None = None,
    ) -> _T:
        """POST with up to ``retries`` repeats after transient errors, backing off.

        ``within``: a deadline in seconds for all tries together, for a caller somebody is
        waiting on. No try starts (nor does a pause before one) that could not end in time, and
        none runs past it: :class:`BankTimeout` instead. A read timeout bounds each read from
        the socket, not the whole answer (a bank sending a few bytes at a time never trips it),
        so under a deadline:

        - connecting and waiting for the answer's head share the time left (connect at most the
          client's connect timeout, and the read gets what connecting left of it);
        - the body is streamed, the deadline checked before every read, and each read from the
          socket waits at most the time left (:data:`MAX_RESPONSE_BYTES` at most are read);
        - the response is closed on every path.

        Not bounded by any of this: resolving the bank's host name (DNS waits on the resolver,
        not on a socket timeout), and a bank that sends the status line and headers themselves
        a few bytes at a time (read inside ``requests``; each read there waits at most the time
        left when the request was sent).

        Without ``within``, each try has the client's (connect, read) timeouts and reads the
        body whole, as background callers always have.
        """
        if within is not None and not (_positive_number(within) and math.isfinite(within)):
            raise ValueError("within must be a positive number of seconds")
        deadline = None if within is None else time.monotonic() + within
        attempt = 1
        while True:
            timeout = self._timeout_before(deadline, endpoint, within)
            try:
                return self._attempt(
                    endpoint,
                    body,
                    parse,
                    transaction_id,
                    params,
                    redact,
                    attempt,
                    timeout,
                    deadline=deadline,
                    within=within,
                )
            except RETRYABLE as exc:
                delay = self._backoff * 2 ** (attempt - 1)
                if attempt > retries or (
                    deadline is not None and time.monotonic() + delay >= deadline
                ):
                    raise
                logger.warning(
                    "Golomt %s attempt %d failed (%s); retrying in %.2fs",
                    endpoint,
                    attempt,
                    type(exc).__name__,
                    delay,
                )
                self._sleep(delay)
                attempt += 1

    def _timeout_before(
        self, deadline: float | None, endpoint: str, within: float | None
    ) -> tuple[float, float]:
        """The (connect, read) timeouts of the next try: the client's, cut to the time left."""
        if deadline is None:
            return self._timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise _late(endpoint, within)
        return (min(self._timeout[0], left), min(self._timeout[1], left))

    def _attempt(
        self,
        endpoint: str,
        body: dict[str, Any],
        parse: Callable[[dict[str, Any]], _T],
        transaction_id: str | None,
        params: dict[str, str] | None,
        redact: tuple[str, ...],
        attempt: int,
        timeout: tuple[float, float],
        *,
        deadline: float | None = None,
        within: float | None = None,
    ) -> _T:
        status_code: int | None = None
        response_text: str | None = None
        error: str | None = None
        # The body as read so far, by a try with a deadline (kept for the record if cut short).
        received: bytearray | None = None
        started = time.monotonic()
        # Values the audit record redacts (the settlement token) are credentials too.
        # (Only values long enough to be credentials: scrubbing "t" would maul every message.)
        hidden = tuple(str(body[key]) for key in redact if len(str(body.get(key) or "")) >= 8)
        try:
            response = self._post(endpoint, body, params, timeout, deadline, hidden)
            status_code = response.status_code
            raw: bytes | bytearray
            if deadline is None:
                raw, cut = response.content, False
            else:
                received = bytearray()
                try:
                    cut = self._read_body(
                        response, received, endpoint, timeout, deadline, within, hidden
                    )
                finally:
                    response.close()
                raw = received
            raw_text = raw.decode("utf-8", errors="replace")
            response_text = self._scrub(raw_text, hidden)
            if cut and 200 <= status_code < 300:
                raise BadResponse(
                    f"{endpoint}: HTTP {status_code} body is longer than "
                    f"{MAX_RESPONSE_BYTES} bytes",
                    endpoint=endpoint,
                    status_code=status_code,
                )
            # Parse what the bank sent; only messages and logs use the scrubbed copy.
            payload = _payload(endpoint, status_code, raw_text, response_text)
            return parse(payload)
        except Exception as exc:
            if response_text is None and received is not None:  # the body was cut short
                response_text = self._scrub(received.decode("utf-8", errors="replace"), hidden)
            error = self._scrub(f"{type(exc).__name__}: {exc}", hidden)
            raise
        finally:
            duration_ms = int((time.monotonic() - started) * 1000)
            logger.debug(
                "Golomt %s -> %s in %d ms%s",
                endpoint,
                status_code,
                duration_ms,
                f" ({error})" if error else "",
            )
            self._report(
                Exchange(
                    endpoint=endpoint,
                    request_body=self._loggable(body, redact),
                    status_code=status_code,
                    response_text=(
                        response_text[:MAX_RESPONSE_TEXT] if response_text is not None else None
                    ),
                    duration_ms=duration_ms,
                    error=error,
                    transaction_id=transaction_id,
                    attempt=attempt,
                )
            )

    def _post(
        self,
        endpoint: str,
        body: dict[str, Any],
        params: dict[str, str] | None,
        timeout: tuple[float, float],
        deadline: float | None,
        hidden: tuple[str, ...],
    ) -> requests.Response:
        """Send the request and wait for the answer's head (status line and headers).

        Under a deadline the body is left unread (``stream``) for :meth:`_read_body`, and the
        connect and the first read share one budget: the time left.
        """
        waits: dict[str, Any] = {"timeout": timeout}
        if deadline is not None:
            # requests' (connect, read) pair cannot say "in total"; urllib3's Timeout can (the
            # read gets what connecting left), and requests passes one through as it is.
            total = max(deadline - time.monotonic(), 0.001)
            waits = {
                "stream": True,
                "timeout": Timeout(total=total, connect=timeout[0], read=timeout[1]),
            }
        try:
            return self._session.post(
                self._base_url + endpoint,
                json=body,
                params=params,
                headers={
                    "Authorization": f"Bearer {self._bearer_token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
                verify=True,
                # A redirect could carry the Authorization header elsewhere.
                allow_redirects=False,
                **waits,
            )
        except requests.Timeout as exc:
            raise self._timed_out(endpoint, timeout, exc) from exc
        except requests.RequestException as exc:
            raise self._unreachable(endpoint, exc, hidden) from exc

    def _read_body(
        self,
        response: requests.Response,
        received: bytearray,
        endpoint: str,
        timeout: tuple[float, float],
        deadline: float,
        within: float | None,
        hidden: tuple[str, ...],
    ) -> bool:
        """Read a streamed body into ``received`` before ``deadline``: True when it was cut at
        :data:`MAX_RESPONSE_BYTES`, :class:`BankTimeout` when the deadline comes first."""

        def late() -> BankTimeout:
            so_far = f" (HTTP {response.status_code}, {len(received)} bytes of the body so far)"
            return _late(endpoint, within, so_far)

        read = _reader(response)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise late()
            _wait_at_most(response, min(timeout[1], left))
            try:
                chunk = read(MAX_RESPONSE_BYTES + 1 - len(received))
            except (TransportError, requests.RequestException, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise late() from exc
                if _is_timeout(exc):
                    raise self._timed_out(endpoint, timeout, exc) from exc
                raise self._unreachable(endpoint, exc, hidden) from exc
            if not chunk:
                return False
            received += chunk
            if len(received) > MAX_RESPONSE_BYTES:
                del received[MAX_RESPONSE_BYTES:]
                return True

    def _timed_out(
        self, endpoint: str, timeout: tuple[float, float], exc: BaseException
    ) -> BankTimeout:
        connect, read = timeout
        return BankTimeout(
            f"{endpoint}: no answer from the bank in time "
            f"(connect {connect:.3g}s, read {read:.3g}s; {type(exc).__name__})",
            endpoint=endpoint,
        )

    def _unreachable(
        self, endpoint: str, exc: BaseException, hidden: tuple[str, ...]
    ) -> BankUnreachable:
        return BankUnreachable(
            f"{endpoint}: could not reach the bank ({type(exc).__name__}: "
            f"{self._scrub(str(exc), hidden)[:_EXCERPT]})",
            endpoint=endpoint,
        )

    def _report(self, exchange: Exchange) -> None:
        """Hand the record to the caller's hook; its failure must never fail a payment call."""
        if self._on_exchange is None:
            return
        try:
            self._on_exchange(exchange)
        except Exception:
            logger.exception("Golomt on_exchange hook failed for %s", exchange.endpoint)

    def _loggable(self, body: dict[str, Any], redact: tuple[str, ...]) -> dict[str, Any]:
        loggable: dict[str, Any] = {}
        for key, value in body.items():
            if key in redact:
                loggable[key] = _REDACTED
            elif isinstance(value, str):
                loggable[key] = self._scrub(value)
            else:
                loggable[key] = value
        return loggable

    def _scrub(self, text: str, hidden: tuple[str, ...] = ()) -> str:
        """Belt and braces: no credential text survives into logs or error messages."""
        for credential in (self._bearer_token, self._secret, *hidden):
            if credential and credential in text:
                text = text.replace(credential, _REDACTED)
        return text


def _late(endpoint: str, within: float | None, detail: str = "") -> BankTimeout:
    """The error of a call whose deadline (``within`` seconds) has passed."""
    return BankTimeout(
        f"{endpoint}: no answer from the bank within {within:g}s{detail}", endpoint=endpoint
    )


def _reader(response: requests.Response) -> Callable[[int], bytes]:
    """A read of the body returning what it has after at most one read from the socket (a
    bank sending a few bytes at a time still gets a check of the deadline between them)."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if isinstance(raw, HTTPResponse) and callable(read1):  # urllib3 >= 2.3, and responses'
        # requests asks urllib3 for the raw bytes and decodes in iter_content: so must this.
        return lambda size: read1(min(size, _CHUNK), decode_content=True)
    if not isinstance(raw, HTTPResponse) and callable(read1):  # a file: a transport adapter's
        return lambda size: read1(min(size, _CHUNK))
    chunks = response.iter_content(_FALLBACK_CHUNK)
    return lambda size: next(chunks, b"")


def _wait_at_most(response: requests.Response, seconds: float) -> None:
    """Make the body's next read from the socket wait at most ``seconds``.

    The read timeout was set on the socket when the request was sent; the deadline is nearer
    with every read. Reaches through http.client to the socket: where it is not there (a fake
    response), the check between reads is the bound.
    """
    socket_file = getattr(getattr(response.raw, "_fp", None), "fp", None)
    sock = getattr(getattr(socket_file, "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.settimeout(seconds)
        except OSError:  # closed under us: the read will say so
            pass


def _is_timeout(exc: BaseException) -> bool:
    """A read that timed out, however requests or urllib3 wrapped it."""
    if isinstance(exc, ReadTimeoutError | requests.Timeout | TimeoutError):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(cause, ReadTimeoutError)


def _payload(endpoint: str, status_code: int, text: str, safe_text: str) -> dict[str, Any]:
    """Map the HTTP answer to a JSON object or to the matching gateway error.

    ``safe_text`` is ``text`` with credentials scrubbed, for error messages.
    """
    if 200 <= status_code < 300:
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise BadResponse(
                f"{endpoint}: HTTP {status_code} body is not JSON: {_excerpt(safe_text)}",
                endpoint=endpoint,
                status_code=status_code,
            ) from None
        if not isinstance(decoded, dict):
            raise BadResponse(
                f"{endpoint}: HTTP {status_code} body is JSON but not an object",
                endpoint=endpoint,
                status_code=status_code,
            )
        return decoded
    if status_code == 400:
        raise _refused(endpoint, safe_text)
    if status_code in (401, 403):
        raise Unauthorized(
            f"{endpoint}: HTTP {status_code}: the bank rejected the bearer token",
            endpoint=endpoint,
            status_code=status_code,
        )
    raise BankServerError(
        f"{endpoint}: HTTP {status_code} from the bank: {_excerpt(safe_text)}",
        endpoint=endpoint,
        status_code=status_code,
        body_excerpt=safe_text[:_EXCERPT],
    )


def _refused(endpoint: str, safe_text: str) -> BankRefused:
    """Build the error for a 400, from the bank's JSON error body when there is one."""
    try:  # the scrubbed copy: the bank's message may echo what it was sent, credentials too
        decoded = json.loads(safe_text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        decoded = None
    body: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), str) else None
    message = body.get("message") if isinstance(body.get("message"), str) else None
    path = body.get("path") if isinstance(body.get("path"), str) else None
    if not body:
        message = safe_text[:_EXCERPT] or None
    cls = PaymentNotFound if error == "NotFound" else BankRefused
    return cls(
        f"{endpoint}: the bank refused the request ({error or 'HTTP 400'}): "
        f"{message or 'no message'}",
        endpoint=endpoint,
        status_code=400,
        error=error,
        bank_message=message,
        path=path,
        body=body,
    )


def _same_transaction(endpoint: str, expected: str, received: str) -> None:
    """A verified answer about another payment is still the wrong answer."""
    if received != expected:
        raise BadResponse(
            f"{endpoint}: response is about transaction {received!r}, not {expected!r}",
            endpoint=endpoint,
            field="transactionId",
        )


def _require_transaction_id(value: object) -> None:
    if not is_valid_transaction_id(value):
        raise ValueError("transaction_id must be 1-15 ASCII letters or digits")


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")


def _choice(
    name: str, value: object, allowed: tuple[str, ...], normalize: Callable[[str], str] | None
) -> str:
    if isinstance(value, str):
        candidate = normalize(value) if normalize is not None else value
        if candidate in allowed:
            return candidate
    raise ValueError(f"{name} must be one of {', '.join(allowed)}")


def _yes_no(name: str, value: bool) -> str:
    # A string "N" is truthy: only real booleans may choose the flag.
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False")
    return "Y" if value else "N"


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_number(value: object) -> bool:
    return _number(value) and value > 0


def _excerpt(text: str) -> str:
    return repr(text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else ""))
