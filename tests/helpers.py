"""A fake bank for the Django-layer tests.

Checksums here are computed straight from :mod:`hmac`/:mod:`hashlib` from the bank's table,
never through ``golomt_payments.gateway.checksum``, so a bug there cannot hide itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
import responses
from django.dispatch import Signal

from golomt_payments import signals
from golomt_payments.models import CardToken, Invoice

BASE_URL = "https://bank.test"
SECRET = "test-hmac-secret"
BEARER = "test-bearer-token"

#: A card token as /api/get/token gives it in these tests.
CARD_TOKEN = "card-token-0001"

PAID_DESC = "Амжилттай"
EXPIRED_CARD_DESC = "Картын хугацаа дууссан"


def hmac_hex(*values: str | None, secret: str = SECRET) -> str:
    """HMAC-SHA256 of the values joined without a separator (null as ""), lowercase hex."""
    message = "".join(value or "" for value in values)
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def result_body(
    transaction_id: str,
    *,
    error_code: str | None = "000",
    amount: str = "1000.00",
    error_desc: str | None = None,
    token: str | None = None,
    status: str | None = "SENT",
    secret: str = SECRET,
    **extra: Any,
) -> dict[str, Any]:
    """A signed inquiry response (with ``status``) or push body (``status=None``)."""
    if error_desc is None and error_code is not None:
        error_desc = PAID_DESC if error_code == "000" else EXPIRED_CARD_DESC
    body: dict[str, Any] = {
        "amount": amount,
        "bank": "Голомт банк",
        "errorDesc": error_desc,
        "errorCode": error_code,
        "cardHolder": "9496250",
        "transactionId": transaction_id,
        "cardNumber": "949625******0003" if error_code == "000" else None,
    }
    if status is not None:
        body["status"] = status
    if token:
        body["token"] = token
    body["checksum"] = hmac_hex(transaction_id, error_code, amount, token, secret=secret)
    body.update(extra)
    return body


def push_body(transaction_id: str, **kwargs: Any) -> dict[str, Any]:
    """A signed push notification: like the inquiry answer, without ``status``."""
    kwargs.setdefault("status", None)
    return result_body(transaction_id, **kwargs)


def unpaid_body(transaction_id: str, **kwargs: Any) -> dict[str, Any]:
    """The inquiry answer while the customer has not paid: errorCode null, status PENDING."""
    kwargs.setdefault("status", "PENDING")
    return result_body(transaction_id, error_code=None, error_desc=None, **kwargs)


def error_body(path: str, error: str, message: str) -> dict[str, Any]:
    return {
        "timestamp": "2020-06-02T10:51:56.359+0000",
        "status": 400,
        "error": error,
        "message": message,
        "path": path,
    }


Reply = tuple[int, dict[str, str], str]


@dataclass
class FakeBank:
    """Registers the bank's endpoints on a ``responses`` mock for one merchant account."""

    mock: responses.RequestsMock
    base_url: str = BASE_URL
    secret: str = SECRET
    invoices_created: list[str] = field(default_factory=list)

    # -- /api/invoice ----------------------------------------------------------------------

    def invoice(
        self,
        *,
        bank_invoice: str | None = None,
        social_deeplink: str | None = None,
        delay: float = 0,
    ) -> None:
        """Accept every invoice, answering with a signed bank invoice id (``delay`` seconds
        later: a bank that takes its time, so that other requests come meanwhile)."""

        def reply(request: requests.PreparedRequest) -> Reply:
            time.sleep(delay)
            sent = json.loads(request.body or b"{}")
            invoice = bank_invoice or str(uuid.uuid4())
            self.invoices_created.append(invoice)
            body: dict[str, Any] = {
                "invoice": invoice,
                "transactionId": sent["transactionId"],
                "checksum": hmac_hex(invoice, sent["transactionId"], secret=self.secret),
            }
            if sent.get("socialDeeplink") == "Y":
                body["socialDeeplink"] = social_deeplink or f"socialpay-payment://key={invoice}"
            return 200, {}, json.dumps(body)

        self.mock.add_callback(responses.POST, self.url("/api/invoice"), callback=reply)

    def invoice_refused(self, message: str = "returnType is missing.") -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/invoice"),
            json=error_body("/api/invoice", "Validation", message),
            status=400,
        )

    def invoice_down(self, error: Exception | None = None) -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/invoice"),
            body=error or requests.exceptions.ConnectionError("connection refused"),
        )

    # -- /api/inquiry ----------------------------------------------------------------------

    def inquiry(
        self,
        *,
        error_code: str | None = "000",
        amount: str = "1000.00",
        **kwargs: Any,
    ) -> None:
        """Answer every inquiry about the transaction asked for, signed."""

        def reply(request: requests.PreparedRequest) -> Reply:
            transaction_id = json.loads(request.body or b"{}")["transactionId"]
            if error_code is None:
                body = unpaid_body(transaction_id, amount=amount, secret=self.secret, **kwargs)
            else:
                body = result_body(
                    transaction_id,
                    error_code=error_code,
                    amount=amount,
                    secret=self.secret,
                    **kwargs,
                )
            return 200, {}, json.dumps(body, ensure_ascii=False)

        self.mock.add_callback(responses.POST, self.url("/api/inquiry"), callback=reply)

    def inquiry_reply(self, reply: Callable[[requests.PreparedRequest], Reply]) -> None:
        self.mock.add_callback(responses.POST, self.url("/api/inquiry"), callback=reply)

    def inquiry_not_found(self) -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/inquiry"),
            json=error_body("/api/inquiry", "NotFound", "Payment not found"),
            status=400,
        )

    def inquiry_down(self, error: Exception | None = None) -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/inquiry"),
            body=error or requests.exceptions.ConnectTimeout("timed out"),
        )

    # -- token payments: /api/pay and /api/check ------------------------------------------

    def pay(
        self,
        *,
        error_code: str | None = "000",
        amount: str | None = None,
        error_desc: str | None = None,
        checksum: str | None = None,
        delay: float = 0,
    ) -> None:
        """Answer a token payment, signed (transactionId + errorCode + amount, no token).

        ``amount`` defaults to the amount sent; the answer comes ``delay`` seconds later.
        """

        def reply(request: requests.PreparedRequest) -> Reply:
            time.sleep(delay)
            sent = json.loads(request.body or b"{}")
            answered = sent["amount"] if amount is None else amount
            desc = error_desc
            if desc is None and error_code is not None:
                desc = PAID_DESC if error_code == "000" else EXPIRED_CARD_DESC
            body = {
                "amount": answered,
                "errorCode": error_code,
                "errorDesc": desc,
                "cardNumber": "949625******0003",
                "transactionId": sent["transactionId"],
                "checksum": checksum
                or hmac_hex(sent["transactionId"], error_code, answered, secret=self.secret),
            }
            return 200, {}, json.dumps(body, ensure_ascii=False)

        self.mock.add_callback(responses.POST, self.url("/api/pay"), callback=reply)

    def pay_down(self, error: Exception | None = None) -> None:
        """The pay call's answer is lost (the bank may or may not have charged the card)."""
        self.mock.add(
            responses.POST,
            self.url("/api/pay"),
            body=error or requests.exceptions.ReadTimeout("timed out"),
        )

    def pay_refused(self, message: str = "token is not valid.") -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/pay"),
            json=error_body("/api/pay", "Validation", message),
            status=400,
        )

    def check(self, *, error_code: str | None = "000", amount: str = "1000", **kwargs: Any) -> None:
        """Answer every /api/check, signed like the inquiry (without ``bank``/``cardHolder``)."""

        def reply(request: requests.PreparedRequest) -> Reply:
            transaction_id = json.loads(request.body or b"{}")["transactionId"]
            if error_code is None:
                body = unpaid_body(transaction_id, amount=amount, secret=self.secret, **kwargs)
            else:
                body = result_body(
                    transaction_id,
                    error_code=error_code,
                    amount=amount,
                    secret=self.secret,
                    **kwargs,
                )
            body.pop("status", None)
            body.pop("bank", None)
            body.pop("cardHolder", None)
            return 200, {}, json.dumps(body, ensure_ascii=False)

        self.mock.add_callback(responses.POST, self.url("/api/check"), callback=reply)

    def check_down(self, error: Exception | None = None) -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/check"),
            body=error or requests.exceptions.ConnectTimeout("timed out"),
        )

    def check_not_found(self) -> None:
        self.mock.add(
            responses.POST,
            self.url("/api/check"),
            json=error_body("/api/check", "NotFound", "Payment not found"),
            status=400,
        )

    # -- saving a card without buying: /api/confirmation and /api/get/token ----------------

    def confirmation(self, *, bank_invoice: str | None = None) -> None:
        """Accept every card-saving request, answering with a signed bank invoice id."""

        def reply(request: requests.PreparedRequest) -> Reply:
            sent = json.loads(request.body or b"{}")
            invoice = bank_invoice or str(uuid.uuid4())
            body = {
                "checksum": hmac_hex(invoice, sent["transactionId"], secret=self.secret),
                "transactionId": sent["transactionId"],
                "invoice": invoice,
            }
            return 200, {}, json.dumps(body)

        self.mock.add_callback(responses.POST, self.url("/api/confirmation"), callback=reply)

    def get_token(
        self,
        *,
        token: str | None = CARD_TOKEN,
        error_code: str | None = "000",
        error_desc: str | None = None,
    ) -> None:
        """Answer every /api/get/token, signed (transactionId + token)."""

        def reply(request: requests.PreparedRequest) -> Reply:
            transaction_id = json.loads(request.body or b"{}")["transactionId"]
            desc = error_desc
            if desc is None and error_code is not None:
                desc = PAID_DESC if error_code == "000" else EXPIRED_CARD_DESC
            body = {
                "bank": "Голомт банк" if error_code else None,
                "errorCode": error_code,
                "errorDesc": desc,
                "cardHolder": "BAT ERDENE" if error_code else None,
                "cardNumber": "949625******0003" if error_code else None,
                "transactionId": transaction_id,
                "token": token,
                "checksum": hmac_hex(transaction_id, token, secret=self.secret),
            }
            return 200, {}, json.dumps(body, ensure_ascii=False)

        self.mock.add_callback(responses.POST, self.url("/api/get/token"), callback=reply)

    # -- what was sent -------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def calls(self, path: str) -> list[Any]:
        return [call for call in self.mock.calls if call.request.url == self.url(path)]

    def sent(self, path: str, index: int = -1) -> dict[str, Any]:
        """The JSON body of one call to ``path`` (the last by default)."""
        return dict(json.loads(self.calls(path)[index].request.body))


class SignalRecorder:
    """Records every app signal received, as (signal name, invoice pk, extra kwargs); the
    event id every signal carries is kept apart, in ``event_ids``."""

    NAMES = (
        "invoice_status_changed",
        "payment_succeeded",
        "payment_failed",
        "payment_expired",
        "payment_duplicated",
        "payment_refunded",
    )

    def __init__(self) -> None:
        self.received: list[tuple[str, int, dict[str, Any]]] = []
        self.event_ids: list[str] = []
        self._receivers: list[tuple[Signal, Callable[..., None]]] = []

    def connect(self) -> None:
        for name in self.NAMES:
            signal: Signal = getattr(signals, name)

            def receiver(
                sender: Any, *, invoice: Invoice, event_id: str, _name: str = name, **kw: Any
            ) -> None:
                assert sender is Invoice
                kw.pop("signal", None)
                self.received.append((_name, invoice.pk, kw))
                self.event_ids.append(event_id)

            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()

    def names(self) -> list[str]:
        return [name for name, _, _ in self.received]


class CardSignalRecorder:
    """Records ``card_saved`` and ``card_removed``, as (signal name, card pk, extra kwargs)."""

    NAMES = ("card_saved", "card_removed")

    def __init__(self) -> None:
        self.received: list[tuple[str, int, dict[str, Any]]] = []
        self.event_ids: list[str] = []
        self._receivers: list[tuple[Signal, Callable[..., None]]] = []

    def connect(self) -> None:
        for name in self.NAMES:
            signal: Signal = getattr(signals, name)

            def receiver(
                sender: Any, *, card: CardToken, event_id: str, _name: str = name, **kw: Any
            ) -> None:
                assert sender is CardToken
                kw.pop("signal", None)
                self.received.append((_name, card.pk, kw))
                self.event_ids.append(event_id)

            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()

    def names(self) -> list[str]:
        return [name for name, _, _ in self.received]


class Clock:
    """A stand-in for the ``time`` module of Django's cache backends: move ``offset`` on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


class Later:
    """``django.utils.timezone.now`` moved ``offset`` on: the time every timestamp and lease of
    the app is read against. ``move`` is safe from any thread."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self.offset = timedelta()

    def now(self) -> datetime:
        return self._now() + self.offset

    def move(self, **delta: float) -> None:
        with self._lock:
            self.offset += timedelta(**delta)
