"""What the services refuse, in words a caller can act on. Views and the API choose the HTTP
status; nothing here speaks HTTP. Whatever the error, nothing was charged."""

from __future__ import annotations

from decimal import Decimal

from golomt_payments.models import Invoice


class PaymentError(Exception):
    """What the services would not do for a payment. Nothing was charged (the bank may have
    been asked about the order's earlier invoice)."""


class OrderAlreadyPaid(PaymentError):
    """The order (the account's shop reference) is already paid, by ``invoice``."""

    def __init__(self, invoice: Invoice) -> None:
        self.invoice = invoice
        super().__init__(
            f"order {invoice.reference!r} is already paid (invoice {invoice.transaction_id})"
        )


class OrderAmountChanged(PaymentError):
    """The order has a payment open for another amount (``invoice``): a shop that changed the
    order must wait until that payment's page has run out, or give the order a new reference."""

    def __init__(self, invoice: Invoice, amount: Decimal) -> None:
        self.invoice = invoice
        self.amount = amount
        super().__init__(
            f"order {invoice.reference!r} has a payment open for {invoice.amount} "
            f"(invoice {invoice.transaction_id}), not {amount}"
        )


class OrderBusy(PaymentError):
    """Another request is starting this order's payment and the bank has not given it a page
    (yet); ask again in a moment."""

    def __init__(self, reference: str, invoice: Invoice | None = None) -> None:
        self.reference = reference
        self.invoice = invoice
        super().__init__(f"order {reference!r}: another request is starting its payment")


class OrderInProgress(PaymentError):
    """A saved-card charge of the order is under way (``invoice``): its outcome is still
    coming, so no other payment of the order is started meanwhile."""

    def __init__(self, invoice: Invoice) -> None:
        self.invoice = invoice
        super().__init__(
            f"order {invoice.reference!r}: saved-card charge {invoice.transaction_id} is under way"
        )


class CardRemoved(PaymentError):
    """The saved card was removed (or holds no token): it cannot pay."""


class RefundRefused(PaymentError):
    """A refund that cannot be recorded: the invoice is not paid, or the amount is not what
    is left to refund."""


class CallbackRefused(ValueError):
    """A callback the bank would send the customer to is not this site's, nor on a host the
    shop allowed (``ALLOWED_REDIRECT_HOSTS``), nor an app deeplink: nothing was asked."""
