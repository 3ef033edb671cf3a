"""Starting payments and applying what the bank says: the only code that changes an invoice.

Every bank result, whoever brought it (redirect, push, admin, reconcile, status page), goes
through :func:`apply_result`, which locks the row, consults :data:`TRANSITIONS`, writes the new
status and a history row, and schedules the signals for after the commit. The bank is always
asked *before* the lock is taken, never while it is held.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from golomt_payments import bank, conf, signals
from golomt_payments.bank import storable
from golomt_payments.gateway import (
    BankRefused,
    PaymentNotFound,
    TransactionResult,
    format_amount,
    new_transaction_id,
)
from golomt_payments.models import (
    BankMessage,
    Invoice,
    Language,
    Method,
    ReturnType,
    Source,
    Status,
    StatusChange,
)

# A module import: ``cards`` imports this module too (to pay with a saved card).
from golomt_payments.services import cards

logger = logging.getLogger(__name__)

#: Which status may follow which. Paid is final. Failed and expired are closed to everything
#: but a payment the bank confirms: money the bank took must never be left unrecorded.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.PENDING, Status.PAID, Status.FAILED, Status.EXPIRED}),
    Status.PENDING: frozenset({Status.PAID, Status.FAILED, Status.EXPIRED}),
    Status.FAILED: frozenset({Status.PAID}),
    Status.EXPIRED: frozenset({Status.PAID}),
    Status.PAID: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one bank result did to one invoice.

    ``unknown_to_bank``: the bank answered that it has no payment with this transaction id.
    """

    invoice: Invoice
    old_status: str
    new_status: str
    reason: str = ""
    result: TransactionResult | None = None
    unknown_to_bank: bool = False

    @property
    def changed(self) -> bool:
        return self.old_status != self.new_status


def can_transition(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def start_payment(
    *,
    amount: Decimal | int | str,
    callback_url: str,
    reference: str = "",
    method: str = Method.CARD,
    language: str | None = None,
    return_type: str | None = None,
    gen_token: bool = False,
    account: str = conf.DEFAULT_ACCOUNT,
    metadata: dict[str, Any] | None = None,
    owner: AbstractBaseUser | None = None,
) -> Invoice:
    """Create an invoice here and at the bank; the result is ``pending`` with a bank invoice id.

    ``owner`` is the customer (the shop's user) paying; a card saved by this payment
    (``gen_token``) is kept for them, and for nobody when there is no owner.

    Raises ``ValueError`` for a bad amount and the gateway's errors when the bank refuses or
    cannot be reached. A refused invoice is failed; an unanswered one stays ``new`` (the bank
    may have created it) for the reconciler. Never retried with the same transaction id.
    """
    settings = conf.get()
    settings.account(account)  # fail early on an unknown account name
    amount_text = format_amount(amount)
    return_type = ReturnType(return_type or settings.return_type)
    check_callback(callback_url, return_type)
    method = Method(method)
    invoice = Invoice.objects.create(
        account=account,
        transaction_id=new_transaction_id(settings.transaction_id_prefix),
        amount=Decimal(amount_text),
        amount_sent=amount_text,
        method=method,
        language=Language(language or settings.default_language),
        return_type=return_type,
        callback_url=callback_url,
        gen_token=gen_token,
        reference=reference,
        metadata=metadata or {},
        owner_id=owner.pk if owner is not None else None,
    )
    try:
        with bank.about(invoice.pk):
            created = bank.client(account).create_invoice(
                transaction_id=invoice.transaction_id,
                amount=amount_text,
                callback=callback_url,
                return_type=invoice.return_type,
                gen_token=gen_token,
                social_deeplink=method == Method.SOCIALPAY,
            )
    except BankRefused as exc:
        transition(
            invoice.pk, Status.FAILED, source=Source.API, description=exc.message or str(exc)
        )
        raise
    transition(
        invoice.pk,
        Status.PENDING,
        source=Source.API,
        fields={"bank_invoice": created.invoice, "social_deeplink": created.social_deeplink or ""},
    )
    invoice.refresh_from_db()
    return invoice


#: Schemes an app link may never have: a browser is sent there, or it ends up in an ``href``.
_SCRIPT_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})


def is_app_link(value: str) -> bool:
    """``value`` is a link a phone may open in an app (``myshop://payment-result``,
    ``socialpay-payment://key=…``): a scheme, something after it, printable, no spaces, and
    never a script or data URL."""
    scheme, colon, rest = value.partition(":")
    return (
        bool(colon and rest and scheme[:1].isalpha())
        and scheme.isascii()
        and all(char.isalnum() or char in "+.-" for char in scheme)
        and scheme.lower() not in _SCRIPT_SCHEMES
        and value.isprintable()
        and " " not in value
    )


def check_callback(callback_url: str, return_type: str) -> None:
    """Browsers come back to an absolute http(s) URL; with ``MOBILE`` the bank opens the app's
    deeplink (``myshop://payment-result``) instead, or an http(s) app link."""
    if callback_url.startswith(("https://", "http://")):
        return
    if return_type != ReturnType.MOBILE:
        raise ValueError("callback_url must be an absolute http(s) URL")
    if not is_app_link(callback_url):
        raise ValueError("callback_url must be an app deeplink (scheme://…) for MOBILE")


def socialpay_deeplink(invoice: Invoice) -> str:
    """The SocialPay deeplink the bank gave ``invoice``, when a browser may follow it; else
    ``""``. The bank's checksum does not cover it, so it is checked before it is offered."""
    link = invoice.social_deeplink
    return link if invoice.method == Method.SOCIALPAY and is_app_link(link) else ""


def payment_url(invoice: Invoice) -> str:
    """The bank's hosted page for this invoice (card form or SocialPay)."""
    page = bank.client(invoice.account)
    if invoice.method == Method.SOCIALPAY:
        return page.payment_url(invoice.bank_invoice, method="socialpay", lang=invoice.language)
    return page.payment_url(invoice.bank_invoice, method="payment", lang=invoice.language)


def mismatch(invoice: Invoice, result: TransactionResult) -> str | None:
    """Why ``result`` cannot be applied to ``invoice`` as it stands, or ``None`` if it can.

    Amounts are compared as numbers: the bank may answer "1" for an invoice sent as "1.00".
    """
    if result.transaction_id != invoice.transaction_id:
        return f"bank answered for {result.transaction_id!r}"
    if result.is_paid and result.amount_value != invoice.amount:
        return f"bank reports {result.amount!r} paid, invoice is for {invoice.amount}"
    return None


def target_status(result: TransactionResult) -> str | None:
    """The status a bank result asks for; ``None`` while the bank has no answer yet."""
    if result.is_paid:
        return Status.PAID
    if result.is_unpaid:
        return None
    return Status.FAILED


#: Called once with what applying a bank result did: inside the status change's transaction
#: when there is one, alone otherwise. The inbound services write a message's outcome with it.
Record = Callable[["Change"], None]


def _recorded(change: Change, record: Record | None) -> Change:
    if record is not None:
        record(change)
    return change


def apply_result(
    invoice: Invoice,
    result: TransactionResult,
    *,
    source: str,
    message: BankMessage | None = None,
    record: Record | None = None,
) -> Change:
    """Apply a verified bank result to ``invoice``; the one door to a status change.

    The result must be about this invoice and, to mark it paid, carry the invoice's amount; a
    mismatch flags the invoice for a human and changes nothing. ``record`` is called once with
    the outcome (see :data:`Record`).
    """
    problem = mismatch(invoice, result)
    if problem:
        return _recorded(flag_for_review(invoice, problem), record)
    target = target_status(result)
    if target is None:
        return _recorded(
            Change(invoice, invoice.status, invoice.status, "bank has no result yet"), record
        )
    # The bank's texts are outside its checksum: make them fit the columns, NUL included.
    fields: dict[str, Any] = {
        "bank_code": storable(result.error_code or "")[:10],
        "bank_description": storable(result.error_desc or "")[:255],
    }
    if result.card_number:
        fields["card_number"] = storable(result.card_number)[:32]
    if result.bank:
        fields["card_bank"] = storable(result.bank)[:100]
    if target == Status.PAID:
        fields["paid_at"] = timezone.now()
    return transition(
        invoice.pk,
        target,
        source=source,
        bank_code=fields["bank_code"],
        fields=fields,
        message=message,
        known=invoice,
        result=result,
        record=record,
    )


def inquire(invoice: Invoice) -> TransactionResult | None:
    """The bank's word on ``invoice``, logged against it; ``None`` when the bank has no
    payment with its transaction id. Changes nothing.

    A saved-card payment is asked about with ``/api/check``, every other with the inquiry.
    Raises the gateway's errors when the bank cannot be reached or answers badly.
    """
    client = bank.client(invoice.account)
    try:
        with bank.about(invoice.pk):
            if invoice.method == Method.SAVED_CARD:
                return client.check(invoice.transaction_id)
            return client.inquiry(invoice.transaction_id)
    except PaymentNotFound:
        return None


def refresh(
    invoice: Invoice,
    *,
    source: str,
    message: BankMessage | None = None,
    record: Record | None = None,
) -> Change:
    """Ask the bank about ``invoice`` and apply the answer.

    The inquiry's log row is written with the status change, in its transaction (alone when
    nothing changes; at once when the call fails). Raises the gateway's errors when the bank
    cannot be reached or answers badly; the invoice is then unchanged. An id the bank does not
    know changes nothing here; the change says ``unknown_to_bank`` and the reconciler decides
    when such an invoice has expired.
    """
    held = bank.HeldLog()
    with held.holding():
        result = inquire(invoice)

    def write(change: Change) -> None:
        held.write()
        if record is not None:
            record(change)

    if result is None:
        unknown = Change(
            invoice, invoice.status, invoice.status, "unknown to the bank", unknown_to_bank=True
        )
        return _recorded(unknown, write)
    change = apply_result(invoice, result, source=source, message=message, record=write)
    return replace(change, result=result)


def bank_call_due(purpose: str, transaction_id: str) -> bool:
    """True at most once per ``STATUS_CHECK_INTERVAL_SECONDS`` for one ``purpose`` and one
    transaction id, across every host sharing the cache."""
    interval = conf.get().status_check_interval_seconds
    return bool(cache.add(f"golomt_payments:{purpose}-due:{transaction_id}", 1, interval))


def refresh_if_due(
    invoice: Invoice,
    *,
    source: str,
    message: BankMessage | None = None,
    record: Record | None = None,
) -> Change:
    """Like :func:`refresh`, but asks the bank about one invoice at most once per
    ``STATUS_CHECK_INTERVAL_SECONDS`` (shared by all hosts through the cache).

    For the unauthenticated callers (the browser's redirect, the status page's polling): the
    transaction id is no secret, and nobody should be able to make us hammer the bank with it.
    """
    if not bank_call_due("inquiry", invoice.transaction_id):
        throttled = Change(invoice, invoice.status, invoice.status, "asked the bank moments ago")
        return _recorded(throttled, record)
    return refresh(invoice, source=source, message=message, record=record)


def expire(invoice: Invoice, *, source: str) -> Change:
    """Close an invoice the customer never paid before the page timer ran out."""
    return transition(invoice.pk, Status.EXPIRED, source=source, known=invoice)


def flag_for_review(invoice: Invoice, reason: str) -> Change:
    """Record for a human that the bank said something that does not fit; change nothing."""
    logger.warning("Invoice %s needs review: %s", invoice.transaction_id, reason)
    Invoice.objects.filter(pk=invoice.pk).update(needs_review=True, review_reason=reason[:1000])
    invoice.needs_review, invoice.review_reason = True, reason
    return Change(invoice, invoice.status, invoice.status, reason)


def transition(
    invoice_pk: int,
    target: str,
    *,
    source: str,
    bank_code: str = "",
    description: str | None = None,
    fields: dict[str, Any] | None = None,
    message: BankMessage | None = None,
    known: Invoice | None = None,
    result: TransactionResult | None = None,
    record: Record | None = None,
) -> Change:
    """Move the invoice to ``target`` if the table allows, record it, signal after commit.

    ``known`` is an unlocked copy the caller already read. When it shows the move is not
    allowed (the common duplicate), nothing is locked or written. Otherwise the move is one
    conditional ``UPDATE … WHERE status = <the status read>``, which takes the row lock and
    succeeds only if nobody moved the invoice in between; if somebody did, the row is read
    again under ``SELECT … FOR UPDATE`` and the decision made again there. Either way the
    decision is made under the row lock, where it counts. Without ``known`` the row is locked
    and read first.

    ``result`` is the bank's word that asked for a payment: its card token, if any, is kept
    under the same lock (see :func:`cards.on_paid`), so a repeated result never saves a card
    twice. ``record`` is called once with the outcome (see :data:`Record`).
    """
    if known is not None and not can_transition(known.status, target):
        return _recorded(Change(known, known.status, known.status, "no change"), record)
    values: dict[str, Any] = {"status": target, "updated_at": timezone.now(), **(fields or {})}
    if description is not None:
        values["bank_description"] = description[:255]
    with transaction.atomic():
        moved = _move(invoice_pk, target, values, known)
        if isinstance(moved, Change):
            return _recorded(moved, record)
        invoice, old = moved
        if target == Status.PAID:
            card_values = {name: getattr(invoice, name) for name in cards.on_paid(invoice, result)}
            if card_values:
                Invoice.objects.filter(pk=invoice_pk).update(**card_values)
                values.update(card_values)
        StatusChange.objects.create(
            invoice=invoice,
            from_status=old,
            to_status=target,
            source=source,
            bank_code=bank_code[:10],
            message=message,
        )
        change = _recorded(Change(invoice, old, target), record)
        transaction.on_commit(partial(_send_signals, invoice, old, target, source))
    if known is not None:
        for name in values:
            setattr(known, name, getattr(invoice, name))
    return change


def _move(
    invoice_pk: int, target: str, values: dict[str, Any], known: Invoice | None
) -> tuple[Invoice, str] | Change:
    """Write ``values`` if the invoice may move to ``target``; inside the caller's transaction.

    Returns the moved invoice and its old status, or the unchanged outcome when the row, read
    under its lock, may not move.
    """
    if known is not None:
        claimed = Invoice.objects.filter(pk=invoice_pk, status=known.status).update(**values)
        if claimed:
            invoice = copy.copy(known)
            for name, value in values.items():
                setattr(invoice, name, value)
            return invoice, known.status
    invoice = Invoice.objects.select_for_update().get(pk=invoice_pk)
    old = invoice.status
    if not can_transition(old, target):
        return Change(invoice, old, old, "no change")
    for name, value in values.items():
        setattr(invoice, name, value)
    invoice.save(update_fields=list(values))
    return invoice, old


_OUTCOME_SIGNALS: dict[str, Signal] = {
    Status.PAID: signals.payment_succeeded,
    Status.FAILED: signals.payment_failed,
    Status.EXPIRED: signals.payment_expired,
}


def _send_signals(invoice: Invoice, old: str, new: str, source: str) -> None:
    """Send after commit; a failing receiver is logged and never undoes the recorded payment."""
    sent = signals.invoice_status_changed.send_robust(
        sender=Invoice, invoice=invoice, old_status=old, new_status=new, source=source
    )
    specific = _OUTCOME_SIGNALS.get(new)
    if specific is not None:
        sent += specific.send_robust(sender=Invoice, invoice=invoice, source=source)
    for receiver, response in sent:
        if isinstance(response, Exception):
            logger.error(
                "Receiver %r failed for invoice %s",
                receiver,
                invoice.transaction_id,
                exc_info=response,
            )
