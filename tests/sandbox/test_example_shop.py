"""The example shop as ``make demo`` runs it: its own settings, runserver, the sandbox inside.

It runs in a child process because it has its own settings module; ``requests`` plays the
browser (cookies, CSRF tokens, the bank's auto-submitting form), so no browser is needed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

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


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The shop on a fresh database, seeded twice (seeding again must change nothing)."""
    with example_shop(tmp_path_factory.mktemp("shop"), seeds=2) as (url, seed_output):
        yield Shop(url, seed_output)


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


def test_declined_card_shows_the_banks_words(shop: Shop) -> None:
    with requests.Session() as browser:
        bank = to_bank(shop, browser, order(shop, browser), "payment")
        back = back_to_shop(browser, pay_on_page(browser, bank, "9496 2500 0000 0011"))

    assert status_of(back.text) == "failed"
    assert "Картын хугацаа дууссан" in back.text
    assert 'name="payload"' in back.text  # the customer may try again


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
