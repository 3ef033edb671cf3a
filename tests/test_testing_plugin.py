"""The fixtures a shop's own tests use: the sandbox bank in-process and as its own server."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from django.dispatch import Signal
from pytest_django.live_server_helper import LiveServer

from golomt_payments import services
from golomt_payments.models import Invoice, Method, Source, Status
from golomt_payments.sandbox.cards import Behaviour
from golomt_payments.signals import payment_failed, payment_succeeded
from golomt_payments.testing.plugin import SandboxServer
from golomt_payments.testing.sandbox import SandboxBank


def _received(signal: Signal) -> Iterator[list[Invoice]]:
    seen: list[Invoice] = []

    def record(sender: type[Invoice], invoice: Invoice, **kwargs: object) -> None:
        seen.append(invoice)

    signal.connect(record)
    yield seen
    signal.disconnect(record)


@pytest.fixture
def succeeded() -> Iterator[list[Invoice]]:
    yield from _received(payment_succeeded)


@pytest.fixture
def failed() -> Iterator[list[Invoice]]:
    yield from _received(payment_failed)


def test_in_process_sandbox_pays_an_invoice_and_the_shops_receiver_runs_once(
    golomt_sandbox: SandboxBank, succeeded: list[Invoice]
) -> None:
    invoice = golomt_sandbox.start_payment(Decimal("18000"), reference="ORDER-1")
    assert invoice.status == Status.PENDING
    assert invoice.bank_invoice

    payment = golomt_sandbox.pay(invoice)

    assert payment.invoice.status == Status.PAID
    assert [push.http_status for push in payment.pushes] == [200]
    assert payment.redirect is not None and payment.redirect.status_code == 302
    assert [paid.reference for paid in succeeded] == ["ORDER-1"]
    assert payment.invoice.history.get(to_status=Status.PAID).source == Source.PUSH


def test_in_process_sandbox_declined_card_fails_with_the_banks_words(
    golomt_sandbox: SandboxBank, failed: list[Invoice]
) -> None:
    invoice = golomt_sandbox.start_payment(1000)

    payment = golomt_sandbox.pay(invoice, "9496 2500 0000 0011")

    assert payment.invoice.status == Status.FAILED
    assert payment.invoice.bank_code == "300"
    assert payment.invoice.bank_description == "Картын хугацаа дууссан"
    assert [f.pk for f in failed] == [invoice.pk]


def test_in_process_sandbox_lost_push_is_completed_by_the_redirect(
    golomt_sandbox: SandboxBank,
) -> None:
    invoice = golomt_sandbox.start_payment(1000)

    payment = golomt_sandbox.pay(invoice, Behaviour.PUSH_LOST)

    assert payment.pushes == []
    assert payment.invoice.status == Status.PAID
    assert payment.invoice.history.get(to_status=Status.PAID).source == Source.REDIRECT


def test_in_process_sandbox_lost_redirect_is_completed_by_the_push(
    golomt_sandbox: SandboxBank,
) -> None:
    invoice = golomt_sandbox.start_payment(1000, method=Method.SOCIALPAY)

    payment = golomt_sandbox.pay(invoice, Behaviour.REDIRECT_LOST)

    assert payment.redirect is None
    assert payment.invoice.status == Status.PAID


def test_in_process_sandbox_repeated_push_pays_once(
    golomt_sandbox: SandboxBank, succeeded: list[Invoice]
) -> None:
    invoice = golomt_sandbox.start_payment(1000)

    payment = golomt_sandbox.pay(invoice, Behaviour.PUSH_TWICE)

    assert [push.http_status for push in payment.pushes] == [200, 200]
    assert len(succeeded) == 1
    assert invoice.history.filter(to_status=Status.PAID).count() == 1


def test_in_process_sandbox_refuses_an_unknown_card(golomt_sandbox: SandboxBank) -> None:
    invoice = golomt_sandbox.start_payment(1000)

    with pytest.raises(ValueError, match="test cards"):
        golomt_sandbox.pay(invoice, "4111 1111 1111 1111")


_FORM = re.compile(r'<form[^>]*action="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@pytest.mark.django_db(transaction=True)
def test_sandbox_server_fixture_serves_the_bank_in_its_own_process(
    golomt_sandbox_server: SandboxServer, live_server: LiveServer, succeeded: list[Invoice]
) -> None:
    invoice = services.start_payment(
        amount=Decimal("2500"),
        reference="ORDER-2",
        callback_url=f"{live_server.url}/payments/return/",
    )
    assert invoice.bank_invoice
    browser = requests.Session()
    page_url = services.payment_url(invoice)
    assert page_url.startswith(golomt_sandbox_server.base_url)

    form = dict(_HIDDEN.findall(browser.get(page_url, timeout=10).text))  # the CSRF token
    card = {"number": "9496 2500 0000 0003", "expiry": "12/39", "cvv": "123", "holder": "BAT"}
    bank_page = browser.post(page_url, data={**form, **card}, timeout=10)
    assert bank_page.status_code == 200, bank_page.text
    action = html.unescape(_FORM.findall(bank_page.text)[-1])
    fields = {k: html.unescape(v) for k, v in _HIDDEN.findall(bank_page.text)}
    fields.pop("csrfmiddlewaretoken", None)
    back = browser.post(action, data=fields, timeout=10)

    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert back.status_code == 200 and "ORDER-2" in back.text
    assert [paid.pk for paid in succeeded] == [invoice.pk]
