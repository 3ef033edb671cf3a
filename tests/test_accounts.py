"""Several merchant contracts: each invoice talks to its own account's bank URL with its keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

from golomt_payments import services
from golomt_payments.gateway import ChecksumMismatch
from golomt_payments.models import Invoice, Source, Status
from tests.factories import InvoiceFactory
from tests.helpers import BASE_URL, BEARER, SECRET, FakeBank, hmac_hex, push_body

pytestmark = pytest.mark.django_db

OTHER_BASE = "https://wholesale.bank.test:8443"
OTHER_SECRET = "wholesale-hmac-secret"
OTHER_BEARER = "wholesale-bearer-token"
CALLBACK = "https://shop.test/payments/return/"

TWO_ACCOUNTS = {
    "ACCOUNTS": {
        "default": {"BEARER_TOKEN": BEARER, "SECRET": SECRET, "BASE_URL": BASE_URL},
        "wholesale": {
            "BEARER_TOKEN": OTHER_BEARER,
            "SECRET": OTHER_SECRET,
            "BASE_URL": OTHER_BASE,
        },
    },
    "CALLBACK_BASE_URL": "https://shop.test",
    "READ_RETRIES": 0,
}


@pytest.fixture(autouse=True)
def two_accounts() -> Iterator[None]:
    with override_settings(GOLOMT_PAYMENTS=TWO_ACCOUNTS):
        yield


@pytest.fixture
def other_bank(fake_bank: FakeBank) -> FakeBank:
    return FakeBank(fake_bank.mock, base_url=OTHER_BASE, secret=OTHER_SECRET)


def test_invoice_is_created_at_its_accounts_bank_with_its_secret_and_token(
    fake_bank: FakeBank, other_bank: FakeBank
) -> None:
    other_bank.invoice()

    invoice = services.start_payment(amount="1000", callback_url=CALLBACK, account="wholesale")

    assert invoice.account == "wholesale"
    assert invoice.status == Status.PENDING
    assert len(fake_bank.calls("/api/invoice")) == 0
    call = other_bank.calls("/api/invoice")[0]
    assert call.request.headers["Authorization"] == f"Bearer {OTHER_BEARER}"
    sent = json.loads(call.request.body)
    assert sent["checksum"] == hmac_hex(
        invoice.transaction_id, "1000.00", "POST", CALLBACK, secret=OTHER_SECRET
    )
    assert services.payment_url(invoice).startswith(f"{OTHER_BASE}/payment/mn/")


def test_default_account_still_uses_the_default_bank(
    fake_bank: FakeBank, other_bank: FakeBank
) -> None:
    fake_bank.invoice()

    invoice = services.start_payment(amount="1000", callback_url=CALLBACK)

    assert invoice.account == "default"
    assert len(other_bank.calls("/api/invoice")) == 0
    assert fake_bank.sent("/api/invoice")["checksum"] == hmac_hex(
        invoice.transaction_id, "1000.00", "POST", CALLBACK
    )


def test_inquiry_goes_to_the_invoices_account_and_is_verified_with_its_secret(
    fake_bank: FakeBank, other_bank: FakeBank
) -> None:
    invoice = InvoiceFactory(account="wholesale")
    other_bank.inquiry(error_code="000")

    change = services.refresh(invoice, source=Source.RECONCILE)

    assert change.changed
    assert len(fake_bank.calls("/api/inquiry")) == 0
    call = other_bank.calls("/api/inquiry")[0]
    assert call.request.headers["Authorization"] == f"Bearer {OTHER_BEARER}"
    tx = invoice.transaction_id
    assert json.loads(call.request.body)["checksum"] == hmac_hex(tx, tx, secret=OTHER_SECRET)


def test_inquiry_answer_signed_with_another_accounts_secret_is_refused(
    fake_bank: FakeBank, other_bank: FakeBank
) -> None:
    invoice = InvoiceFactory(account="wholesale")
    FakeBank(fake_bank.mock, base_url=OTHER_BASE, secret=SECRET).inquiry(error_code="000")

    with pytest.raises(ChecksumMismatch):
        services.refresh(invoice, source=Source.RECONCILE)

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def send_push(body: dict[str, Any]) -> Any:
    return Client().post("/payments/push/", data=json.dumps(body), content_type="application/json")


def test_push_is_verified_with_the_secret_of_the_invoices_account(
    fake_bank: FakeBank, other_bank: FakeBank
) -> None:
    invoice = InvoiceFactory(account="wholesale")
    other_bank.inquiry(error_code="000")

    response = send_push(push_body(invoice.transaction_id, secret=OTHER_SECRET))

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    assert len(other_bank.calls("/api/inquiry")) == 1
    assert len(fake_bank.calls("/api/inquiry")) == 0


def test_push_signed_with_another_accounts_secret_is_rejected(
    fake_bank: FakeBank, other_bank: FakeBank
) -> None:
    wholesale = InvoiceFactory(account="wholesale")
    retail = InvoiceFactory(account="default")

    wrong_for_wholesale = send_push(push_body(wholesale.transaction_id, secret=SECRET))
    wrong_for_retail = send_push(push_body(retail.transaction_id, secret=OTHER_SECRET))

    assert (wrong_for_wholesale.status_code, wrong_for_retail.status_code) == (400, 400)
    assert set(Invoice.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert len(fake_bank.mock.calls) == 0
