"""Drive the sandbox bank from a shop's own tests, in-process, with the app's real client.

Needs ``golomt_payments.sandbox`` in the test settings' ``INSTALLED_APPS`` (its tables hold the
bank's side); the shop's URLconf needs nothing new. Use it through the ``golomt_sandbox``
pytest fixture, or as a context manager.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import requests
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpResponse
from django.test import Client, TestCase, override_settings
from django.urls import reverse

from golomt_payments import services
from golomt_payments.models import CardRegistration, CardToken, Invoice, Method, ReturnType
from golomt_payments.sandbox import services as bank_services
from golomt_payments.sandbox.cards import TEST_CARDS, Behaviour, SandboxCard, by_behaviour
from golomt_payments.sandbox.models import Kind, PushDelivery
from golomt_payments.sandbox.pages import return_params, return_url
from golomt_payments.testing.transport import (
    InProcessAdapter,
    route,
    sandbox_responder,
    shop_responder,
)

BANK_URL = "http://golomt-sandbox.test/bank"
SHOP_URL = "http://shop.test"
BEARER_TOKEN = "in-process-sandbox-token"  # noqa: S105 - a test double's credential
SECRET = "in-process-sandbox-secret"  # noqa: S105
MERCHANT_ID = "000000000000001"
SETTLEMENT_TOKEN = "in-process-settlement-token"  # noqa: S105


@dataclass
class Payment:
    """What happened when the customer paid: the invoice as the shop now sees it, the pushes
    the bank sent (with the shop's answers), and the shop's answer to the browser's return.

    ``app_link``: for a ``MOBILE`` invoice, the deeplink the bank opened in the shop's app
    (the callback with ``invoice``, ``status_code`` and ``desc``); no browser comes back then.
    """

    invoice: Invoice
    pushes: list[PushDelivery] = field(default_factory=list)
    redirect: HttpResponse | None = None
    app_link: str = ""


@dataclass
class CardConfirmation:
    """What happened when the customer saved a card on the bank's page: the registration as
    the shop now sees it, its card (``None`` unless saved), and the shop's answer to the
    browser's return."""

    registration: CardRegistration
    card: CardToken | None
    redirect: HttpResponse | None = None


class SandboxBank:
    """The bank's side of a payment, played in-process.

    ``browser`` is a Django test client standing for the customer; ``pay`` presses the bank's
    Pay button with one of the test cards and lets the push and the redirect follow, as the
    card's behaviour says. ``start_card_registration`` and ``confirm_card`` do the same for
    adding a card without buying.
    """

    def __init__(self, browser: Client | None = None) -> None:
        self.browser = browser or Client()
        self.base_url = BANK_URL
        self.shop_url = SHOP_URL

    # --- the shop's side ------------------------------------------------------------------

    def start_payment(
        self,
        amount: Decimal | int | str = Decimal("1000"),
        *,
        reference: str = "",
        method: str = Method.CARD,
        **kwargs: Any,
    ) -> Invoice:
        """Start a payment as the shop's checkout would; the bank answers from the sandbox."""
        return services.start_payment(
            amount=amount,
            reference=reference,
            method=method,
            callback_url=self.shop_url + reverse("golomt_payments:return"),
            **kwargs,
        )

    def start_card_registration(self, owner: AbstractBaseUser, **kwargs: Any) -> CardRegistration:
        """Start adding a card without buying, as the shop's "Add a card" button would."""
        return services.start_card_registration(
            owner,
            callback_url=self.shop_url + reverse("golomt_payments:card_return"),
            **kwargs,
        )

    # --- the customer at the bank ---------------------------------------------------------

    def pay(
        self,
        invoice: Invoice,
        card: str | Behaviour = Behaviour.SUCCESS,
        *,
        holder: str = "TEST CARDHOLDER",
    ) -> Payment:
        """Pay ``invoice`` on the bank's page with a test card (a number or a behaviour).

        Every push the card causes (none, one, or two) is delivered before this returns.
        """
        chosen = _card(card)
        tx = bank_services.find(invoice.transaction_id, Kind.PAYMENT)
        with TestCase.captureOnCommitCallbacks(execute=True):
            tx = bank_services.complete(
                tx,
                behaviour=chosen.behaviour,
                card_number=chosen.number,
                card_holder=holder,
                via="socialpay" if invoice.method == Method.SOCIALPAY else "card",
            )
        pushes = list(PushDelivery.objects.filter(transaction=tx).order_by("pk"))
        redirect, app_link = None, ""
        if chosen.behaviour.redirects and invoice.return_type == ReturnType.MOBILE:
            app_link = return_url(tx)
        elif chosen.behaviour.redirects:
            redirect = self.come_back(invoice)
        invoice.refresh_from_db()
        return Payment(invoice, pushes, redirect, app_link)

    def come_back(self, invoice: Invoice) -> HttpResponse:
        """The customer's browser returning to the shop, by the invoice's return type."""
        if invoice.return_type == ReturnType.MOBILE:
            raise ValueError("a MOBILE payment returns to the app's deeplink, not to the shop")
        tx = bank_services.find(invoice.transaction_id, Kind.PAYMENT)
        params = return_params(tx)
        path = urlsplit(invoice.callback_url).path
        with TestCase.captureOnCommitCallbacks(execute=True):
            if invoice.return_type == ReturnType.GET:
                response = self.browser.get(f"{path}?{urlencode(params)}")
            else:
                response = self.browser.post(
                    path, urlencode(params), content_type="application/x-www-form-urlencoded"
                )
        return cast(HttpResponse, response)

    def confirm_card(
        self,
        registration: CardRegistration,
        card: str | Behaviour = Behaviour.SUCCESS,
        *,
        holder: str = "TEST CARDHOLDER",
    ) -> CardConfirmation:
        """Save a card on the bank's card-saving page with a test card; the browser then comes
        back to the shop's card return view (unless the card loses the redirect)."""
        chosen = _card(card)
        tx = bank_services.find(registration.transaction_id, Kind.CONFIRMATION)
        with TestCase.captureOnCommitCallbacks(execute=True):
            tx = bank_services.complete(
                tx,
                behaviour=chosen.behaviour,
                card_number=chosen.number,
                card_holder=holder,
                via="confirmation",
            )
        redirect = None
        if chosen.behaviour.redirects:
            params = return_params(tx)
            path = urlsplit(registration.callback_url).path
            with TestCase.captureOnCommitCallbacks(execute=True):
                if tx.return_type == ReturnType.GET:
                    response = self.browser.get(f"{path}?{urlencode(params)}")
                else:
                    response = self.browser.post(
                        path, urlencode(params), content_type="application/x-www-form-urlencoded"
                    )
            redirect = cast(HttpResponse, response)
        registration.refresh_from_db()
        return CardConfirmation(registration, registration.card_token, redirect)


def _card(card: str | Behaviour) -> SandboxCard:
    if isinstance(card, Behaviour):
        return by_behaviour(card)
    digits = card.replace(" ", "")
    for known in TEST_CARDS:
        if known.number == digits:
            return known
    raise ValueError(f"{card!r} is not one of the sandbox's test cards")


@contextlib.contextmanager
def in_process_sandbox(browser: Client | None = None) -> Iterator[SandboxBank]:
    """Point the app at an in-process sandbox bank for the duration of the block."""
    bank = SandboxBank(browser)
    golomt = {
        "BEARER_TOKEN": BEARER_TOKEN,
        "SECRET": SECRET,
        "BASE_URL": BANK_URL,
        "MERCHANT_ID": MERCHANT_ID,
        "SETTLEMENT_TOKEN": SETTLEMENT_TOKEN,
        "CALLBACK_BASE_URL": SHOP_URL,
        "READ_RETRIES": 0,
    }
    sandbox = {
        "BEARER_TOKEN": BEARER_TOKEN,
        "SECRET": SECRET,
        "PUSH_URL": SHOP_URL + reverse("golomt_payments:push"),
        "PUSH_MODE": "sync",
    }
    routes = {
        BANK_URL: InProcessAdapter(sandbox_responder(urlsplit(BANK_URL).path)),
        SHOP_URL: InProcessAdapter(shop_responder()),
    }
    original = requests.Session.get_adapter
    requests.Session.get_adapter = route(routes)  # type: ignore[method-assign]
    try:
        with override_settings(GOLOMT_PAYMENTS=golomt, GOLOMT_SANDBOX=sandbox):
            yield bank
    finally:
        requests.Session.get_adapter = original  # type: ignore[method-assign]
