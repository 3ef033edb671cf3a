"""The checkout view and the template tag that renders its form."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.core import signing
from django.template import Context, Template
from django.test import Client, RequestFactory, override_settings
from django.utils import translation

from golomt_payments.checkout import read_checkout, sign_checkout
from golomt_payments.models import Invoice, Method, Status
from golomt_payments.templatetags.golomt_payments import golomt_amount
from tests.helpers import FakeBank, hmac_hex
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

CHECKOUT = "/payments/checkout/"
CALLBACK = "https://shop.test/payments/return/"


def checkout(client: Client, payload: str, **data: str) -> Any:
    return client.post(CHECKOUT, {"payload": payload, **data})


@pytest.mark.parametrize("method", [Method.CARD, Method.SOCIALPAY])
def test_signed_checkout_sends_the_browser_to_the_banks_page(
    client: Client, fake_bank: FakeBank, method: str
) -> None:
    """A card goes straight to the bank's card page; SocialPay first to the app's own page,
    which shows the QR code and links the bank's SocialPay page."""
    fake_bank.invoice(bank_invoice="d7fb2858-df36-469e-b40d-2815fe9215cf")
    payload = sign_checkout(amount=Decimal("25000"), reference="ORD-77", metadata={"cart": 3})

    response = checkout(client, payload, method=method, lang="mn")

    assert response.status_code == 303
    invoice = Invoice.objects.get()
    if method == Method.CARD:
        bank_page = response["Location"]
    else:
        assert response["Location"] == f"/payments/socialpay/{invoice.key}/"
        page = client.get(response["Location"]).content.decode()
        hosted = re.search(r'href="([^"]+)" data-hosted', page)
        assert hosted is not None
        bank_page = hosted.group(1)
    assert bank_page == f"https://bank.test/{method}/mn/d7fb2858-df36-469e-b40d-2815fe9215cf"
    assert invoice.status == Status.PENDING
    assert (invoice.amount, invoice.reference, invoice.method) == (
        Decimal("25000.00"),
        "ORD-77",
        method,
    )
    assert invoice.metadata == {"cart": 3}
    sent = fake_bank.sent("/api/invoice")
    assert sent["amount"] == "25000.00"
    assert sent["callback"] == CALLBACK
    assert sent["checksum"] == hmac_hex(invoice.transaction_id, "25000.00", "POST", CALLBACK)
    assert sent["socialDeeplink"] == ("Y" if method == Method.SOCIALPAY else "N")


def test_checkout_language_follows_the_request_when_not_given(
    client: Client, fake_bank: FakeBank
) -> None:
    fake_bank.invoice()

    response = checkout(client, sign_checkout(amount=1000, reference="R"))

    assert response.status_code == 303
    assert "/payment/en/" in response["Location"]  # LANGUAGE_CODE of the test settings


def test_checkout_saves_the_card_only_when_the_shop_signed_it(
    client: Client, fake_bank: FakeBank, django_user_model: Any
) -> None:
    fake_bank.invoice()
    client.force_login(django_user_model.objects.create_user("saver"))

    checkout(client, sign_checkout(amount=1000, reference="R1"), save_card="1")
    checkout(client, sign_checkout(amount=1000, reference="R2", gen_token=True), save_card="1")

    assert [fake_bank.sent("/api/invoice", i)["genToken"] for i in (0, 1)] == ["N", "Y"]
    assert list(Invoice.objects.order_by("pk").values_list("gen_token", flat=True)) == [
        False,
        True,
    ]


def test_tampered_checkout_payload_is_refused_with_400(client: Client, fake_bank: FakeBank) -> None:
    payload = sign_checkout(amount=1000, reference="R")
    signed = signing.loads(payload, salt="golomt_payments.checkout")
    forged = signing.dumps({**signed, "a": "1.00"}, salt="not-the-right-salt", compress=True)

    responses_ = [
        checkout(client, payload[:-2] + ("AA" if not payload.endswith("AA") else "BB")),
        checkout(client, forged),
        checkout(client, ""),
        client.post(CHECKOUT, {"amount": "1.00", "reference": "R"}),
    ]

    assert [r.status_code for r in responses_] == [400, 400, 400, 400]
    assert "invalid or has expired" in responses_[0].content.decode()
    assert not Invoice.objects.exists()
    assert len(fake_bank.mock.calls) == 0


def test_expired_checkout_payload_is_refused_with_400(
    client: Client, fake_bank: FakeBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - 3601)
    payload = sign_checkout(amount=1000, reference="R")
    monkeypatch.undo()

    response = checkout(client, payload)

    assert response.status_code == 400
    assert not Invoice.objects.exists()


def test_checkout_max_age_is_a_setting(
    client: Client, fake_bank: FakeBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bank.invoice()
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - 120)
    payload = sign_checkout(amount=1000, reference="R")
    monkeypatch.undo()

    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CHECKOUT_MAX_AGE_SECONDS": 60}):
        refused = checkout(client, payload)
    accepted = checkout(client, payload)

    assert (refused.status_code, accepted.status_code) == (400, 303)


def test_unknown_payment_method_is_refused_with_400(client: Client, fake_bank: FakeBank) -> None:
    response = checkout(client, sign_checkout(amount=1000, reference="R"), method="bitcoin")

    assert response.status_code == 400
    assert not Invoice.objects.exists()


def test_checkout_only_accepts_post(client: Client) -> None:
    assert client.get(CHECKOUT).status_code == 405


def test_checkout_form_post_needs_the_shops_csrf_token(fake_bank: FakeBank) -> None:
    browser = Client(enforce_csrf_checks=True)

    response = checkout(browser, sign_checkout(amount=1000, reference="R"))

    assert response.status_code == 403
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(
    "bank_down",
    [
        pytest.param(lambda bank: bank.invoice_down(), id="connection-refused"),
        pytest.param(
            lambda bank: bank.invoice_down(requests.exceptions.ConnectTimeout()), id="timeout"
        ),
        pytest.param(
            lambda bank: bank.invoice_down(requests.exceptions.ReadTimeout()), id="read-timeout"
        ),
        pytest.param(
            lambda bank: bank.mock.add("POST", bank.url("/api/invoice"), status=500, body="x"),
            id="http-500",
        ),
        pytest.param(
            lambda bank: bank.mock.add("POST", bank.url("/api/invoice"), status=403, body=""),
            id="http-403",
        ),
        pytest.param(
            lambda bank: bank.mock.add("POST", bank.url("/api/invoice"), body="<html>"),
            id="not-json",
        ),
    ],
)
def test_bank_down_at_checkout_shows_a_friendly_503_never_a_500(
    client: Client, fake_bank: FakeBank, bank_down: Any
) -> None:
    bank_down(fake_bank)

    response = checkout(client, sign_checkout(amount=1000, reference="R"))

    assert response.status_code == 503
    assert "The bank is not answering right now" in response.content.decode()
    assert "Nothing was charged" in response.content.decode()
    assert Invoice.objects.get().status == Status.NEW


def test_bank_refusing_at_checkout_shows_a_friendly_page(
    client: Client, fake_bank: FakeBank
) -> None:
    fake_bank.invoice_refused()

    response = checkout(client, sign_checkout(amount=1000, reference="R"))

    assert response.status_code == 502
    assert "could not start this payment" in response.content.decode()
    assert Invoice.objects.get().status == Status.FAILED


@override_settings(
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
)
def test_checkout_works_in_a_shop_without_locale_middleware(
    client: Client, fake_bank: FakeBank
) -> None:
    fake_bank.invoice()

    response = checkout(client, sign_checkout(amount=1000, reference="R"))

    assert response.status_code == 303


# --- the template tag -----------------------------------------------------------------------


def render(source: str, **context: Any) -> str:
    request = RequestFactory().get("/cart/")
    return Template("{% load golomt_payments %}" + source).render(
        Context({"request": request, **context})
    )


def test_checkout_form_tag_payload_round_trips_through_read_checkout() -> None:
    html = render(
        "{% golomt_checkout_form amount=total reference=number save_card=True %}",
        total=Decimal("18000"),
        number="ORD-5",
    )

    assert 'action="/payments/checkout/"' in html
    assert 'method="post"' in html
    payload = re.search(r'name="payload" value="([^"]+)"', html)
    assert payload is not None
    order = read_checkout(payload.group(1))
    assert order.amount == Decimal("18000.00")
    assert order.reference == "ORD-5"
    assert order.account == "default"
    assert order.gen_token is True
    assert 'value="payment"' in html and 'value="socialpay"' in html


def test_checkout_form_tag_posts_a_payload_the_checkout_view_accepts(
    client: Client, fake_bank: FakeBank
) -> None:
    fake_bank.invoice()
    html = render("{% golomt_checkout_form amount=1500 reference='ORD-6' %}")
    payload = re.search(r'name="payload" value="([^"]+)"', html)
    assert payload is not None

    response = checkout(client, payload.group(1), method="socialpay")

    assert response.status_code == 303
    invoice = Invoice.objects.get()
    assert (invoice.amount, invoice.reference) == (Decimal("1500.00"), "ORD-6")


def test_checkout_payload_tag_gives_just_the_signed_payload() -> None:
    payload = render("{% golomt_checkout_payload 99 'ORD-8' %}")

    order = read_checkout(payload)
    assert (order.amount, order.reference) == (Decimal("99.00"), "ORD-8")


def test_checkout_form_tag_refuses_a_bad_amount_when_rendering() -> None:
    with pytest.raises(ValueError):
        render("{% golomt_checkout_form amount='1,000' reference='R' %}")


# --- amounts as customers read them -------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "mn"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("1250000"), "1,250,000"),
        (Decimal("1000.00"), "1,000"),  # no cents when there are none
        ("9800.50", "9,800.50"),
        (0, "0"),
        (None, ""),
        ("not a number", "not a number"),  # shown as it is, never an error on a page
        ("NaN", "NaN"),
    ],
)
def test_amounts_are_grouped_in_threes_in_both_languages(
    language: str, value: Any, shown: str
) -> None:
    with translation.override(language):
        assert golomt_amount(value) == shown
