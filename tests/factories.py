"""The suite uses the same factories shops import."""

from golomt_payments.testing.factories import (
    BankMessageFactory,
    InvoiceFactory,
    OutboundMessageFactory,
    StatusChangeFactory,
)

__all__ = [
    "BankMessageFactory",
    "InvoiceFactory",
    "OutboundMessageFactory",
    "StatusChangeFactory",
]
