"""``{% golomt_checkout_form amount=order.total reference=order.number save_card=True %}``,
and ``{{ invoice.amount|golomt_amount }}``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import numberformat
from django.utils.formats import get_format

from golomt_payments.checkout import sign_checkout
from golomt_payments.services import active_cards

register = template.Library()


@register.inclusion_tag("golomt_payments/checkout_form.html", takes_context=True)
def golomt_checkout_form(
    context: template.Context,
    amount: Decimal | int | str,
    reference: str,
    account: str = "default",
    save_card: bool = False,
) -> dict[str, Any]:
    """A checkout form whose amount the browser cannot change.

    For a logged-in customer, ``save_card=True`` adds a "Save this card" box (the shop's offer
    is signed with the amount; the customer's tick decides), and their saved cards of
    ``account`` are offered first, to pay in one click without the bank's page.
    """
    request = context.get("request")
    user = getattr(request, "user", None)
    customer = user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "amount": amount,
        "payload": sign_checkout(
            amount=amount, reference=reference, account=account, gen_token=save_card
        ),
        "offer_save_card": save_card and customer is not None,
        "saved_cards": list(active_cards(customer, account=account)) if customer else [],
    }


@register.simple_tag
def golomt_checkout_payload(
    amount: Decimal | int | str, reference: str, account: str = "default"
) -> str:
    """Just the signed payload, for shops that write their own form."""
    return sign_checkout(amount=amount, reference=reference, account=account)


@register.filter
def golomt_amount(value: Decimal | int | str | None) -> str:
    """An amount of tögrög as customers read it: digits grouped in threes, cents only when
    there are any (``1,250,000``, ``9,800.50``), with the page language's separators.

    Django's ``floatformat:"g"`` groups only where the language defines a grouping, and
    Mongolian does not, so a Mongolian page would show ``1250000``.
    """
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    return numberformat.format(
        amount,
        get_format("DECIMAL_SEPARATOR"),
        decimal_pos=0 if amount == amount.to_integral_value() else 2,
        grouping=get_format("NUMBER_GROUPING") or 3,
        thousand_sep=get_format("THOUSAND_SEPARATOR"),
        force_grouping=True,
    )
