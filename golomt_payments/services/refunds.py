"""Refunds, as the shop's record of them: the bank's API has no refund call, so staff refund in
the bank's merchant portal and record it here, on the invoice, with who and when."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum

from golomt_payments.models import Invoice, Refund, SignalName, Status
from golomt_payments.services.errors import RefundRefused
from golomt_payments.services.notifications import Notice, owe

__all__ = ["record_refund", "refunded_amount"]

logger = logging.getLogger(__name__)


def refunded_amount(invoice: Invoice) -> Decimal:
    """What has been recorded as refunded on ``invoice`` so far."""
    total = invoice.refunds.aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0.00")


def record_refund(
    invoice: Invoice,
    *,
    amount: Decimal | int | str,
    note: str = "",
    by: AbstractBaseUser | None = None,
) -> Refund:
    """Record that ``amount`` of a paid invoice was given back in the bank's portal; owes
    ``payment_refunded`` (after the commit, with the refund).

    Raises :class:`RefundRefused` for an invoice that is not paid and for an amount that is
    not positive or more than is left to refund (two staff recording at once are decided one
    after the other, under the invoice's row lock).
    """
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise RefundRefused(f"{amount!r} is not an amount") from None
    if not value.is_finite() or value <= 0:
        raise RefundRefused("a refund must be more than zero")
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status != Status.PAID:
            raise RefundRefused("only a paid invoice can be refunded")
        left = locked.amount - refunded_amount(locked)
        if value > left:
            raise RefundRefused(f"only {left} is left to refund on this invoice")
        refund = Refund.objects.create(
            invoice=locked, amount=value, note=note, recorded_by_id=by.pk if by else None
        )
        owe(
            Notice(
                SignalName.REFUNDED,
                invoice=locked,
                data={"refund": refund.pk},
                objects={"invoice": locked, "refund": refund},
            )
        )
    logger.info(
        "Refund of %s recorded on invoice %s",
        value,
        locked.transaction_id,
        extra={"transaction_id": locked.transaction_id, "amount": str(value)},
    )
    return refund
