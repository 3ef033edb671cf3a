"""A customer never waits on a slow bank longer than ``CUSTOMER_WAIT_SECONDS``: the return from
the bank's page and the status poll answer in time and the check goes on in the background;
background callers keep the long timeouts. Run against a real (slow) HTTP server on loopback:
only real sockets show what a timeout costs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from golomt_payments import bank, services
from golomt_payments.gateway import BankServerError, BankTimeout, GolomtClient
from golomt_payments.models import BankMessage, Direction, MessageKind, Outcome, Source, Status
from tests.factories import InvoiceFactory
from tests.helpers import BEARER, SECRET, push_body, result_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db


class SlowBank(ThreadingHTTPServer):
    """Answers every inquiry as paid, ``delay`` seconds late (or with ``status`` at once)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = 0.0
        self.status = 200
        self.calls = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: SlowBank

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
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_bank() -> Iterator[SlowBank]:
    server = SlowBank()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = {
        **GOLOMT_PAYMENTS,
        "BASE_URL": server.url,
        "CUSTOMER_WAIT_SECONDS": 0.5,
        "READ_TIMEOUT": 5,
    }
    with override_settings(GOLOMT_PAYMENTS=settings):
        yield server
    server.shutdown()
    server.server_close()
    bank.reset_clients()


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
