"""The bank's checksums: HMAC-SHA256 over field values concatenated without a separator.

Each message kind has its own function so every formula of the bank's table lives in exactly
one place. ``None`` is hashed as the empty string (the bank hashes a null ``errorCode`` so).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "check_request",
    "confirmation_request",
    "confirmation_response",
    "get_token_request",
    "get_token_response",
    "inquiry_request",
    "invoice_request",
    "invoice_response",
    "matches",
    "pay_request",
    "pay_response",
    "settlement_request",
    "sign",
    "transaction_result",
]

HEX_LENGTH = 64


def sign(secret: str, *values: str | None) -> str:
    """The primitive: lowercase hex HMAC-SHA256 of the UTF-8 concatenation of ``values``."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("the merchant secret must be a non-empty string")
    parts: list[str] = []
    for index, value in enumerate(values):
        if value is None:
            parts.append("")
        elif isinstance(value, str):
            parts.append(value)
        else:
            # str(1.0) or str(True) would silently hash text the bank never saw.
            raise TypeError(
                f"checksum value #{index} must be str or None, not {type(value).__name__}"
            )
    # A lone surrogate (JSON "\ud800") is no UTF-8 text the bank could have signed: hash its
    # bytes anyway, so the checksum simply does not match instead of the hashing failing.
    message = "".join(parts).encode("utf-8", errors="surrogatepass")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def matches(received: object, expected: str) -> bool:
    """Constant-time check of a checksum someone sent us against the one we computed.

    Upper-case hex is accepted; anything that is not a 64-character string is refused.
    """
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    if len(received) != HEX_LENGTH or len(expected) != HEX_LENGTH:
        return False
    return hmac.compare_digest(received.lower().encode("utf-8"), expected.lower().encode("utf-8"))


def invoice_request(
    secret: str, *, transaction_id: str, amount: str, return_type: str, callback: str
) -> str:
    """``/api/invoice`` request: transactionId + amount + returnType + callback."""
    return sign(secret, transaction_id, amount, return_type, callback)


def invoice_response(secret: str, *, invoice: str, transaction_id: str) -> str:
    """``/api/invoice`` response: invoice + transactionId."""
    return sign(secret, invoice, transaction_id)


def inquiry_request(secret: str, *, transaction_id: str) -> str:
    """``/api/inquiry`` request: transactionId + transactionId."""
    return sign(secret, transaction_id, transaction_id)


def transaction_result(
    secret: str,
    *,
    transaction_id: str,
    error_code: str | None,
    amount: str,
    token: str | None = None,
) -> str:
    """Inquiry response, push notification, ``/api/check`` response.

    transactionId + errorCode + amount [+ token]; a missing or empty token is left out.
    """
    if token:
        return sign(secret, transaction_id, error_code, amount, token)
    return sign(secret, transaction_id, error_code, amount)


def pay_request(secret: str, *, amount: str, transaction_id: str, token: str) -> str:
    """``/api/pay`` request: amount + transactionId + token."""
    return sign(secret, amount, transaction_id, token)


def pay_response(secret: str, *, transaction_id: str, error_code: str | None, amount: str) -> str:
    """``/api/pay`` response: transactionId + errorCode + amount (never a token)."""
    return sign(secret, transaction_id, error_code, amount)


def check_request(secret: str, *, transaction_id: str) -> str:
    """``/api/check`` request: transactionId + transactionId."""
    return sign(secret, transaction_id, transaction_id)


def confirmation_request(
    secret: str, *, transaction_id: str, return_type: str, callback: str
) -> str:
    """``/api/confirmation`` request: transactionId + returnType + callback.

    The bank's table also lists amount, but this request has no amount field. If the bank
    says otherwise, this is the one place to change.
    """
    return sign(secret, transaction_id, return_type, callback)


def confirmation_response(secret: str, *, invoice: str, transaction_id: str) -> str:
    """``/api/confirmation`` response: invoice + transactionId."""
    return sign(secret, invoice, transaction_id)


def get_token_request(secret: str, *, transaction_id: str) -> str:
    """``/api/get/token`` request: transactionId + transactionId."""
    return sign(secret, transaction_id, transaction_id)


def get_token_response(secret: str, *, transaction_id: str, token: str | None) -> str:
    """``/api/get/token`` response: transactionId + token (a null token hashed as "")."""
    return sign(secret, transaction_id, token)


def settlement_request(secret: str, *, merchant_id: str, token: str) -> str:
    """``/api/getSettlementDetails`` request: merchantId + token."""
    return sign(secret, merchant_id, token)
