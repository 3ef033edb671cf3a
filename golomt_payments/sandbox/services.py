"""The simulated bank's rules: opening transactions, taking payments, answering reads.

The API and the hosted pages only parse input and call these. A payment is recorded with one
conditional UPDATE, so a double-submitted form can never pay twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from golomt_payments.sandbox import conf, push
from golomt_payments.sandbox.cards import (
    DECLINED_CODE,
    DECLINED_DESC,
    SUCCESS_CODE,
    SUCCESS_DESC,
    Behaviour,
    mask,
)
from golomt_payments.sandbox.models import Kind, State, Transaction
from golomt_payments.sandbox.wire import echo_amount

__all__ = [
    "BANK_TIME_ZONE",
    "AlreadyFinished",
    "ReadFault",
    "Refused",
    "SettlementQuery",
    "complete",
    "create_confirmation",
    "create_payment",
    "describe",
    "expire_if_due",
    "find",
    "remaining_seconds",
    "settlement_page",
    "take_read_fault",
    "token_pay",
]

BANK_TIME_ZONE = ZoneInfo("Asia/Ulaanbaatar")
TERMINAL_ID = "GLMT0001"

_DESCRIPTIONS = {
    SUCCESS_CODE: {"MN": SUCCESS_DESC, "EN": "Success"},
    DECLINED_CODE: {"MN": DECLINED_DESC, "EN": "Card expired"},
}


class Refused(Exception):
    """The bank's HTTP 400: ``error`` is ``Validation`` or ``NotFound``."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class AlreadyFinished(Exception):
    """The transaction was paid, declined or cancelled before this attempt."""


class ReadFault(StrEnum):
    """How a test card makes the next inquiries misbehave."""

    FAIL = "fail"
    SLOW = "slow"


def describe(code: str, lang: str = "MN") -> str:
    """The bank's text for a code, Mongolian unless ``lang`` is EN (only /api/pay asks)."""
    return _DESCRIPTIONS[code]["EN" if lang.upper() == "EN" else "MN"]


def _create(**fields: Any) -> Transaction:
    try:
        with transaction.atomic():
            return Transaction.objects.create(**fields)
    except IntegrityError:
        raise Refused("Validation", "transactionId is duplicated.") from None


def create_payment(
    *,
    transaction_id: str,
    amount: str,
    return_type: str,
    callback: str,
    gen_token: bool,
    social_deeplink: bool,
) -> Transaction:
    """``/api/invoice``: a page the customer pays on; a reused transactionId is refused."""
    return _create(
        transaction_id=transaction_id,
        kind=Kind.PAYMENT,
        amount=amount,
        return_type=return_type,
        callback=callback,
        gen_token=gen_token,
        social_deeplink=social_deeplink,
    )


def create_confirmation(*, transaction_id: str, return_type: str, callback: str) -> Transaction:
    """``/api/confirmation``: a page that saves a card (charging and refunding a small sum)."""
    return _create(
        transaction_id=transaction_id,
        kind=Kind.CONFIRMATION,
        return_type=return_type,
        callback=callback,
        gen_token=True,
    )


def find(transaction_id: str, *kinds: str) -> Transaction:
    """The transaction a read asks about, or the bank's NotFound."""
    try:
        # transaction_id is unique: no ORDER BY, no LIMIT to build.
        return Transaction.objects.get(transaction_id=transaction_id, kind__in=kinds)
    except Transaction.DoesNotExist:
        raise Refused("NotFound", "Payment not found") from None


def remaining_seconds(tx: Transaction, now: datetime | None = None) -> int:
    """Seconds left on the hosted page's timer (0 when it has run out)."""
    deadline = tx.deadline(conf.get().page_timeout_seconds)
    left = (deadline - (now or timezone.now())).total_seconds()
    return max(0, int(left))


def expire_if_due(tx: Transaction, now: datetime | None = None) -> bool:
    """Cancel an unpaid transaction whose page timer ran out; True when it is cancelled.

    The bank documents no error code for this, so the sandbox invents none: reads keep saying
    PENDING with a null errorCode, and the shop expires the invoice by its own clock.
    """
    if tx.state == State.PENDING and remaining_seconds(tx, now) <= 0:
        Transaction.objects.filter(pk=tx.pk, state=State.PENDING).update(
            state=State.CANCELLED, finished_at=now or timezone.now()
        )
        tx.refresh_from_db()
    return tx.state == State.CANCELLED


def may_try(tx: Transaction) -> bool:
    """Whether the hosted page takes an attempt now: it waits for the customer, or its last
    attempt at a payment was declined and its timer still runs."""
    if tx.state == State.PENDING:
        return True
    declined = tx.state == State.SENT and tx.error_code == DECLINED_CODE
    return declined and tx.kind == Kind.PAYMENT and remaining_seconds(tx) > 0


def complete(
    tx: Transaction,
    *,
    behaviour: Behaviour,
    card_number: str,
    card_holder: str,
    via: str,
) -> Transaction:
    """Record the customer's attempt; from now on every read reports it. Queues the pushes.

    A payment page whose last attempt was declined takes another until its timer runs out, as
    the protocol notes take the bank's to do (the card-saving page takes one). Raises
    :class:`AlreadyFinished` when the page was paid, declined for good or timed out meanwhile.
    """
    settings = conf.get()
    if expire_if_due(tx) or not may_try(tx):
        raise AlreadyFinished(tx.transaction_id)
    paid = behaviour.paid
    code = SUCCESS_CODE if paid else DECLINED_CODE
    fields: dict[str, Any] = {
        "state": State.SENT,
        "error_code": code,
        "error_desc": describe(code),
        "card_number": mask(card_number),
        "card_holder": card_holder[:64],
        "behaviour": behaviour.value,
        "paid_via": via,
        "finished_at": timezone.now(),
    }
    if paid:
        fields["approval_code"] = f"{secrets.randbelow(10**6):06d}"
        fields["sys_reference"] = f"{secrets.randbelow(10**12):012d}"
        if tx.gen_token or tx.kind == Kind.CONFIRMATION:
            fields["token"] = secrets.token_hex(16)
        if tx.kind == Kind.CONFIRMATION:
            fields["amount"] = str(100 + secrets.randbelow(900))  # charged, refunded later
        fields.update(_read_faults(behaviour, settings))
    open_page = Q(state=State.PENDING) | Q(
        state=State.SENT, kind=Kind.PAYMENT, error_code=DECLINED_CODE
    )
    with transaction.atomic():
        updated = Transaction.objects.filter(open_page, pk=tx.pk).update(**fields)
        tx.refresh_from_db()
        if not updated:
            raise AlreadyFinished(tx.transaction_id)
        push.schedule(tx, behaviour)
    return tx


def _read_faults(behaviour: Behaviour, settings: conf.SandboxSettings) -> dict[str, int]:
    if behaviour is Behaviour.INQUIRY_FAILS:
        return {"failing_reads_left": settings.failing_inquiry_count}
    if behaviour is Behaviour.INQUIRY_SLOW:
        return {"slow_reads_left": settings.slow_inquiry_count}
    return {}


def token_pay(*, transaction_id: str, amount: str, token: str, lang: str) -> Transaction:
    """``/api/pay``: charge a saved card at once; no page, no redirect, no push."""
    origin = (
        Transaction.objects.filter(
            token=token, error_code=SUCCESS_CODE, kind__in=(Kind.PAYMENT, Kind.CONFIRMATION)
        )
        .order_by("pk")
        .first()
    )
    if origin is None:
        raise Refused("Validation", "token is not valid.")
    behaviour = Behaviour(origin.behaviour) if origin.behaviour else Behaviour.SUCCESS
    fields: dict[str, Any] = {}
    if behaviour is Behaviour.SAVED_CARD_DECLINED:
        code = DECLINED_CODE
    else:
        code = SUCCESS_CODE
        fields["approval_code"] = f"{secrets.randbelow(10**6):06d}"
        fields["sys_reference"] = f"{secrets.randbelow(10**12):012d}"
        fields.update(_read_faults(behaviour, conf.get()))
    return _create(
        transaction_id=transaction_id,
        kind=Kind.TOKEN_PAYMENT,
        amount=amount,
        lang=lang,
        state=State.SENT,
        error_code=code,
        error_desc=describe(code, lang),
        card_number=origin.card_number,
        card_holder=origin.card_holder,
        token=token,
        behaviour=behaviour.value,
        paid_via="token",
        finished_at=timezone.now(),
        **fields,
    )


def take_read_fault(tx: Transaction) -> ReadFault | None:
    """Count one read, using up the test card's next fault if it has one left."""
    if tx.failing_reads_left and _use(tx, "failing_reads_left"):
        return ReadFault.FAIL
    if tx.slow_reads_left and _use(tx, "slow_reads_left"):
        return ReadFault.SLOW
    Transaction.objects.filter(pk=tx.pk).update(read_count=F("read_count") + 1)
    return None


def _use(tx: Transaction, counter: str) -> bool:
    """Decrement a fault counter unless another request used up the last one first."""
    used = Transaction.objects.filter(pk=tx.pk, **{f"{counter}__gt": 0}).update(
        **{counter: F(counter) - 1, "read_count": F("read_count") + 1}
    )
    return bool(used)


@dataclass(frozen=True, slots=True)
class SettlementQuery:
    merchant_id: str
    start: date
    end: date
    page: int
    size: int


def settlement_page(query: SettlementQuery) -> dict[str, Any]:
    """One page of the paid card transactions finished between two dates (bank local time)."""
    since = datetime.combine(query.start, time.min, tzinfo=BANK_TIME_ZONE)
    until = datetime.combine(query.end + timedelta(days=1), time.min, tzinfo=BANK_TIME_ZONE)
    settled = Transaction.objects.filter(
        error_code=SUCCESS_CODE,
        kind__in=(Kind.PAYMENT, Kind.TOKEN_PAYMENT),
        finished_at__gte=since,
        finished_at__lt=until,
    ).order_by("finished_at", "pk")
    total = settled.count()
    offset = query.page * query.size
    rows = [_settlement_row(tx, query.merchant_id) for tx in settled[offset : offset + query.size]]
    total_pages = (total + query.size - 1) // query.size
    return {
        "content": rows,
        "pageable": {
            "pageNumber": query.page,
            "pageSize": query.size,
            "first": query.page == 0,
            "last": query.page >= total_pages - 1,
            "totalPages": total_pages,
            "totalElements": total,
        },
    }


def _settlement_row(tx: Transaction, merchant_id: str) -> dict[str, Any]:
    """Fields per the bank's settlement page; values the bank does not explain are plausible."""
    assert tx.finished_at is not None
    local = tx.finished_at.astimezone(BANK_TIME_ZONE)
    stamp = local.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "id": tx.pk,
        "merchantId": merchant_id,
        "terminalId": TERMINAL_ID,
        "batchNumber": f"{local.timetuple().tm_yday:06d}",
        "invoiceNumber": str(tx.invoice),
        "cardNumber": tx.card_number,
        "token": tx.token or None,
        "amount": echo_amount(tx.amount),
        "merchantInvoice": tx.transaction_id,
        "respCode": "00",
        "respDesc": SUCCESS_DESC,
        "tranTime": local.strftime("%H%M%S"),
        "tranDate": local.strftime("%m%d"),
        "sysReference": tx.sys_reference,
        "approvalCode": tx.approval_code,
        "requestDate": stamp,
        "reversedDate": None,
        "checkedDate": stamp,
        "transferStatus": "SETTLED",
    }
