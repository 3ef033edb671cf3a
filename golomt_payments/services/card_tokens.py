"""The card-token bookkeeping that runs with a status change: what a payment that became paid
does to the customer's saved cards. Called by the status door (``payments.transition``) under
the invoice's row lock, and by the card flows (``cards``); it imports neither.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from golomt_payments.bank import storable
from golomt_payments.gateway import TokenResult, TransactionResult
from golomt_payments.models import CardRegistration, CardToken, Invoice, Method, SignalName
from golomt_payments.services.notifications import Notice, owe

__all__ = ["keep_card", "on_paid", "saved_notice"]

logger = logging.getLogger(__name__)


def on_paid(invoice: Invoice, result: TransactionResult | None) -> list[str]:
    """Called by the payment services under the invoice's row lock as it becomes paid.

    A saved-card payment marks its card used. A payment the customer asked to save the card
    of (``gen_token``) keeps the token the bank returned, for the invoice's owner; an invoice
    without an owner keeps none. Returns the invoice fields it set (the caller saves them).
    """
    if invoice.card_token_id is not None:
        if invoice.method == Method.SAVED_CARD:
            CardToken.objects.filter(pk=invoice.card_token_id).update(last_used_at=timezone.now())
        return []
    if not invoice.gen_token or result is None or not result.token:
        return []
    if invoice.owner_id is None:
        logger.info(
            "Invoice %s: the bank created a card token, but the invoice has no customer to "
            "keep it for; it is not kept",
            invoice.transaction_id,
        )
        return []
    card, saved = keep_card(owner_id=invoice.owner_id, account=invoice.account, answer=result)
    if card is None:
        return []
    invoice.card_token = card
    if saved:
        owe(saved_notice(card, invoice=invoice, registration=None))
    return ["card_token"]


def keep_card(
    *, owner_id: Any, account: str, answer: TransactionResult | TokenResult
) -> tuple[CardToken | None, bool]:
    """The customer's card for the token of the bank's ``answer`` (which has one), created if
    new; the flag says whether it is newly saved (created, or saved again after the customer
    removed it), i.e. worth a signal.

    ``None`` when the token is already another customer's card: it is never handed over.
    """
    # The bank's texts are outside any checksum of the token's: make them fit the columns.
    details = {
        "card_number": storable(answer.card_number or "")[:32],
        "card_bank": storable(answer.bank or "")[:100],
        "card_holder": storable(answer.card_holder or "")[:100],
    }
    with transaction.atomic():
        card, created = CardToken.objects.select_for_update().get_or_create(
            account=account, token=answer.token, defaults={"owner_id": owner_id, **details}
        )
        if created:
            return card, True
        if card.owner_id != owner_id:
            logger.warning(
                "A card token is already saved for another customer (card #%s); "
                "not saved for customer #%s",
                card.pk,
                owner_id,
            )
            return None, False
        if card.is_active:
            return card, False
        card.is_active = True
        changed = ["is_active"]
        for name, value in details.items():
            if value:
                setattr(card, name, value)
                changed.append(name)
        card.save(update_fields=changed)
    return card, True


def saved_notice(
    card: CardToken, *, invoice: Invoice | None, registration: CardRegistration | None
) -> Notice:
    return Notice(
        SignalName.CARD_SAVED,
        card=card,
        invoice=invoice,
        data={
            "invoice": invoice.pk if invoice else None,
            "registration": registration.pk if registration else None,
        },
        objects={"card": card, "invoice": invoice, "registration": registration},
    )
