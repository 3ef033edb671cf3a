# factory-boy's declarations are not annotated.
# mypy: disable-error-code="no-untyped-call"
"""factory-boy factories for the app's models, for the app's and shops' tests.

They write rows directly, bypassing :mod:`golomt_payments.services`: use them to *arrange* a
state, and the services to *act*. ``InvoiceFactory()`` is a pending card invoice of 1000.00
that the bank knows; traits give the other states::

    InvoiceFactory(paid=True)
    InvoiceFactory(new=True)          # not yet created at the bank
    InvoiceFactory(socialpay=True, amount=Decimal("25000"))

Each invoice with a reference holds its order (the one payment of that reference the database
allows at a time); pass ``holds_order=False`` for another invoice of the same reference.

``CardTokenFactory(owner=user)`` is an active saved card of that customer.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.utils import timezone
from factory.declarations import (
    LazyAttribute,
    LazyFunction,
    SelfAttribute,
    Sequence,
    SubFactory,
    Trait,
)
from factory.django import DjangoModelFactory

from golomt_payments.gateway import format_amount, new_transaction_id
from golomt_payments.models import (
    BankMessage,
    CardToken,
    Direction,
    Invoice,
    Language,
    MessageKind,
    Method,
    Outcome,
    ReturnType,
    Source,
    Status,
    StatusChange,
)

__all__ = [
    "BankMessageFactory",
    "CardTokenFactory",
    "InvoiceFactory",
    "OutboundMessageFactory",
    "StatusChangeFactory",
]


class InvoiceFactory(DjangoModelFactory[Invoice]):
    class Meta:
        model = Invoice

    account = "default"
    transaction_id = LazyFunction(new_transaction_id)
    bank_invoice = LazyFunction(lambda: str(uuid.uuid4()))
    amount = Decimal("1000.00")
    amount_sent = LazyAttribute(lambda invoice: format_amount(invoice.amount))
    status = Status.PENDING
    method = Method.CARD
    return_type = ReturnType.POST
    language = Language.MN
    callback_url = "https://shop.test/payments/return/"
    reference = Sequence(lambda n: f"ORDER-{n:05d}")
    # As the services leave it: the one invoice of its order that may be (or was) paid. Pass
    # ``holds_order=False`` for a second invoice of the same reference.
    holds_order = LazyAttribute(
        lambda invoice: bool(invoice.reference) and invoice.status != Status.EXPIRED
    )

    class Params:
        new = Trait(status=Status.NEW, bank_invoice="")
        paid = Trait(
            status=Status.PAID,
            bank_code="000",
            bank_description="Амжилттай",
            card_number="949625******0003",
            card_bank="Голомт банк",
            paid_at=LazyFunction(timezone.now),
        )
        failed = Trait(
            status=Status.FAILED, bank_code="300", bank_description="Картын хугацаа дууссан"
        )
        expired = Trait(status=Status.EXPIRED)
        socialpay = Trait(
            method=Method.SOCIALPAY,
            social_deeplink=LazyAttribute(
                lambda invoice: f"socialpay-payment://key={invoice.bank_invoice}"
            ),
        )

    @classmethod
    def _adjust_kwargs(cls, **kwargs: Any) -> dict[str, Any]:
        # Keep ``amount`` a Decimal in memory too, as a row read back from the database is.
        kwargs["amount"] = Decimal(format_amount(kwargs["amount"]))
        return kwargs


class CardTokenFactory(DjangoModelFactory[CardToken]):
    """A customer's active saved card; pass ``owner``."""

    class Meta:
        model = CardToken

    account = "default"
    token = Sequence(lambda n: f"test-card-token-{n:06d}")
    card_number = "949625******0003"
    card_bank = "Голомт банк"
    card_holder = "TEST CARDHOLDER"


class StatusChangeFactory(DjangoModelFactory[StatusChange]):
    class Meta:
        model = StatusChange

    invoice = SubFactory(InvoiceFactory)
    from_status = Status.NEW
    to_status = Status.PENDING
    source = Source.API


class BankMessageFactory(DjangoModelFactory[BankMessage]):
    """An inbound push notification row, already processed."""

    class Meta:
        model = BankMessage

    direction = Direction.INBOUND
    kind = MessageKind.PUSH
    invoice = SubFactory(InvoiceFactory)
    account = SelfAttribute("invoice.account")
    transaction_id = SelfAttribute("invoice.transaction_id")
    endpoint = "/payments/push/"
    body = "{}"
    headers = LazyFunction(lambda: {"Content-Type": "application/json"})
    remote_addr: str | None = "203.0.113.10"
    checksum_valid: bool | None = True
    outcome = Outcome.PROCESSED


class OutboundMessageFactory(BankMessageFactory):
    """An answered inquiry we sent to the bank."""

    direction = Direction.OUTBOUND
    kind = MessageKind.INQUIRY
    endpoint = "/api/inquiry"
    http_status = 200
    headers = LazyFunction(dict)
    remote_addr = None
    checksum_valid = None
    outcome = Outcome.OK
    duration_ms = 12
