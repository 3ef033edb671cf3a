"""Saved cards: paying with one, adding a card without buying, removing one. With
:mod:`~golomt_payments.services.card_tokens` (which keeps a card a payment brought), the only
code that creates or changes a card or a card registration.

A card token charges the card again without the customer: it is a credential. It is taken only
from a verified bank answer about our own transaction (the inquiry, a push confirmed by its
checksum, ``/api/get/token``), kept once per merchant account and customer, and never shown in
full. Like invoices, cards are changed under a row lock and their signals sent after commit.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from golomt_payments import bank, conf
from golomt_payments.bank import storable
from golomt_payments.gateway import (
    BadResponse,
    BankRefused,
    BankServerError,
    BankUnreachable,
    GolomtError,
    PaymentNotFound,
    TokenResult,
    TransactionResult,
    Unauthorized,
    format_amount,
    new_transaction_id,
)
from golomt_payments.models import (
    CardRegistration,
    CardToken,
    Invoice,
    Language,
    Method,
    RegistrationStatus,
    SignalName,
    Source,
    Status,
)
from golomt_payments.services import decision, payments
from golomt_payments.services.card_tokens import keep_card, saved_notice
from golomt_payments.services.errors import CardRemoved
from golomt_payments.services.notifications import Notice, owe

__all__ = [
    "active_cards",
    "charge_saved_card",
    "finish_card_registration",
    "finish_card_registration_if_due",
    "pay_with_saved_card",
    "registration_url",
    "remove_card",
    "start_card_registration",
]

logger = logging.getLogger(__name__)

#: A registration in one of these states has its answer; the bank is not asked again.
FINISHED = tuple(old for old, news in decision.REGISTRATION_TRANSITIONS.items() if not news)

#: Why the reconciler closed a registration (kept in ``bank_description``, like the bank's words).
UNFINISHED = "The card-saving page was not finished in time."

#: What a token payment answers when the outcome is unknown: only ``/api/check`` can tell.
_UNCLEAR = (BankUnreachable, BankServerError, BadResponse)

#: How long after the bank declined a saved card for an order a new charge of that card for
#: that order (and amount) answers with the decline instead of reaching the bank: a declined
#: charge lets go of its order at once, and the clicks of an impatient customer must not each
#: become a charge. Long enough for a burst of clicks queued behind busy workers, short enough
#: for a customer who has just topped up the account.
DECLINE_COOL_DOWN = timedelta(seconds=30)


def active_cards(owner: AbstractBaseUser, *, account: str | None = None) -> QuerySet[CardToken]:
    """The customer's cards that can pay, newest first."""
    cards = CardToken.objects.filter(owner_id=owner.pk, is_active=True)
    return cards if account is None else cards.filter(account=account)


# --- paying with a saved card -----------------------------------------------------------------


def pay_with_saved_card(
    card: CardToken,
    *,
    amount: Decimal | int | str,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    language: str | None = None,
) -> Invoice:
    """The invoice of :func:`charge_saved_card`: the new charge, the order's payment already
    under way, or this card's decline of moments ago."""
    return charge_saved_card(
        card, amount=amount, reference=reference, metadata=metadata, language=language
    ).invoice


def charge_saved_card(
    card: CardToken,
    *,
    amount: Decimal | int | str,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    language: str | None = None,
) -> payments.Opened:
    """Charge a saved card at once (``/api/pay``): no bank page, no redirect, no push.

    The invoice goes through the same states, history and signals as a card payment. The pay
    call is never repeated: when its answer is lost or cannot be trusted, ``/api/check``
    decides, and when that does not answer either the invoice stays ``pending`` for the
    reconciler (which asks ``/api/check`` as well). A call the bank turns away (HTTP 400 or
    403) charged nothing: the invoice fails with the bank's words.

    A ``reference`` names one order, as for :func:`~golomt_payments.services.open_payment`:
    while a payment of it is under way (this card's, another card's, or a bank page the
    customer opened and whose timer still runs) nothing is charged and that payment is
    returned (``created`` is ``False``);
    ``OrderAlreadyPaid`` once it is paid, ``OrderAmountChanged`` while one for another amount
    is open. For :data:`DECLINE_COOL_DOWN` after the bank declined this card for the order and
    amount, nothing is charged either and that declined invoice is returned (``created`` is
    ``False``). Raises :class:`CardRemoved` for a removed card and ``ValueError`` for a bad
    amount.
    """
    settings = conf.get()
    settings.account(card.account)  # fail early on an unknown account name
    amount_text = format_amount(amount)
    lang = Language(language or settings.default_language)
    token = ""

    def create(holds_order: bool) -> Invoice:
        nonlocal token
        # Durable: the invoice must be committed before the bank is asked to charge, so a
        # caller's rollback can never lose a charge; inside a transaction this refuses at once.
        with transaction.atomic(durable=True):
            # The order first (its INSERT may wait for another payment of the order to commit),
            # then the card, locked: a removal waits for this decision. Every writer takes the
            # order's locks before the card's (a payment settles its order before it marks the
            # card used), so this never waits for the order while holding the card.
            invoice = Invoice.objects.create(
                account=card.account,
                transaction_id=new_transaction_id(settings.transaction_id_prefix),
                amount=Decimal(amount_text),
                amount_sent=amount_text,
                method=Method.SAVED_CARD,
                language=lang,
                owner_id=card.owner_id,
                card_token=card,
                card_number=card.card_number,
                card_bank=card.card_bank,
                reference=reference,
                metadata=metadata or {},
                holds_order=holds_order,
            )
            locked = CardToken.objects.select_for_update().get(pk=card.pk)
            if not locked.is_active or not locked.token:
                raise CardRemoved("this saved card was removed")
            # Asked after the INSERT, which waited for the order's last charge to commit its
            # outcome: a decline that let go of the order a moment ago is seen here.
            declined = _declined_moments_ago(card, reference, invoice.amount) if reference else None
            if declined is not None:
                raise _Declined(declined)  # the new invoice is rolled back: nothing to charge
            token = locked.token
            return invoice

    try:
        opened = payments.open_order(
            account=card.account,
            reference=reference,
            amount=Decimal(amount_text),
            method=Method.SAVED_CARD,
            create=create,
        )
    except _Declined as declined:
        logger.warning(
            "Saved card #%s was declined for order %r moments ago (%s); not charged again",
            card.pk,
            reference,
            declined.invoice.transaction_id,
        )
        return payments.Opened(declined.invoice, created=False)
    invoice = opened.invoice
    if not opened.created:
        logger.warning(
            "Saved card #%s: order %r is already being paid by %s; not charged again",
            card.pk,
            reference,
            invoice.transaction_id,
        )
        return opened
    payments.transition(invoice.pk, Status.PENDING, source=Source.API, known=invoice)
    result: TransactionResult | None = None
    try:
        with bank.about(invoice.pk):
            result = bank.client(invoice.account).pay(
                transaction_id=invoice.transaction_id,
                amount=amount_text,
                token=token,
                lang=lang.upper(),
            )
    except (BankRefused, Unauthorized) as exc:
        logger.warning("Token payment %s was turned away: %s", invoice.transaction_id, exc)
        description = exc.message if isinstance(exc, BankRefused) else None
        payments.transition(
            invoice.pk,
            Status.FAILED,
            source=Source.API,
            description=description or "",
            known=invoice,
            fields={"holds_order": False},  # nothing charged: the order may be paid again
        )
        return opened
    except _UNCLEAR as exc:
        logger.warning(
            "Token payment %s: the answer was lost or unclear (%s); asking /api/check",
            invoice.transaction_id,
            exc,
        )
    if result is not None:
        payments.apply_result(invoice, result, source=Source.API)
        if decision.target_status(result) is not None:
            return opened
    try:
        payments.refresh(invoice, source=Source.API, within=payments.customer_wait())
    except GolomtError as exc:
        logger.warning(
            "Token payment %s: /api/check did not answer either (%s); left pending for the "
            "reconciler",
            invoice.transaction_id,
            exc,
        )
    invoice.refresh_from_db()
    return opened


class _Declined(Exception):
    """The card was declined for the order moments ago (``invoice``): not charged again."""

    def __init__(self, invoice: Invoice) -> None:
        super().__init__(invoice.transaction_id)
        self.invoice = invoice


def _declined_moments_ago(card: CardToken, reference: str, amount: Decimal) -> Invoice | None:
    """The card's latest charge for the order and amount that the bank declined within
    :data:`DECLINE_COOL_DOWN`, if any."""
    return (
        Invoice.objects.filter(
            account=card.account,
            reference=reference,
            card_token_id=card.pk,
            method=Method.SAVED_CARD,
            amount=amount,
            status=Status.FAILED,
            updated_at__gt=timezone.now() - DECLINE_COOL_DOWN,
        )
        .order_by("-updated_at")
        .first()
    )


# --- adding a card without buying -------------------------------------------------------------


def start_card_registration(
    owner: AbstractBaseUser,
    *,
    callback_url: str,
    language: str | None = None,
    account: str = conf.DEFAULT_ACCOUNT,
    return_type: str | None = None,
) -> CardRegistration:
    """Ask the bank for a card-saving page (``/api/confirmation``); the result is ``pending``
    with the bank's invoice id. Send the customer to :func:`registration_url`.

    Raises ``ValueError`` for a bad callback and the gateway's errors when the bank refuses
    (the registration is then failed) or cannot be reached (it stays ``new``). Never retried.
    """
    settings = conf.get()
    settings.account(account)
    return_type = return_type or settings.return_type
    payments.check_callback(callback_url, return_type)
    registration = CardRegistration.objects.create(
        owner_id=owner.pk,
        account=account,
        transaction_id=new_transaction_id(settings.transaction_id_prefix),
        language=Language(language or settings.default_language),
        callback_url=callback_url,
    )
    try:
        created = bank.client(account).create_token(
            transaction_id=registration.transaction_id,
            callback=callback_url,
            return_type=return_type,
        )
    except BankRefused as exc:
        _close(registration, RegistrationStatus.FAILED, description=exc.message or "")
        raise
    CardRegistration.objects.filter(
        pk=registration.pk, status__in=decision.registration_sources(RegistrationStatus.PENDING)
    ).update(
        status=RegistrationStatus.PENDING, bank_invoice=created.invoice, updated_at=timezone.now()
    )
    registration.refresh_from_db()
    return registration


def registration_url(registration: CardRegistration) -> str:
    """The bank's card-saving page for ``registration``."""
    return bank.client(registration.account).confirmation_url(
        registration.bank_invoice, lang=registration.language
    )


def finish_card_registration(
    registration: CardRegistration, *, within: float | None = None
) -> CardToken | None:
    """Ask the bank (``/api/get/token``) whether the customer finished the card-saving page,
    and record its answer once: the card saved (``card_saved`` after commit), or the
    registration failed with the bank's words. Returns the card, or ``None`` while there is
    none (not finished yet, unknown to the bank, or failed).

    Raises the gateway's errors when the bank cannot be reached (within ``within`` seconds,
    when given); nothing changes then.
    """
    if registration.status in FINISHED:
        return registration.card_token
    try:
        result = bank.client(registration.account).get_token(
            registration.transaction_id, within=within
        )
    except PaymentNotFound:
        return None
    return _record_token(registration, result)


def finish_card_registration_if_due(registration: CardRegistration) -> CardToken | None:
    """Like :func:`finish_card_registration`, asking the bank about one registration at most
    once per ``STATUS_CHECK_INTERVAL_SECONDS`` and never longer than a customer waits
    (``CUSTOMER_WAIT_SECONDS``): for the unauthenticated redirect and for pages a customer
    may reload, neither of which may make us hammer the bank."""
    if registration.status in FINISHED:
        return registration.card_token
    if not payments.bank_call_due("get-token", registration.transaction_id):
        return None
    return finish_card_registration(registration, within=payments.customer_wait())


def close_unfinished_registration(registration: CardRegistration) -> bool:
    """Fail a registration whose customer never finished the card-saving page; returns whether
    this call closed it. For the reconciler, once the bank still has no token after the grace:
    a finished one (saved or failed meanwhile) is left as it is."""
    closed = CardRegistration.objects.filter(
        pk=registration.pk, status__in=decision.registration_sources(RegistrationStatus.FAILED)
    ).update(
        status=RegistrationStatus.FAILED,
        bank_description=UNFINISHED[:255],
        updated_at=timezone.now(),
    )
    registration.refresh_from_db()
    return bool(closed)


def _record_token(registration: CardRegistration, result: TokenResult) -> CardToken | None:
    if not decision.decide_token(registration.status, result).moves:
        return registration.card_token  # not finished yet (or finished already)
    with transaction.atomic():
        locked = CardRegistration.objects.select_for_update().get(pk=registration.pk)
        decided = decision.decide_token(locked.status, result)
        if not decided.moves:  # another request recorded it first
            _copy(locked, registration)
            return locked.card_token
        card: CardToken | None = None
        saved = False
        if decided.target == RegistrationStatus.SAVED and result.token:
            card, saved = keep_card(owner_id=locked.owner_id, account=locked.account, answer=result)
        locked.status = RegistrationStatus.SAVED if card else RegistrationStatus.FAILED
        locked.card_token = card
        locked.bank_code = storable(result.error_code or "")[:10]
        locked.bank_description = storable(result.error_desc or "")[:255]
        locked.save(
            update_fields=["status", "card_token", "bank_code", "bank_description", "updated_at"]
        )
        if card is not None and saved:
            owe(saved_notice(card, invoice=None, registration=locked))
    _copy(locked, registration)
    return card


def _close(registration: CardRegistration, status: str, *, description: str) -> None:
    CardRegistration.objects.filter(
        pk=registration.pk, status__in=decision.registration_sources(status)
    ).update(status=status, bank_description=description[:255], updated_at=timezone.now())
    registration.refresh_from_db()


def _copy(source: CardRegistration, target: CardRegistration) -> None:
    if source is not target:
        for name in ("status", "card_token", "bank_code", "bank_description", "updated_at"):
            setattr(target, name, getattr(source, name))


# --- removing a card --------------------------------------------------------------------------


def remove_card(card: CardToken) -> bool:
    """Deactivate a saved card so it can no longer pay; ``card_removed`` once, after commit.

    Returns whether this call removed it (``False``: it was removed already).
    """
    with transaction.atomic():
        removed = CardToken.objects.filter(pk=card.pk, is_active=True).update(is_active=False)
        if removed:
            owe(Notice(SignalName.CARD_REMOVED, card=card, objects={"card": card}))
    card.is_active = False
    return bool(removed)
