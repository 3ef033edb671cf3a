"""The error hierarchy: what is transient, and what survives pickling (Celery)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from golomt_payments.gateway import (
    RETRYABLE,
    BadResponse,
    BankRefused,
    BankServerError,
    BankTimeout,
    BankUnreachable,
    ChecksumMismatch,
    GolomtError,
    PaymentNotFound,
    Unauthorized,
    is_transient,
)


@pytest.mark.parametrize(
    "error",
    [
        BankUnreachable("down", endpoint="/api/inquiry"),
        BankTimeout("slow", endpoint="/api/inquiry"),
        BankServerError("500", endpoint="/api/inquiry", status_code=500),
    ],
)
def test_unknown_outcomes_are_transient(error: GolomtError) -> None:
    assert is_transient(error)
    assert isinstance(error, RETRYABLE)


@pytest.mark.parametrize(
    "error",
    [
        BankRefused("no", error="Validation"),
        PaymentNotFound("no", error="NotFound"),
        Unauthorized("no", status_code=403),
        BadResponse("bad"),
        ChecksumMismatch("forged"),
        ValueError("not ours"),
    ],
)
def test_definite_answers_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_hierarchy_lets_callers_catch_broadly() -> None:
    assert issubclass(PaymentNotFound, BankRefused)
    assert issubclass(BankTimeout, BankUnreachable)
    assert issubclass(ChecksumMismatch, BadResponse)
    for cls in (BankRefused, Unauthorized, BankServerError, BankUnreachable, BadResponse):
        assert issubclass(cls, GolomtError)


def test_errors_survive_pickling_with_their_context() -> None:
    original = PaymentNotFound(
        "/api/inquiry: not found",
        endpoint="/api/inquiry",
        error="NotFound",
        bank_message="Payment not found",
        path="/api/inquiry",
        body={"error": "NotFound"},
    )
    copy = pickle.loads(pickle.dumps(original))  # noqa: S301 - our own bytes
    assert type(copy) is PaymentNotFound
    assert str(copy) == str(original)
    assert (copy.endpoint, copy.status_code, copy.error, copy.message, copy.body) == (
        "/api/inquiry",
        400,
        "NotFound",
        "Payment not found",
        {"error": "NotFound"},
    )
    dumped = pickle.dumps(BankServerError("x", status_code=502, body_excerpt="b"))
    server = pickle.loads(dumped)  # noqa: S301 - our own bytes
    assert (server.status_code, server.body_excerpt) == (502, "b")


def test_gateway_imports_nothing_from_django() -> None:
    code = (
        "import sys, golomt_payments.gateway\n"
        "loaded = [name for name in sys.modules if name.split('.')[0] == 'django']\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - fixed argv
