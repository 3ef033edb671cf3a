"""What one hostile client can cost: bounded storage of every inbound message, per-address
limits, and pushes sent without ``Content-Length``."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, override_settings
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from gunicorn.http.wsgi import create

from golomt_payments.models import BankMessage, Direction, Invoice, MessageKind, Outcome, Status
from golomt_payments.services.inbound import (
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_REDIRECT_BYTES,
    NOT_KEPT,
)
from tests.factories import InvoiceFactory
from tests.helpers import FakeBank, push_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

PUSH = "/payments/push/"
RETURN = "/payments/return/"


def inbound(kind: str = MessageKind.PUSH) -> list[BankMessage]:
    return list(BankMessage.objects.filter(direction=Direction.INBOUND, kind=kind).order_by("pk"))


def stored_bytes(message: BankMessage) -> int:
    """What one log row keeps of what the sender controls, in bytes as stored (UTF-8 text,
    headers as JSON)."""
    return sum(
        len(text.encode())
        for text in (message.body, json.dumps(message.headers), message.endpoint, message.error)
    )


def golomt(**changes: Any) -> dict[str, Any]:
    return {**GOLOMT_PAYMENTS, **changes}


# --- bounded storage --------------------------------------------------------------------------


def test_a_huge_return_body_is_kept_cut_with_its_size_and_hash() -> None:
    body = urlencode({"invoice": "x", "pad": "A" * 2_400_000}).encode()

    response = Client().post(RETURN, data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    (message,) = inbound(MessageKind.REDIRECT)
    assert message.cut is True
    assert message.body_bytes == len(body)
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()
    assert message.body == ""  # none of the bank's: only its size and hash
    assert message.outcome == Outcome.REJECTED
    assert stored_bytes(message) < 2 * 1024


def test_a_return_within_bounds_is_kept_whole(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = urlencode({"invoice": invoice.transaction_id, "status_code": "000"}).encode()

    response = Client().post(RETURN, data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 302
    (message,) = inbound(MessageKind.REDIRECT)
    assert (message.body.encode(), message.cut) == (body, False)
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


def test_a_huge_query_string_is_cut_and_refused() -> None:
    query = urlencode({"invoice": "x", "pad": "B" * 100_000})

    response = Client().get(f"{RETURN}?{query}")

    assert response.status_code == 400
    (message,) = inbound(MessageKind.REDIRECT)
    assert message.cut and message.body_bytes == len(query)
    assert message.body == ""


@pytest.mark.parametrize("allow", [[], ["10.9.9.9"]], ids=["no allow-list", "outside it"])
def test_ninety_big_headers_are_kept_within_bounds(allow: list[str]) -> None:
    headers = {f"HTTP_X_PAD_{n}": "h" * 6000 for n in range(90)}

    with override_settings(GOLOMT_PAYMENTS=golomt(PUSH_ALLOWED_IPS=allow)):
        response = Client().post(PUSH, data=b"{}", content_type="application/json", **headers)

    assert response.status_code in (400, 403)
    (message,) = inbound()
    assert message.cut is True
    kept = {name: value for name, value in message.headers.items() if name != NOT_KEPT}
    assert all(len(value) <= MAX_HEADER_VALUE for value in kept.values())
    assert len(json.dumps(kept)) <= MAX_HEADERS + 2 * len(kept) + 2
    assert message.headers[NOT_KEPT].endswith("more headers")
    assert stored_bytes(message) < 6 * 1024


#: The worst a sender can make one row store (README: "On a hostile or slow day").
PUSH_ROW_BOUND = 16 * 1024 + MAX_HEADERS + 2 * 1024 + 1024
RETURN_ROW_BOUND = MAX_REDIRECT_BYTES + MAX_HEADERS + 2 * 1024 + 1024

#: Header values that grow when stored: Latin-1 letters are escaped in JSON (six characters).
LATIN = {f"HTTP_X_L{n}": "\xff" * 900 for n in range(60)}


def test_the_worst_push_a_sender_can_make_stays_within_its_row_bound() -> None:
    body = b"\xff" * (16 * 1024)  # not UTF-8: each byte would become a 3-byte U+FFFD

    response = Client().post(PUSH, data=body, content_type="application/json", **LATIN)

    assert response.status_code == 400
    (message,) = inbound()
    assert len(message.body.encode()) <= 16 * 1024
    assert stored_bytes(message) <= PUSH_ROW_BOUND


def test_the_worst_return_a_sender_can_make_stays_within_its_row_bound() -> None:
    body = b"invoice=x&pad=" + b"\xff" * (MAX_REDIRECT_BYTES - 14)

    response = Client().post(
        RETURN, data=body, content_type="application/x-www-form-urlencoded", **LATIN
    )

    assert response.status_code == 400
    (message,) = inbound(MessageKind.REDIRECT)
    assert len(message.body.encode()) <= MAX_REDIRECT_BYTES
    assert stored_bytes(message) <= RETURN_ROW_BOUND


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=base64",
        "application/x-www-form-urlencoded; charset=no-such-codec",
        "multipart/form-data; boundary=nothing-here",
    ],
)
def test_a_return_whose_fields_cannot_be_read_is_logged_and_refused(content_type: str) -> None:
    response = Client().generic("POST", RETURN, b"invoice=T1&x=%ff", content_type=content_type)

    assert response.status_code == 400
    (message,) = inbound(MessageKind.REDIRECT)
    assert message.outcome == Outcome.REJECTED


def test_a_return_with_too_many_fields_is_logged_and_refused() -> None:
    query = "&".join(f"f{n}=1" for n in range(1200))[:MAX_REDIRECT_BYTES]
    response = Client().get(f"{RETURN}?{query}&invoice=T1")

    assert response.status_code == 400
    assert len(inbound(MessageKind.REDIRECT)) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{" + b" " * 20_000 + b"}", "application/json", 413),
        (b'{"transactionId": "x"}', "text/plain", 415),
    ],
    ids=["too large", "not JSON"],
)
def test_a_push_refused_before_it_is_read_is_logged_compactly(
    body: bytes, content_type: str, status: int
) -> None:
    response = Client().post(PUSH, data=body, content_type=content_type)

    assert response.status_code == status
    (message,) = inbound()
    assert (message.body, message.cut, message.outcome) == ("", True, Outcome.REJECTED)
    assert message.body_bytes == len(body)
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()


def test_a_push_outside_the_allow_list_keeps_no_body(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    body = json.dumps(push_body(invoice.transaction_id)).encode()

    with override_settings(GOLOMT_PAYMENTS=golomt(PUSH_ALLOWED_IPS=["10.9.9.9"])):
        response = Client().post(PUSH, data=body, content_type="application/json")

    assert response.status_code == 403
    (message,) = inbound()
    assert (message.body, message.body_bytes) == ("", len(body))


def test_a_valid_push_at_the_size_limit_is_verified_whole_and_processed(
    fake_bank: FakeBank,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = json.dumps(push_body(invoice.transaction_id)).encode()
    limit = 2048
    padded = body[:-1] + b" " * (limit - len(body)) + b"}"  # JSON whitespace: still valid
    assert len(padded) == limit

    with override_settings(GOLOMT_PAYMENTS=golomt(MAX_PUSH_BYTES=limit)):
        response = Client().post(PUSH, data=padded, content_type="application/json")

    assert response.status_code == 200, response.json()
    (message,) = inbound()
    assert (message.body.encode(), message.cut) == (padded, False)
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


# --- per-address limits -------------------------------------------------------------------


@override_settings(GOLOMT_PAYMENTS=golomt(POLL_REQUESTS_PER_MINUTE=3))
def test_status_polls_over_the_limit_get_429() -> None:
    invoice = InvoiceFactory(status=Status.PAID)
    url = f"/payments/status/{invoice.key}/"
    client = Client(REMOTE_ADDR="10.1.1.1")

    answers = [client.get(url) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    assert 1 <= int(answers[3]["Retry-After"]) <= 60
    assert answers[3].json()["detail"].startswith("throttled")
    # another address has its own count
    assert Client(REMOTE_ADDR="10.1.1.2").get(url).status_code == 200


@override_settings(GOLOMT_PAYMENTS=golomt(POLL_REQUESTS_PER_MINUTE=2))
def test_result_page_over_the_limit_gets_429() -> None:
    invoice = InvoiceFactory()
    client = Client(REMOTE_ADDR="10.1.1.1")
    codes = [client.get(f"/payments/result/{invoice.key}/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


@override_settings(GOLOMT_PAYMENTS=golomt(RETURN_REQUESTS_PER_MINUTE=2))
def test_a_flood_of_returns_is_refused_and_logged_once_a_minute() -> None:
    client = Client(REMOTE_ADDR="10.1.1.1")
    codes = [client.post(RETURN, data={"invoice": "nope"}).status_code for _ in range(30)]

    assert codes == [400, 400] + [429] * 28
    messages = inbound(MessageKind.REDIRECT)
    assert len(messages) == 3  # two read, one compact note of the flood
    note = messages[-1]
    assert (note.body, note.headers, note.outcome) == ("", {}, Outcome.REJECTED)
    assert note.error.startswith("throttled")


@override_settings(GOLOMT_PAYMENTS=golomt(PUSH_REQUESTS_PER_MINUTE=2))
def test_pushes_without_an_allow_list_are_limited_per_address() -> None:
    client = Client(REMOTE_ADDR="10.2.2.2")
    codes = [
        client.post(PUSH, data=b"{}", content_type="application/json").status_code for _ in range(5)
    ]
    assert codes == [400, 400, 429, 429, 429]
    assert len(inbound()) == 3


@override_settings(
    GOLOMT_PAYMENTS=golomt(PUSH_REQUESTS_PER_MINUTE=1, PUSH_ALLOWED_IPS=["10.3.0.0/16"])
)
def test_the_banks_addresses_are_never_throttled(fake_bank: FakeBank) -> None:
    invoices = InvoiceFactory.create_batch(5)
    fake_bank.inquiry(error_code="000")
    client = Client(REMOTE_ADDR="10.3.0.7")

    codes = [
        client.post(
            PUSH,
            data=json.dumps(push_body(invoice.transaction_id)),
            content_type="application/json",
        ).status_code
        for invoice in invoices
    ]

    assert codes == [200] * 5
    assert Invoice.objects.filter(status=Status.PAID).count() == 5
    # an address outside the list is still counted
    other = Client(REMOTE_ADDR="10.4.0.1")
    assert [
        other.post(PUSH, data=b"{}", content_type="application/json").status_code for _ in range(2)
    ] == [403, 429]


# --- pushes without Content-Length ----------------------------------------------------------


def chunked_request(path: str, body: bytes, host: str = "testserver") -> bytes:
    """A raw HTTP/1.1 POST with its body in two chunks and no Content-Length."""
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + chunks
        + b"0\r\n\r\n"
    )


def under_gunicorn(raw: bytes) -> tuple[int, dict[str, Any]]:
    """Run one raw request through gunicorn's own HTTP parser and WSGI environ, into Django."""
    cfg = Config()
    request = next(iter(RequestParser(cfg, iter([raw]), ("127.0.0.1", 50000))))
    _, environ = create(request, None, ("127.0.0.1", 50000), ("127.0.0.1", 8000), cfg)
    assert environ["wsgi.input_terminated"] is True
    assert "CONTENT_LENGTH" not in environ
    status: list[str] = []
    # Like Django's test client: the test's database connection stays open across the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(
            WSGIHandler()(environ, lambda line, headers, exc_info=None: status.append(line))
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(status[0].split()[0]), json.loads(body)


def test_a_chunked_push_is_read_whole_under_gunicorn(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = json.dumps(push_body(invoice.transaction_id)).encode()

    status, answer = under_gunicorn(chunked_request(PUSH, body))

    assert (status, answer) == (200, {"detail": "processed"})
    (message,) = inbound()
    assert message.body.encode() == body
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


def test_a_chunked_push_over_the_limit_is_refused_under_gunicorn() -> None:
    body = b"{" + b" " * 40_000 + b"}"

    status, _ = under_gunicorn(chunked_request(PUSH, body))

    assert status == 413
    (message,) = inbound()
    assert (message.body, message.body_bytes) == ("", len(body))
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()


@pytest.fixture
def raw_socket(live_server: Any) -> Iterator[socket.socket]:
    address = urlsplit(live_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        yield sock


@pytest.mark.django_db(transaction=True)
def test_a_chunked_push_under_djangos_test_server_asks_for_a_length(
    live_server: Any, raw_socket: socket.socket
) -> None:
    """Django's own server passes no body on without ``Content-Length``: the push is answered
    411 (not "body is not JSON"), logged, and the invoice is left for the reconciler."""
    invoice = InvoiceFactory()
    body = json.dumps(push_body(invoice.transaction_id)).encode()

    raw_socket.sendall(chunked_request(PUSH, body, host=urlsplit(live_server.url).netloc))
    response = http.client.HTTPResponse(raw_socket)
    response.begin()

    assert response.status == 411
    assert "Content-Length" in json.loads(response.read())["detail"]
    (message,) = inbound()
    assert message.outcome == Outcome.REJECTED
    assert message.error.startswith("this server does not pass on a body")
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_streams_are_read_in_chunks_and_hashed_whole() -> None:
    from golomt_payments.limits import _hashed

    data = bytes(range(256)) * 1000
    body = _hashed(io.BytesIO(data).read, 100, 10**6, (413, "too large"))
    assert (body.data, body.size, body.problem) == (data[:100], len(data), (413, "too large"))
    assert body.sha256 == hashlib.sha256(data).hexdigest()


def test_a_cache_outage_never_costs_a_push(
    fake_bank: FakeBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limits fail open when the cache cannot count: the push is logged and processed."""
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache is down")

    monkeypatch.setattr("golomt_payments.limits.cache.incr", down)
    monkeypatch.setattr("golomt_payments.limits.cache.add", down)
    response = Client().post(
        PUSH, data=json.dumps(push_body(invoice.transaction_id)), content_type="application/json"
    )

    assert response.status_code == 200
    assert len(inbound()) == 1
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


@override_settings(GOLOMT_PAYMENTS=golomt(POLL_REQUESTS_PER_MINUTE=2))
def test_one_ipv6_network_is_one_count() -> None:
    invoice = InvoiceFactory(status=Status.PAID)
    url = f"/payments/status/{invoice.key}/"
    codes = [Client(REMOTE_ADDR=f"2001:db8:5:6::{n}").get(url).status_code for n in range(1, 4)]
    assert codes == [200, 200, 429]
    assert Client(REMOTE_ADDR="2001:db8:5:7::1").get(url).status_code == 200


@override_settings(GOLOMT_PAYMENTS=golomt(POLL_REQUESTS_PER_MINUTE=1))
def test_a_dual_stack_ipv4_sender_is_counted_as_itself() -> None:
    invoice = InvoiceFactory(status=Status.PAID)
    url = f"/payments/status/{invoice.key}/"
    assert Client(REMOTE_ADDR="203.0.113.9").get(url).status_code == 200
    assert Client(REMOTE_ADDR="::ffff:203.0.113.9").get(url).status_code == 429


@override_settings(GOLOMT_PAYMENTS=golomt(POLL_REQUESTS_PER_MINUTE=1))
def test_requests_without_a_readable_address_are_not_locked_out_together() -> None:
    invoice = InvoiceFactory(status=Status.PAID)
    url = f"/payments/status/{invoice.key}/"
    codes = {Client(REMOTE_ADDR="").get(url).status_code for _ in range(5)}
    assert codes == {200}


def test_the_count_starts_again_with_the_next_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from golomt_payments import limits

    now = [1_800_000_000.0 + 59]
    monkeypatch.setattr(limits, "time", types.SimpleNamespace(time=lambda: now[0]))
    assert limits.count_request("t", "203.0.113.1", 1) == limits.Count(0, 1)
    assert limits.count_request("t", "203.0.113.1", 1) == limits.Count(1, 1)
    now[0] += 1
    assert limits.count_request("t", "203.0.113.1", 1) == limits.Count(0, 60)


def test_a_chunked_push_is_read_whole_under_asgi(fake_bank: FakeBank) -> None:
    from django.core.handlers.asgi import ASGIRequest

    from golomt_payments import views

    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = json.dumps(push_body(invoice.transaction_id)).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": PUSH,
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    response = views.push(ASGIRequest(scope, io.BytesIO(body)))

    assert response.status_code == 200
    (message,) = inbound()
    assert message.body.encode() == body
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


def test_a_flood_of_rejected_pushes_from_one_address_is_kept_compact_past_its_bound() -> None:
    from golomt_payments.services.inbound import MAX_REJECTS_PER_MINUTE

    client = Client(REMOTE_ADDR="10.6.6.6")
    junk = json.dumps({"transactionId": "nobody", "pad": "j" * 12_000}).encode()
    headers = {f"HTTP_X_PAD_{n}": "h" * 1000 for n in range(3)}
    for _ in range(MAX_REJECTS_PER_MINUTE + 15):
        client.post(PUSH, data=junk, content_type="application/json", **headers)

    rows = inbound()
    assert [row.body == "" for row in rows] == [False] * MAX_REJECTS_PER_MINUTE + [True] * 15
    assert all(row.body_sha256 == hashlib.sha256(junk).hexdigest() for row in rows)
    assert sum(stored_bytes(row) for row in rows[MAX_REJECTS_PER_MINUTE:]) < 15 * 200
    # another address has its own bound
    Client(REMOTE_ADDR="10.6.6.7").post(PUSH, data=junk, content_type="application/json", **headers)
    assert inbound()[-1].body != ""


@override_settings(GOLOMT_PAYMENTS=golomt(CHECKOUT_REQUESTS_PER_MINUTE=2))
def test_checkouts_over_the_limit_get_429_before_the_bank_is_asked(fake_bank: FakeBank) -> None:
    client = Client(REMOTE_ADDR="10.7.7.7")
    codes = [client.post("/payments/checkout/", {"payload": "x"}).status_code for _ in range(4)]
    assert codes == [400, 400, 429, 429]
    assert not fake_bank.mock.calls
