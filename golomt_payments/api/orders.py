"""The shop's side of a payment over the API: the client names an order, the shop says what
it costs.

The client must never choose the amount, so the API asks the callable named by
``API_ORDER_RESOLVER``, ``resolver(request, data)``, where ``data`` is the validated request
body (``order``, and for a new payment ``method``, ``language``, ``return_type``,
``callback``, ``save_card``; for a saved card also ``card``, the card's id). It returns a
mapping with ``amount`` (required), and optionally ``reference`` (default: the client's
``order``), ``metadata`` (a dict) and ``account`` (the merchant account). To refuse, it raises
one of DRF's exceptions (``NotFound``, ``PermissionDenied``, ``ValidationError``), which reach
the client as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from golomt_payments import conf
from golomt_payments.checkout import REFERENCE_MAX_LENGTH
from golomt_payments.gateway import format_amount

_MAX_DIGITS_BEFORE_POINT = 12  # Invoice.amount: 14 digits, 2 of them decimals
_KEYS = frozenset({"amount", "reference", "metadata", "account"})


class NotEnabled(APIException):
    """The shop has not told the API how to price an order: no payments over the API."""

    status_code = status.HTTP_501_NOT_IMPLEMENTED
    default_detail = _(
        "Payments over the API are not enabled: the shop has not set "
        "GOLOMT_PAYMENTS['API_ORDER_RESOLVER']."
    )
    default_code = "not_enabled"


@dataclass(frozen=True, slots=True)
class Order:
    """What the shop says the client's order costs."""

    amount: Decimal
    reference: str
    metadata: dict[str, Any] | None = None
    account: str = conf.DEFAULT_ACCOUNT


def resolve(request: Request, data: Mapping[str, Any]) -> Order:
    """Ask the shop's resolver what ``data["order"]`` costs.

    Raises :class:`NotEnabled` without a resolver, whatever the resolver raises to refuse, and
    ``ImproperlyConfigured`` (a server error: the shop's bug) for an answer that could never
    become an invoice.
    """
    resolver = conf.get().api_order_resolver
    if resolver is None:
        raise NotEnabled
    answer = resolver(request, dict(data))
    return _order(answer, default_reference=str(data.get("order", "")))


def _order(answer: Any, *, default_reference: str) -> Order:
    def bad(problem: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"GOLOMT_PAYMENTS['API_ORDER_RESOLVER'] {problem}")

    if not isinstance(answer, Mapping):
        raise bad(f"must return a dict with an 'amount', not {type(answer).__name__}.")
    unknown = set(answer) - _KEYS
    if unknown:
        raise bad(f"returned unknown keys: {', '.join(sorted(map(str, unknown)))}.")
    if "amount" not in answer:
        raise bad("returned no 'amount'.")
    try:
        amount = Decimal(format_amount(answer["amount"]))
    except (TypeError, ValueError) as exc:
        raise bad(f"returned an unusable amount {answer['amount']!r}: {exc}") from None
    if amount.adjusted() >= _MAX_DIGITS_BEFORE_POINT:
        raise bad(f"returned an amount too large for an invoice: {amount}.")
    reference = answer.get("reference", default_reference)
    if not isinstance(reference, str) or len(reference) > REFERENCE_MAX_LENGTH:
        raise bad(f"must return a 'reference' of at most {REFERENCE_MAX_LENGTH} characters.")
    metadata = answer.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad("must return 'metadata' as a dict or None.")
    account = answer.get("account", conf.DEFAULT_ACCOUNT)
    if account not in conf.get().accounts:
        raise bad(f"returned an unknown merchant account {account!r}.")
    return Order(amount=amount, reference=reference, metadata=metadata, account=account)
