"""Where the bank sends the customer after its page is ours: this site, a host the shop
allowed, or an app's own deeplink. Never a host an API client or a caller chose."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from golomt_payments import services
from golomt_payments.models import CardRegistration, Invoice
from tests.helpers import FakeBank
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

PAYMENTS = "/payments/api/payments/"
CARD_ADD = "/payments/api/cards/add/"
RESOLVER = "tests.test_api.price_order"

FOREIGN = [
    "https://evil.example/landing",
    "HTTPS://evil.example/landing",
    "https:evil.example/landing",
    "http://evil.example/",
    "https://shop.test@evil.example/",
    "https://shop.test.evil.example/",
    "https://evil.example\\@shop.test/",
    "https:///evil.example/",
    "https://[x/",
    "https://evil.com\uff03@shop.test/",
    "https://shop.test\u2100evil.com/",
    "https://evil.example/\x00",
]
OURS = [
    "https://shop.test/app/paid",  # CALLBACK_BASE_URL's host
    "https://testserver/app/paid",  # ALLOWED_HOSTS
    "https://app.shop.example/open",  # ALLOWED_REDIRECT_HOSTS
    "myshop://payment/done",  # an app's own scheme
]


@pytest.fixture(autouse=True)
def golomt(settings: Any) -> None:
    settings.GOLOMT_PAYMENTS = {
        **GOLOMT_PAYMENTS,
        "API_ORDER_RESOLVER": RESOLVER,
        "ALLOWED_REDIRECT_HOSTS": ["app.shop.example"],
    }


@pytest.fixture
def api(django_user_model: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("alice"))
    return client


@pytest.mark.parametrize("callback", FOREIGN)
def test_the_api_refuses_a_payment_callback_on_a_foreign_host(
    api: APIClient, fake_bank: FakeBank, callback: str
) -> None:
    response = api.post(
        PAYMENTS, {"order": "ORDER-1", "callback": callback, "return_type": "MOBILE"}, "json"
    )

    assert response.status_code == 400, response.json()
    assert "callback" in response.json()
    assert not fake_bank.mock.calls
    assert not Invoice.objects.exists()


def test_the_refusal_names_the_setting(api: APIClient, fake_bank: FakeBank) -> None:
    response = api.post(
        PAYMENTS, {"order": "ORDER-1", "callback": FOREIGN[0], "return_type": "MOBILE"}, "json"
    )
    assert "ALLOWED_REDIRECT_HOSTS" in response.json()["callback"][0]


@pytest.mark.parametrize("callback", FOREIGN)
def test_the_api_refuses_a_card_callback_on_a_foreign_host(
    api: APIClient, fake_bank: FakeBank, callback: str
) -> None:
    response = api.post(CARD_ADD, {"callback": callback}, "json")

    assert response.status_code == 400, response.json()
    assert "callback" in response.json()
    assert not fake_bank.mock.calls
    assert not CardRegistration.objects.exists()


@pytest.mark.parametrize("callback", OURS)
def test_the_api_takes_our_own_callbacks(
    api: APIClient, fake_bank: FakeBank, callback: str
) -> None:
    fake_bank.invoice()
    fake_bank.confirmation()

    payment = api.post(
        PAYMENTS, {"order": "ORDER-1", "callback": callback, "return_type": "MOBILE"}, "json"
    )
    card = api.post(CARD_ADD, {"callback": callback}, "json")

    assert (payment.status_code, card.status_code) == (201, 201), (payment.json(), card.json())
    assert Invoice.objects.get().callback_url == callback


@pytest.mark.parametrize("callback", FOREIGN)
def test_code_cannot_send_the_customer_elsewhere_either(
    fake_bank: FakeBank, django_user_model: Any, callback: str
) -> None:
    with pytest.raises(services.CallbackRefused):
        services.open_payment(amount=1000, reference="R-1", callback_url=callback)
    with pytest.raises(services.CallbackRefused):
        services.start_card_registration(
            django_user_model.objects.create_user("bob"), callback_url=callback
        )
    assert not fake_bank.mock.calls


def test_a_wildcard_allowed_hosts_does_not_make_every_host_ours(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    with pytest.raises(services.CallbackRefused, match="ALLOWED_REDIRECT_HOSTS"):
        services.check_callback("https://evil.example/")
    services.check_callback("https://shop.test/payments/return/")  # CALLBACK_BASE_URL


@override_settings(ALLOWED_HOSTS=[".shop.example"])
def test_allowed_hosts_patterns_cover_subdomains() -> None:
    services.check_callback("https://pay.shop.example/return/")
    with pytest.raises(services.CallbackRefused):
        services.check_callback("https://shop.example.evil/return/")


def test_script_links_and_browser_schemes_are_never_app_links() -> None:
    for link in (
        "javascript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "file:///etc",
        "intent://x#Intent;S.browser_fallback_url=https%3A%2F%2Fevil.com;end",
        "googlechromes://evil.com/",
        "x-safari-https://evil.com",
        "microsoft-edge-https://evil.com",
        "firefox://open-url?url=https://evil.com",
    ):
        with pytest.raises(services.CallbackRefused):
            services.check_callback(link, "MOBILE")
