"""The confirming page's JSON status: by unguessable key, asking the bank at most once per
interval per invoice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from golomt_payments.models import Invoice, Source, Status
from tests.factories import InvoiceFactory
from tests.helpers import Clock, FakeBank
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db


def status_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:status", kwargs={"key": invoice.key})


def poll(client: Client, invoice: Invoice) -> Any:
    response = client.get(status_url(invoice))
    assert response.status_code == 200
    return response


def test_status_asks_the_bank_and_reports_a_final_paid_invoice_with_the_next_url(
    client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    response = poll(client, invoice)

    assert response.json() == {
        "status": "paid",
        "paid": True,
        "final": True,
        "description": "Амжилттай",
        "next": reverse("golomt_payments:result", kwargs={"key": invoice.key}),
    }
    assert response["Cache-Control"] == "no-store"
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert invoice.history.get().source == Source.STATUS


def test_status_next_url_is_the_shops_success_url_when_set(
    client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory(reference="ORD-3")
    fake_bank.inquiry(error_code="000")

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "SUCCESS_URL": "/orders/{reference}/"}
    ):
        response = poll(client, invoice)

    assert response.json()["next"] == "/orders/ORD-3/"


def test_status_of_an_unpaid_invoice_is_not_final(client: Client, fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)

    data = poll(client, invoice).json()

    assert (data["status"], data["paid"], data["final"], data["next"]) == (
        "pending",
        False,
        False,
        None,
    )


def test_status_asks_the_bank_at_most_once_per_interval_per_invoice(
    client: Client, fake_bank: FakeBank, clock: Clock
) -> None:
    invoice = InvoiceFactory()
    other = InvoiceFactory()
    fake_bank.inquiry(error_code=None)

    for _ in range(5):
        poll(client, invoice)
    poll(client, other)
    poll(client, other)

    asked = [call.request.body for call in fake_bank.calls("/api/inquiry")]
    assert len(asked) == 2
    assert invoice.transaction_id.encode() in asked[0]
    assert other.transaction_id.encode() in asked[1]

    clock.offset = 4  # the default interval is 5 seconds
    poll(client, invoice)
    assert len(fake_bank.calls("/api/inquiry")) == 2

    clock.offset = 6
    poll(client, invoice)
    poll(client, invoice)
    assert len(fake_bank.calls("/api/inquiry")) == 3


def test_status_check_interval_is_a_setting(
    client: Client, fake_bank: FakeBank, clock: Clock
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "STATUS_CHECK_INTERVAL_SECONDS": 30}
    ):
        poll(client, invoice)
        clock.offset = 20
        poll(client, invoice)
        clock.offset = 31
        poll(client, invoice)

    assert len(fake_bank.calls("/api/inquiry")) == 2


@pytest.mark.parametrize("trait", ["paid", "failed", "expired"])
def test_status_of_a_closed_invoice_never_asks_the_bank(
    client: Client, fake_bank: FakeBank, trait: str
) -> None:
    invoice = InvoiceFactory(**{trait: True})
    # Past its page timer: a declined card can no longer try again on the bank's page.
    Invoice.objects.filter(pk=invoice.pk).update(created_at=timezone.now() - timedelta(minutes=13))

    data = poll(client, invoice).json()

    assert data["final"] is True
    assert data["status"] == trait
    assert data["next"] == reverse("golomt_payments:result", kwargs={"key": invoice.key})
    assert len(fake_bank.mock.calls) == 0


def test_status_of_a_declined_invoice_whose_page_is_still_open_asks_the_bank(
    client: Client, fake_bank: FakeBank
) -> None:
    """A declined card may try again on the same bank page while its timer runs: a payment
    made there whose push and redirect are lost is still found by the page's polling."""
    invoice = InvoiceFactory(failed=True)
    fake_bank.inquiry(error_code="000")

    data = poll(client, invoice).json()

    assert (data["status"], data["paid"], data["final"]) == ("paid", True, True)
    assert len(fake_bank.calls("/api/inquiry")) == 1


def test_status_stays_pending_when_the_bank_does_not_answer(
    client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_down()

    data = poll(client, invoice).json()

    assert (data["status"], data["final"]) == ("pending", False)
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_status_and_result_are_addressed_by_key_not_by_sequential_id(
    client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()

    assert client.get(f"/payments/status/{invoice.pk}/").status_code == 404
    assert client.get(f"/payments/result/{invoice.pk}/").status_code == 404
    assert client.get(f"/payments/status/{invoice.transaction_id}/").status_code == 404
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/payments/status/{unknown}/").status_code == 404
    assert client.get(f"/payments/result/{unknown}/").status_code == 404
    assert len(fake_bank.mock.calls) == 0


def test_status_only_answers_get(client: Client) -> None:
    invoice = InvoiceFactory()

    assert client.post(status_url(invoice)).status_code == 405


@pytest.mark.parametrize(
    ("trait", "text"),
    [
        ({}, "Confirming your payment"),
        ({"paid": True}, "Payment received"),
        ({"failed": True}, "Payment not completed"),
        ({"expired": True}, "The payment time ran out"),
    ],
)
def test_result_page_shows_the_invoices_state(
    client: Client, trait: dict[str, bool], text: str
) -> None:
    invoice = InvoiceFactory(**trait)

    response = client.get(reverse("golomt_payments:result", kwargs={"key": invoice.key}))

    assert response.status_code == 200
    assert text in response.content.decode()


def test_result_pages_speak_mongolian_when_the_language_is_mn(client: Client) -> None:
    invoice = InvoiceFactory(paid=True)
    url = reverse("golomt_payments:result", kwargs={"key": invoice.key})
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="mn")

    assert "Төлбөр хүлээн авлаа" in response.content.decode()


def test_result_page_shows_the_amount_grouped_without_empty_decimals(client: Client) -> None:
    invoice = InvoiceFactory(paid=True, amount=Decimal("1800000.00"), amount_sent="1800000.00")

    page = client.get(reverse("golomt_payments:result", kwargs={"key": invoice.key}))

    assert "1,800,000 ₮" in page.content.decode()
