"""The simulated bank's JSON answers, built from its books and signed like the bank signs them.

Every checksum comes from :mod:`golomt_payments.gateway.checksum`, so the formulas live in one
place for the shop and the sandbox alike. Amounts are echoed normalised ("1.00" comes back as
"1"), as the real bank does, so a shop that compares amounts as text finds out here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from golomt_payments.gateway import checksum
from golomt_payments.sandbox.cards import BANK_NAME
from golomt_payments.sandbox.models import State, Transaction

__all__ = [
    "check_body",
    "confirmation_body",
    "echo_amount",
    "error_body",
    "get_token_body",
    "inquiry_body",
    "invoice_body",
    "pay_body",
    "push_body",
    "social_deeplink",
]


def echo_amount(text: str) -> str:
    """The amount as the bank sends it back: "1.00" -> "1", "18000.50" -> "18000.5"."""
    if not text:
        return text
    return format(Decimal(text).normalize(), "f")


def social_deeplink(tx: Transaction) -> str:
    """The link a phone opens in the SocialPay app (shown as a link or QR code by the shop)."""
    return f"socialpay-payment://key={tx.invoice}"


def invoice_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """``/api/invoice`` answer: checksum over invoice + transactionId."""
    body: dict[str, Any] = {"invoice": str(tx.invoice), "transactionId": tx.transaction_id}
    if tx.social_deeplink:
        body["socialDeeplink"] = social_deeplink(tx)
    body["checksum"] = checksum.invoice_response(
        secret, invoice=str(tx.invoice), transaction_id=tx.transaction_id
    )
    return body


def confirmation_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """``/api/confirmation`` answer, in the key order of the bank's example."""
    return {
        "checksum": checksum.confirmation_response(
            secret, invoice=str(tx.invoice), transaction_id=tx.transaction_id
        ),
        "transactionId": tx.transaction_id,
        "invoice": str(tx.invoice),
    }


def _result(tx: Transaction, secret: str, *, status: bool, bank: bool) -> dict[str, Any]:
    """Shared shape of the inquiry, check and push: null fields while the customer has not paid."""
    finished = tx.state == State.SENT
    amount = echo_amount(tx.amount)
    token = tx.token if tx.is_paid and tx.token else None
    body: dict[str, Any] = {}
    if status:
        body["status"] = "SENT" if finished else "PENDING"
    body["amount"] = amount
    if bank:
        body["bank"] = BANK_NAME if finished else None
    body["errorDesc"] = tx.error_desc if finished else None
    body["errorCode"] = tx.error_code or None  # JSON null until paid or declined
    if bank:
        body["cardHolder"] = tx.card_holder if finished else None
    body["transactionId"] = tx.transaction_id
    body["cardNumber"] = tx.card_number if finished else None
    if token:
        body["token"] = token
    body["checksum"] = checksum.transaction_result(
        secret,
        transaction_id=tx.transaction_id,
        error_code=body["errorCode"],
        amount=amount,
        token=token,
    )
    return body


def inquiry_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """``/api/inquiry`` answer: the push fields plus ``status`` (PENDING until paid or failed)."""
    return _result(tx, secret, status=True, bank=True)


def push_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """The push notification; the token only on success when one was asked for."""
    return _result(tx, secret, status=False, bank=True)


def check_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """``/api/check`` answer: like a successful push without ``bank`` and ``cardHolder``."""
    return _result(tx, secret, status=False, bank=False)


def pay_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """``/api/pay`` answer: checksum transactionId + errorCode + amount, never a token."""
    amount = echo_amount(tx.amount)
    return {
        "amount": amount,
        "errorCode": tx.error_code,
        "errorDesc": tx.error_desc,
        "cardNumber": tx.card_number,
        "transactionId": tx.transaction_id,
        "checksum": checksum.pay_response(
            secret, transaction_id=tx.transaction_id, error_code=tx.error_code, amount=amount
        ),
    }


def get_token_body(tx: Transaction, secret: str) -> dict[str, Any]:
    """``/api/get/token`` answer: checksum transactionId + token (null until a card is saved)."""
    finished = tx.state == State.SENT
    token = tx.token if tx.is_paid and tx.token else None
    return {
        "bank": BANK_NAME if finished else None,
        "errorCode": tx.error_code or None,
        "errorDesc": tx.error_desc if finished else None,
        "cardHolder": tx.card_holder if finished else None,
        "cardNumber": tx.card_number if finished else None,
        "transactionId": tx.transaction_id,
        "token": token,
        "checksum": checksum.get_token_response(
            secret, transaction_id=tx.transaction_id, token=token
        ),
    }


def error_body(status: int, error: str, message: str, path: str) -> dict[str, Any]:
    """The bank's error shape (Spring Boot's): ``timestamp`` like 2020-06-02T10:51:56.359+0000."""
    now = datetime.now(UTC)
    return {
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000",
        "status": status,
        "error": error,
        "message": message,
        "path": path,
    }
