"""The browser coming back from the bank: a hint that makes us ask the bank, nothing more."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.html import escapejs

from golomt_payments.models import BankMessage, Invoice, MessageKind, Outcome, Status
from tests.factories import InvoiceFactory
from tests.helpers import EXPIRED_CARD_DESC, FakeBank, SignalRecorder
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

RETURN = "/payments/return/"


@pytest.fixture
def browser() -> Client:
    """A customer's browser arriving cross-site: CSRF enforced, no session cookie."""
    return Client(enforce_csrf_checks=True)


def come_back(browser: Client, method: str, invoice: Invoice | str, **params: str) -> Any:
    data = {
        "invoice": invoice if isinstance(invoice, str) else invoice.transaction_id,
        "status_code": "000",
        "desc": "Амжилттай",
        **params,
    }
    if method == "GET":
        return browser.get(RETURN, data)
    # As the bank's auto-submitting HTML form sends it.
    return browser.post(RETURN, urlencode(data), content_type="application/x-www-form-urlencoded")


def result_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:result", kwargs={"key": invoice.key})


def redirect_message() -> BankMessage:
    return BankMessage.objects.get(kind=MessageKind.REDIRECT)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_redirect_confirmed_by_inquiry_marks_paid_and_shows_the_result_page(
    browser: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
    method: str,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with django_capture_on_commit_callbacks(execute=True):
        response = come_back(browser, method, invoice)

    assert response.status_code in (302, 303)
    assert response["Location"] == result_url(invoice)
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert len(fake_bank.calls("/api/inquiry")) == 1
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    assert signal_log.received[0][2]["source"] == "redirect"
    message = redirect_message()
    assert message.outcome == Outcome.PROCESSED
    assert message.invoice_id == invoice.pk
    assert "status_code=000" in message.body
    page = browser.get(response["Location"])
    assert page.status_code == 200
    assert "Payment received" in page.content.decode()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_paid_redirect_goes_to_the_shops_success_url_with_its_reference(
    browser: Client, fake_bank: FakeBank, method: str
) -> None:
    invoice = InvoiceFactory(reference="ORD 42/7")
    fake_bank.inquiry(error_code="000")

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "SUCCESS_URL": "/orders/{reference}/thanks/"}
    ):
        response = come_back(browser, method, invoice)

    assert response.status_code in (302, 303)
    assert response["Location"] == "/orders/ORD%2042%2F7/thanks/"


def test_success_url_on_an_allowed_foreign_host_is_followed(
    browser: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory(reference="A1")
    fake_bank.inquiry(error_code="000")

    with override_settings(
        GOLOMT_PAYMENTS={
            **GOLOMT_PAYMENTS,
            "SUCCESS_URL": "https://www.shop.example/done/{reference}",
            "ALLOWED_REDIRECT_HOSTS": ["www.shop.example"],
        }
    ):
        response = come_back(browser, "GET", invoice)

    assert response["Location"] == "https://www.shop.example/done/A1"


@pytest.mark.parametrize(
    "success_url",
    [
        "https://evil.example/done/{reference}",
        "//evil.example/done/{reference}",
        "javascript:alert(1)//{reference}",
    ],
)
def test_success_url_on_a_host_not_allowed_falls_back_to_the_result_page(
    browser: Client, fake_bank: FakeBank, success_url: str
) -> None:
    invoice = InvoiceFactory(reference="A1")
    fake_bank.inquiry(error_code="000")

    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "SUCCESS_URL": success_url}):
        response = come_back(browser, "GET", invoice)

    assert response["Location"] == result_url(invoice)
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_redirect_does_not_mark_paid(
    browser: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
    method: str,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)  # the bank: not paid, errorCode null

    with django_capture_on_commit_callbacks(execute=True):
        response = come_back(browser, method, invoice, status_code="000")

    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    assert not invoice.history.exists()
    assert signal_log.received == []
    assert response["Location"] == result_url(invoice)
    assert redirect_message().outcome == Outcome.UNCHANGED
    page = browser.get(response["Location"])
    assert "Confirming your payment" in page.content.decode()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_declined_payment_fails_the_invoice_and_shows_the_banks_text(
    browser: Client, fake_bank: FakeBank, method: str
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="300", error_desc=EXPIRED_CARD_DESC)

    response = come_back(browser, method, invoice, status_code="300", desc="whatever")

    invoice.refresh_from_db()
    assert invoice.status == Status.FAILED
    assert invoice.bank_code == "300"
    assert invoice.bank_description == EXPIRED_CARD_DESC
    page = browser.get(response["Location"])
    assert page.status_code == 200
    content = page.content.decode()
    assert "Payment not completed" in content
    assert EXPIRED_CARD_DESC in content
    assert "whatever" not in content  # the redirect's own text is not shown as the bank's


def test_declined_payment_goes_to_the_shops_failure_url(
    browser: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory(reference="ORD-9")
    fake_bank.inquiry(error_code="300")

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "FAILURE_URL": "/orders/{reference}/retry/"}
    ):
        response = come_back(browser, "POST", invoice, status_code="300")

    assert response["Location"] == "/orders/ORD-9/retry/"


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"invoice": "UNKNOWN00000001"}, id="unknown"),
        pytest.param({"invoice": ""}, id="empty"),
        pytest.param({}, id="missing"),
        pytest.param({"invoice": "abcdefghijklmnop"}, id="too-long"),
        pytest.param({"invoice": "abc-123"}, id="punctuation"),
        pytest.param({"invoice": "1' OR '1'='1"}, id="sql"),
        pytest.param({"invoice": "Инвойс12"}, id="not-ascii"),  # noqa: RUF001
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_or_malformed_invoice_param_gives_400_and_is_logged_rejected(
    browser: Client, fake_bank: FakeBank, params: dict[str, str], method: str
) -> None:
    InvoiceFactory()
    data = {"status_code": "000", **params}

    response = browser.get(RETURN, data) if method == "GET" else browser.post(RETURN, data)

    assert response.status_code == 400
    assert "We could not find this payment" in response.content.decode()
    message = redirect_message()
    assert message.outcome == Outcome.REJECTED
    assert message.invoice_id is None
    assert message.error
    assert len(fake_bank.mock.calls) == 0
    assert not Invoice.objects.exclude(status=Status.PENDING).exists()


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectTimeout("timed out"),
        requests.exceptions.ReadTimeout("timed out"),
        requests.exceptions.ConnectionError("refused"),
    ],
)
def test_bank_timeout_during_redirect_leaves_pending_and_shows_the_confirming_page(
    browser: Client, fake_bank: FakeBank, signal_log: SignalRecorder, error: Exception
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_down(error)

    response = come_back(browser, "POST", invoice)

    assert response["Location"] == result_url(invoice)
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    assert not invoice.history.exists()
    message = redirect_message()
    assert message.outcome == Outcome.FAILED
    assert message.invoice_id == invoice.pk
    page = browser.get(response["Location"])
    assert page.status_code == 200
    content = page.content.decode()
    assert "Confirming your payment" in content
    status_url = reverse("golomt_payments:status", kwargs={"key": invoice.key})
    assert escapejs(status_url) in content  # the page's script polls the status endpoint
    assert signal_log.received == []


def test_redirect_with_other_http_methods_is_refused(browser: Client) -> None:
    assert browser.put(RETURN).status_code == 405
    assert browser.delete(RETURN).status_code == 405


def test_redirect_log_keeps_no_cookie_or_authorization_header(
    fake_bank: FakeBank,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    browser = Client(enforce_csrf_checks=True, headers={"Authorization": "Bearer leak-me"})
    browser.cookies["sessionid"] = "cookie-leak-me"

    browser.post(RETURN, {"invoice": invoice.transaction_id, "status_code": "000"})

    stored = redirect_message()
    names = {name.lower() for name in stored.headers}
    assert "authorization" not in names
    assert "cookie" not in names
    assert "leak-me" not in str(stored.headers)


def test_repeated_redirect_changes_the_invoice_once(
    browser: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The customer reloads the bank's POST back: one payment, one history row."""
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    with django_capture_on_commit_callbacks(execute=True):
        first = come_back(browser, "POST", invoice)
        second = come_back(browser, "POST", invoice)

    assert first["Location"] == second["Location"] == result_url(invoice)
    assert invoice.history.count() == 1
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    outcomes = list(
        BankMessage.objects.filter(kind=MessageKind.REDIRECT)
        .order_by("pk")
        .values_list("outcome", flat=True)
    )
    assert outcomes == [Outcome.PROCESSED, Outcome.UNCHANGED]


def test_the_banks_text_is_escaped_on_the_failure_page(
    browser: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="999", error_desc="<script>alert(1)</script>")

    response = come_back(browser, "GET", invoice, status_code="999")
    page = browser.get(response["Location"]).content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_redirect_for_a_paid_invoice_does_not_ask_the_bank(
    browser: Client, fake_bank: FakeBank
) -> None:
    """The push won the race: the customer's return costs no bank call."""
    invoice = InvoiceFactory(paid=True)

    response = come_back(browser, "POST", invoice)

    assert response["Location"] == result_url(invoice)
    assert len(fake_bank.mock.calls) == 0
    assert BankMessage.objects.get(kind=MessageKind.REDIRECT).outcome == Outcome.UNCHANGED
