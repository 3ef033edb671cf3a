"""What the shop's checkout form carries: the amount and reference, signed by the shop.

The browser must not choose the amount, so the shop signs it when it renders the form and the
checkout view refuses anything it did not sign (or signed too long ago).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core import signing

from golomt_payments import conf
from golomt_payments.gateway import format_amount

SALT = "golomt_payments.checkout"


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    amount: Decimal
    reference: str
    account: str = conf.DEFAULT_ACCOUNT
    gen_token: bool = False
    metadata: dict[str, Any] | None = None


def sign_checkout(
    *,
    amount: Decimal | int | str,
    reference: str,
    account: str = conf.DEFAULT_ACCOUNT,
    gen_token: bool = False,
    metadata: dict[str, Any] | None = None,
) -> str:
    """A tamper-proof token for the checkout form's hidden ``payload`` field."""
    payload = {"a": format_amount(amount), "r": reference, "c": account, "t": gen_token}
    if metadata:
        payload["m"] = metadata
    return signing.dumps(payload, salt=SALT, compress=True)


def read_checkout(token: str) -> CheckoutRequest:
    """Unpack a token made by :func:`sign_checkout`; ``signing.BadSignature`` if it was not."""
    data = signing.loads(token, salt=SALT, max_age=conf.get().checkout_max_age_seconds)
    if not isinstance(data, dict):
        raise signing.BadSignature("payload is not an object")
    try:
        return CheckoutRequest(
            amount=Decimal(format_amount(data["a"])),
            reference=str(data["r"]),
            account=str(data["c"]),
            gen_token=bool(data.get("t", False)),
            metadata=data.get("m"),
        )
    except (KeyError, ValueError) as exc:
        raise signing.BadSignature(f"payload is incomplete: {exc}") from None
