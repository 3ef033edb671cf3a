"""How the shop hears about payments: the app's signals.

They come at least once, each with an ``event_id``: written in the same transaction as the
payment, delivered after the commit, and delivered again (same ``event_id``) until every
receiver returns. So each receiver makes its effect once however often it runs: here a single
conditional UPDATE, which changes nothing the second time. A receiver that cannot do its work
raises, and the app delivers the signal again later.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _

from golomt_payments.models import Invoice
from golomt_payments.signals import (
    payment_duplicated,
    payment_expired,
    payment_failed,
    payment_succeeded,
)
from shop.models import Order

logger = logging.getLogger(__name__)


@receiver(payment_succeeded, sender=Invoice, dispatch_uid="shop.mark_order_paid")
def mark_order_paid(sender: type[Invoice], invoice: Invoice, event_id: str, **kwargs: Any) -> None:
    """The bank confirmed the money: the order is paid (once, and only for its full total)."""
    order = Order.objects.filter(number=invoice.reference).first()
    if order is None:
        logger.error(
            "Payment %s is for unknown order %r", invoice.transaction_id, invoice.reference
        )
        return
    if invoice.amount != order.total:
        logger.error(
            "Payment %s of %s does not match order %s total %s; not marking it paid",
            invoice.transaction_id,
            invoice.amount,
            order.number,
            order.total,
        )
        return
    updated = (
        Order.objects.filter(pk=order.pk)
        .exclude(status=Order.Status.PAID)
        .update(
            status=Order.Status.PAID,
            paid_at=invoice.paid_at or timezone.now(),
            payment_card=invoice.card_number,
            payment_error="",
        )
    )
    if updated:
        logger.info("Order %s paid (%s, event %s)", order.number, invoice.transaction_id, event_id)


@receiver(payment_duplicated, sender=Invoice, dispatch_uid="shop.report_double_payment")
def report_double_payment(
    sender: type[Invoice], invoice: Invoice, first_invoice: Invoice, **kwargs: Any
) -> None:
    """Money came in twice for one order: the app flagged the second payment for a refund (see
    the admin's "paid twice" filter); the shop only makes sure somebody hears of it."""
    logger.error(
        "Order %s was paid twice (%s after %s): refund %s ₮ in the bank's portal",
        invoice.reference,
        invoice.transaction_id,
        first_invoice.transaction_id,
        invoice.amount,
    )


@receiver(payment_failed, sender=Invoice, dispatch_uid="shop.record_payment_failure")
def record_payment_failure(sender: type[Invoice], invoice: Invoice, **kwargs: Any) -> None:
    """Keep the bank's own words, so the order page can tell the customer what went wrong."""
    text = invoice.bank_description or _("The bank did not accept the payment.")
    Order.objects.filter(number=invoice.reference, status=Order.Status.AWAITING_PAYMENT).update(
        payment_error=text[:255]
    )


@receiver(payment_expired, sender=Invoice, dispatch_uid="shop.record_payment_expiry")
def record_payment_expiry(sender: type[Invoice], invoice: Invoice, **kwargs: Any) -> None:
    Order.objects.filter(number=invoice.reference, status=Order.Status.AWAITING_PAYMENT).update(
        payment_error=_("The payment time ran out.")
    )
