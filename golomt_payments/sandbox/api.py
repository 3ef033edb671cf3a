"""The simulated bank's E-Commerce API: JSON over POST, a bearer token, checksums both ways.

Errors look like the bank's: 403 with an empty body for a bad token, 400 with Spring Boot's
``{"timestamp", "status", "error", "message", "path"}`` for a bad request (``Validation``) or an
unknown id (``NotFound``), 500 ``Internal`` when a test card says so.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import date
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from golomt_payments.gateway import checksum, is_valid_transaction_id
from golomt_payments.sandbox import conf, services, wire
from golomt_payments.sandbox.conf import SandboxSettings
from golomt_payments.sandbox.models import Kind, Transaction
from golomt_payments.sandbox.services import ReadFault, Refused

Body = Mapping[str, Any]
Handler = Callable[[HttpRequest, Body, SandboxSettings], dict[str, Any]]
View = Callable[[HttpRequest], HttpResponse]

RETURN_TYPES = ("POST", "GET", "MOBILE")
PAY_LANGS = ("MN", "EN")
_AMOUNT = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")
_HTTP_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
_DEEPLINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_DIGITS = re.compile(r"[0-9]{1,9}")
_UNSAFE_SCHEMES = ("javascript", "data", "vbscript", "file")
_MAX_SETTLEMENT_PAGE = 1000


class ApiError(Exception):
    """Answer with the bank's error body instead of the handler's."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _validation(message: str) -> ApiError:
    return ApiError(400, "Validation", message)


def json_response(data: dict[str, Any], status: int = 200) -> JsonResponse:
    """UTF-8 JSON with the Mongolian texts left readable, as the bank sends them."""
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})


def error_response(status: int, error: str, message: str, path: str) -> JsonResponse:
    return json_response(wire.error_body(status, error, message, path), status=status)


def endpoint(path: str) -> Callable[[Handler], View]:
    """Wrap a handler with the bank's transport rules: latency, token, POST, JSON, errors.

    ``path`` is the bank's own path (``/api/invoice``), reported in error bodies wherever the
    sandbox is mounted.
    """

    def decorate(handler: Handler) -> View:
        @csrf_exempt
        @wraps(handler)
        def view(request: HttpRequest) -> HttpResponse:
            settings = conf.get()
            settings.require_credentials()
            if settings.latency_ms:
                time.sleep(settings.latency_ms / 1000)
            if not _authorised(request, settings.bearer_token):
                forbidden = HttpResponse(status=403)
                del forbidden["Content-Type"]
                return forbidden
            if request.method != "POST":
                return error_response(
                    405,
                    "Method Not Allowed",
                    f"Request method '{request.method}' is not supported",
                    path,
                )
            try:
                answer = handler(request, _json_object(request), settings)
            except ApiError as exc:
                return error_response(exc.status, exc.error, exc.message, path)
            except Refused as exc:
                return error_response(400, exc.error, exc.message, path)
            return json_response(answer)

        return view

    return decorate


def _authorised(request: HttpRequest, token: str) -> bool:
    header: str = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8"), token.encode("utf-8")
    )


def _json_object(request: HttpRequest) -> Body:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _validation("Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _validation("Request body must be a JSON object.")
    return body


def _text(body: Body, name: str) -> str:
    """A required string field; the bank's own words for a missing one."""
    value = body.get(name)
    if value is None or value == "":
        raise _validation(f"{name} is missing.")
    if not isinstance(value, str):
        raise _validation(f"{name} must be a string.")
    return value


def _yes_no(body: Body, name: str) -> bool:
    value = body.get(name)
    if value is None or value == "":
        return False
    if value not in ("Y", "N"):
        raise _validation(f"{name} must be Y or N.")
    return bool(value == "Y")


def _transaction_id(value: str) -> str:
    if not is_valid_transaction_id(value):
        raise _validation("transactionId must be less than 16 letters and digits.")
    return value


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value) or not any(ch in "123456789" for ch in value):
        raise _validation("amount is invalid.")
    return value


def _return_type(value: str) -> str:
    if value not in RETURN_TYPES:
        raise _validation("returnType must be POST, GET or MOBILE.")
    return value


def _callback(value: str, return_type: str) -> str:
    """An http(s) URL for browsers; for MOBILE an app deeplink, but never a script URL."""
    if return_type == "MOBILE":
        valid = bool(_DEEPLINK.fullmatch(value)) and not value.lower().startswith(_UNSAFE_SCHEMES)
    else:
        valid = bool(_HTTP_URL.fullmatch(value))
    if not valid or len(value) > 2000:
        raise _validation("callback is invalid.")
    return value


def _verify(received: str, expected: str) -> None:
    if not checksum.matches(received, expected):
        raise _validation("checksum is invalid.")


def _read(tx: Transaction, settings: SandboxSettings) -> Transaction:
    """Apply the test card's read faults (HTTP 500, or a slow answer) to one inquiry."""
    fault = services.take_read_fault(tx)
    if fault is ReadFault.FAIL:
        raise ApiError(500, "Internal", "Internal server error")
    if fault is ReadFault.SLOW:
        time.sleep(settings.slow_inquiry_seconds)
        tx.refresh_from_db()
    return tx


@endpoint("/api/invoice")
def invoice(request: HttpRequest, body: Body, settings: SandboxSettings) -> dict[str, Any]:
    """Create a payment page; checksum transactionId + amount + returnType + callback."""
    transaction_id = _text(body, "transactionId")
    amount = _text(body, "amount")
    return_type = _text(body, "returnType")
    callback = _text(body, "callback")
    received = _text(body, "checksum")
    _transaction_id(transaction_id)
    _amount(amount)
    _callback(callback, _return_type(return_type))
    gen_token = _yes_no(body, "genToken")
    social_deeplink = _yes_no(body, "socialDeeplink")
    _verify(
        received,
        checksum.invoice_request(
            settings.secret,
            transaction_id=transaction_id,
            amount=amount,
            return_type=return_type,
            callback=callback,
        ),
    )
    tx = services.create_payment(
        transaction_id=transaction_id,
        amount=amount,
        return_type=return_type,
        callback=callback,
        gen_token=gen_token,
        social_deeplink=social_deeplink,
    )
    return wire.invoice_body(tx, settings.secret)


@endpoint("/api/inquiry")
def inquiry(request: HttpRequest, body: Body, settings: SandboxSettings) -> dict[str, Any]:
    """A payment's state: PENDING with a null errorCode until the customer pays or fails."""
    transaction_id = _text(body, "transactionId")
    _verify(
        _text(body, "checksum"),
        checksum.inquiry_request(settings.secret, transaction_id=transaction_id),
    )
    tx = services.find(transaction_id, Kind.PAYMENT)
    services.expire_if_due(tx)
    return wire.inquiry_body(_read(tx, settings), settings.secret)


@endpoint("/api/pay")
def pay(request: HttpRequest, body: Body, settings: SandboxSettings) -> dict[str, Any]:
    """Charge a saved card token at once; checksum amount + transactionId + token."""
    amount = _text(body, "amount")
    transaction_id = _text(body, "transactionId")
    token = _text(body, "token")
    received = _text(body, "checksum")
    lang = body.get("lang") or "MN"
    if not isinstance(lang, str) or lang.upper() not in PAY_LANGS:
        raise _validation("lang must be MN or EN.")
    _transaction_id(transaction_id)
    _amount(amount)
    _verify(
        received,
        checksum.pay_request(
            settings.secret, amount=amount, transaction_id=transaction_id, token=token
        ),
    )
    tx = services.token_pay(
        transaction_id=transaction_id, amount=amount, token=token, lang=lang.upper()
    )
    return wire.pay_body(tx, settings.secret)


@endpoint("/api/check")
def check(request: HttpRequest, body: Body, settings: SandboxSettings) -> dict[str, Any]:
    """The state of a token payment, like the inquiry."""
    transaction_id = _text(body, "transactionId")
    _verify(
        _text(body, "checksum"),
        checksum.check_request(settings.secret, transaction_id=transaction_id),
    )
    tx = services.find(transaction_id, Kind.TOKEN_PAYMENT)
    return wire.check_body(_read(tx, settings), settings.secret)


@endpoint("/api/confirmation")
def confirmation(request: HttpRequest, body: Body, settings: SandboxSettings) -> dict[str, Any]:
    """Start saving a card; checksum transactionId + returnType + callback (see the gateway)."""
    callback = _text(body, "callback")
    return_type = _text(body, "returnType")
    transaction_id = _text(body, "transactionId")
    received = _text(body, "checksum")
    _transaction_id(transaction_id)
    _callback(callback, _return_type(return_type))
    _verify(
        received,
        checksum.confirmation_request(
            settings.secret,
            transaction_id=transaction_id,
            return_type=return_type,
            callback=callback,
        ),
    )
    tx = services.create_confirmation(
        transaction_id=transaction_id, return_type=return_type, callback=callback
    )
    return wire.confirmation_body(tx, settings.secret)


@endpoint("/api/get/token")
def get_token(request: HttpRequest, body: Body, settings: SandboxSettings) -> dict[str, Any]:
    """The card token a confirmation page created (null until the customer finishes)."""
    transaction_id = _text(body, "transactionId")
    _verify(
        _text(body, "checksum"),
        checksum.get_token_request(settings.secret, transaction_id=transaction_id),
    )
    tx = services.find(transaction_id, Kind.CONFIRMATION)
    services.expire_if_due(tx)
    return wire.get_token_body(_read(tx, settings), settings.secret)


@endpoint("/api/getSettlementDetails")
def settlement_details(
    request: HttpRequest, body: Body, settings: SandboxSettings
) -> dict[str, Any]:
    """Settled card payments between two dates, a page at a time (no response checksum)."""
    merchant_id = _text(body, "merchantId")
    token = _text(body, "token")
    _verify(
        _text(body, "checksum"),
        checksum.settlement_request(settings.secret, merchant_id=merchant_id, token=token),
    )
    query = services.SettlementQuery(
        merchant_id=merchant_id,
        start=_date_param(request, "start"),
        end=_date_param(request, "end"),
        page=_int_param(request, "page", 0, minimum=0),
        size=_int_param(request, "size", 50, minimum=1),
    )
    if query.start > query.end:
        raise _validation("start must not be after end.")
    if query.size > _MAX_SETTLEMENT_PAGE:
        raise _validation(f"size must be at most {_MAX_SETTLEMENT_PAGE}.")
    return services.settlement_page(query)


def _date_param(request: HttpRequest, name: str) -> date:
    value = request.GET.get(name, "")
    if not value:
        raise _validation(f"{name} is missing.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _validation(f"{name} must be a date like 2024-01-31.") from None


def _int_param(request: HttpRequest, name: str, default: int, *, minimum: int) -> int:
    value = request.GET.get(name, "")
    if value == "":
        return default
    if not _DIGITS.fullmatch(value) or int(value) < minimum:
        raise _validation(f"{name} must be an integer >= {minimum}.")
    return int(value)
