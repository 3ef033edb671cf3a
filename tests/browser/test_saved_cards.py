"""A logged-in customer in a real browser: saves a card while paying, pays again with it in one
click, adds a card without buying, and deletes one."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, expect

from golomt_payments.models import (
    CardRegistration,
    CardToken,
    Invoice,
    Method,
    RegistrationStatus,
    Status,
)
from golomt_payments.sandbox.models import Kind
from golomt_payments.sandbox.models import Transaction as BankTransaction
from tests.browser.conftest import SCREENSHOTS, Shop
from tests.browser.test_payment_flows import (
    SUCCESS_CARD,
    expect_result_page,
    future_expiry,
    pay_by_card,
)
from tests.helpers import CardSignalRecorder, SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)

#: A second test card (it loses the push, which the card-saving flow never sends anyway).
SECOND_CARD = "9496 2500 0000 0029"

Step = Callable[[Page, str], Path]


@pytest.fixture
def card_signals() -> Any:
    recorder = CardSignalRecorder()
    recorder.connect()
    yield recorder
    recorder.disconnect()


@pytest.fixture
def step(request: pytest.FixtureRequest) -> Step:
    """Save a page as ``artifacts/screenshots/<test name>.<n>-<what>.png``, one per step."""

    def take(tab: Page, what: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        done = len(list(SCREENSHOTS.glob(f"{request.node.name}.*-*.png")))
        path = SCREENSHOTS / f"{request.node.name}.{done + 1}-{what}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    for old in SCREENSHOTS.glob(f"{request.node.name}.*-*.png"):
        old.unlink()
    return take


def log_in(page: Page, shop: Shop, django_user_model: Any) -> Any:
    """A shop customer, logged in: the test client's session cookie, given to the browser."""
    user = django_user_model.objects.create_user("bat", password="not-used")
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": shop.url}]
    )
    return user


def test_customer_saves_a_card_pays_with_it_in_one_click_adds_another_and_deletes_one(
    page: Page,
    shop: Shop,
    django_user_model: Any,
    signal_log: SignalRecorder,
    card_signals: CardSignalRecorder,
    step: Step,
) -> None:
    customer = log_in(page, shop, django_user_model)

    # 1. Pay by card with "Save this card" ticked: the bank's page, then the success page.
    page.goto(shop.checkout_url("BR-SAVE-1") + "&save_card=1")
    page.get_by_label("Card", exact=True).check()
    page.get_by_label("Save this card for next time").check()
    step(page, "save-ticked")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    page.wait_for_url(re.compile(r"/sandbox-bank/payment/en/[0-9a-f-]+$"))
    first = Invoice.objects.get(reference="BR-SAVE-1")
    pay_by_card(page, SUCCESS_CARD)
    expect_result_page(page, shop, first, Status.PAID)
    shop.settle()  # the push may still be on its way; it must not save the card again
    card = CardToken.objects.get()
    first.refresh_from_db()
    assert (card.owner_id, card.card_number, card.is_active) == (
        customer.pk,
        "949625******0003",
        True,
    )
    assert (first.owner_id, first.gen_token, first.card_token_id) == (customer.pk, True, card.pk)
    assert card_signals.names() == ["card_saved"]

    # 2. The next order: the saved card is offered first, and one click pays, no bank page.
    page.goto(shop.checkout_url("BR-SAVED-2", amount="25000"))
    expect(page.get_by_label("Saved card", exact=True)).to_be_checked()
    expect(page.get_by_label("Which saved card")).to_contain_text("949625******0003")
    expect(page.locator("body")).not_to_contain_text(card.token)
    step(page, "saved-card-offered")
    bank_pages: list[str] = []
    page.on(
        "request", lambda r: bank_pages.append(r.url) if "/sandbox-bank/payment/" in r.url else None
    )
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    second = Invoice.objects.get(reference="BR-SAVED-2")
    expect_result_page(page, shop, second, Status.PAID)
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    step(page, "paid-with-saved-card")
    assert bank_pages == []
    assert (second.method, second.card_token_id, second.owner_id) == (
        Method.SAVED_CARD,
        card.pk,
        customer.pk,
    )
    card.refresh_from_db()
    assert card.last_used_at is not None

    # 3. Add a card without buying: the bank's card-saving page, then back to the cards.
    page.goto(f"{shop.url}/payments/cards/")
    expect(page.locator("li[data-card]")).to_have_count(1)
    page.get_by_role("button", name="Add a card").click()
    page.wait_for_url(re.compile(r"/sandbox-bank/confirmation/en/[0-9a-f-]+$"))
    expect(page.get_by_role("heading", name="Save a card")).to_be_visible()
    page.get_by_label("Card number").fill(SECOND_CARD)
    page.get_by_label("Expiry date (MM/YY)").fill(future_expiry())
    page.get_by_label("CVV").fill("123")
    page.get_by_label("Card holder name").fill("Bat Erdene")
    step(page, "bank-card-saving-page")
    page.locator("#golomt-pay").click()
    registration = CardRegistration.objects.get()
    page.wait_for_url(re.compile(rf"/payments/cards/\?added={registration.key}$"))
    expect(page.locator('[data-registration="saved"]')).to_be_visible()
    expect(page.locator("li[data-card]")).to_have_count(2)
    expect(page.get_by_text("949625******0029")).to_be_visible()
    step(page, "card-added")
    registration.refresh_from_db()
    added = CardToken.objects.get(card_number="949625******0029")
    assert registration.status == RegistrationStatus.SAVED
    assert (registration.card_token_id, added.owner_id) == (added.pk, customer.pk)
    assert BankTransaction.objects.get(kind=Kind.CONFIRMATION).token == added.token
    assert card_signals.names() == ["card_saved", "card_saved"]

    # 4. Delete the first card: it leaves the list, and the checkout no longer offers it.
    page.get_by_role("button", name="Delete card 949625******0003").click()
    expect(page.locator("li[data-card]")).to_have_count(1)
    expect(page.get_by_text("949625******0003")).to_have_count(0)
    step(page, "card-deleted")
    card.refresh_from_db()
    assert card.is_active is False
    assert card_signals.names() == ["card_saved", "card_saved", "card_removed"]
    page.goto(shop.checkout_url("BR-AFTER-DELETE"))
    expect(page.get_by_label("Which saved card")).not_to_contain_text("949625******0003")
    expect(page.get_by_label("Which saved card")).to_contain_text("949625******0029")
    for token in (card.token, added.token):
        expect(page.locator("body")).not_to_contain_text(token)

    assert signal_log.names().count("payment_succeeded") == 2
