"""``{% golomt_checkout_form amount=order.total reference=order.number %}``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from golomt_payments.checkout import sign_checkout

register = template.Library()


@register.inclusion_tag("golomt_payments/checkout_form.html", takes_context=True)
def golomt_checkout_form(
    context: template.Context,
    amount: Decimal | int | str,
    reference: str,
    account: str = "default",
    save_card: bool = False,
) -> dict[str, Any]:
    """A checkout form whose amount the browser cannot change."""
    return {
        "request": context.get("request"),
        "csrf_token": context.get("csrf_token"),
        "amount": amount,
        "payload": sign_checkout(
            amount=amount, reference=reference, account=account, gen_token=save_card
        ),
    }


@register.simple_tag
def golomt_checkout_payload(
    amount: Decimal | int | str, reference: str, account: str = "default"
) -> str:
    """Just the signed payload, for shops that write their own form."""
    return sign_checkout(amount=amount, reference=reference, account=account)
