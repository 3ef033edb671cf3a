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
REFERENCE_MAX_LENGTH = 100  # Invoice.reference


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
    """A tamper-proof token for the checkout form's hidden ``payload`` field.

    Raises ``ValueError`` for what could never become an invoice, so the shop learns it while
    rendering its page rather than the customer at checkout.
    """
    _check(reference, account)
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
        order = CheckoutRequest(
            amount=Decimal(format_amount(data["a"])),
            reference=str(data["r"]),
            account=str(data["c"]),
            gen_token=bool(data.get("t", False)),
            metadata=data.get("m"),
        )
        _check(order.reference, order.account)
    except (KeyError, ValueError) as exc:
        raise signing.BadSignature(f"payload is unusable: {exc}") from None
    return order


def _check(reference: str, account: str) -> None:
    if len(reference) > REFERENCE_MAX_LENGTH:
        raise ValueError(f"reference is longer than {REFERENCE_MAX_LENGTH} characters")
    if account not in conf.get().accounts:
        raise ValueError(f"no merchant account named {account!r}")
