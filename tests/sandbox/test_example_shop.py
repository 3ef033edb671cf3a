"""The example shop as ``make demo`` runs it: its own settings, runserver, the sandbox inside.

It runs in a child process because it has its own settings module; ``requests`` plays the
browser (cookies, CSRF tokens, the bank's auto-submitting form), so no browser is needed.
"""

from __future__ import annotations

import html
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from golomt_payments.sandbox.cards import TEST_CARDS
from tests.sandbox.helpers import csrf_token, pay_on_page, return_form
from tests.sandbox.processes import example_shop

_STATUS = re.compile(r'id="order-status" data-status="(\w+)"')


@dataclass(frozen=True)
class Shop:
    url: str
    seed_output: str
    database: Path

    def count(self, sql: str, *params: str) -> int:
        """A number read straight from the shop's database (the bank's side is in it too)."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            return int(db.execute(sql, params).fetchone()[0])

    def charges(self, reference: str) -> int:
        """How many payments of the order the (sandbox) bank took."""
        return self.count(
            "SELECT COUNT(*) FROM golomt_sandbox_transaction t"
            " JOIN golomt_payments_invoice i ON i.transaction_id = t.transaction_id"
            " WHERE i.reference = ? AND t.error_code = '000'",
            reference,
        )

    def invoices(self, reference: str) -> int:
        return self.count(
            "SELECT COUNT(*) FROM golomt_payments_invoice WHERE reference = ?", reference
        )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The shop on a fresh database, seeded twice (seeding again must change nothing)."""
    directory = tmp_path_factory.mktemp("shop")
    with example_shop(directory, seeds=2) as (url, seed_output):
        yield Shop(url, seed_output, directory / "db.sqlite3")


def order(shop: Shop, browser: requests.Session, product: str = "khuushuur-box") -> str:
    """Put a product in the cart and place the order; returns the order page."""
    home = browser.get(shop.url + "/", timeout=10)
    browser.post(
        f"{shop.url}/cart/add/{product}/",
        data={"csrfmiddlewaretoken": csrf_token(home.text)},
        timeout=10,
    )
    cart = browser.get(shop.url + "/cart/", timeout=10)
    placed = browser.post(
        shop.url + "/checkout/",
        data={"csrfmiddlewaretoken": csrf_token(cart.text), "customer_name": "Bat"},
        timeout=10,
    )
    assert re.search(r"/orders/NG[A-Z0-9]{8}/$", placed.url), placed.url
    return placed.text


def to_bank(shop: Shop, browser: requests.Session, order_page: str, method: str) -> str:
    """Press Pay on the order page's checkout form; returns the bank page URL."""
    payload = re.search(r'name="payload" value="([^"]+)"', order_page)
    assert payload is not None
    answer = browser.post(
        shop.url + "/payments/checkout/",
        data={
            "csrfmiddlewaretoken": csrf_token(order_page),
            "payload": html.unescape(payload.group(1)),
            "method": method,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    location: str = answer.headers["Location"]
    if method == "socialpay":  # the app's own page first: QR code, deeplink, the bank's page
        assert re.fullmatch(r"/payments/socialpay/[0-9a-f-]+/", location), location
        ours = browser.get(shop.url + location, timeout=10)
        assert "socialpay-payment://" in ours.text and "<svg" in ours.text
        hosted = re.search(r'href="([^"]+)" data-hosted', ours.text)
        assert hosted is not None
        location = html.unescape(hosted.group(1))
    assert location.startswith(f"{shop.url}/sandbox-bank/{method}/")
    return location


def back_to_shop(browser: requests.Session, bank_page: requests.Response) -> requests.Response:
    form = return_form(bank_page.text)
    return browser.post(form.action, data=form.fields, timeout=30)


def status_of(page: str) -> str:
    match = _STATUS.search(page)
    assert match is not None
    return match.group(1)


def order_number(page: requests.Response) -> str:
    match = re.search(r"/orders/(NG[A-Z0-9]{8})/$", page.url)
    assert match is not None, page.url
    return match.group(1)


def wait_for_status(
    browser: requests.Session, url: str, wanted: str, timeout: float = 15
) -> requests.Response:
    """Reload an order page until it shows ``wanted`` (the bank's push comes on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        page = browser.get(url, timeout=10)
        if status_of(page.text) == wanted or time.monotonic() > deadline:
            return page
        time.sleep(0.2)


def resume_link(shop: Shop, page: str) -> str:
    match = re.search(r'id="resume-payment" href="([^"]+)"', page)
    assert match is not None
    return shop.url + html.unescape(match.group(1))


def test_seed_shop_prints_the_urls_and_the_test_cards(shop: Shop) -> None:
    assert f"Shop:   {shop.url}/" in shop.seed_output
    assert "admin / admin" in shop.seed_output
    for card in TEST_CARDS:
        assert card.display in shop.seed_output


def test_card_payment_marks_the_order_paid(shop: Shop) -> None:
    with requests.Session() as browser:
        bank = to_bank(shop, browser, order(shop, browser), "payment")
        back = back_to_shop(browser, pay_on_page(browser, bank))

    assert re.search(r"/orders/NG[A-Z0-9]{8}/$", back.url)
    assert status_of(back.text) == "paid"
    assert "949625******0003" in back.text


def test_a_declined_card_shows_the_banks_words_and_tries_again_on_the_same_bank_page(
    shop: Shop,
) -> None:
    with requests.Session() as browser:
        bank = to_bank(shop, browser, order(shop, browser), "payment")
        back = back_to_shop(browser, pay_on_page(browser, bank, "9496 2500 0000 0011"))
        number = order_number(back)

        assert status_of(back.text) == "retry"
        assert "Картын хугацаа дууссан" in back.text
        assert 'name="payload"' not in back.text  # no second payment while this page is open
        again = browser.get(resume_link(shop, back.text), timeout=10)
        assert again.url == bank  # the same invoice's page, which takes another card
        back_to_shop(browser, pay_on_page(browser, bank))
        paid = wait_for_status(browser, f"{shop.url}/orders/{number}/", "paid")

    assert status_of(paid.text) == "paid"
    assert (shop.invoices(number), shop.charges(number)) == (1, 1)


def test_two_tabs_of_one_order_are_charged_once(shop: Shop) -> None:
    """The order page open twice; paid in the first tab, then Pay pressed in the second: the
    second lands on the paid order, and nothing is sent to the bank."""
    with requests.Session() as browser:
        first_tab = order(shop, browser)
        second_tab = first_tab  # the same page, opened earlier in another tab
        bank = to_bank(shop, browser, first_tab, "payment")
        paid = back_to_shop(browser, pay_on_page(browser, bank))
        number = order_number(paid)
        payload = re.search(r'name="payload" value="([^"]+)"', second_tab)
        assert payload is not None
        pressed = browser.post(
            shop.url + "/payments/checkout/",
            data={
                "csrfmiddlewaretoken": csrf_token(second_tab),
                "payload": html.unescape(payload.group(1)),
                "method": "payment",
            },
            timeout=10,
        )

    assert pressed.url == paid.url  # the order page, which says it is paid
    assert status_of(pressed.text) == "paid"
    assert (shop.invoices(number), shop.charges(number)) == (1, 1)


def test_an_order_being_paid_sends_the_customer_back_to_its_bank_page(shop: Shop) -> None:
    """The customer left the bank's page without paying: the order page offers that page
    again, not a second payment, and its old form (the stale tab) leads to the same page."""
    with requests.Session() as browser:
        placed = order(shop, browser)
        bank = to_bank(shop, browser, placed, "payment")
        number = re.search(r"Order (NG[A-Z0-9]{8})", placed)
        assert number is not None
        page = browser.get(f"{shop.url}/orders/{number.group(1)}/", timeout=10).text
        again = to_bank(shop, browser, placed, "payment")

        assert status_of(page) == "waiting"
        assert 'name="payload"' not in page
        assert browser.get(resume_link(shop, page), timeout=10).url == bank
        assert again == bank
    assert shop.invoices(number.group(1)) == 1


def test_socialpay_payment_marks_the_order_paid(shop: Shop) -> None:
    with requests.Session() as browser:
        bank = to_bank(shop, browser, order(shop, browser, "test-item"), "socialpay")
        page = browser.get(bank, timeout=10)
        approved = browser.post(
            bank,
            data={"csrfmiddlewaretoken": csrf_token(page.text), "action": "approve"},
            timeout=10,
        )
        back = back_to_shop(browser, approved)

    assert status_of(back.text) == "paid"


def test_admin_login_page_is_served(shop: Shop) -> None:
    answer = requests.get(shop.url + "/admin/login/", timeout=10)
    assert answer.status_code == 200
    assert requests.get(shop.url + "/static/shop/shop.css", timeout=10).status_code == 200
