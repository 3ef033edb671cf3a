"""A customer never waits on a slow bank longer than ``CUSTOMER_WAIT_SECONDS``: the return from
the bank's page and the status poll answer in time and the check goes on in the background;
background callers keep the long timeouts. Run against a real (slow) HTTP server on loopback:
only real sockets show what a timeout costs."""

from __future__ import annotations

import gzip
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from django.conf import settings
from django.test import Client, override_settings

from golomt_payments import bank, services
from golomt_payments.gateway import (
    MAX_RESPONSE_BYTES,
    MAX_RESPONSE_TEXT,
    BadResponse,
    BankServerError,
    BankTimeout,
    Exchange,
    GolomtClient,
)
from golomt_payments.gateway import client as client_module
from golomt_payments.models import BankMessage, Direction, MessageKind, Outcome, Source, Status
from tests.factories import InvoiceFactory
from tests.helpers import BEARER, SECRET, push_body, result_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db


PIECE = 20
"""Bytes a trickling bank sends at a time."""


class SlowBank(ThreadingHTTPServer):
    """Answers every inquiry as paid, ``delay`` seconds late (or with ``status`` at once).

    ``trickle``: seconds the answer's body is spread over, :data:`PIECE` bytes at a time (the
    head and the first piece go at once). ``padding``: bytes of blank space sent after the
    JSON, which leave it valid JSON. ``gzip``: the body compressed (``Content-Encoding``), or
    ``compressed`` sent instead.
    """

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), handler or _Handler)
        self.delay = 0.0
        self.status = 200
        self.calls = 0
        self.connections = 0
        self.trickle = 0.0
        self.padding = 0
        self.gzip = False
        self.compressed: bytes | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: SlowBank

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls += 1
        if self.server.status != 200:
            self._answer(self.server.status, b"{}")
            return
        time.sleep(self.server.delay)
        body = result_body(sent["transactionId"], amount="1000.00")
        self._answer(200, json.dumps(body).encode())

    def _answer(self, status: int, body: bytes) -> None:
        trickle, padding = self.server.trickle, self.server.padding
        if self.server.gzip:
            body = self.server.compressed or gzip.compress(body)
        pieces = [body[i : i + PIECE] for i in range(0, len(body), PIECE)] if trickle else [body]
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + padding))
            if self.server.gzip:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            for number, piece in enumerate(pieces):
                if number:
                    time.sleep(trickle / (len(pieces) - 1))
                self.wfile.write(piece)
            while padding > 0:
                self.wfile.write(b" " * min(padding, 64 * 1024))
                padding -= 64 * 1024
        except OSError:  # the client gave up waiting
            pass

    def log_message(self, *args: Any) -> None:
        pass


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"


def serve(server: SlowBank) -> None:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()


def stop(server: SlowBank) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_bank() -> Iterator[SlowBank]:
    server = SlowBank()
    serve(server)
    settings = {
        **GOLOMT_PAYMENTS,
        "BASE_URL": server.url,
        "CUSTOMER_WAIT_SECONDS": 0.5,
        "READ_TIMEOUT": 5,
    }
    with override_settings(GOLOMT_PAYMENTS=settings):
        yield server
    stop(server)
    bank.reset_clients()


@pytest.fixture
def keep_alive_bank() -> Iterator[SlowBank]:
    server = SlowBank(_KeepAliveHandler)
    serve(server)
    yield server
    stop(server)


@pytest.fixture(params=["read1", "iter_content"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """urllib3 >= 2.3 reads what has arrived (``read1``); before, the body is read through
    ``iter_content``, a byte at a time."""
    if request.param == "iter_content":
        monkeypatch.setattr(urllib3.response.HTTPResponse, "read1", None)
    return str(request.param)


def gateway(
    server: SlowBank, exchanges: list[Exchange] | None = None, **kwargs: Any
) -> GolomtClient:
    return GolomtClient(
        base_url=server.url,
        bearer_token=BEARER,
        secret=SECRET,
        on_exchange=None if exchanges is None else exchanges.append,
        **kwargs,
    )


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_the_return_from_the_bank_page_answers_within_the_wait(slow_bank: SlowBank) -> None:
    slow_bank.delay = 3
    invoice = InvoiceFactory()

    response, took = timed(
        lambda: Client().post("/payments/return/", {"invoice": invoice.transaction_id})
    )

    assert took < 1.5
    assert response.status_code == 302
    assert response["Location"] == f"/payments/result/{invoice.key}/"  # "confirming…", polls
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    message = BankMessage.objects.get(direction=Direction.INBOUND, kind=MessageKind.REDIRECT)
    assert message.outcome == Outcome.FAILED
    assert "BankTimeout" in message.error


def test_a_status_poll_holds_its_thread_no_longer_than_the_wait(slow_bank: SlowBank) -> None:
    slow_bank.delay = 3
    invoice = InvoiceFactory()

    response, took = timed(lambda: Client().get(f"/payments/status/{invoice.key}/"))

    assert took < 1.5
    assert response.json()["final"] is False
    assert slow_bank.calls == 1  # one try: no retry fits in the time left


def test_a_bank_answering_in_time_is_heard(slow_bank: SlowBank) -> None:
    slow_bank.delay = 0.1
    invoice = InvoiceFactory()

    response = Client().get(f"/payments/status/{invoice.key}/")

    assert response.json()["paid"] is True


def test_background_checks_keep_the_long_timeouts(slow_bank: SlowBank) -> None:
    slow_bank.delay = 1.5  # longer than a customer waits, shorter than READ_TIMEOUT
    invoice = InvoiceFactory()

    change, took = timed(lambda: services.refresh(invoice, source=Source.RECONCILE))

    assert took >= 1.5
    assert change.new_status == Status.PAID


def test_retries_stop_at_the_deadline(slow_bank: SlowBank) -> None:
    slow_bank.status = 503
    client = GolomtClient(
        base_url=slow_bank.url, bearer_token=BEARER, secret=SECRET, read_retries=5, backoff=0.4
    )

    started = time.monotonic()
    with pytest.raises(BankServerError):
        client.inquiry("T1", within=1.0)
    assert time.monotonic() - started < 1.0
    # pauses of 0.4 s then 0.8 s do not fit in one second together: two tries, not six
    assert slow_bank.calls == 2


def test_no_try_starts_after_the_deadline(slow_bank: SlowBank) -> None:
    slow_bank.delay = 3
    client = GolomtClient(
        base_url=slow_bank.url, bearer_token=BEARER, secret=SECRET, read_retries=5, backoff=0.01
    )

    started = time.monotonic()
    with pytest.raises(BankTimeout, match=r"read 0\.3s"):
        client.inquiry("T1", within=0.3)
    assert time.monotonic() - started < 1.0
    assert slow_bank.calls == 1


@pytest.mark.parametrize("within", [0, -1, float("nan"), float("inf"), True])
def test_a_deadline_must_be_positive(within: Any) -> None:
    client = GolomtClient(base_url="http://127.0.0.1:9", bearer_token=BEARER, secret=SECRET)
    with pytest.raises(ValueError, match="within"):
        client.inquiry("T1", within=within)


def test_a_push_holds_its_thread_no_longer_than_its_own_deadline(slow_bank: SlowBank) -> None:
    """The bank's push is confirmed by an inquiry within ``PUSH_CONFIRM_SECONDS``; beyond it the
    bank is answered 503 (it sends the push again) and the push is kept for a replay."""
    slow_bank.delay = 3
    invoice = InvoiceFactory()
    body = json.dumps(push_body(invoice.transaction_id))

    with override_settings(
        GOLOMT_PAYMENTS={**settings.GOLOMT_PAYMENTS, "PUSH_CONFIRM_SECONDS": 0.5}
    ):
        response, took = timed(
            lambda: Client().post("/payments/push/", body, content_type="application/json")
        )

    assert took < 1.5
    assert response.status_code == 503
    message = BankMessage.objects.get(direction=Direction.INBOUND, kind=MessageKind.PUSH)
    assert message.outcome == Outcome.FAILED
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING


def test_a_push_confirmed_in_time_pays(slow_bank: SlowBank) -> None:
    slow_bank.delay = 0.1
    invoice = InvoiceFactory()
    body = json.dumps(push_body(invoice.transaction_id))

    response = Client().post("/payments/push/", body, content_type="application/json")

    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


# -- one try never runs past the deadline --------------------------------------------------------


@pytest.mark.parametrize("socket_reached", [True, False], ids=["socket", "no-socket"])
def test_a_bank_trickling_its_answer_is_cut_at_the_deadline(
    slow_bank: SlowBank, read_path: str, socket_reached: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read timeout bounds each read, not the answer: 20 bytes every ~0.2 s never trip it.

    Where the socket is out of reach (its waits not shortened), the check between reads still
    cuts the answer, a read at most later."""
    if not socket_reached:
        monkeypatch.setattr(client_module, "_wait_at_most", lambda response, seconds: None)
    slow_bank.trickle = 4
    exchanges: list[Exchange] = []
    client = gateway(slow_bank, exchanges, read_retries=3, backoff=0.01)

    started = time.monotonic()
    with pytest.raises(BankTimeout, match=r"within 0\.5s \(HTTP 200, \d+ bytes of the body"):
        client.inquiry("T1", within=0.5)
    assert time.monotonic() - started < 1.2
    assert slow_bank.calls == 1
    (exchange,) = exchanges
    assert exchange.status_code == 200
    assert exchange.response_text  # what had arrived, for the record
    assert exchange.error is not None and exchange.error.startswith("BankTimeout: ")


def test_a_bank_that_stalls_mid_answer_is_cut_at_the_deadline_not_a_read_later(
    slow_bank: SlowBank, read_path: str
) -> None:
    """The head and 20 bytes at 0.8 s, then nothing for seconds: the wait for the next bytes
    ends at the deadline, not a whole read timeout (what was left at the request) later."""
    slow_bank.delay = 0.8
    slow_bank.trickle = 60

    started = time.monotonic()
    with pytest.raises(BankTimeout, match=r"within 1s"):
        gateway(slow_bank).inquiry("T1", within=1.0)
    assert time.monotonic() - started < 1.4


def test_a_bank_answering_at_once_is_heard_within_the_deadline(
    slow_bank: SlowBank, read_path: str
) -> None:
    exchanges: list[Exchange] = []

    result = gateway(slow_bank, exchanges).inquiry("T1", within=0.5)

    assert result.transaction_id == "T1"
    assert result.is_paid
    (exchange,) = exchanges
    assert exchange.status_code == 200 and exchange.error is None
    assert json.loads(exchange.response_text or "") == result.raw


@pytest.mark.parametrize("within", [0.5, None], ids=["deadline", "no-deadline"])
def test_a_compressed_answer_is_read_as_sent(
    slow_bank: SlowBank, read_path: str, within: float | None
) -> None:
    slow_bank.gzip = True
    slow_bank.trickle = 0.2
    exchanges: list[Exchange] = []

    result = gateway(slow_bank, exchanges).inquiry("T1", within=within)

    assert result.is_paid
    assert json.loads(exchanges[0].response_text or "") == result.raw


@pytest.mark.parametrize(("status", "error"), [(200, BadResponse), (503, BankServerError)])
def test_a_huge_answer_is_read_no_further_than_max_response_bytes(
    slow_bank: SlowBank, status: int, error: type[Exception]
) -> None:
    """64 MiB of blank space after the JSON (valid JSON still): read up to the limit, then a
    bad response (or the status's own error), in bounded memory."""
    slow_bank.status = status
    slow_bank.padding = 64 * 1024 * 1024
    exchanges: list[Exchange] = []

    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(error) as caught:
            gateway(slow_bank, exchanges, read_retries=0).inquiry("T1", within=10)
        took = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert took < 3
    assert peak < 6 * MAX_RESPONSE_BYTES
    if status == 200:
        assert "longer than" in str(caught.value)
    (exchange,) = exchanges
    assert exchange.status_code == status
    assert len(exchange.response_text or "") == MAX_RESPONSE_TEXT


def test_a_compressed_answer_is_cut_at_max_response_bytes_as_it_is_decoded(
    slow_bank: SlowBank,
) -> None:
    """64 KiB on the wire, 64 MiB decoded (still valid JSON): decoded no further than the
    limit."""
    body = json.dumps(result_body("T1", amount="1000.00")).encode() + b" " * (64 * 1024 * 1024)
    slow_bank.gzip = True
    slow_bank.compressed = gzip.compress(body, compresslevel=9)
    del body
    exchanges: list[Exchange] = []

    tracemalloc.start()
    try:
        with pytest.raises(BadResponse, match="longer than"):
            gateway(slow_bank, exchanges).inquiry("T1", within=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 6 * MAX_RESPONSE_BYTES
    assert len(exchanges[0].response_text or "") == MAX_RESPONSE_TEXT


def test_without_a_deadline_a_trickled_answer_is_read_whole(slow_bank: SlowBank) -> None:
    """Background callers keep requests' meaning of the read timeout: the answer takes over
    a second, longer than the 0.5 s read timeout, but no single wait is that long."""
    slow_bank.trickle = 1.0

    started = time.monotonic()
    result = gateway(slow_bank, timeout=(5.0, 0.5)).inquiry("T1")

    assert time.monotonic() - started >= 1.0
    assert result.is_paid


def test_a_connection_read_under_a_deadline_serves_the_next_calls(
    keep_alive_bank: SlowBank,
) -> None:
    """The answer read to its end leaves the connection pooled, and a later call without a
    deadline (and its long read timeout) goes over it."""
    with gateway(keep_alive_bank) as client:
        assert client.inquiry("T1", within=0.5).is_paid
        assert client.inquiry("T2", within=0.5).is_paid
        keep_alive_bank.delay = 0.3
        assert client.inquiry("T3").is_paid

    assert keep_alive_bank.calls == 3
    assert keep_alive_bank.connections == 1
