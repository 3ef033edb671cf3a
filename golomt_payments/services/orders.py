"""An order as the payment app sees it: what a shop's order page needs to show and offer.

A shop reference names one order. The rule that at most one of its invoices is payable at a
time, and none is started once one paid, lives in :func:`~golomt_payments.services.
open_payment`; this is its read side, so a shop's pages follow the same rule without their
own queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from golomt_payments import conf
from golomt_payments.models import Invoice, Status
from golomt_payments.services.payments import is_payable

__all__ = ["OrderState", "order_state"]


@dataclass(frozen=True, slots=True)
class OrderState:
    """The payments of one order.

    ``holder`` is the invoice that paid the order or may be paid now (``None``: none does);
    ``latest`` the order's newest invoice, whose bank text explains a failed attempt.
    """

    reference: str
    holder: Invoice | None
    latest: Invoice | None

    @property
    def paid_by(self) -> Invoice | None:
        """The invoice that paid the order (the money is in), even before the shop's own
        receiver has marked the order paid."""
        holder = self.holder
        return holder if holder is not None and holder.status == Status.PAID else None

    @property
    def payable(self) -> Invoice | None:
        """The invoice the customer may still pay on the bank's page: send them back to it
        (``payments/resume/<key>/``) rather than offering to pay again."""
        holder = self.holder
        return holder if holder is not None and is_payable(holder) else None

    @property
    def is_paid(self) -> bool:
        return self.paid_by is not None

    @property
    def can_pay(self) -> bool:
        """Whether to offer the checkout form: the order is not paid and has no invoice the
        customer may still pay. (A payment another request is just opening counts as none: the
        form then leads to that payment's page.)"""
        return self.paid_by is None and self.payable is None


def order_state(reference: str, *, account: str = conf.DEFAULT_ACCOUNT) -> OrderState:
    """The payments of the order ``reference`` of ``account``: one query, two when the
    newest invoice is not the one holding the order."""
    invoices = Invoice.objects.filter(account=account, reference=reference)
    latest = invoices.order_by("-pk").first() if reference else None
    if latest is None or latest.holds_order:
        return OrderState(reference, latest, latest)
    return OrderState(reference, invoices.filter(holds_order=True).first(), latest)
