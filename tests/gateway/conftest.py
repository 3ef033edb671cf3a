"""Shared fixtures for the gateway tests: fake bank over ``responses``, independent HMAC."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from golomt_payments.gateway import Exchange, GolomtClient

SECRET = "merchant-secret-Xy9"
BEARER = "bearer-TOKEN-4f2a9c"
BASE = "https://bank.example"


def hmac_hex(message: str, key: str = SECRET) -> str:
    """The bank's checksum computed straight from hmac/hashlib, not through our code."""
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def inquiry_body(
    transaction_id: str = "test000001",
    *,
    error_code: str | None = "000",
    amount: str = "1000",
    token: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A signed inquiry/push/check body, as the bank's pages show it."""
    body: dict[str, Any] = {
        "amount": amount,
        "bank": "Голомт банк",
        "errorDesc": "Амжилттай" if error_code == "000" else None,
        "errorCode": error_code,
        "cardHolder": "9496250",
        "transactionId": transaction_id,
        "cardNumber": "949625******0003",
        "status": "SENT",
    }
    message = transaction_id + (error_code or "") + amount
    if token:
        body["token"] = token
        message += token
    body["checksum"] = hmac_hex(message)
    body.update(extra)
    return body


@pytest.fixture
def bank() -> Iterator[responses.RequestsMock]:
    """The fake bank: every registered answer must be used, no real network."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def exchanges() -> list[Exchange]:
    return []


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(exchanges: list[Exchange], sleeps: list[float]) -> Iterator[GolomtClient]:
    gateway = GolomtClient(
        base_url=BASE + "/",
        bearer_token=BEARER,
        secret=SECRET,
        timeout=(3.0, 11.0),
        read_retries=2,
        backoff=0.5,
        on_exchange=exchanges.append,
    )
    gateway._sleep = sleeps.append
    with gateway:
        yield gateway
