"""start_payment and refresh: what reaches the bank, and what the invoice becomes."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from golomt_payments import services
from golomt_payments.gateway import (
    BadResponse,
    BankRefused,
    BankTimeout,
    BankUnreachable,
    ChecksumMismatch,
)
from golomt_payments.models import (
    BankMessage,
    Direction,
    Invoice,
    MessageKind,
    Method,
    Outcome,
    Source,
    Status,
    StatusChange,
)
from tests.factories import InvoiceFactory
from tests.helpers import BEARER, FakeBank, SignalRecorder, hmac_hex, result_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

CALLBACK = "https://shop.test/payments/return/"


def start(**kwargs: Any) -> Invoice:
    kwargs.setdefault("amount", Decimal("1000"))
    kwargs.setdefault("callback_url", CALLBACK)
    return services.start_payment(**kwargs)


# --- start_payment ---------------------------------------------------------------------------


def test_start_payment_sends_a_signed_invoice_request_with_two_decimal_amount(
    fake_bank: FakeBank,
) -> None:
    fake_bank.invoice()

    invoice = start(amount=1000, reference="ORD-1")

    sent = fake_bank.sent("/api/invoice")
    tx = invoice.transaction_id
    assert sent == {
        "amount": "1000.00",
        "callback": CALLBACK,
        "checksum": hmac_hex(tx, "1000.00", "POST", CALLBACK),
        "genToken": "N",
        "returnType": "POST",
        "transactionId": tx,
        "socialDeeplink": "N",
    }
    request = fake_bank.calls("/api/invoice")[0].request
    assert request.headers["Authorization"] == f"Bearer {BEARER}"
    assert request.headers["Content-Type"] == "application/json"


def test_start_payment_leaves_a_pending_invoice_with_the_banks_invoice_id(
    fake_bank: FakeBank,
) -> None:
    fake_bank.invoice(bank_invoice="d7fb2858-df36-469e-b40d-2815fe9215cf")

    invoice = start(amount="1000", reference="ORD-1", metadata={"cart": 7})

    assert invoice.status == Status.PENDING
    assert invoice.bank_invoice == "d7fb2858-df36-469e-b40d-2815fe9215cf"
    assert invoice.amount == Decimal("1000.00")
    assert invoice.amount_sent == "1000.00"
    assert invoice.reference == "ORD-1"
    assert invoice.metadata == {"cart": 7}
    assert invoice.callback_url == CALLBACK
    assert re.fullmatch(r"[A-Za-z0-9]{15}", invoice.transaction_id)
    history = list(invoice.history.values_list("from_status", "to_status", "source"))
    assert history == [(Status.NEW, Status.PENDING, Source.API)]
    logged = BankMessage.objects.get()
    assert (logged.direction, logged.kind, logged.invoice_id) == (
        Direction.OUTBOUND,
        MessageKind.INVOICE,
        invoice.pk,
    )
    assert (logged.http_status, logged.outcome, logged.endpoint) == (
        200,
        Outcome.OK,
        "/api/invoice",
    )


@pytest.mark.parametrize(
    ("amount", "sent"),
    [
        (Decimal("1000"), "1000.00"),
        ("1000", "1000.00"),
        ("1000.0", "1000.00"),
        (1000, "1000.00"),
        (Decimal("12.5"), "12.50"),
        ("0.01", "0.01"),
        (Decimal("123456789012.34"), "123456789012.34"),
    ],
)
def test_start_payment_hashes_the_exact_amount_text_it_sends(
    fake_bank: FakeBank, amount: Any, sent: str
) -> None:
    fake_bank.invoice()

    invoice = start(amount=amount)

    body = fake_bank.sent("/api/invoice")
    assert body["amount"] == sent == invoice.amount_sent
    assert body["checksum"] == hmac_hex(invoice.transaction_id, sent, "POST", CALLBACK)
    assert invoice.amount == Decimal(sent)


def test_every_payment_attempt_gets_a_fresh_transaction_id_with_the_prefix(
    fake_bank: FakeBank,
) -> None:
    fake_bank.invoice()
    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "TRANSACTION_ID_PREFIX": "SHOP"}):
        first = start()
        second = start()

    assert first.transaction_id != second.transaction_id
    for invoice in (first, second):
        assert invoice.transaction_id.startswith("SHOP")
        assert len(invoice.transaction_id) == 15


def test_socialpay_payment_asks_for_a_deeplink_and_keeps_it(fake_bank: FakeBank) -> None:
    fake_bank.invoice(social_deeplink="socialpay-payment://key=abc")

    invoice = start(method=Method.SOCIALPAY, gen_token=True, return_type="GET", language="en")

    sent = fake_bank.sent("/api/invoice")
    assert (sent["socialDeeplink"], sent["genToken"], sent["returnType"]) == ("Y", "Y", "GET")
    assert sent["checksum"] == hmac_hex(invoice.transaction_id, "1000.00", "GET", CALLBACK)
    assert invoice.social_deeplink == "socialpay-payment://key=abc"
    assert services.payment_url(invoice) == (
        f"https://bank.test/socialpay/en/{invoice.bank_invoice}"
    )


def test_card_payment_url_is_the_banks_lowercase_card_page(fake_bank: FakeBank) -> None:
    fake_bank.invoice()

    invoice = start()

    assert services.payment_url(invoice) == f"https://bank.test/payment/mn/{invoice.bank_invoice}"


def test_bank_refusing_the_invoice_fails_it_and_raises_bank_refused(
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    fake_bank.invoice_refused("returnType is missing.")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(BankRefused):
        start()

    invoice = Invoice.objects.get()
    assert invoice.status == Status.FAILED
    assert invoice.bank_description == "returnType is missing."
    history = list(invoice.history.values_list("from_status", "to_status", "source"))
    assert history == [(Status.NEW, Status.FAILED, Source.API)]
    assert signal_log.names() == ["invoice_status_changed", "payment_failed"]
    logged = BankMessage.objects.get(kind=MessageKind.INVOICE)
    assert (logged.http_status, logged.outcome) == (400, Outcome.ERROR)


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (requests.exceptions.ConnectionError("refused"), BankUnreachable),
        (requests.exceptions.ConnectTimeout("slow"), BankTimeout),
        (requests.exceptions.ReadTimeout("slow"), BankTimeout),
    ],
)
def test_bank_unreachable_while_creating_leaves_the_invoice_new(
    fake_bank: FakeBank, signal_log: SignalRecorder, error: Exception, raised: type
) -> None:
    fake_bank.invoice_down(error)

    with pytest.raises(raised):
        start()

    invoice = Invoice.objects.get()
    assert invoice.status == Status.NEW
    assert invoice.bank_invoice == ""
    assert not StatusChange.objects.exists()
    assert signal_log.received == []
    logged = BankMessage.objects.get(kind=MessageKind.INVOICE)
    assert logged.outcome == Outcome.ERROR
    assert logged.http_status is None
    assert logged.invoice_id == invoice.pk


def test_invoice_answer_with_a_bad_checksum_is_not_trusted(fake_bank: FakeBank) -> None:
    fake_bank.mock.add(
        "POST",
        fake_bank.url("/api/invoice"),
        json={"invoice": "forged", "transactionId": "whatever", "checksum": "0" * 64},
    )

    with pytest.raises(ChecksumMismatch):
        start()

    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.bank_invoice) == (Status.NEW, "")


@pytest.mark.parametrize(
    "amount",
    [0, -5, "0.00", "1,000", "1e3", "1 000", "abc", "", 10.5, Decimal("1.005"), True, None],
)
def test_bad_amount_raises_value_error_and_creates_no_invoice(
    fake_bank: FakeBank, amount: Any
) -> None:
    with pytest.raises(ValueError):
        start(amount=amount)

    assert not Invoice.objects.exists()
    assert len(fake_bank.mock.calls) == 0


@pytest.mark.parametrize("callback_url", ["", "/payments/return/", "ftp://shop.test/return/"])
def test_relative_or_missing_callback_is_refused_before_any_invoice_exists(
    fake_bank: FakeBank, callback_url: str
) -> None:
    with pytest.raises(ValueError, match="callback_url"):
        start(callback_url=callback_url)

    assert not Invoice.objects.exists()
    assert len(fake_bank.mock.calls) == 0


def test_unknown_account_is_refused_before_any_invoice_exists(fake_bank: FakeBank) -> None:
    with pytest.raises(ImproperlyConfigured, match="wholesale"):
        start(account="wholesale")

    assert not Invoice.objects.exists()
    assert len(fake_bank.mock.calls) == 0


# --- refresh ------------------------------------------------------------------------------


def test_refresh_sends_a_signed_inquiry_and_applies_the_paid_answer(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    change = services.refresh(invoice, source=Source.RECONCILE)

    tx = invoice.transaction_id
    assert fake_bank.sent("/api/inquiry") == {"transactionId": tx, "checksum": hmac_hex(tx, tx)}
    assert change.changed
    assert change.result is not None and change.result.error_code == "000"
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert invoice.history.get().source == Source.RECONCILE
    logged = BankMessage.objects.get(kind=MessageKind.INQUIRY)
    assert logged.invoice_id == invoice.pk
    assert logged.transaction_id == tx
    assert json.loads(logged.response)["errorCode"] == "000"


def test_refresh_of_an_id_unknown_to_the_bank_changes_nothing(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_not_found()

    change = services.refresh(invoice, source=Source.RECONCILE)

    assert not change.changed
    assert change.unknown_to_bank
    assert change.reason == "unknown to the bank"
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_refresh_raises_and_changes_nothing_when_the_bank_does_not_answer(
    fake_bank: FakeBank,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_down()

    with pytest.raises(BankTimeout):
        services.refresh(invoice, source=Source.RECONCILE)

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert not StatusChange.objects.exists()


def test_refresh_refuses_an_inquiry_answer_with_a_forged_checksum(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.mock.add(
        "POST",
        fake_bank.url("/api/inquiry"),
        json=result_body(invoice.transaction_id, secret="not-the-merchant-secret"),
    )

    with pytest.raises(ChecksumMismatch):
        services.refresh(invoice, source=Source.RECONCILE)

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_refresh_refuses_an_answer_about_another_transaction(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    other = InvoiceFactory()
    fake_bank.mock.add(
        "POST", fake_bank.url("/api/inquiry"), json=result_body(other.transaction_id)
    )

    with pytest.raises(BadResponse):
        services.refresh(invoice, source=Source.RECONCILE)

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert Invoice.objects.get(pk=other.pk).status == Status.PENDING


def test_refresh_flags_a_paid_answer_for_another_amount(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory(amount=Decimal("1000"))
    fake_bank.inquiry(error_code="000", amount="1.00")

    change = services.refresh(invoice, source=Source.RECONCILE)

    assert not change.changed
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    assert invoice.needs_review
