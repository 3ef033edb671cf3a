"""Faults: the bank times out, refuses the connection, answers 500, 403, HTML or a reply signed
with another key, at every place the app talks to it; and a worker dies in the middle of a push.

Each fault ends the same way: the customer sees a helpful page (never a 500), the invoice stays
open unless the bank said otherwise, every message is kept with what went wrong, and a later
reconcile with the bank healthy again settles the invoice.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from types import ModuleType
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import responses
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from golomt_payments import services
from golomt_payments.checkout import sign_checkout
from golomt_payments.models import (
    BankMessage,
    Direction,
    Invoice,
    MessageKind,
    Outcome,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.services import ReconcileSummary, inbound, payments, reconciliation
from tests.factories import InvoiceFactory
from tests.helpers import (
    BEARER,
    SECRET,
    Clock,
    FakeBank,
    SignalRecorder,
    error_body,
    hmac_hex,
    push_body,
    result_body,
    unpaid_body,
)
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

Reply = tuple[int, dict[str, str], Any]
Answer = Callable[[str, str], Reply]  # (bank path, transaction id) -> reply

OTHER_SECRET = "another-merchant-secret"
PAID = ["invoice_status_changed", "payment_succeeded"]
EXPIRED = ["invoice_status_changed", "payment_expired"]
# With the test settings: page timer 10 minutes, grace 30 more.
DUE = timedelta(minutes=15)  # past the page timer: reconcile asks about it
PAST_GRACE = timedelta(minutes=45)  # past the grace too: a payment the bank lacks expires


# --- the faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One way a call to the bank goes wrong, and what the gateway must make of it.

    ``error``: the gateway error it becomes (the first word of every logged error).
    ``http_status``: what the outbound log records (``None``: no HTTP answer at all).
    ``may_have_landed``: the bank may have carried the call out (its answer was lost or bad).
    """

    answer: Answer
    error: str
    http_status: int | None
    may_have_landed: bool


def _raise(error: Exception) -> Answer:
    return lambda path, tx: (200, {}, error)


def _server_error(path: str, tx: str) -> Reply:
    body = {**error_body(path, "Internal", "Internal server error"), "status": 500}
    return 500, {"Content-Type": "application/json"}, json.dumps(body)


def _html(path: str, tx: str) -> Reply:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    return 200, {"Content-Type": "text/html"}, page


def _signed_with_another_key(path: str, tx: str) -> Reply:
    """A well-formed answer (a paid one, for an inquiry) that the merchant's key does not sign."""
    if path == "/api/invoice":
        invoice = str(uuid.uuid4())
        body = {
            "invoice": invoice,
            "transactionId": tx,
            "checksum": hmac_hex(invoice, tx, secret=OTHER_SECRET),
        }
    else:
        body = result_body(tx, secret=OTHER_SECRET)
    return 200, {}, json.dumps(body, ensure_ascii=False)


def _forbidden(path: str, tx: str) -> Reply:
    return 403, {}, ""


READ_TIMEOUT = Fault(
    _raise(requests.exceptions.ReadTimeout("read timed out")), "BankTimeout", None, True
)
CONNECT_TIMEOUT = Fault(
    _raise(requests.exceptions.ConnectTimeout("connect timed out")), "BankTimeout", None, False
)
CONNECTION_REFUSED = Fault(
    _raise(requests.exceptions.ConnectionError("[Errno 111] Connection refused")),
    "BankUnreachable",
    None,
    False,
)
HTTP_500 = Fault(_server_error, "BankServerError", 500, True)
MALFORMED_JSON = Fault(_html, "BadResponse", 200, True)
WRONG_CHECKSUM = Fault(_signed_with_another_key, "ChecksumMismatch", 200, True)
HTTP_403 = Fault(_forbidden, "Unauthorized", 403, False)

FAULTS = [
    pytest.param(READ_TIMEOUT, id="read-timeout"),
    pytest.param(CONNECT_TIMEOUT, id="connect-timeout"),
    pytest.param(CONNECTION_REFUSED, id="connection-refused"),
    pytest.param(HTTP_500, id="http-500"),
    pytest.param(MALFORMED_JSON, id="malformed-json"),
    pytest.param(WRONG_CHECKSUM, id="wrong-checksum"),
    pytest.param(HTTP_403, id="http-403"),
]

each_fault = pytest.mark.parametrize("fault", FAULTS)


# --- the bank's healthy answers -----------------------------------------------------------


def paid(path: str, tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx), ensure_ascii=False)


def unpaid(path: str, tx: str) -> Reply:
    return 200, {}, json.dumps(unpaid_body(tx))


def unknown(path: str, tx: str) -> Reply:
    return 400, {}, json.dumps(error_body(path, "NotFound", "Payment not found"))


def created(path: str, tx: str) -> Reply:
    invoice = str(uuid.uuid4())
    body = {"invoice": invoice, "transactionId": tx, "checksum": hmac_hex(invoice, tx)}
    return 200, {}, json.dumps(body)


class Bank:
    """The bank's invoice and inquiry endpoints: failing with ``fault`` until :meth:`heal`.

    ``bodies`` keeps every HTTP body it answered, to compare with what the log kept.
    """

    def __init__(self, fake_bank: FakeBank, fault: Fault | None) -> None:
        self.fake_bank = fake_bank
        self.fault = fault
        self.healthy_inquiry: Answer = paid
        self.bodies: list[str] = []
        for path in ("/api/invoice", "/api/inquiry"):
            fake_bank.mock.add_callback(
                responses.POST, fake_bank.url(path), callback=self._replier(path)
            )

    def heal(self, inquiry: Answer = paid) -> None:
        self.fault, self.healthy_inquiry = None, inquiry

    def inquiries(self) -> int:
        return len(self.fake_bank.calls("/api/inquiry"))

    def _replier(self, path: str) -> Callable[[requests.PreparedRequest], Reply]:
        def reply(request: requests.PreparedRequest) -> Reply:
            tx = json.loads(request.body or b"{}")["transactionId"]
            if self.fault is not None:
                answer = self.fault.answer
            else:
                answer = created if path == "/api/invoice" else self.healthy_inquiry
            status, headers, body = answer(path, tx)
            if isinstance(body, str):
                self.bodies.append(body)
            return status, headers, body

        return reply


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_at_a_time() -> Iterator[None]:
    """Reconcile in the test's thread: the test's transaction is invisible to others."""
    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "RECONCILE_CONCURRENCY": 1}):
        yield


@pytest.fixture
def browser() -> Client:
    """A customer's browser arriving cross-site: CSRF enforced, no session cookie."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def bank_sender() -> Client:
    """The bank's server: no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., ReconcileSummary]:
    """``services.reconcile`` with the signals sent as after a real commit."""

    def run(**kwargs: Any) -> ReconcileSummary:
        with django_capture_on_commit_callbacks(execute=True):
            return services.reconcile(**kwargs)

    return run


def counts(summary: ReconcileSummary, **non_zero: int) -> tuple[dict[str, int], dict[str, int]]:
    """The summary's counters, and what they should be (every counter not named is 0)."""
    names = ("checked", "paid", "failed", "expired", "unchanged", "unreachable")
    actual = {name: getattr(summary, name) for name in (*names, "messages_replayed")}
    expected = {name: non_zero.get(name, 0) for name in actual}
    return actual, expected


def age(invoice: Invoice, by: timedelta) -> None:
    Invoice.objects.filter(pk=invoice.pk).update(created_at=timezone.now() - by)


def snapshot(invoice: Invoice) -> dict[str, Any]:
    return Invoice.objects.values().get(pk=invoice.pk)


def fresh(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(pk=invoice.pk)


def outbound(kind: str) -> list[BankMessage]:
    return list(BankMessage.objects.filter(direction=Direction.OUTBOUND, kind=kind).order_by("pk"))


def pushes() -> list[BankMessage]:
    return list(
        BankMessage.objects.filter(direction=Direction.INBOUND, kind=MessageKind.PUSH).order_by(
            "pk"
        )
    )


def assert_call_kept(call: BankMessage, fault: Fault, bank: Bank, invoice: Invoice) -> None:
    """The outbound call is in the log with the bank's raw answer and the error, no secret."""
    assert call.outcome == Outcome.ERROR
    assert (call.invoice_id, call.transaction_id) == (invoice.pk, invoice.transaction_id)
    assert call.http_status == fault.http_status
    assert call.error.startswith(f"{fault.error}: ")
    if fault.http_status is None:
        assert call.response == ""
    else:
        assert call.response == bank.bodies[-1]
    assert json.loads(call.body)["transactionId"] == invoice.transaction_id
    for credential in (BEARER, SECRET):
        for text in (call.body, call.response, call.error, json.dumps(call.headers)):
            assert credential not in text


def come_back(browser: Client, method: str, invoice: Invoice) -> Any:
    """The bank sends the browser back, its status code claiming success."""
    data = {"invoice": invoice.transaction_id, "status_code": "000", "desc": "Амжилттай"}
    url = reverse("golomt_payments:return")
    if method == "GET":
        return browser.get(url, data)
    return browser.post(url, urlencode(data), content_type="application/x-www-form-urlencoded")


def send_push(sender: Client, body: dict[str, Any]) -> Any:
    data = json.dumps(body, ensure_ascii=False)
    return sender.post(reverse("golomt_payments:push"), data=data, content_type="application/json")


def result_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:result", kwargs={"key": invoice.key})


def status_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:status", kwargs={"key": invoice.key})


def reconcile_command() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("golomt_reconcile", stdout=out, stderr=err)  # CommandError: a non-zero exit
    assert err.getvalue() == ""
    return out.getvalue()


def summary_line(**non_zero: int) -> str:
    n = {name: non_zero.get(name, 0) for name in ("checked", "paid", "unreachable")}
    return (
        f"checked {n['checked']} · paid {n['paid']} · failed 0 · expired 0 · unchanged 0 · "
        f"unreachable {n['unreachable']} · messages replayed 0\n"
    )


# --- at invoice creation (the checkout view) ----------------------------------------------


@each_fault
def test_bank_fault_at_invoice_creation_shows_a_friendly_page_keeps_the_call_and_reconcile_closes_the_invoice(  # noqa: E501
    client: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    committed: Callable[..., ReconcileSummary],
    fault: Fault,
) -> None:
    bank = Bank(fake_bank, fault)

    response = client.post(
        reverse("golomt_payments:checkout"),
        {"payload": sign_checkout(amount=1000, reference="ORD-1")},
    )

    assert response.status_code == 503  # a page of the app's own, not the server error page
    page = response.content.decode()
    assert "The bank is not answering right now" in page
    assert "Nothing was charged" in page
    invoice = Invoice.objects.get()
    # Not failed: the bank may have created it. Never pending: nobody was sent to pay it.
    assert (invoice.status, invoice.bank_invoice, invoice.reference) == (Status.NEW, "", "ORD-1")
    assert not invoice.history.exists()
    [call] = outbound(MessageKind.INVOICE)
    assert_call_kept(call, fault, bank, invoice)
    assert signal_log.received == []

    # Later the bank answers again: it holds no payment (nobody reached its page), and once
    # the page timer and the grace are over, reconcile closes the invoice.
    bank.heal(inquiry=unpaid if fault.may_have_landed else unknown)
    age(invoice, PAST_GRACE)

    summary = committed()

    actual, expected = counts(summary, checked=1, expired=1)
    assert actual == expected
    assert fresh(invoice).status == Status.EXPIRED
    assert signal_log.names() == EXPIRED


def test_paying_again_after_a_fault_at_invoice_creation_starts_a_new_transaction_id(
    client: Client, fake_bank: FakeBank
) -> None:
    """An invoice call that timed out may have landed: its transaction id is never reused."""
    bank = Bank(fake_bank, READ_TIMEOUT)
    payload = sign_checkout(amount=1000, reference="ORD-1")
    first = client.post(reverse("golomt_payments:checkout"), {"payload": payload})
    bank.heal()

    second = client.post(reverse("golomt_payments:checkout"), {"payload": payload})

    assert (first.status_code, second.status_code) == (503, 303)
    sent = [fake_bank.sent("/api/invoice", i)["transactionId"] for i in (0, 1)]
    assert sent[0] != sent[1]
    statuses = dict(Invoice.objects.values_list("transaction_id", "status"))
    assert statuses == {sent[0]: Status.NEW, sent[1]: Status.PENDING}


# --- at the redirect (the return view) ----------------------------------------------------


@each_fault
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bank_fault_at_redirect_leaves_invoice_pending_and_reconcile_pays_it(
    browser: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    committed: Callable[..., ReconcileSummary],
    method: str,
    fault: Fault,
) -> None:
    invoice = InvoiceFactory()
    bank = Bank(fake_bank, fault)

    response = come_back(browser, method, invoice)

    assert response.status_code == 302
    assert response["Location"] == result_url(invoice)
    page = browser.get(response["Location"])
    assert page.status_code == 200
    assert "Confirming your payment" in page.content.decode()
    assert fresh(invoice).status == Status.PENDING
    assert not invoice.history.exists()
    redirect = BankMessage.objects.get(kind=MessageKind.REDIRECT)
    assert (redirect.outcome, redirect.invoice_id) == (Outcome.FAILED, invoice.pk)
    assert redirect.error.startswith(f"{fault.error}: ")
    assert "status_code=000" in redirect.body
    [call] = outbound(MessageKind.INQUIRY)
    assert_call_kept(call, fault, bank, invoice)
    assert signal_log.received == []

    bank.heal(inquiry=paid)
    age(invoice, DUE)

    summary = committed()

    actual, expected = counts(summary, checked=1, paid=1)
    assert actual == expected
    invoice = fresh(invoice)
    assert (invoice.status, invoice.bank_code) == (Status.PAID, "000")
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.from_status, change.source) == (Status.PENDING, Source.RECONCILE)
    assert signal_log.names() == PAID
    redirect.refresh_from_db()
    assert redirect.outcome == Outcome.FAILED  # the record of what happened stays as it was


# --- at the push confirmation (the push view's inquiry) -----------------------------------


@each_fault
def test_bank_fault_at_push_confirmation_answers_503_and_reconcile_replays_the_push_to_paid(
    bank_sender: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
    fault: Fault,
) -> None:
    invoice = InvoiceFactory()
    before = snapshot(invoice)
    bank = Bank(fake_bank, fault)
    body = push_body(invoice.transaction_id)

    with django_capture_on_commit_callbacks(execute=True):
        response = send_push(bank_sender, body)

    assert response.status_code == 503  # the bank sends it again later
    assert response.json() == {"detail": "bank could not be reached to confirm; retry later"}
    assert snapshot(invoice) == before
    [message] = pushes()
    assert (message.outcome, message.checksum_valid) == (Outcome.FAILED, True)
    assert message.invoice_id == invoice.pk
    assert message.error.startswith(f"could not confirm with the bank: {fault.error}: ")
    assert json.loads(message.body) == body
    [call] = outbound(MessageKind.INQUIRY)
    assert_call_kept(call, fault, bank, invoice)
    assert signal_log.received == []

    bank.heal(inquiry=paid)
    with django_capture_on_commit_callbacks(execute=True):
        summary = services.reconcile()

    actual, expected = counts(summary, messages_replayed=1)
    assert actual == expected
    message.refresh_from_db()
    assert (message.outcome, message.error) == (Outcome.PROCESSED, "")
    assert fresh(invoice).status == Status.PAID
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.source, change.message_id) == (Source.PUSH, message.pk)
    assert signal_log.names() == PAID


# --- in reconcile -------------------------------------------------------------------------


@each_fault
def test_bank_fault_during_reconcile_counts_the_invoice_unreachable_and_the_next_run_pays_it(
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
    fault: Fault,
) -> None:
    invoice = InvoiceFactory()
    age(invoice, PAST_GRACE)  # even past the grace: an unanswered question expires nothing
    bank = Bank(fake_bank, fault)

    first = reconcile_command()

    assert first == summary_line(checked=1, unreachable=1)
    invoice = fresh(invoice)
    assert invoice.status == Status.PENDING
    assert not invoice.history.exists()
    assert invoice.reconcile_lease_until is not None
    assert invoice.reconcile_lease_until > timezone.now()
    [call] = outbound(MessageKind.INQUIRY)
    assert_call_kept(call, fault, bank, invoice)

    bank.heal(inquiry=paid)
    # While the first run's lease holds, no run asks about the invoice again.
    assert reconcile_command() == summary_line()
    assert bank.inquiries() == 1
    Invoice.objects.filter(pk=invoice.pk).update(
        reconcile_lease_until=timezone.now() - timedelta(seconds=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        last = reconcile_command()

    assert last == summary_line(checked=1, paid=1)
    assert fresh(invoice).status == Status.PAID
    assert StatusChange.objects.get(invoice=invoice).source == Source.RECONCILE
    assert signal_log.names() == PAID


# --- at the confirming page's status poll -------------------------------------------------


@each_fault
def test_bank_fault_at_status_poll_keeps_the_confirming_page_waiting_until_the_bank_answers(
    client: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
    clock: Clock,
    fault: Fault,
) -> None:
    invoice = InvoiceFactory()
    bank = Bank(fake_bank, fault)

    waiting = client.get(status_url(invoice))

    assert waiting.status_code == 200
    assert waiting.json() == {
        "status": Status.PENDING,
        "paid": False,
        "final": False,
        "description": "",
        "next": None,
    }
    [call] = outbound(MessageKind.INQUIRY)
    assert_call_kept(call, fault, bank, invoice)

    bank.heal(inquiry=paid)
    clock.offset += 6  # past STATUS_CHECK_INTERVAL_SECONDS
    with django_capture_on_commit_callbacks(execute=True):
        done = client.get(status_url(invoice)).json()

    assert (done["paid"], done["final"], done["next"]) == (True, True, result_url(invoice))
    assert signal_log.names() == PAID


# --- a worker killed between logging a push and applying it -------------------------------


class WorkerKilled(BaseException):
    """The process dies here: no ``except Exception`` may catch it, no code after it runs."""


def die(*args: Any, **kwargs: Any) -> Any:
    raise WorkerKilled


def read_committed(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """What another process sees now: a query on a connection of its own."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        other.close()


def seen_by_another_process(invoice: Invoice) -> tuple[list[tuple[Any, ...]], str]:
    """The push log's (outcome, body) rows and the invoice's status, as committed."""
    rows = read_committed(
        f"SELECT outcome, body FROM {BankMessage._meta.db_table} "  # noqa: S608 - our table
        "WHERE direction = %s AND kind = %s",
        (Direction.INBOUND, MessageKind.PUSH),
    )
    [(status,)] = read_committed(
        f"SELECT status FROM {Invoice._meta.db_table} WHERE id = %s",  # noqa: S608
        (invoice.pk,),
    )
    return rows, status


def make_stuck(message: BankMessage) -> None:
    """Let the message be old enough that no live worker can still be on it."""
    BankMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - reconciliation.STUCK_AFTER - timedelta(minutes=1)
    )


CRASH_POINTS = [
    pytest.param(inbound, "refresh", id="before-asking-the-bank"),
    pytest.param(payments, "apply_result", id="after-the-bank-answered"),
    pytest.param(StatusChange.objects, "create", id="inside-the-status-transaction"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("target", "name"), CRASH_POINTS)
def test_worker_killed_between_logging_a_push_and_applying_it_loses_nothing_and_reconcile_finishes_it(  # noqa: E501
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    monkeypatch: pytest.MonkeyPatch,
    target: ModuleType | object,
    name: str,
) -> None:
    invoice = InvoiceFactory()
    before = snapshot(invoice)
    bank = Bank(fake_bank, None)
    body = push_body(invoice.transaction_id)
    at_death: list[tuple[list[tuple[Any, ...]], str]] = []

    def die_seen(*args: Any, **kwargs: Any) -> Any:
        at_death.append(seen_by_another_process(invoice))
        raise WorkerKilled

    with monkeypatch.context() as patch, pytest.raises(WorkerKilled):
        patch.setattr(target, name, die_seen)
        send_push(Client(), body)

    # The raw push was committed before processing began; what processing did was not.
    [(rows, status)] = at_death
    assert [(outcome, json.loads(text)) for outcome, text in rows] == [(Outcome.RECEIVED, body)]
    assert status == Status.PENDING
    [message] = pushes()
    assert (message.outcome, message.processed_at) == (Outcome.RECEIVED, None)
    assert snapshot(invoice) == before
    assert not StatusChange.objects.exists()
    assert signal_log.received == []

    # A run now leaves it alone: a live worker may still be processing it.
    assert services.reconcile().messages_replayed == 0
    message.refresh_from_db()
    assert message.outcome == Outcome.RECEIVED
    make_stuck(message)

    summary = services.reconcile()

    actual, expected = counts(summary, messages_replayed=1)
    assert actual == expected
    message.refresh_from_db()
    assert (message.outcome, message.invoice_id) == (Outcome.PROCESSED, invoice.pk)
    assert fresh(invoice).status == Status.PAID
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.source, change.message_id) == (Source.PUSH, message.pk)
    assert signal_log.names() == PAID
    assert bank.inquiries() == (2 if name != "refresh" else 1)


@pytest.mark.django_db(transaction=True)
def test_banks_retry_of_a_push_whose_worker_was_killed_pays_once_and_the_later_replay_changes_nothing(  # noqa: E501
    fake_bank: FakeBank, signal_log: SignalRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = InvoiceFactory()
    Bank(fake_bank, None)
    body = push_body(invoice.transaction_id)

    with monkeypatch.context() as patch, pytest.raises(WorkerKilled):
        patch.setattr(inbound, "refresh", die)
        send_push(Client(), body)
    retry = send_push(Client(), body)

    assert retry.status_code == 200
    assert retry.json() == {"detail": "processed"}
    assert fresh(invoice).status == Status.PAID
    crashed, retried = pushes()
    assert (crashed.outcome, retried.outcome) == (Outcome.RECEIVED, Outcome.PROCESSED)
    make_stuck(crashed)

    summary = services.reconcile()

    assert summary.messages_replayed == 1
    crashed.refresh_from_db()
    assert crashed.outcome == Outcome.UNCHANGED
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.source, change.message_id) == (Source.PUSH, retried.pk)
    assert signal_log.names() == PAID
    assert services.reconcile().messages_replayed == 0


@pytest.mark.django_db(transaction=True)
def test_worker_killed_while_recording_a_push_outcome_applies_nothing_until_the_replay(
    fake_bank: FakeBank, signal_log: SignalRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = InvoiceFactory()
    Bank(fake_bank, None)

    with monkeypatch.context() as patch, pytest.raises(WorkerKilled):
        patch.setattr(inbound, "finish", die)
        send_push(Client(), push_body(invoice.transaction_id))

    # The outcome is written in the status change's transaction: both or neither.
    assert fresh(invoice).status == Status.PENDING
    assert not StatusChange.objects.filter(invoice=invoice).exists()
    assert signal_log.names() == []
    [message] = pushes()
    assert message.outcome == Outcome.RECEIVED
    make_stuck(message)

    summary = services.reconcile()

    assert summary.messages_replayed == 1
    message.refresh_from_db()
    assert (message.outcome, message.invoice_id) == (Outcome.PROCESSED, invoice.pk)
    assert fresh(invoice).status == Status.PAID
    assert StatusChange.objects.filter(invoice=invoice).count() == 1
    assert signal_log.names() == PAID


@pytest.mark.django_db(transaction=True)
def test_worker_killed_after_applying_a_push_but_before_answering_never_pays_twice(
    fake_bank: FakeBank, signal_log: SignalRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = InvoiceFactory()
    Bank(fake_bank, None)
    body = push_body(invoice.transaction_id)

    with monkeypatch.context() as patch, pytest.raises(WorkerKilled):
        patch.setattr(inbound, "PushReply", die)
        send_push(Client(), body)

    assert fresh(invoice).status == Status.PAID  # committed, and its signals were sent
    assert signal_log.names() == PAID
    [message] = pushes()
    assert message.outcome == Outcome.PROCESSED

    retry = send_push(Client(), body)  # the bank saw no answer and sends it again

    assert retry.status_code == 200
    assert services.reconcile().messages_replayed == 0
    assert StatusChange.objects.filter(invoice=invoice).count() == 1
    assert signal_log.names() == PAID


# --- hostile bodies and failing replays ---------------------------------------------------------

NESTED_TOO_DEEP = "[" * 5000 + "]" * 5000  # valid JSON, 10 kB: deeper than Python's recursion


def test_push_body_nested_too_deep_is_rejected_with_400_not_a_500(bank_sender: Client) -> None:
    response = bank_sender.post(
        reverse("golomt_payments:push"), data=NESTED_TOO_DEEP, content_type="application/json"
    )

    assert response.status_code == 400
    [message] = pushes()
    assert message.outcome == Outcome.REJECTED


def test_push_body_nested_too_deep_does_not_stop_reconcile_from_settling_invoices(
    fake_bank: FakeBank,
) -> None:
    due = InvoiceFactory()
    age(due, DUE)
    Bank(fake_bank, None)
    # A row a crashed worker left ``received``, holding a body nested too deep to parse.
    message = BankMessage.objects.create(
        direction=Direction.INBOUND, kind=MessageKind.PUSH, body=NESTED_TOO_DEEP
    )
    make_stuck(message)

    summary = services.reconcile()

    assert (summary.checked, summary.paid, summary.messages_replayed) == (1, 1, 1)
    assert fresh(due).status == Status.PAID
    message.refresh_from_db()
    assert message.outcome == Outcome.REJECTED


def test_a_push_whose_replay_raises_does_not_stop_reconcile_from_settling_invoices(
    fake_bank: FakeBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = InvoiceFactory()
    due = InvoiceFactory()
    age(due, DUE)
    Bank(fake_bank, None)
    with monkeypatch.context() as patch, pytest.raises(WorkerKilled):
        patch.setattr(inbound, "refresh", die)
        send_push(Client(), push_body(poisoned.transaction_id))
    [message] = pushes()
    make_stuck(message)

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("any bug, or a database error, while replaying one push")

    monkeypatch.setattr(reconciliation, "process_push", bug)

    summary = services.reconcile()

    assert (summary.checked, summary.paid) == (1, 1)
    assert fresh(due).status == Status.PAID


def test_bank_answer_nested_too_deep_at_redirect_is_a_bad_response_not_a_500(
    browser: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.mock.add(responses.POST, fake_bank.url("/api/inquiry"), body=NESTED_TOO_DEEP)

    response = come_back(browser, "POST", invoice)

    assert response["Location"] == result_url(invoice)
    assert BankMessage.objects.get(kind=MessageKind.REDIRECT).outcome == Outcome.FAILED


# --- the sandbox's fault card, app to sandbox over real HTTP ------------------------------

SANDBOX_MOUNT = "/sandbox-bank"
FAILING_INQUIRY_CARD = "9496 2500 0000 0078"
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@pytest.mark.django_db(transaction=True)
def test_sandbox_card_whose_inquiries_answer_500_leaves_the_customer_waiting_then_the_status_poll_pays(  # noqa: E501
    client: Client,
    settings: Settings,
    live_server: LiveServer,
    clock: Clock,
    signal_log: SignalRecorder,
) -> None:
    settings.ROOT_URLCONF = "tests.sandbox.urls"
    settings.GOLOMT_SANDBOX = {
        "BEARER_TOKEN": BEARER,
        "SECRET": SECRET,
        "PUSH_MODE": "off",  # no push: the redirect and the status poll have to do it
        "FAILING_INQUIRY_COUNT": 2,
    }
    settings.GOLOMT_PAYMENTS = {
        **GOLOMT_PAYMENTS,
        "BASE_URL": live_server.url + SANDBOX_MOUNT,
        "CALLBACK_BASE_URL": live_server.url,
    }
    checkout = client.post(
        reverse("golomt_payments:checkout"),
        {"payload": sign_checkout(amount="18000", reference="FAULT-1"), "lang": "en"},
    )
    assert checkout.status_code == 303
    bank_page = client.post(
        urlsplit(checkout["Location"]).path,
        {"number": FAILING_INQUIRY_CARD, "expiry": "12/39", "cvv": "123", "holder": "Bat"},
    ).content.decode()
    action = _FORM_ACTION.search(bank_page)
    assert action is not None
    fields = {name: unescape(value) for name, value in _HIDDEN.findall(bank_page)}
    fields.pop("csrfmiddlewaretoken", None)

    back = client.post(urlsplit(unescape(action.group(1))).path, fields)  # inquiry: HTTP 500

    invoice = Invoice.objects.get(reference="FAULT-1")
    assert back.status_code == 302
    assert back["Location"] == result_url(invoice)
    assert "Confirming your payment" in client.get(back["Location"]).content.decode()
    assert invoice.status == Status.PENDING
    redirect = BankMessage.objects.get(kind=MessageKind.REDIRECT)
    assert redirect.outcome == Outcome.FAILED
    assert redirect.error.startswith("BankServerError: ")

    polls = []
    for _ in range(2):  # the second fault, then the bank's true answer
        clock.offset += 6  # past STATUS_CHECK_INTERVAL_SECONDS
        polls.append(client.get(status_url(invoice)).json())

    assert [(poll["status"], poll["final"]) for poll in polls] == [
        (Status.PENDING, False),
        (Status.PAID, True),
    ]
    assert [call.http_status for call in outbound(MessageKind.INQUIRY)] == [500, 500, 200]
    assert fresh(invoice).status == Status.PAID
    assert signal_log.names() == ["invoice_status_changed", *PAID]  # new -> pending -> paid
