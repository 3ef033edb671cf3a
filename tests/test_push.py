"""The bank's push notification: logged raw, checked by checksum, confirmed by an inquiry."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.test import Client, override_settings

from golomt_payments import services
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
from golomt_payments.services import inbound, process_push
from tests.factories import InvoiceFactory
from tests.helpers import BEARER, SECRET, FakeBank, SignalRecorder, push_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

PUSH = "/payments/push/"


@pytest.fixture
def bank_sender() -> Client:
    """The bank's server: no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True)


def send(
    sender: Client,
    body: dict[str, Any] | bytes | str,
    *,
    content_type: str = "application/json",
    **extra: Any,
) -> Any:
    data = body if isinstance(body, bytes | str) else json.dumps(body, ensure_ascii=False)
    return sender.post(PUSH, data=data, content_type=content_type, **extra)


def push_message() -> BankMessage:
    return BankMessage.objects.get(direction=Direction.INBOUND, kind=MessageKind.PUSH)


def snapshot(invoice: Invoice) -> dict[str, Any]:
    return Invoice.objects.values().get(pk=invoice.pk)


# --- the happy path and duplicates --------------------------------------------------------


def test_valid_push_confirmed_by_inquiry_marks_paid_once(
    bank_sender: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with django_capture_on_commit_callbacks(execute=True):
        response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 200
    assert response.json() == {"detail": "processed"}
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert invoice.card_number == "949625******0003"
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.from_status, change.to_status, change.source) == (
        Status.PENDING,
        Status.PAID,
        Source.PUSH,
    )
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    assert len(fake_bank.calls("/api/inquiry")) == 1
    message = push_message()
    assert change.message_id == message.pk
    assert (message.outcome, message.checksum_valid) == (Outcome.PROCESSED, True)
    assert (message.invoice_id, message.transaction_id) == (invoice.pk, invoice.transaction_id)
    assert message.processed_at is not None
    assert json.loads(message.body)["transactionId"] == invoice.transaction_id


def test_duplicate_push_is_answered_200_without_a_second_signal_or_history_row(
    bank_sender: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = push_body(invoice.transaction_id)

    with django_capture_on_commit_callbacks(execute=True):
        first = send(bank_sender, body)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = send(bank_sender, body)

    assert (first.status_code, second.status_code) == (200, 200)
    assert callbacks == []
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    assert StatusChange.objects.filter(invoice=invoice).count() == 1
    outcomes = list(
        BankMessage.objects.filter(kind=MessageKind.PUSH)
        .order_by("pk")
        .values_list("outcome", flat=True)
    )
    assert outcomes == [Outcome.PROCESSED, Outcome.UNCHANGED]


def test_push_for_a_paid_invoice_is_not_confirmed_with_the_bank_again(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = push_body(invoice.transaction_id)
    send(bank_sender, body)

    repeated = send(bank_sender, body)

    assert repeated.status_code == 200
    assert len(fake_bank.calls("/api/inquiry")) == 1
    inquiries = BankMessage.objects.filter(direction=Direction.OUTBOUND, kind=MessageKind.INQUIRY)
    assert inquiries.count() == 1


def test_push_for_a_pending_invoice_is_confirmed_with_the_bank_every_time(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)  # the customer has not paid yet
    body = push_body(invoice.transaction_id)

    replies = [send(bank_sender, body) for _ in range(2)]

    assert [reply.status_code for reply in replies] == [200, 200]
    assert len(fake_bank.calls("/api/inquiry")) == 2
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_declined_push_confirmed_by_inquiry_fails_the_invoice(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="300")

    response = send(bank_sender, push_body(invoice.transaction_id, error_code="300"))

    assert response.status_code == 200
    invoice.refresh_from_db()
    assert (invoice.status, invoice.bank_code) == (Status.FAILED, "300")


def test_paid_push_the_inquiry_does_not_confirm_changes_nothing(
    bank_sender: Client, fake_bank: FakeBank, signal_log: SignalRecorder
) -> None:
    """A correctly signed push is still only believed when the bank's inquiry agrees."""
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)

    response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert push_message().outcome == Outcome.UNCHANGED
    assert signal_log.received == []


# --- forged and malformed -----------------------------------------------------------------


def test_push_with_a_bad_checksum_is_rejected_and_changes_nothing(
    bank_sender: Client, fake_bank: FakeBank, signal_log: SignalRecorder
) -> None:
    invoice = InvoiceFactory()
    before = snapshot(invoice)
    body = push_body(invoice.transaction_id)
    body["checksum"] = "0" * 64

    response = send(bank_sender, body)

    assert response.status_code == 400
    assert snapshot(invoice) == before
    assert not StatusChange.objects.exists()
    message = push_message()
    assert message.checksum_valid is False
    assert message.outcome == Outcome.REJECTED
    assert message.invoice_id == invoice.pk
    assert "checksum" in message.error
    assert len(fake_bank.mock.calls) == 0
    assert signal_log.received == []


def _flip_declined_to_paid(body: dict[str, Any]) -> None:
    body["errorCode"] = "000"
    body["errorDesc"] = "Амжилттай"


@pytest.mark.parametrize(
    ("signed_code", "tamper"),
    [
        pytest.param("000", lambda b: b.update(amount="1.00"), id="amount-changed"),
        pytest.param("300", _flip_declined_to_paid, id="declined-flipped-to-paid"),
        pytest.param("000", lambda b: b.pop("checksum"), id="checksum-missing"),
        pytest.param("000", lambda b: b.update(checksum=b["checksum"][:-1]), id="checksum-short"),
        pytest.param("000", lambda b: b.update(checksum=None), id="checksum-null"),
        pytest.param("000", lambda b: b.update(token="tok"), id="token-added"),
    ],
)
def test_push_altered_after_signing_is_rejected(
    bank_sender: Client, fake_bank: FakeBank, signed_code: str, tamper: Any
) -> None:
    invoice = InvoiceFactory()
    body = push_body(invoice.transaction_id, error_code=signed_code)
    tamper(body)

    response = send(bank_sender, body)

    assert response.status_code == 400
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    message = push_message()
    assert message.outcome == Outcome.REJECTED
    assert message.checksum_valid is False
    assert len(fake_bank.mock.calls) == 0


def test_push_signed_with_a_wrong_key_is_rejected(bank_sender: Client, fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()

    response = send(bank_sender, push_body(invoice.transaction_id, secret="someone-elses-key"))

    assert response.status_code == 400
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert push_message().checksum_valid is False
    assert len(fake_bank.mock.calls) == 0


def test_push_for_an_unknown_transaction_is_rejected(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    InvoiceFactory()

    response = send(bank_sender, push_body("UNKNOWN00000001"))

    assert response.status_code == 400
    message = push_message()
    assert message.outcome == Outcome.REJECTED
    assert message.invoice_id is None
    assert len(fake_bank.mock.calls) == 0


def test_push_for_another_amount_is_not_paid_and_flags_the_invoice(
    bank_sender: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory(amount="1000.00")
    fake_bank.inquiry(error_code="000", amount="1.00")

    with django_capture_on_commit_callbacks(execute=True):
        response = send(bank_sender, push_body(invoice.transaction_id, amount="1.00"))

    assert response.status_code == 400
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    assert invoice.needs_review
    assert invoice.review_reason
    message = push_message()
    assert (message.checksum_valid, message.outcome) == (True, Outcome.REJECTED)
    assert not StatusChange.objects.exists()
    assert signal_log.received == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "JSON"),
        (b"[1, 2]", "object"),
        (b"{}", "transactionId"),
        (b'{"transactionId": 12345}', "transactionId"),
        (b'{"transactionId": "abc-def"}', "transactionId"),
    ],
)
def test_malformed_push_body_is_rejected_with_400(
    bank_sender: Client, fake_bank: FakeBank, body: bytes, reason: str
) -> None:
    response = send(bank_sender, body)

    assert response.status_code == 400
    message = push_message()
    assert message.outcome == Outcome.REJECTED
    assert reason in message.error


def test_push_with_a_checksum_valid_but_unreadable_amount_is_rejected(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    body = push_body(invoice.transaction_id, amount="1,000.00")

    response = send(bank_sender, body)

    assert response.status_code == 400
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_push_with_the_wrong_content_type_is_refused_with_415(
    bank_sender: Client, fake_bank: FakeBank, content_type: str
) -> None:
    invoice = InvoiceFactory()

    response = send(bank_sender, push_body(invoice.transaction_id), content_type=content_type)

    assert response.status_code == 415
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert push_message().outcome == Outcome.REJECTED


def test_push_content_type_with_a_charset_is_accepted(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    response = send(
        bank_sender,
        push_body(invoice.transaction_id),
        content_type="application/json; charset=utf-8",
    )

    assert response.status_code == 200


def test_oversized_push_is_refused_with_413_and_not_processed(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    body = push_body(invoice.transaction_id, padding="x" * (16 * 1024))

    response = send(bank_sender, body)

    assert response.status_code == 413
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    message = push_message()
    assert message.outcome == Outcome.REJECTED
    assert len(message.body) <= 16 * 1024
    assert len(fake_bank.mock.calls) == 0


def test_push_that_is_not_utf8_is_rejected_with_400(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    raw = json.dumps(push_body(invoice.transaction_id, bank="X")).encode()
    raw = raw.replace(b'"X"', b'"\xff\xfe"')

    response = send(bank_sender, raw)

    assert response.status_code == 400
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    message = push_message()
    assert message.outcome == Outcome.REJECTED
    assert "UTF-8" in message.error


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_push_accepts_only_post(bank_sender: Client, method: str) -> None:
    assert getattr(bank_sender, method)(PUSH).status_code == 405


# --- the bank cannot confirm --------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectTimeout("timed out"),
        requests.exceptions.ConnectionError("refused"),
    ],
)
def test_bank_unreachable_during_confirmation_answers_503_and_changes_nothing(
    bank_sender: Client, fake_bank: FakeBank, signal_log: SignalRecorder, error: Exception
) -> None:
    invoice = InvoiceFactory()
    before = snapshot(invoice)
    fake_bank.inquiry_down(error)

    response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 503
    assert snapshot(invoice) == before
    assert not StatusChange.objects.exists()
    message = push_message()
    assert message.outcome == Outcome.FAILED
    assert message.checksum_valid is True
    assert message.invoice_id == invoice.pk
    assert signal_log.received == []


def test_bank_server_error_during_confirmation_answers_503(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.mock.add("POST", fake_bank.url("/api/inquiry"), status=500, body="oops")

    response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 503
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_push_is_applied_alone_when_inquiry_confirmation_is_off(
    bank_sender: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()

    with (
        override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CONFIRM_PUSH_WITH_INQUIRY": False}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    assert len(fake_bank.mock.calls) == 0
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


def test_forged_push_is_still_refused_when_inquiry_confirmation_is_off(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()

    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CONFIRM_PUSH_WITH_INQUIRY": False}):
        response = send(bank_sender, push_body(invoice.transaction_id, secret="forger"))

    assert response.status_code == 400
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


# --- who may send -------------------------------------------------------------------------

BANK_NET = "203.0.113.0/24"


def with_ips(**extra: Any) -> Any:
    return override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "PUSH_ALLOWED_IPS": [BANK_NET], **extra}
    )


def test_push_from_an_allowed_address_is_processed(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with with_ips():
        response = send(bank_sender, push_body(invoice.transaction_id), REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 200
    assert push_message().remote_addr == "203.0.113.7"


def test_push_from_an_address_outside_the_list_is_refused_with_403(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()

    with with_ips():
        response = send(bank_sender, push_body(invoice.transaction_id), REMOTE_ADDR="198.51.100.9")

    assert response.status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    message = push_message()
    assert (message.outcome, message.remote_addr) == (Outcome.REJECTED, "198.51.100.9")
    assert len(fake_bank.mock.calls) == 0


def test_forwarded_for_header_is_ignored_without_trusted_proxies(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()

    with with_ips():
        response = send(
            bank_sender,
            push_body(invoice.transaction_id),
            REMOTE_ADDR="198.51.100.9",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )

    assert response.status_code == 403
    assert push_message().remote_addr == "198.51.100.9"


def test_forwarded_for_from_a_trusted_proxy_gives_the_bank_address(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with with_ips(TRUSTED_PROXY_COUNT=1):
        response = send(
            bank_sender,
            push_body(invoice.transaction_id),
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )

    assert response.status_code == 200
    assert push_message().remote_addr == "203.0.113.7"


def test_forwarded_for_entries_before_the_trusted_proxies_are_not_believed(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    """A sender can put anything first in X-Forwarded-For; only the proxy's entry counts."""
    invoice = InvoiceFactory()

    with with_ips(TRUSTED_PROXY_COUNT=1):
        response = send(
            bank_sender,
            push_body(invoice.transaction_id),
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.9",
        )

    assert response.status_code == 403
    assert push_message().remote_addr == "198.51.100.9"


def test_two_trusted_proxies_take_the_second_entry_from_the_right(
    bank_sender: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with with_ips(TRUSTED_PROXY_COUNT=2):
        response = send(
            bank_sender,
            push_body(invoice.transaction_id),
            REMOTE_ADDR="10.0.0.3",
            HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7, 10.0.0.2",
        )

    assert response.status_code == 200
    assert push_message().remote_addr == "203.0.113.7"


# --- secrets ------------------------------------------------------------------------------


def test_push_log_keeps_no_authorization_header_or_cookie(
    fake_bank: FakeBank,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    sender = Client(
        headers={"Authorization": f"Bearer {BEARER}", "X-Request-Id": "abc"},
    )
    sender.cookies["sessionid"] = "session-cookie-value"

    send(sender, push_body(invoice.transaction_id))

    headers = push_message().headers
    names = {name.lower() for name in headers}
    assert "authorization" not in names
    assert "cookie" not in names
    assert "x-request-id" in names
    assert BEARER not in json.dumps(headers)
    assert "session-cookie-value" not in json.dumps(headers)


def test_no_credential_is_stored_in_any_message_after_a_full_flow(
    fake_bank: FakeBank,
) -> None:
    """Create, redirect, push, inquiries, and a bank that echoes the Authorization header."""
    fake_bank.invoice()
    invoice = services.start_payment(
        amount="1000", callback_url="https://shop.test/payments/return/"
    )
    calls = iter(["echo", "paid"])

    def inquiry(request: Any) -> tuple[int, dict[str, str], str]:
        if next(calls) == "echo":
            # A misbehaving bank error page that repeats what it was sent, headers included.
            return 500, {}, f"error for {request.headers['Authorization']} / {SECRET}"
        body = push_body(invoice.transaction_id, status="SENT")
        return 200, {}, json.dumps(body)

    fake_bank.inquiry_reply(inquiry)
    credentials = {"Authorization": f"Bearer {BEARER}", "X-Secret": "x"}
    browser = Client(enforce_csrf_checks=True, headers=credentials)
    browser.cookies["sessionid"] = SECRET
    browser.post("/payments/return/", {"invoice": invoice.transaction_id, "status_code": "000"})
    bank = Client(headers=credentials)
    bank.cookies["csrftoken"] = BEARER
    response = send(bank, push_body(invoice.transaction_id))

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    rows = list(BankMessage.objects.values("kind", "body", "response", "headers", "error"))
    assert {row["kind"] for row in rows} >= {"invoice", "inquiry", "redirect", "push"}
    assert any("[redacted]" in row["response"] for row in rows)
    for row in rows:
        stored = json.dumps(row, ensure_ascii=False)
        assert BEARER not in stored, row
        assert SECRET not in stored, row
        assert "authorization" not in {name.lower() for name in row["headers"]}
        assert "cookie" not in {name.lower() for name in row["headers"]}


# --- query budgets ------------------------------------------------------------------------


# Measured on SQLite and PostgreSQL inside the test transaction. First delivery: INSERT the
# raw push, SELECT the invoice, then SAVEPOINT (BEGIN in a server), the conditional UPDATE of
# the invoice (it takes the row lock), INSERT the history row, INSERT the owed signals (the
# outbox: one statement for both), INSERT the inquiry's log row, UPDATE the push row with its
# outcome, RELEASE (COMMIT): two commits in all; then, after the commit, the signals are sent
# and one UPDATE marks them delivered.
FIRST_DELIVERY_QUERIES = 10
FIRST_DELIVERY_WITHOUT_INQUIRY_QUERIES = 9
# A duplicate of a paid invoice: INSERT the raw push, SELECT the invoice, UPDATE the push row;
# no lock, and no inquiry: paid is final.
DUPLICATE_QUERIES = 3


def test_push_first_delivery_stays_within_its_query_budget(
    bank_sender: Client,
    fake_bank: FakeBank,
    django_assert_max_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with (
        django_assert_max_num_queries(FIRST_DELIVERY_QUERIES),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


def test_push_without_inquiry_stays_within_its_query_budget(
    bank_sender: Client,
    fake_bank: FakeBank,
    django_assert_max_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()

    with (
        override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CONFIRM_PUSH_WITH_INQUIRY": False}),
        django_assert_max_num_queries(FIRST_DELIVERY_WITHOUT_INQUIRY_QUERIES),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = send(bank_sender, push_body(invoice.transaction_id))

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


def test_duplicate_push_stays_within_its_query_budget(
    bank_sender: Client, fake_bank: FakeBank, django_assert_max_num_queries: Any
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = push_body(invoice.transaction_id)
    send(bank_sender, body)

    with django_assert_max_num_queries(DUPLICATE_QUERIES):
        response = send(bank_sender, body)

    assert response.status_code == 200


# --- nothing lost ---------------------------------------------------------------------------


def test_push_is_logged_before_processing_and_can_be_replayed_after_a_crash(
    fake_bank: FakeBank, monkeypatch: pytest.MonkeyPatch, signal_log: SignalRecorder
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker killed mid-way")

    monkeypatch.setattr(inbound, "refresh", crash)
    response = send(Client(raise_request_exception=False), push_body(invoice.transaction_id))
    monkeypatch.undo()

    assert response.status_code == 500
    message = push_message()
    assert message.outcome == Outcome.RECEIVED
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING

    reply = process_push(message)

    assert reply.status == 200
    message.refresh_from_db()
    assert message.outcome == Outcome.PROCESSED
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


def test_replaying_a_processed_push_changes_nothing(
    bank_sender: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    with django_capture_on_commit_callbacks(execute=True):
        send(bank_sender, push_body(invoice.transaction_id))
        reply = process_push(push_message())

    assert reply.status == 200
    assert StatusChange.objects.filter(invoice=invoice).count() == 1
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    assert push_message().outcome == Outcome.UNCHANGED
