"""A tour of the pages staff and customers see every day, photographed in a real browser.

Every page is opened in English and in Mongolian and saved whole as
``artifacts/screenshots/<test name>-<step>.png`` (``<step>-phone`` at 390 px wide), then checked
for what must be on it: no server error, its heading, its key data (amounts as MNT, status
labels, history rows), nothing left of a template (``{{``, ``%(name)s``, ``None``), no page
wider than the window, and in Mongolian the page's own words translated.

The admin and the payment app's pages are served by ``live_server`` (the sandbox bank inside,
as in :mod:`tests.browser.test_payment_flows`); the example shop runs as ``make demo`` runs it,
with its own settings in a child process and the sandbox inside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

from django.conf import settings
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, include, path
from django.utils import timezone, translation
from django.utils.translation import gettext
from playwright.sync_api import Browser, Locator, Page, expect
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from golomt_payments.gateway import new_transaction_id
from golomt_payments.models import (
    BankMessage,
    CardRegistration,
    CardToken,
    Invoice,
    MessageKind,
    Method,
    MismatchKind,
    Outcome,
    RegistrationStatus,
    SettledTransaction,
    SettlementMismatch,
    Source,
    Status,
)
from tests.browser.conftest import _FAILED, SCREENSHOTS, Screenshot, Shop
from tests.factories import (
    BankMessageFactory,
    CardTokenFactory,
    InvoiceFactory,
    OutboundMessageFactory,
    StatusChangeFactory,
)
from tests.sandbox.processes import example_shop as running_example_shop

pytestmark = pytest.mark.django_db(transaction=True)

#: The admin beside the browser tests' site (test shop, payment app, sandbox bank).
urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("tests.browser.urls")),
]

BROWSER_LOCALE = {"en": "en-US", "mn": "mn-MN"}
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

#: What a rendered page must never show: template syntax, unfilled placeholders, Python's
#: words for a missing value (the admin's own "None available" aside), a traceback.
LEFTOVERS = re.compile(r"\{\{|\}\}|\{%|%\}|%\(\w+\)[sd]|\bNone\b(?! available)|\bnan\b|Traceback")

#: The app's status labels, as its Mongolian catalogue has them.
STATUS_WORDS = {
    "en": {
        Status.NEW: "New",
        Status.PENDING: "Waiting for payment",
        Status.PAID: "Paid",
        Status.FAILED: "Failed",
        Status.EXPIRED: "Expired",
    },
    "mn": {
        Status.NEW: "Шинэ",
        Status.PENDING: "Төлбөр хүлээж байна",
        Status.PAID: "Төлөгдсөн",
        Status.FAILED: "Амжилтгүй",
        Status.EXPIRED: "Хугацаа дууссан",
    },
}

SUCCESS_CARD = "9496 2500 0000 0003"
DECLINED_CARD = "9496 2500 0000 0011"
EXPIRED_CARD_DESC = "Картын хугацаа дууссан"


# --- the tour ---------------------------------------------------------------------------------


@dataclass
class Tour:
    """One browser tab in one language, and what every page on the tour must pass."""

    tab: Page
    language: str
    screenshot: Screenshot

    def says(self, english: str, mongolian: str) -> str:
        """The words the page must show in the tour's language."""
        return english if self.language == "en" else mongolian

    def django_says(self, message: str, *args: Any) -> str:
        """Django's own words (the admin's chrome) in the tour's language."""
        with translation.override(self.language):
            text = gettext(message)
            text = text % tuple(str(arg) for arg in args) if args else text
        return " ".join(text.split())  # as the browser shows it

    def open(self, url: str, status: int = 200, *, in_language: bool = True) -> Page:
        """Go to ``url``: it must answer ``status`` and pass :meth:`check`. ``in_language``
        False: a page whose ``<html lang>`` the tests' own shop writes, always "en"."""
        response = self.tab.goto(url)
        assert response is not None, url
        assert response.status == status, f"{url} answered {response.status}"
        self.check(in_language=in_language)
        return self.tab

    def landed(self, pattern: str) -> Page:
        """After a click that leaves the page: wait for ``pattern``, then check the new page."""
        self.tab.wait_for_url(re.compile(pattern))
        self.tab.wait_for_load_state()
        self.check()
        return self.tab

    def check(self, *, in_language: bool = True) -> None:
        """Nothing unrendered, no horizontal scrolling, the page in the tour's language."""
        text = self.tab.locator("body").inner_text()
        leftovers = LEFTOVERS.findall(text)
        assert not leftovers, f"{self.tab.url} shows {leftovers}"
        overflow = self.tab.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{self.tab.url} is {overflow}px wider than the window"
        if in_language:
            expect(self.tab.locator("html")).to_have_attribute("lang", self.language)

    def untranslated(self, *english: str) -> None:
        """In Mongolian, none of these English words may be left on the page."""
        if self.language == "en":
            return
        text = self.tab.locator("body").inner_text()
        left = [words for words in english if words in text]
        assert not left, f"{self.tab.url} still says {left} in Mongolian"

    def photo(self, step: str, phone: bool = False) -> None:
        """Save the whole page; with ``phone``, also as a 390 px wide phone shows it."""
        self.screenshot(self.tab, step)
        if phone:
            self.tab.set_viewport_size(PHONE)
            self.check()
            self.screenshot(self.tab, f"{step}-phone")
            self.tab.set_viewport_size(DESKTOP)


@pytest.fixture(params=["en", "mn"])
def language(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tour(
    browser: Browser, language: str, screenshot: Screenshot, request: pytest.FixtureRequest
) -> Iterator[Tour]:
    """A tab whose browser asks for ``language`` (Accept-Language, read by LocaleMiddleware)."""
    context = browser.new_context(locale=BROWSER_LOCALE[language], viewport=DESKTOP)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield Tour(tab, language, screenshot)
    if request.node.stash.get(_FAILED, False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.failed.png"), full_page=True)
    context.close()


def log_in(tour: Tour, base_url: str, user: Any) -> None:
    """The test client's session cookie for ``user``, given to the tour's browser."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    tour.tab.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": base_url}]
    )


def row(tab: Page, text: str) -> Locator:
    """The changelist row that mentions ``text``."""
    return tab.locator("#result_list tbody tr", has_text=text)


def amount_pattern(digits: str) -> re.Pattern[str]:
    """``"1250000"`` as the admin may print it: grouped or not, with or without ``.00``."""
    grouped = f"{int(digits):,}".replace(",", "[,\u00a0 ]?")
    return re.compile(rf"{grouped}(\.00)?")


# --- the admin --------------------------------------------------------------------------------


@dataclass
class Office:
    """The rows staff look at: invoices of every status, method and account, their history and
    bank messages, saved cards, the settlement report and its mismatches."""

    paid: Invoice
    review: Invoice
    token_message: BankMessage
    token: str


def fill_the_office(django_user_model: Any) -> Office:
    bat = django_user_model.objects.create_user("bat", password="not-used")
    saraa = django_user_model.objects.create_user("saraa", password="not-used")
    paid = InvoiceFactory(
        paid=True, amount=Decimal("1250000"), reference="NG-1001", owner=bat, gen_token=True
    )
    OutboundMessageFactory(
        invoice=paid, kind=MessageKind.INVOICE, endpoint="/api/invoice", duration_ms=85
    )
    StatusChangeFactory(
        invoice=paid, from_status=Status.NEW, to_status=Status.PENDING, source=Source.API
    )
    push = BankMessageFactory(
        invoice=paid,
        body=json.dumps({"invoice": paid.transaction_id, "status_code": "000"}),
    )
    StatusChangeFactory(
        invoice=paid,
        from_status=Status.PENDING,
        to_status=Status.PAID,
        source=Source.PUSH,
        bank_code="000",
        message=push,
    )
    BankMessageFactory(
        invoice=paid,
        kind=MessageKind.REDIRECT,
        endpoint="/payments/return/",
        checksum_valid=True,
        outcome=Outcome.UNCHANGED,
    )
    OutboundMessageFactory(invoice=paid)
    socialpay = InvoiceFactory(
        socialpay=True,
        paid=True,
        account="wholesale",
        amount=Decimal("289000"),
        reference="NG-1002",
    )
    InvoiceFactory(amount=Decimal("45000"), reference="NG-1003")
    InvoiceFactory(failed=True, amount=Decimal("9800.50"), reference="NG-1004")
    InvoiceFactory(socialpay=True, expired=True, amount=Decimal("6500"), reference="NG-1005")
    InvoiceFactory(new=True, account="wholesale", amount=Decimal("18000"), reference="NG-1006")
    review = InvoiceFactory(
        paid=True,
        account="wholesale",
        amount=Decimal("18000"),
        reference="NG-1007",
        needs_review=True,
        review_reason="The bank reports '1800.00' paid; the invoice is for 18000.00.",
    )
    card = CardTokenFactory(owner=bat, token="tok-5b1e0c7d2a9f3a", last_used_at=timezone.now())
    InvoiceFactory(
        paid=True,
        method=Method.SAVED_CARD,
        amount=Decimal("25000"),
        reference="NG-1008",
        owner=bat,
        card_token=card,
    )
    CardTokenFactory(owner=bat, card_number="949625******0029", card_holder="BAT ERDENE")
    CardTokenFactory(
        owner=saraa, card_number="550000******1234", card_bank="Хаан банк", is_active=False
    )
    token_message = OutboundMessageFactory(
        invoice=None,
        account="default",
        transaction_id=new_transaction_id(),
        kind=MessageKind.GET_TOKEN,
        endpoint="/api/get/token",
        body=json.dumps({"invoice": "registration"}),
        response=json.dumps({"token": card.token, "errorCode": "000"}),
    )

    day = timezone.localdate() - timedelta(days=1)
    SettledTransaction.objects.create(
        bank_id="S-1",
        merchant_invoice=paid.transaction_id,
        settled_on=day,
        amount=paid.amount,
        resp_code="00",
        resp_desc="Approved",
        card_number=paid.card_number,
        sys_reference="412345678901",
        approval_code="A1B2C3",
        raw={"merchantInvoice": paid.transaction_id, "amount": "1250000.00"},
    )
    stranger = SettledTransaction.objects.create(
        bank_id="S-2",
        merchant_invoice="GP0000000000042",
        settled_on=day,
        amount=Decimal("77000"),
        resp_code="00",
        resp_desc="Approved",
        card_number="949625******0037",
        sys_reference="412345678902",
        approval_code="D4E5F6",
    )
    short = SettledTransaction.objects.create(
        account="wholesale",
        bank_id="S-3",
        merchant_invoice=review.transaction_id,
        settled_on=day,
        amount=Decimal("1800"),
        resp_code="00",
        resp_desc="Approved",
        card_number=review.card_number,
        sys_reference="412345678903",
        approval_code="G7H8J9",
    )
    SettlementMismatch.objects.create(
        day=day,
        account="wholesale",
        kind=MismatchKind.NOT_SETTLED,
        invoice=socialpay,
        expected_amount=socialpay.amount,
    )
    SettlementMismatch.objects.create(
        day=day, kind=MismatchKind.NOT_PAID, settled=stranger, settled_amount=stranger.amount
    )
    SettlementMismatch.objects.create(
        day=day,
        account="wholesale",
        kind=MismatchKind.AMOUNT,
        invoice=review,
        settled=short,
        expected_amount=review.amount,
        settled_amount=short.amount,
        note="Asked the bank on Monday.",
    )
    return Office(paid=paid, review=review, token_message=token_message, token=card.token)


@pytest.fixture
def staff_site(settings: Settings, live_server: LiveServer) -> str:
    """The admin in ``live_server``, with two merchant accounts configured."""
    settings.ROOT_URLCONF = __name__
    credentials = {"BEARER_TOKEN": "screens-token", "SECRET": "screens-secret"}
    settings.GOLOMT_PAYMENTS = {
        "ACCOUNTS": {"default": dict(credentials), "wholesale": dict(credentials)},
        "CALLBACK_BASE_URL": live_server.url,
        "READ_RETRIES": 0,
    }
    return live_server.url


def admin_url(site: str, model: type[Model], view: str = "changelist", pk: int = 0) -> str:
    name = model._meta.model_name
    base = f"{site}/admin/golomt_payments/{name}/"
    return base if view == "changelist" else f"{base}{pk}/change/"


def expect_title(tour: Tour, title: str) -> None:
    expect(tour.tab.locator("#content h1")).to_have_text(title)
    assert f"{title} | " in tour.tab.title(), tour.tab.title()


def test_admin_pages_staff_use_every_day(
    tour: Tour, staff_site: str, django_user_model: Any
) -> None:
    office = fill_the_office(django_user_model)
    staff = django_user_model.objects.create_superuser("anna", "anna@example.com", "not-used")
    log_in(tour, staff_site, staff)
    tab = tour.tab
    words = STATUS_WORDS[tour.language]

    def all_columns_in_view() -> None:
        """The list's table fits its place on the page: no column behind sideways scrolling."""
        hidden = tab.evaluate(
            "(() => { const r = document.querySelector('#changelist .results');"
            " return r.scrollWidth - r.clientWidth; })()"
        )
        assert hidden <= 0, f"{tab.url}: {hidden}px of the list are scrolled out of view"

    # The index: the app and its models, in the staff member's language.
    tour.open(f"{staff_site}/admin/")
    expect_title(tour, tour.django_says("Site administration"))
    app = tab.locator(".app-golomt_payments")
    expect(app.locator("caption")).to_contain_text(tour.says("Golomt payments", "Голомт төлбөр"))
    expect(app).to_contain_text(tour.says("Invoices", "Нэхэмжлэхүүд"))
    expect(app).to_contain_text(tour.says("Settlement mismatches", "Тооцооны зөрүүнүүд"))
    tour.photo("index")

    # Invoices: every status as a badge, methods, amounts, the one needing review.
    tour.open(admin_url(staff_site, Invoice))
    expect_title(tour, tour.django_says("Select %s to change", Invoice._meta.verbose_name))
    expect(tab.locator("#result_list tbody tr")).to_have_count(8)
    for reference, status in [
        ("NG-1001", Status.PAID),
        ("NG-1003", Status.PENDING),
        ("NG-1004", Status.FAILED),
        ("NG-1005", Status.EXPIRED),
        ("NG-1006", Status.NEW),
    ]:
        expect(row(tab, reference).locator(".field-status_badge")).to_have_text(words[status])
    needs_review = tour.says("Needs review", "Хянах")
    card = tour.says("Card", "Карт")
    expect(row(tab, "NG-1001").locator(".field-amount_and_method")).to_have_text(
        f"1,250,000 ₮{card}"
    )
    expect(row(tab, "NG-1004").locator(".field-amount_and_method")).to_contain_text("9,800.50 ₮")
    expect(row(tab, "NG-1001").locator(".field-invoice_shown")).to_have_text(
        f"NG-1001{office.paid.transaction_id}"
    )
    expect(row(tab, "NG-1002")).to_contain_text("SocialPay")
    expect(row(tab, "NG-1002").locator(".field-account_shown")).to_have_text("wholesale")
    expect(row(tab, "NG-1008")).to_contain_text(tour.says("Saved card", "Хадгалсан карт"))
    expect(row(tab, "NG-1007").locator(".golomt-needs-review")).to_have_text(f"⚑ {needs_review}")
    expect(tab.locator(".golomt-needs-review")).to_have_count(1)
    expect(tab.locator("#changelist-filter")).to_contain_text("wholesale")
    expect(tab.locator("#searchbar_helptext")).to_contain_text(
        tour.says("A whole transaction ID", "Гүйлгээний дугаар")
    )
    all_columns_in_view()
    tour.untranslated("Waiting for payment", "Saved card", "Expired", "A whole transaction ID")
    tour.photo("invoice-list")

    tour.open(admin_url(staff_site, Invoice) + "?needs_review__exact=1")
    expect(tab.locator("#result_list tbody tr")).to_have_count(1)
    expect(row(tab, "NG-1007")).to_contain_text(needs_review)
    all_columns_in_view()
    tour.photo("invoice-list-needs-review")

    # One invoice: its fields, its status history and every bank message about it.
    tour.open(admin_url(staff_site, Invoice, "change", office.paid.pk))
    expect_title(tour, tour.django_says("Change %s", Invoice._meta.verbose_name))
    expect(tab.locator("#content h2").first).to_have_text(
        f"{office.paid.transaction_id} ({words[Status.PAID]})"
    )
    expect(tab.locator(".field-amount_shown .readonly")).to_have_text("1,250,000 ₮")
    expect(tab.locator(".field-amount_sent .readonly")).to_have_text("1250000.00")  # as sent
    expect(tab.locator(".field-card_number .readonly")).to_have_text("949625******0003")
    expect(tab.locator(".field-card_token .readonly")).to_have_text("—")
    for heading in (tour.says("Bank", "Банк"), tour.says("Review", "Хянах")):
        expect(tab.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    history = tab.locator("#history-group tbody tr.has_original")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text(words[Status.NEW])
    expect(history.nth(1)).to_contain_text(words[Status.PAID])
    expect(history.nth(1)).to_contain_text(tour.says("Push notification", "Push мэдэгдэл"))
    expect(tab.locator("#history-group")).not_to_contain_text("new → pending")
    messages = tab.locator("#messages-group tbody tr.has_original")
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_contain_text(tour.says("Create invoice", "Нэхэмжлэх үүсгэх"))
    expect(messages.nth(1)).to_contain_text(tour.says("From the bank", "Банкнаас"))
    expect(messages.nth(3)).to_contain_text(tour.says("Check transaction", "Гүйлгээ шалгах"))
    view = tour.django_says("View")
    expect(messages.locator("a.inlineviewlink")).to_have_text([view] * 4)
    expect(tab.locator("#messages-group")).not_to_contain_text(tour.django_says("Change"))
    expect(tab.locator(".deletelink, .inline-deletelink")).to_have_count(0)  # records are kept
    expect(tab.locator("#content")).not_to_contain_text(re.compile(r"(^|\s)-(\s|$)"))
    tour.untranslated("Status changes", "Bank messages", "Push notification")
    tour.photo("invoice-change")

    tour.open(admin_url(staff_site, Invoice, "change", office.review.pk))
    expect(tab.locator("#id_needs_review")).to_be_checked()
    expect(tab.locator("#id_review_reason")).to_have_value(office.review.review_reason)
    tour.photo("invoice-change-needs-review")

    # The raw message log, and one message with its card token masked.
    tour.open(admin_url(staff_site, BankMessage))
    expect_title(tour, tour.django_says("Select %s to view", BankMessage._meta.verbose_name))
    expect(tab.locator("#result_list tbody tr")).to_have_count(5)
    expect(tab.locator("#result_list")).to_contain_text(tour.says("Get token", "Токен авах"))
    all_columns_in_view()
    tour.untranslated("A whole transaction ID")
    tour.photo("bankmessage-list")

    tour.open(admin_url(staff_site, BankMessage, "change", office.token_message.pk))
    expect_title(tour, tour.django_says("View %s", BankMessage._meta.verbose_name))
    response = tab.locator(".field-response_shown pre")
    expect(response).to_contain_text(f'"token": "…{office.token[-4:]}",')
    assert response.inner_text().splitlines()[1:3] == [
        f'  "token": "…{office.token[-4:]}",',
        '  "errorCode": "000"',
    ]
    expect(tab.locator(".field-body_shown pre")).to_contain_text('"invoice": "registration"')
    expect(tab.locator("body")).not_to_contain_text(office.token)
    expect(tab.locator(".deletelink")).to_have_count(0)
    expect(tab.locator("#content")).not_to_contain_text(re.compile(r"(^|\s)-(\s|$)"))
    tour.photo("bankmessage-view")

    # Saved cards, the settlement report and its mismatches.
    tour.open(admin_url(staff_site, CardToken))
    expect_title(tour, tour.django_says("Select %s to change", CardToken._meta.verbose_name))
    expect(tab.locator("#result_list tbody tr")).to_have_count(3)
    expect(row(tab, "949625******0029")).to_contain_text("bat")
    expect(tab.locator("body")).not_to_contain_text(office.token)
    expect(tab.locator("#result_list thead")).to_contain_text(tour.says("Last used", "Сүүлд"))
    all_columns_in_view()
    tour.photo("cardtoken-list")

    tour.open(admin_url(staff_site, SettledTransaction))
    expect_title(tour, tour.django_says("Select %s to view", SettledTransaction._meta.verbose_name))
    expect(tab.locator("#result_list tbody tr")).to_have_count(3)
    expect(row(tab, "412345678902").locator(".field-amount_shown")).to_have_text("77,000 ₮")
    expect(row(tab, "412345678901")).to_contain_text("1,250,000 ₮")
    all_columns_in_view()
    tour.untranslated("A whole merchant invoice")
    tour.photo("settledtransaction-list")

    tour.open(admin_url(staff_site, SettlementMismatch))
    expect_title(
        tour, tour.django_says("Select %s to change", SettlementMismatch._meta.verbose_name)
    )
    expect(tab.locator("#result_list tbody tr")).to_have_count(3)
    expect(tab.locator("#result_list")).to_contain_text(tour.says("Amounts differ", "Дүн зөрүүтэй"))
    expect(tab.locator("#result_list")).to_contain_text(
        tour.says("Settled by the bank, not paid here", "Банк тооцоо хийсэн, энд төлөгдөөгүй")
    )
    expect(tab.locator("a.golomt-export")).to_have_text(
        tour.says("Export as CSV", "CSV болгон татах")
    )
    differ = row(tab, tour.says("Amounts differ", "Дүн зөрүүтэй"))
    expect(differ.locator(".field-expected_amount_shown")).to_have_text("18,000 ₮")
    expect(differ.locator(".field-settled_amount_shown")).to_have_text("1,800 ₮")
    expect(differ.locator(".field-transaction_link a")).to_have_text(office.review.transaction_id)
    expect(row(tab, "GP0000000000042").locator(".field-expected_amount_shown")).to_have_text("—")
    all_columns_in_view()
    tour.untranslated("Amounts differ", "Export as CSV", "A whole transaction ID")
    tour.photo("settlementmismatch-list")


# --- the customer's payment pages --------------------------------------------------------------


def press_pay(tab: Page, method: str) -> None:
    """Choose a method on the checkout form and press its Pay button."""
    tab.locator(f'.golomt-checkout input[name="method"][value="{method}"]').check()
    tab.locator(".golomt-checkout button[type=submit]").click()


def test_payment_pages_customers_see(tour: Tour, shop: Shop) -> None:
    tab = tour.tab

    # The checkout form, as the shop renders it with the app's tag.
    tour.open(shop.checkout_url("SCR-QR-1", amount="1250000"), in_language=False)
    expect(tab.locator(".golomt-checkout legend")).to_have_text(
        tour.says("Pay with", "Төлөх хэрэгсэл")
    )
    expect(tab.locator(".golomt-checkout button[type=submit]")).to_have_text(
        tour.says("Pay 1,250,000 ₮", "1,250,000 ₮ төлөх")
    )
    tour.photo("checkout")

    # SocialPay: the app's own page with the QR code, at a desk and on a phone.
    press_pay(tab, Method.SOCIALPAY)
    tour.landed(r"/payments/socialpay/[0-9a-f-]+/$")
    expect(tab.locator("h1")).to_have_text(tour.says("Pay with SocialPay", "SocialPay-ээр төлөх"))
    expect(tab.locator(".golomt-amount")).to_have_text("1,250,000 ₮")
    expect(tab.locator("[data-qr] svg")).to_be_visible()
    expect(tab.locator("[data-deeplink]")).to_have_text(
        tour.says("Open SocialPay", "SocialPay нээх")
    )
    expect(tab.locator("[data-hosted]")).to_have_text(
        tour.says("Pay on the bank's SocialPay page", "Банкны SocialPay хуудсаар төлөх")
    )
    tour.untranslated("Scan this code", "Already paid?")
    tour.photo("socialpay-qr", phone=True)

    # A card payment the bank has not confirmed yet: the pending page.
    tour.open(shop.checkout_url("SCR-PENDING-1", amount="45000"), in_language=False)
    press_pay(tab, Method.CARD)
    tab.wait_for_url(re.compile(r"/sandbox-bank/payment/\w+/[0-9a-f-]+$"))
    pending = Invoice.objects.get(reference="SCR-PENDING-1")
    tour.open(shop.result_url(pending))
    expect(tab.locator('main[data-status="pending"]')).to_be_visible()
    expect(tab.locator("h1")).to_have_text(
        tour.says("Confirming your payment", "Таны төлбөрийг баталгаажуулж байна")
    )
    expect(tab.locator(".golomt-amount")).to_have_text("45,000 ₮")
    tour.untranslated("please do not pay again")
    tour.photo("pending", phone=True)

    # The outcomes: paid, declined, timed out.
    paid = InvoiceFactory(paid=True, amount=Decimal("1250000"), reference="SCR-PAID-1")
    tour.open(shop.result_url(paid))
    expect(tab.locator("h1")).to_have_text(tour.says("Payment received", "Төлбөр хүлээн авлаа"))
    expect(tab.locator(".golomt-amount")).to_have_text("1,250,000 ₮")
    expect(tab.locator("main")).to_contain_text(
        tour.says("Paid with card 949625******0003.", "949625******0003 картаар төлсөн.")
    )
    expect(tab.locator("main")).to_contain_text(
        tour.says("Order SCR-PAID-1", "Захиалга SCR-PAID-1")
    )
    tour.photo("success", phone=True)

    failed = InvoiceFactory(failed=True, amount=Decimal("9800.50"), reference="SCR-FAILED-1")
    tour.open(shop.result_url(failed))
    expect(tab.locator("h1")).to_have_text(
        tour.says("Payment not completed", "Төлбөр төлөгдсөнгүй")
    )
    expect(tab.locator("[data-bank-description]")).to_have_text(EXPIRED_CARD_DESC)
    expect(tab.locator(".golomt-amount")).to_have_text("9,800.50 ₮")
    expect(tab.locator("main")).to_contain_text(
        tour.says("Order SCR-FAILED-1", "Захиалга SCR-FAILED-1")
    )
    tour.untranslated("Nothing was charged")
    tour.photo("failure", phone=True)

    expired = InvoiceFactory(expired=True, amount=Decimal("6500"), reference="SCR-EXPIRED-1")
    tour.open(shop.result_url(expired))
    expect(tab.locator("h1")).to_have_text(
        tour.says("The payment time ran out", "Төлбөр төлөх хугацаа дууссан")
    )
    expect(tab.locator(".golomt-amount")).to_have_text("6,500 ₮")
    tour.photo("expired")

    # A checkout form that has been tampered with (or expired): the app's error page.
    tour.open(shop.checkout_url("SCR-BROKEN-1"), in_language=False)
    tab.locator('.golomt-checkout input[name="payload"]').evaluate("input => input.value = 'x'")
    with tab.expect_response(re.compile(r"/payments/checkout/$")) as answer:
        press_pay(tab, Method.CARD)
    assert answer.value.status == 400
    tour.landed(r"/payments/checkout/$")
    expect(tab.locator("h1")).to_have_text(
        tour.says(
            "This checkout form is invalid or has expired.",
            "Төлбөрийн маягт буруу эсвэл хугацаа нь дууссан байна.",  # noqa: RUF001 - Mongolian
        )
    )
    tour.photo("error")


def test_saved_cards_page(tour: Tour, shop: Shop, django_user_model: Any) -> None:
    tab = tour.tab
    customer = django_user_model.objects.create_user("bat", password="not-used")
    log_in(tour, shop.url, customer)
    cards_url = f"{shop.url}/payments/cards/"

    tour.open(cards_url)
    expect(tab.locator("h1")).to_have_text(tour.says("Your saved cards", "Таны хадгалсан картууд"))
    expect(tab.locator("main")).to_contain_text(
        tour.says("You have no saved cards.", "Танд хадгалсан карт байхгүй байна.")
    )
    expect(tab.get_by_role("button", name=tour.says("Add a card", "Карт нэмэх"))).to_be_visible()
    tour.photo("empty")

    CardTokenFactory(owner=customer, last_used_at=timezone.now())
    added = CardTokenFactory(
        owner=customer, card_number="949625******0029", card_holder="BAT ERDENE"
    )
    registration = CardRegistration.objects.create(
        owner=customer,
        transaction_id=new_transaction_id(),
        status=RegistrationStatus.SAVED,
        card_token=added,
    )
    tour.open(f"{cards_url}?added={registration.key}")
    expect(tab.locator('[data-registration="saved"]')).to_have_text(
        tour.says("Your card was saved.", "Таны карт хадгалагдлаа.")
    )
    cards = tab.locator("li[data-card]")
    expect(cards).to_have_count(2)
    expect(cards.filter(has_text="949625******0029")).to_contain_text(
        tour.says("Not used yet", "Ашиглаагүй байна")
    )
    expect(cards.filter(has_text="949625******0003")).to_contain_text(
        tour.says("Last used", "ашигласан")
    )
    expect(cards.filter(has_text="949625******0003")).to_contain_text("Голомт банк")
    expect(
        tab.get_by_role(
            "button",
            name=tour.says("Delete card 949625******0029", "949625******0029 картыг устгах"),
        )
    ).to_be_visible()
    tour.untranslated("Not used yet", "Delete", "Add a card")
    tour.photo("cards", phone=True)


# --- the example shop ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example shop as ``make demo`` runs it, in a fresh SQLite file on a free port."""
    with running_example_shop(tmp_path_factory.mktemp("example-shop")) as (url, _):
        yield url


def order_and_pay(tour: Tour, shop_url: str, products: list[str], card: str) -> str:
    """Put ``products`` in the cart, place the order, pay with ``card`` on the bank's page;
    returns the order page's URL, where the bank sends the customer back."""
    tab = tour.tab
    for product in products:
        tour.open(f"{shop_url}/")
        tab.locator(f"#product-{product} button[type=submit]").click()
        tour.landed(rf"{re.escape(shop_url)}/$")
    tour.open(f"{shop_url}/cart/")
    tab.locator("#id_customer_name").fill("Bat Erdene")
    tab.locator("#place-order").click()
    tour.landed(r"/orders/NG[A-Z0-9]{8}/$")
    order_url = tab.url
    press_pay(tab, Method.CARD)
    tab.wait_for_url(re.compile(r"/sandbox-bank/payment/\w+/[0-9a-f-]+$"))
    tab.locator("#id_number").fill(card)
    tab.locator("#id_expiry").fill("12/39")
    tab.locator("#id_cvv").fill("123")
    tab.locator("#id_holder").fill("Bat Erdene")
    tab.locator("#golomt-pay").click()
    tour.landed(rf"{re.escape(order_url)}$")
    return order_url


def test_example_shop_pages(tour: Tour, example_shop: str) -> None:
    tab = tour.tab

    tour.open(f"{example_shop}/")
    expect(tab.locator("h1")).to_have_text(
        tour.says("Goods from the steppe", "Талын бараа бүтээгдэхүүн")  # noqa: RUF001 - Mongolian
    )
    expect(tab.locator("#product-cashmere-sweater .price")).to_have_text("289,000₮")
    expect(tab.locator("#product-khuushuur-box .price")).to_have_text("18,000₮")
    expect(tab.locator(".product")).to_have_count(7)
    tour.untranslated("Add to cart", "My orders", "Pay by card")
    tour.photo("products", phone=True)

    for product in ("khuushuur-box", "cashmere-scarf"):
        tab.locator(f"#product-{product} button[type=submit]").click()
        tour.landed(rf"{re.escape(example_shop)}/$")
    expect(tab.locator(".messages")).to_be_visible()
    expect(tab.locator("#cart-link .badge")).to_have_text("2")

    tour.open(f"{example_shop}/cart/")
    expect(tab.locator("h1")).to_have_text(
        tour.says("Your cart", "Таны сагс")  # noqa: RUF001 - Mongolian
    )
    expect(tab.locator("table.lines tbody tr")).to_have_count(2)
    expect(tab.locator("#cart-total")).to_have_text("107,000₮")
    tour.untranslated("Place order", "Quantity", "Your name")
    tour.photo("cart", phone=True)

    tab.locator("#id_customer_name").fill("Bat Erdene")
    tab.locator("#place-order").click()
    tour.landed(r"/orders/NG[A-Z0-9]{8}/$")
    order_url = tab.url
    number = order_url.rstrip("/").rsplit("/", 1)[-1]
    expect(tab.locator("#order-status")).to_have_attribute("data-status", "awaiting")
    expect(tab.locator("h1")).to_have_text(tour.says(f"Order {number}", f"Захиалга {number}"))
    expect(tab.locator("#order-total")).to_have_text("107,000₮")
    expect(tab.locator(".golomt-checkout button[type=submit]")).to_have_text(
        tour.says("Pay 107,000 ₮", "107,000 ₮ төлөх")
    )
    tour.untranslated("Awaiting payment", "Choose how to pay")
    tour.photo("order", phone=True)

    press_pay(tab, Method.CARD)
    tab.wait_for_url(re.compile(rf"/sandbox-bank/payment/{tour.language}/[0-9a-f-]+$"))
    tab.locator("#id_number").fill(SUCCESS_CARD)
    tab.locator("#id_expiry").fill("12/39")
    tab.locator("#id_cvv").fill("123")
    tab.locator("#id_holder").fill("Bat Erdene")
    tab.locator("#golomt-pay").click()
    tour.landed(rf"{re.escape(order_url)}$")
    expect(tab.locator("#order-status")).to_have_attribute("data-status", "paid")
    expect(tab.locator("#order-status")).to_contain_text("949625******0003")
    expect(tab.locator(".golomt-checkout")).to_have_count(0)
    tour.untranslated("Paid, thank you!", "We are packing")
    tour.photo("order-paid", phone=True)

    declined_url = order_and_pay(tour, example_shop, ["test-item"], DECLINED_CARD)
    assert declined_url != order_url
    # Declined: the same bank page takes another card while its timer runs; no second payment.
    expect(tab.locator("#order-status")).to_have_attribute("data-status", "retry")
    expect(tab.locator("#bank-message")).to_have_text(EXPIRED_CARD_DESC)
    expect(tab.locator("#resume-payment")).to_be_visible()
    expect(tab.locator(".golomt-checkout")).to_have_count(0)
    expect(tab.locator("#order-total")).to_have_text("1₮")
    tour.untranslated("The payment did not go through", "Try again on the bank")
    tour.photo("order-failed", phone=True)

    tour.open(f"{example_shop}/orders/")
    expect(tab.locator("h1")).to_have_text(tour.says("My orders", "Миний захиалгууд"))
    orders = tab.locator("table.lines tbody tr")
    expect(orders).to_have_count(2)
    expect(orders.filter(has_text=number)).to_contain_text(tour.says("Paid", "Төлөгдсөн"))
    expect(orders.filter(has_text=number)).to_contain_text("107,000₮")
    tour.photo("orders")


def test_every_status_has_a_word_in_both_languages() -> None:
    """The labels the tour looks for are the app's own, in both catalogues."""
    for language, words in STATUS_WORDS.items():
        with translation.override(language):
            assert {status: str(status.label) for status in Status} == words
