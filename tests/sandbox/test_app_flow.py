"""The payment app against the sandbox, end to end over real HTTP (without a browser).

The test client plays the customer's browser; ``live_server`` serves both the shop's push and
return views and the sandbox API the app calls. Pushes are sent synchronously, so every race
the real bank causes here happens in a fixed order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from golomt_payments.checkout import sign_checkout
from golomt_payments.models import BankMessage, Invoice, MessageKind, Source, Status
from golomt_payments.sandbox.models import PushDelivery, PushState
from golomt_payments.signals import payment_failed, payment_succeeded
from tests.sandbox.conftest import MOUNT, SECRET, TOKEN, Configure
from tests.sandbox.helpers import return_form

pytestmark = pytest.mark.django_db(transaction=True)

Signals = dict[str, list[Invoice]]


@pytest.fixture
def shop(settings: Settings, live_server: LiveServer, configure_sandbox: Configure) -> str:
    """The app pointed at the sandbox in ``live_server``, and the sandbox pushing back to it."""
    settings.GOLOMT_PAYMENTS = {
        "BEARER_TOKEN": TOKEN,
        "SECRET": SECRET,
        "BASE_URL": live_server.url + MOUNT,
        "CALLBACK_BASE_URL": live_server.url,
        "READ_RETRIES": 0,
    }
    configure_sandbox(PUSH_MODE="sync", PUSH_URL=live_server.url + "/payments/push/")
    cache.clear()  # the status view's once-per-interval guard is keyed by invoice pk
    return live_server.url


@pytest.fixture
def signals() -> Iterator[Signals]:
    seen: Signals = {"succeeded": [], "failed": []}

    def succeeded(sender: type[Invoice], invoice: Invoice, **kwargs: Any) -> None:
        seen["succeeded"].append(invoice)

    def failed(sender: type[Invoice], invoice: Invoice, **kwargs: Any) -> None:
        seen["failed"].append(invoice)

    payment_succeeded.connect(succeeded, sender=Invoice)
    payment_failed.connect(failed, sender=Invoice)
    yield seen
    payment_succeeded.disconnect(succeeded, sender=Invoice)
    payment_failed.disconnect(failed, sender=Invoice)


def start(client: Client, reference: str, amount: str = "18000.00", method: str = "payment") -> str:
    """Press Pay on the shop's checkout form; returns the sandbox page's path."""
    answer = client.post(
        "/payments/checkout/",
        {
            "payload": sign_checkout(amount=amount, reference=reference),
            "method": method,
            "lang": "en",
        },
    )
    assert answer.status_code == 303, answer.content
    return urlsplit(answer["Location"]).path


def pay(client: Client, page: str, card: str = "9496 2500 0000 0003") -> Any:
    return client.post(page, {"number": card, "expiry": "12/39", "cvv": "123", "holder": "Bat"})


def come_back(client: Client, bank_page: Any) -> Any:
    """Submit the bank's auto-submitting return form (returnType POST) to the shop."""
    form = return_form(bank_page.content.decode())
    return client.post(urlsplit(form.action).path, form.fields)


def test_card_payment_is_paid_by_the_push_and_confirmed_by_the_redirect(
    client: Client, shop: str, signals: Signals
) -> None:
    page = start(client, "ORDER1")

    bank_page = pay(client, page)

    invoice = Invoice.objects.get(reference="ORDER1")
    assert invoice.status == Status.PAID  # the synchronous push came first
    assert invoice.amount_sent == "18000.00"  # the sandbox echoed "18000": compared as numbers
    assert invoice.card_number == "949625******0003"
    assert invoice.history.get(to_status=Status.PAID).source == Source.PUSH
    assert PushDelivery.objects.get().state == PushState.DELIVERED

    back = come_back(client, bank_page)

    assert back.status_code == 302
    result = client.get(back["Location"])
    assert result.status_code == 200
    assert [paid.reference for paid in signals["succeeded"]] == ["ORDER1"]


def test_declined_card_fails_the_invoice_with_the_banks_words(
    client: Client, shop: str, signals: Signals
) -> None:
    page = start(client, "ORDER2")

    come_back(client, pay(client, page, "9496 2500 0000 0011"))

    invoice = Invoice.objects.get(reference="ORDER2")
    assert invoice.status == Status.FAILED
    assert invoice.bank_code == "300"
    assert invoice.bank_description == "Картын хугацаа дууссан"
    assert [failed.reference for failed in signals["failed"]] == ["ORDER2"]
    assert signals["succeeded"] == []


def test_push_and_redirect_both_lost_are_caught_by_the_status_check(
    client: Client, shop: str, signals: Signals
) -> None:
    page = start(client, "ORDER3")

    bank_page = pay(client, page, "9496 2500 0000 0060")

    assert "The bank page was closed" in bank_page.content.decode()
    invoice = Invoice.objects.get(reference="ORDER3")
    assert invoice.status == Status.PENDING

    status = client.get(f"/payments/status/{invoice.key}/").json()

    assert status["paid"] is True
    assert len(signals["succeeded"]) == 1


def test_push_sent_twice_pays_once(client: Client, shop: str, signals: Signals) -> None:
    page = start(client, "ORDER4")

    come_back(client, pay(client, page, "9496 2500 0000 0045"))

    assert BankMessage.objects.filter(kind=MessageKind.PUSH).count() == 2
    assert [state for (state,) in PushDelivery.objects.values_list("state")] == [
        PushState.DELIVERED,
        PushState.DELIVERED,
    ]
    assert len(signals["succeeded"]) == 1


def test_push_the_shop_cannot_confirm_is_answered_503_and_the_redirect_pays(
    client: Client, shop: str, configure_sandbox: Configure, signals: Signals
) -> None:
    configure_sandbox(PUSH_MODE="sync", PUSH_URL=shop + "/payments/push/", FAILING_INQUIRY_COUNT=1)
    page = start(client, "ORDER5")

    bank_page = pay(client, page, "9496 2500 0000 0078")

    push = PushDelivery.objects.get()
    assert (push.state, push.http_status) == (PushState.FAILED, 503)
    assert Invoice.objects.get(reference="ORDER5").status == Status.PENDING

    come_back(client, bank_page)

    assert Invoice.objects.get(reference="ORDER5").status == Status.PAID
    assert len(signals["succeeded"]) == 1


def test_socialpay_checkout_opens_the_socialpay_page(
    client: Client, shop: str, signals: Signals
) -> None:
    ours = start(client, "ORDER6", method="socialpay")
    invoice = Invoice.objects.get(reference="ORDER6")
    assert ours == f"/payments/socialpay/{invoice.key}/"
    assert invoice.social_deeplink.startswith("socialpay-payment://")
    shown = client.get(ours).content.decode()
    assert f'href="{invoice.social_deeplink}"' in shown
    hosted = re.search(r'href="([^"]+)" data-hosted', shown)
    assert hosted is not None
    page = urlsplit(hosted.group(1)).path
    assert page.startswith(f"{MOUNT}/socialpay/en/")

    come_back(client, client.post(page, {"action": "approve"}))

    assert Invoice.objects.get(reference="ORDER6").status == Status.PAID
