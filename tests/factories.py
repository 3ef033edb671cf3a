"""The suite uses the same factories shops import."""

from golomt_payments.testing.factories import (
    BankMessageFactory,
    CardTokenFactory,
    InvoiceFactory,
    OutboundMessageFactory,
    StatusChangeFactory,
)

__all__ = [
    "BankMessageFactory",
    "CardTokenFactory",
    "InvoiceFactory",
    "OutboundMessageFactory",
    "StatusChangeFactory",
]
