"""A customer in a real browser: checkout, the sandbox bank's pages, and back to the shop.

Every push here is sent by the sandbox's own thread after a delay, racing the browser's
redirect, so the tests assert what must hold whichever arrives first: the invoice ends in the
right state and the shop hears about it exactly once.
"""

from __future__ import annotations

import math
import re
import time
from datetime import date

import pytest

pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

from playwright.sync_api import Page, expect

from golomt_payments.models import (
    BankMessage,
    Direction,
    Invoice,
    MessageKind,
    Outcome,
    Source,
    Status,
)
from golomt_payments.sandbox.models import PushDelivery, PushState, Transaction
from tests.browser.conftest import CHECK_INTERVAL_SECONDS, Screenshot, Shop
from tests.helpers import SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)

SUCCESS_CARD = "9496 2500 0000 0003"
DECLINED_CARD = "9496 2500 0000 0011"
PUSH_LOST_CARD = "9496 2500 0000 0029"
REDIRECT_LOST_CARD = "9496 2500 0000 0052"
BOTH_LOST_CARD = "9496 2500 0000 0060"
EXPIRED_CARD_DESC = "Картын хугацаа дууссан"


def future_expiry() -> str:
    return f"12/{(date.today().year + 3) % 100:02d}"


def start_checkout(page: Page, shop: Shop, reference: str, method: str = "Card") -> Invoice:
    """Open the shop's checkout page, pick the method and press Pay; lands on the bank's card
    page, or for SocialPay on the app's own page with the QR code."""
    page.goto(shop.checkout_url(reference))
    page.get_by_label(method, exact=True).check()
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    if method == "Card":
        page.wait_for_url(re.compile(r"/sandbox-bank/payment/en/[0-9a-f-]+$"))
    else:
        page.wait_for_url(re.compile(r"/payments/socialpay/[0-9a-f-]+/$"))
    return Invoice.objects.get(reference=reference)


def expect_socialpay_qr_page(page: Page, shop: Shop, invoice: Invoice) -> None:
    """The app's SocialPay page: the QR code drawn, the deeplink and the bank's page linked."""
    expect(page).to_have_url(f"{shop.url}/payments/socialpay/{invoice.key}/")
    expect(page.get_by_role("heading", name="Pay with SocialPay")).to_be_visible()
    qr_code = page.get_by_role("img", name="SocialPay QR code").locator("svg")
    expect(qr_code).to_be_visible()
    box = qr_code.bounding_box()
    assert box is not None and box["width"] >= 150 and box["height"] >= 150
    assert qr_code.locator("path").count() == 1
    invoice.refresh_from_db()
    assert invoice.social_deeplink.startswith("socialpay-payment://")
    expect(page.get_by_role("link", name="Open SocialPay")).to_have_attribute(
        "href", invoice.social_deeplink
    )
    expect(page.get_by_role("link", name="Pay on the bank's SocialPay page")).to_have_attribute(
        "href", re.compile(rf"/sandbox-bank/socialpay/en/{invoice.bank_invoice}$")
    )


def pay_by_card(page: Page, number: str, expiry: str | None = None) -> None:
    """Type a card on the sandbox's card page and press its Pay button."""
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry date (MM/YY)").fill(expiry or future_expiry())
    page.get_by_label("CVV").fill("123")
    page.get_by_label("Card holder name").fill("Bat Erdene")
    page.locator("#golomt-pay").click()


def expect_result_page(page: Page, shop: Shop, invoice: Invoice, status: str) -> None:
    """The app's own result page for ``invoice``, showing ``status``."""
    expect(page).to_have_url(shop.result_url(invoice))
    expect(page.locator(f'main[data-status="{status}"]')).to_be_visible()


def expect_bank_page_closed(page: Page) -> None:
    expect(page.locator("#golomt-message")).to_have_text("The bank page was closed")


def allowed_inquiries(since: float) -> int:
    """How often the bank may have been asked about one invoice since ``since``."""
    return math.floor((time.monotonic() - since) / CHECK_INTERVAL_SECONDS) + 1


def paid_by(invoice: Invoice) -> str:
    return str(invoice.history.get(to_status=Status.PAID).source)


@pytest.mark.parametrize(
    "push_delay",
    # 0 s: the push and the redirect truly race (either may pay); 1 s: the redirect usually
    # pays and the push comes too late to change anything.
    [pytest.param(0.0, id="push-0s"), pytest.param(1.0, id="push-1s")],
)
def test_card_payment_ends_on_the_success_page_and_pays_the_invoice_once(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot, push_delay: float
) -> None:
    shop.configure(sandbox={"PUSH_DELAY_SECONDS": push_delay})
    invoice = start_checkout(page, shop, "BR-CARD-1")

    pay_by_card(page, SUCCESS_CARD)

    expect_result_page(page, shop, invoice, Status.PAID)
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(page.get_by_text("949625******0003")).to_be_visible()
    shop.settle()  # the push may still be on its way; it must not pay a second time
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert invoice.card_number == "949625******0003"
    assert paid_by(invoice) in (Source.PUSH, Source.REDIRECT)
    inbound = BankMessage.objects.filter(direction=Direction.INBOUND)
    assert sorted(inbound.values_list("kind", "outcome")) in (
        [(MessageKind.PUSH, Outcome.PROCESSED), (MessageKind.REDIRECT, Outcome.UNCHANGED)],
        [(MessageKind.PUSH, Outcome.UNCHANGED), (MessageKind.REDIRECT, Outcome.PROCESSED)],
    )
    assert signal_log.names().count("payment_succeeded") == 1
    assert PushDelivery.objects.get().state == PushState.DELIVERED
    screenshot(page)


def test_an_order_open_in_two_tabs_is_charged_once(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    """The order page open in two tabs: paid in the first; Pay pressed in the second lands on
    the paid order, and the bank is not asked for a second payment."""
    second = page.context.new_page()
    second.goto(shop.checkout_url("BR-TWO-TABS"))  # opened before the first tab pays
    invoice = start_checkout(page, shop, "BR-TWO-TABS")
    pay_by_card(page, SUCCESS_CARD)
    expect_result_page(page, shop, invoice, Status.PAID)

    second.get_by_label("Card", exact=True).check()
    second.get_by_role("button", name=re.compile(r"^Pay ")).click()

    expect_result_page(second, shop, invoice, Status.PAID)
    expect(second.get_by_role("heading", name="Payment received")).to_be_visible()
    shop.settle()
    assert Invoice.objects.filter(reference="BR-TWO-TABS").count() == 1
    assert Transaction.objects.filter(error_code="000").count() == 1  # one charge at the bank
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(second)


def test_declined_card_ends_on_the_failure_page_with_the_banks_words(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    invoice = start_checkout(page, shop, "BR-DECLINED-1")

    pay_by_card(page, DECLINED_CARD)

    expect_result_page(page, shop, invoice, Status.FAILED)
    expect(page.get_by_role("heading", name="Payment not completed")).to_be_visible()
    expect(page.locator("[data-bank-description]")).to_have_text(EXPIRED_CARD_DESC)
    shop.settle()
    invoice.refresh_from_db()
    assert (invoice.status, invoice.bank_code) == (Status.FAILED, "300")
    assert signal_log.names().count("payment_failed") == 1
    assert "payment_succeeded" not in signal_log.names()
    screenshot(page)


def test_socialpay_approval_ends_on_the_success_page(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    invoice = start_checkout(page, shop, "BR-SOCIAL-1", method="SocialPay")
    expect_socialpay_qr_page(page, shop, invoice)
    screenshot(page, "qr")

    page.get_by_role("link", name="Pay on the bank's SocialPay page").click()
    page.wait_for_url(re.compile(r"/sandbox-bank/socialpay/en/[0-9a-f-]+$"))
    expect(page.get_by_role("heading", name="SocialPay")).to_be_visible()
    expect(page.locator(".deeplink")).to_contain_text("socialpay-payment://")
    page.get_by_role("button", name="Approve").click()

    expect_result_page(page, shop, invoice, Status.PAID)
    shop.settle()
    invoice.refresh_from_db()
    assert (invoice.status, invoice.method) == (Status.PAID, "socialpay")
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(page)


def test_socialpay_qr_page_moves_on_by_itself_when_the_phone_approves(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    """The desktop customer scans the QR code and approves on the phone (here: a second tab
    on the bank's SocialPay page); the QR page's polling finds the payment and moves on."""
    invoice = start_checkout(page, shop, "BR-SOCIAL-QR-1", method="SocialPay")
    expect_socialpay_qr_page(page, shop, invoice)
    image = page.request.get(f"{shop.url}/payments/socialpay/{invoice.key}/qr.svg")
    assert image.ok and image.headers["content-type"] == "image/svg+xml"

    phone = page.context.new_page()
    phone.goto(
        page.get_by_role("link", name="Pay on the bank's SocialPay page").get_attribute("href")
        or ""
    )
    phone.get_by_role("button", name="Approve").click()

    expect_result_page(page, shop, invoice, Status.PAID)
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    shop.settle()
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(page)


def test_lost_push_is_made_up_for_by_the_redirect_alone(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    invoice = start_checkout(page, shop, "BR-NOPUSH-1")

    pay_by_card(page, PUSH_LOST_CARD)

    expect_result_page(page, shop, invoice, Status.PAID)
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert paid_by(invoice) == Source.REDIRECT
    assert not PushDelivery.objects.exists()
    assert not BankMessage.objects.filter(kind=MessageKind.PUSH).exists()
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(page)


def test_lost_redirect_leaves_a_pending_page_that_the_push_turns_to_success(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    # The push leaves 2 s after the payment, so the customer sees the pending page first. Its
    # polling may ask the bank only once a minute here, and that one inquiry is spent before
    # paying: whatever pays the invoice below can only be the push.
    shop.configure(
        payments={"STATUS_CHECK_INTERVAL_SECONDS": 60}, sandbox={"PUSH_DELAY_SECONDS": 2}
    )
    invoice = start_checkout(page, shop, "BR-NOREDIR-1")
    assert page.request.get(shop.status_url(invoice)).json()["status"] == Status.PENDING

    pay_by_card(page, REDIRECT_LOST_CARD)

    expect_bank_page_closed(page)
    page.goto(shop.result_url(invoice))
    expect(page.locator('main[data-status="pending"]')).to_be_visible()
    expect(page.get_by_role("heading", name="Confirming your payment")).to_be_visible()
    expect(page.locator('main[data-status="paid"]')).to_be_visible()
    expect_result_page(page, shop, invoice, Status.PAID)
    invoice.refresh_from_db()
    assert paid_by(invoice) == Source.PUSH
    assert not BankMessage.objects.filter(kind=MessageKind.REDIRECT).exists()
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(page)


def test_lost_push_and_redirect_are_caught_by_the_pending_pages_polling_once_per_interval(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    invoice = start_checkout(page, shop, "BR-BOTHLOST-1")
    # The customer keeps the shop's pending page open in a second tab while paying, and it is
    # reloaded in a burst: the bank must still be asked at most once per interval.
    waiting = page.context.new_page()
    opened = time.monotonic()
    waiting.goto(shop.result_url(invoice))
    expect(waiting.locator('main[data-status="pending"]')).to_be_visible()
    burst = waiting.evaluate(
        """url => Promise.all(Array.from({length: 6}, () =>
               fetch(url, {cache: "no-store"}).then(r => r.json()).then(d => d.status)))""",
        shop.status_url(invoice),
    )
    assert burst == [Status.PENDING] * 6
    inquiries = BankMessage.objects.filter(
        direction=Direction.OUTBOUND,
        kind=MessageKind.INQUIRY,
        transaction_id=invoice.transaction_id,
    )
    assert 1 <= inquiries.count() <= allowed_inquiries(since=opened)

    pay_by_card(page, BOTH_LOST_CARD)

    expect_bank_page_closed(page)
    expect(waiting.locator('main[data-status="paid"]')).to_be_visible()
    budget = allowed_inquiries(since=opened)
    expect_result_page(waiting, shop, invoice, Status.PAID)
    invoice.refresh_from_db()
    assert paid_by(invoice) == Source.STATUS
    assert not PushDelivery.objects.exists()
    assert 1 <= inquiries.count() <= budget
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(waiting)


def test_return_by_get_redirect_ends_on_the_success_page(
    page: Page, shop: Shop, signal_log: SignalRecorder, screenshot: Screenshot
) -> None:
    shop.configure(payments={"RETURN_TYPE": "GET"})
    invoice = start_checkout(page, shop, "BR-GET-1")
    assert invoice.return_type == "GET"

    pay_by_card(page, SUCCESS_CARD)

    expect_result_page(page, shop, invoice, Status.PAID)
    redirect = BankMessage.objects.get(kind=MessageKind.REDIRECT)
    assert f"invoice={invoice.transaction_id}" in redirect.body
    assert "status_code=000" in redirect.body
    shop.settle()
    assert signal_log.names().count("payment_succeeded") == 1
    screenshot(page)
