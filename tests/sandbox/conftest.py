"""Fixtures for the sandbox bank's tests: its settings, its URLs, and clients that talk to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from pytest_django import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from golomt_payments.gateway import GolomtClient, checksum
from golomt_payments.sandbox import services
from golomt_payments.sandbox.models import Transaction

TOKEN = "test-bearer-token"
SECRET = "test-hmac-secret"
MOUNT = "/sandbox-bank"
SANDBOX: dict[str, Any] = {
    "BEARER_TOKEN": TOKEN,
    "SECRET": SECRET,
    "PUSH_URL": "",
    "PUSH_MODE": "off",
    "PAGE_TIMEOUT_SECONDS": 600,
    "PUSH_DELAY_SECONDS": 0,
    "SLOW_INQUIRY_SECONDS": 1.5,
}

Configure = Callable[..., None]


@pytest.fixture(autouse=True)
def sandbox_urls(settings: SettingsWrapper) -> None:
    settings.ROOT_URLCONF = "tests.sandbox.urls"


@pytest.fixture(autouse=True)
def configure_sandbox(settings: SettingsWrapper) -> Configure:
    """Sandbox settings for a test; call the fixture with overrides (``PUSH_MODE="sync"``)."""
    settings.GOLOMT_SANDBOX = dict(SANDBOX)

    def configure(**overrides: Any) -> None:
        settings.GOLOMT_SANDBOX = {**SANDBOX, **overrides}

    return configure


@pytest.fixture
def bank_url(live_server: LiveServer) -> str:
    """The sandbox's base URL, as a shop's ``GOLOMT_PAYMENTS["BASE_URL"]`` would hold it."""
    return live_server.url + MOUNT


@pytest.fixture
def golomt(bank_url: str) -> Iterator[GolomtClient]:
    """The app's real gateway client, pointed at the sandbox served by ``live_server``."""
    with GolomtClient(
        base_url=bank_url, bearer_token=TOKEN, secret=SECRET, timeout=(5.0, 10.0), read_retries=0
    ) as client:
        yield client


@pytest.fixture
def raw_post(bank_url: str) -> Callable[..., requests.Response]:
    """POST a hand-made body to the sandbox API, for the answers the client never provokes."""

    def post(
        path: str,
        body: object,
        *,
        token: str | None = TOKEN,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.post(bank_url + path, json=body, headers=headers, params=params, timeout=10)

    return post


def new_payment(
    transaction_id: str = "shop0000000001",
    amount: str = "18000.00",
    *,
    return_type: str = "POST",
    callback: str = "https://shop.test/payments/return/",
    gen_token: bool = False,
    social_deeplink: bool = False,
) -> Transaction:
    """A transaction as ``/api/invoice`` would open it, without the HTTP round trip."""
    return services.create_payment(
        transaction_id=transaction_id,
        amount=amount,
        return_type=return_type,
        callback=callback,
        gen_token=gen_token,
        social_deeplink=social_deeplink,
    )


def invoice_body(
    transaction_id: str,
    amount: str = "1000.00",
    return_type: str = "POST",
    callback: str = "https://shop.test/payments/return/",
) -> dict[str, str]:
    """A correct ``/api/invoice`` body, to be spoiled one field at a time."""
    return {
        "amount": amount,
        "callback": callback,
        "checksum": checksum.invoice_request(
            SECRET,
            transaction_id=transaction_id,
            amount=amount,
            return_type=return_type,
            callback=callback,
        ),
        "genToken": "N",
        "returnType": return_type,
        "transactionId": transaction_id,
        "socialDeeplink": "N",
    }
