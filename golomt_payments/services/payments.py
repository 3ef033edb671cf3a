"""Starting payments and applying what the bank says: the only code that changes an invoice.

Every bank result, whoever brought it (redirect, push, admin, reconcile, status page), goes
through :func:`apply_result`, which locks the row, consults :data:`TRANSITIONS`, writes the new
status and a history row, and schedules the signals for after the commit. The bank is always
asked *before* the lock is taken, never while it is held.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.http.request import validate_host
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from golomt_payments import bank, conf
from golomt_payments.bank import storable
from golomt_payments.gateway import (
    BankRefused,
    GolomtError,
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
    SignalName,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.services import card_tokens, decision
from golomt_payments.services.decision import can_transition
from golomt_payments.services.errors import (
    CallbackRefused,
    OrderAlreadyPaid,
    OrderAmountChanged,
    OrderBusy,
    OrderInProgress,
)
from golomt_payments.services.notifications import Notice, owe

logger = logging.getLogger(__name__)


#: Which status may follow which. Paid is final. Failed and expired are closed to everything
#: but a payment the bank confirms: money the bank took must never be left unrecorded.
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
    """The invoice to pay the order ``reference`` with: usually a new one, created here and at
    the bank (``pending``, with a bank invoice id); see :func:`open_payment` for the order's
    rule and for telling a new invoice from the order's open one."""
    return open_payment(
        amount=amount,
        callback_url=callback_url,
        reference=reference,
        method=method,
        language=language,
        return_type=return_type,
        gen_token=gen_token,
        account=account,
        metadata=metadata,
        owner=owner,
    ).invoice


@dataclass(frozen=True, slots=True)
class Opened:
    """The invoice a payment goes on with, and whether this call created it (``False``: it is
    the order's payment already open, and no new page is offered)."""

    invoice: Invoice
    created: bool


def open_payment(
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
) -> Opened:
    """Start paying the order ``reference`` of ``account``, once.

    A reference names one order: at most one of its invoices may be payable at a time (the
    database enforces it), and none is started once one paid. So this returns the order's
    payable invoice when it has one of this ``method`` and amount (nothing is sent to the
    bank), and creates one otherwise; a payment without a reference is an order of its own.
    An invoice whose page timer ran out, or of another method (the customer switches between
    card and SocialPay), is asked about at the bank first; only once the bank says it is not
    paid is a new invoice made. ``owner`` is the customer paying; a card saved by this payment
    (``gen_token``) is kept for them, and for nobody when there is no owner.

    Raises :class:`OrderAlreadyPaid`, :class:`OrderAmountChanged` (a payment for another
    amount is open), :class:`OrderInProgress` (a saved-card charge of the order is under
    way), :class:`OrderBusy` (another request is still creating the order's invoice),
    ``ValueError`` for a bad amount or callback, and the gateway's errors when the
    bank refuses (the new invoice is failed) or cannot be reached (it stays ``new`` for the
    reconciler). Never retried with the same transaction id.
    """
    settings = conf.get()
    settings.account(account)  # fail early on an unknown account name
    amount_text = format_amount(amount)
    return_type = ReturnType(return_type or settings.return_type)
    check_callback(callback_url, return_type)
    method = Method(method)

    def create(holds_order: bool) -> Invoice:
        with _own_statement():
            return Invoice.objects.create(
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
                holds_order=holds_order,
            )

    opened = open_order(
        account=account,
        reference=reference,
        amount=Decimal(amount_text),
        method=method,
        create=create,
    )
    if not opened.created:
        return opened
    invoice = opened.invoice
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
            invoice.pk,
            Status.FAILED,
            source=Source.API,
            description=exc.message or str(exc),
            fields={"holds_order": False},
        )
        raise
    except GolomtError:
        # The bank may have made it, but nobody ever saw its page: it cannot be paid, and
        # must not keep the order from a new try. It stays ``new`` for the reconciler.
        release_order(invoice)
        raise
    transition(
        invoice.pk,
        Status.PENDING,
        source=Source.API,
        fields={"bank_invoice": created.invoice, "social_deeplink": created.social_deeplink or ""},
    )
    invoice.refresh_from_db()
    if reference and not invoice.holds_order:
        return _lost_order(invoice, Decimal(amount_text), method)
    return Opened(invoice, created=True)


def _lost_order(invoice: Invoice, amount: Decimal, method: str) -> Opened:
    """The bank answered so late that the order moved on without ``invoice`` (another request
    took it, or an older invoice was paid meanwhile): never hand out a second live page of the
    order. The customer goes on with the order's holder, when they may; else they are told the
    order is paid, or to try again in a moment. ``invoice`` stays, unseen, for the reconciler;
    money paid on it anyway would be caught as paid twice."""
    holder = order_holder(invoice.account, invoice.reference)
    logger.warning(
        "Invoice %s got its bank page after its order %r had moved on; not offered",
        invoice.transaction_id,
        invoice.reference,
    )
    if holder is not None and holder.status == Status.PAID:
        raise OrderAlreadyPaid(holder)
    if (
        holder is not None
        and holder.method == method
        and holder.amount == amount
        and is_payable(holder)
    ):
        return Opened(holder, created=False)
    raise OrderBusy(invoice.reference, holder)


# --- one payment per order --------------------------------------------------------------------


def _own_statement() -> contextlib.AbstractContextManager[Any]:
    """Where a refused INSERT may not spoil the caller's transaction: a savepoint inside one;
    outside, the statement commits or fails on its own (autocommit), at no extra cost."""
    if transaction.get_connection().in_atomic_block:
        return transaction.atomic()
    return contextlib.nullcontext()


#: After the bank page's timer has run out, an invoice still counts as payable this long: a
#: customer who pressed Pay as the timer ended may still be answered by the bank.
PAYABLE_MARGIN = timedelta(minutes=2)

#: Beyond the create call's own timeouts, how long an invoice without the bank's answer is
#: taken to be still in the making (after that, the request that made it died).
_CREATION_MARGIN = timedelta(seconds=5)

#: Claims one request makes at most before it gives up (each lost to another request).
_MAX_CLAIMS = 5

#: How long a request waits for another request's new invoice to get its page before it asks
#: the customer to try again: a web worker is not held for the whole of a slow bank call.
_MAX_PAGE_WAIT = timedelta(seconds=8)


class _Holder(Enum):
    """What the invoice that holds an order allows a new payment of that order to do."""

    PAYABLE = "payable"  # its page may still be paid: go on with it
    STARTING = "starting"  # another request is creating it at the bank: wait for its page
    ASK = "ask"  # its page timer ran out: the bank decides whether it was paid
    RELEASE = "release"  # it cannot be paid any more: a new invoice may take the order


def payable_until(invoice: Invoice) -> datetime:
    """When ``invoice`` stops counting as payable: its bank page's timer, plus a margin."""
    return invoice.created_at + timedelta(minutes=conf.get().page_timeout_minutes) + PAYABLE_MARGIN


def _creation_deadline(invoice: Invoice) -> datetime:
    settings = conf.get()
    seconds = settings.connect_timeout + settings.read_timeout
    return invoice.created_at + timedelta(seconds=seconds) + _CREATION_MARGIN


def _judge(holder: Invoice, now: datetime) -> _Holder:
    """What the (unpaid) holder of an order allows, at ``now``."""
    if holder.method != Method.SAVED_CARD and not holder.bank_invoice:
        # No customer has seen its page: it is being made, or never will be.
        if holder.status == Status.NEW and now < _creation_deadline(holder):
            return _Holder.STARTING
        return _Holder.RELEASE
    # (An invoice closed for good, expired or a declined saved card, has let go of its order.)
    return _Holder.PAYABLE if now < payable_until(holder) else _Holder.ASK


def order_holder(account: str, reference: str) -> Invoice | None:
    """The invoice that holds the order: payable now, or the one that paid it."""
    return Invoice.objects.filter(account=account, reference=reference, holds_order=True).first()


def is_payable(invoice: Invoice) -> bool:
    """Whether the customer may still pay ``invoice`` on the bank's page: it is its order's
    one payable invoice (or has no order), its page exists and its timer has not run out."""
    if invoice.status == Status.PAID or (invoice.reference and not invoice.holds_order):
        return False
    return _judge(invoice, timezone.now()) == _Holder.PAYABLE


def awaits_bank(invoice: Invoice) -> bool:
    """Whether the bank may still change ``invoice``'s status: it is open, or declined with
    its page still taking another card (whether or not it still holds its order: a customer
    who switched method may pay the old page after all). A status page asks the bank."""
    return invoice.is_open or may_still_be_paid_on_its_page(invoice)


def may_still_be_paid_on_its_page(invoice: Invoice) -> bool:
    """A declined invoice whose bank page takes another card until its timer runs out."""
    return (
        invoice.status == Status.FAILED
        and invoice.method != Method.SAVED_CARD
        and bool(invoice.bank_invoice)
        and timezone.now() < payable_until(invoice)
    )


def release_order(invoice: Invoice) -> bool:
    """Let go of ``invoice``'s order (unless it paid it): a new invoice may take it. Returns
    whether this call did."""
    released = (
        Invoice.objects.filter(pk=invoice.pk, holds_order=True)
        .exclude(status=Status.PAID)
        .update(holds_order=False)
    )
    if released:
        invoice.holds_order = False
    return bool(released)


def open_order(
    *,
    account: str,
    reference: str,
    amount: Decimal,
    method: str,
    create: Callable[[bool], Invoice],
) -> Opened:
    """The order's invoice to go on with, made with ``create(holds_order)`` when the order has
    none payable. ``create`` must leave the caller's transaction usable when its INSERT is
    refused (a savepoint, or a transaction of its own); that INSERT is what the database's
    one-payment-per-order constraint accepts or refuses, so two requests (or two hosts) can
    never both make one.

    Asks the bank (outside any transaction) about a holder whose page timer ran out, or whose
    method the customer switches away from, before letting it go.
    """
    if not reference:
        return Opened(create(False), created=True)
    for _ in range(_MAX_CLAIMS):
        try:
            return Opened(create(True), created=True)
        except IntegrityError:
            holder = order_holder(account, reference)
            if holder is None:
                continue  # let go of meanwhile: claim again
        if holder.status == Status.PAID:
            raise OrderAlreadyPaid(holder)
        verdict = _judge(holder, timezone.now())
        if verdict == _Holder.STARTING:
            holder = _await_page(holder)
            if holder.status == Status.PAID:
                raise OrderAlreadyPaid(holder)
            verdict = _judge(holder, timezone.now())
        if verdict == _Holder.PAYABLE and holder.amount != amount:
            raise OrderAmountChanged(holder, amount)
        if verdict == _Holder.PAYABLE:
            if holder.method == Method.SAVED_CARD and method != Method.SAVED_CARD:
                raise OrderInProgress(holder)  # a charge whose outcome is still coming
            if holder.method == method or Method.SAVED_CARD in (method, holder.method):
                # The same payment again (a second tab, a replayed form, a double click), or a
                # saved card while a payment of the order is under way: never a second charge.
                return Opened(holder, created=False)
            verdict = _Holder.ASK  # card <-> SocialPay: only once the bank says it is unpaid
        if verdict == _Holder.ASK:
            change = refresh(holder, source=Source.API, within=customer_wait())
            if change.invoice.status == Status.PAID:
                raise OrderAlreadyPaid(change.invoice)
        release_order(holder)
    raise OrderBusy(reference, order_holder(account, reference))


def _await_page(holder: Invoice) -> Invoice:
    """Wait (briefly, by polling) for another request's new invoice to get its bank page.

    Raises :class:`OrderBusy` when that request fails to get one, or runs out of time.
    """
    pause = 0.05
    deadline = min(_creation_deadline(holder), timezone.now() + _MAX_PAGE_WAIT)
    while timezone.now() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
        fresh = Invoice.objects.get(pk=holder.pk)
        if fresh.bank_invoice or fresh.status == Status.PAID:
            return fresh
        if fresh.status != Status.NEW or not fresh.holds_order:
            break  # its creation failed: the bank refused it or did not answer
    raise OrderBusy(holder.reference, holder)


#: Schemes an app link may never have: scripts and files (a browser is sent there, or it ends
#: up in an ``href``), and the schemes that open a web browser on any host, which would step
#: around ``ALLOWED_REDIRECT_HOSTS`` (Android intents, iOS and desktop browsers' own schemes).
_NO_APP_SCHEMES = frozenset(
    {
        "javascript",
        "data",
        "vbscript",
        "file",
        "blob",
        "intent",
        "googlechrome",
        "googlechromes",
        "x-safari-http",
        "x-safari-https",
        "microsoft-edge",
        "microsoft-edge-http",
        "microsoft-edge-https",
        "firefox",
        "firefox-focus",
        "opera-http",
        "opera-https",
        "brave",
        "ftp",
        "ws",
        "wss",
    }
)


def is_app_link(value: str) -> bool:
    """``value`` is a link a phone may open in an app (``myshop://payment-result``,
    ``socialpay-payment://key=…``): a scheme, something after it, printable, no spaces, and
    never a script or data URL, nor a scheme that opens a web browser."""
    scheme, colon, rest = value.partition(":")
    return (
        bool(colon and rest and scheme[:1].isalpha())
        and scheme.isascii()
        and all(char.isalnum() or char in "+.-" for char in scheme)
        and scheme.lower() not in _NO_APP_SCHEMES
        and value.isprintable()
        and " " not in value
    )


def check_callback(callback_url: str, return_type: str | None = None) -> None:
    """Where the bank sends the customer must be ours. Browsers come back to an absolute
    http(s) URL on this site (``CALLBACK_BASE_URL``'s host or one of ``ALLOWED_HOSTS``) or on
    one of ``ALLOWED_REDIRECT_HOSTS``; with ``MOBILE`` the bank may open the app's deeplink
    (``myshop://payment-result``) instead, or an http(s) app link on those hosts.

    Raises :class:`CallbackRefused` (a ``ValueError``) naming the setting to change.
    """
    scheme = callback_url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        _check_callback_host(callback_url)
        return
    if return_type != ReturnType.MOBILE:
        raise CallbackRefused("callback_url must be an absolute http(s) URL")
    if not is_app_link(callback_url):
        raise CallbackRefused("callback_url must be an app deeplink (scheme://…) for MOBILE")


def _check_callback_host(url: str) -> None:
    try:  # ASCII only: a look-alike character may become "/", "#" or "@" once normalised
        parts = urlsplit(url) if url.isascii() and url.isprintable() else None
        host = (parts.hostname or "") if parts else ""
    except ValueError:  # "https://[x/": no host at all
        parts, host = None, ""
    if (
        parts is None
        or not host
        or not url.lower().startswith(("https://", "http://"))
        or not url_has_allowed_host_and_scheme(url, allowed_hosts={parts.netloc})
    ):
        raise CallbackRefused(
            "callback_url must be an absolute http(s) URL in ASCII (an international host "
            "name in its xn-- form)"
        )
    golomt = conf.get()
    if parts.netloc in golomt.allowed_redirect_hosts:
        return
    base_host = urlsplit(golomt.callback_base_url).hostname
    patterns = [
        pattern
        for pattern in (*_site_hosts(), base_host or "", *golomt.allowed_redirect_hosts)
        if pattern and pattern != "*"  # "*" says nothing about which hosts are ours
    ]
    if not validate_host(f"[{host}]" if ":" in host else host, patterns):
        raise CallbackRefused(
            f"callback_url's host {host!r} is not this site's (ALLOWED_HOSTS, "
            f"{conf.SETTING_NAME}['CALLBACK_BASE_URL']) nor in "
            f"{conf.SETTING_NAME}['ALLOWED_REDIRECT_HOSTS']"
        )


def _site_hosts() -> list[str]:
    """This site's host names, as Django validates a request's ``Host``."""
    hosts = list(django_settings.ALLOWED_HOSTS)
    if django_settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


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
    """Why ``result`` cannot be applied to ``invoice`` as it stands, or ``None`` if it can."""
    return decision.mismatch(result, transaction_id=invoice.transaction_id, amount=invoice.amount)


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
    decided = decision.decide(
        invoice.status, result, transaction_id=invoice.transaction_id, amount=invoice.amount
    )
    if decided.review:
        return _recorded(flag_for_review(invoice, decided.reason), record)
    target = decided.target
    if target is None:  # no result yet, or nothing this status may become
        return _recorded(Change(invoice, invoice.status, invoice.status, decided.reason), record)
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
    elif invoice.method == Method.SAVED_CARD or not invoice.bank_invoice:
        # Declined with no page to try again on: the order may be paid another way.
        fields["holds_order"] = False
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


def inquire(invoice: Invoice, *, within: float | None = None) -> TransactionResult | None:
    """The bank's word on ``invoice``, logged against it; ``None`` when the bank has no
    payment with its transaction id. Changes nothing.

    ``within``: seconds for all tries together, when a customer is waiting (see
    :func:`customer_wait`); by default the client's timeouts and retries, for background work.

    A saved-card payment is asked about with ``/api/check``, every other with the inquiry.
    Raises the gateway's errors when the bank cannot be reached or answers badly.
    """
    client = bank.client(invoice.account)
    try:
        with bank.about(invoice.pk):
            if invoice.method == Method.SAVED_CARD:
                return client.check(invoice.transaction_id, within=within)
            return client.inquiry(invoice.transaction_id, within=within)
    except PaymentNotFound:
        return None


def refresh(
    invoice: Invoice,
    *,
    source: str,
    message: BankMessage | None = None,
    record: Record | None = None,
    within: float | None = None,
) -> Change:
    """Ask the bank about ``invoice`` (within ``within`` seconds, see :func:`inquire`) and
    apply the answer.

    The inquiry's log row is written with the status change, in its transaction (alone when
    nothing changes; at once when the call fails). Raises the gateway's errors when the bank
    cannot be reached or answers badly; the invoice is then unchanged. An id the bank does not
    know changes nothing here; the change says ``unknown_to_bank`` and the reconciler decides
    when such an invoice has expired.
    """
    held = bank.HeldLog()
    with held.holding():
        result = inquire(invoice, within=within)

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
    claims_paid: bool = False,
    within: float | None = None,
) -> Change:
    """Like :func:`refresh`, but asks the bank about one invoice at most once per
    ``STATUS_CHECK_INTERVAL_SECONDS`` (shared by all hosts through the cache).

    For the unauthenticated callers (the browser's redirect, the status page's polling): the
    transaction id is no secret, and nobody should be able to make us hammer the bank with it.
    A redirect that ``claims_paid`` has a slot of its own: a card that succeeds on the same
    page moments after a decline (whose redirect just asked) is confirmed at once, and a forged
    claim costs at most one more inquiry per interval.
    """
    purpose = "inquiry-claimed-paid" if claims_paid else "inquiry"
    if not bank_call_due(purpose, invoice.transaction_id):
        throttled = Change(invoice, invoice.status, invoice.status, "asked the bank moments ago")
        return _recorded(throttled, record)
    return refresh(invoice, source=source, message=message, record=record, within=within)


def customer_wait() -> float:
    """How long a customer waits on the bank's answer, all tries together
    (``CUSTOMER_WAIT_SECONDS``): beyond it the page says "confirming" and polls, and the
    reconciler finishes the check."""
    return conf.get().customer_wait_seconds


def expire(invoice: Invoice, *, source: str) -> Change:
    """Close an invoice the customer never paid before the page timer ran out; its order may
    be paid by a new invoice."""
    return transition(
        invoice.pk, Status.EXPIRED, source=source, known=invoice, fields={"holds_order": False}
    )


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
    """Move the invoice to ``target`` if the table allows, record it, and owe the signals.

    ``known`` is an unlocked copy the caller already read. When it shows the move is not
    allowed (the common duplicate), nothing is locked or written. Otherwise the move is one
    conditional ``UPDATE … WHERE status = <the status read>``, which takes the row lock and
    succeeds only if nobody moved the invoice in between; if somebody did, the row is read
    again under ``SELECT … FOR UPDATE`` and the decision made again there. Either way the
    decision is made under the row lock, where it counts. Without ``known`` the row is locked
    and read first.

    A payment settles its order (see :func:`_settle_order`): the order's first payment owes
    ``payment_succeeded``, a later one is flagged as paid twice and owes
    ``payment_duplicated``. The signals are written to the outbox in this transaction and sent
    after the commit (see :mod:`golomt_payments.services.notifications`).

    ``result`` is the bank's word that asked for a payment: its card token, if any, is kept
    under the same lock (see :func:`card_tokens.on_paid`), so a repeated result never saves a card
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
        first: Invoice | None = None
        if target == Status.PAID:
            # The order before the card: every writer takes the order's locks first.
            first = _settle_order(invoice)
            later = {name: getattr(invoice, name) for name in card_tokens.on_paid(invoice, result)}
            if first is not None:
                later.update(_duplicate_fields(invoice, first))
            if later:
                Invoice.objects.filter(pk=invoice_pk).update(**later)
                values.update(later)
            values["holds_order"] = invoice.holds_order
        StatusChange.objects.create(
            invoice=invoice,
            from_status=old,
            to_status=target,
            source=source,
            bank_code=bank_code[:10],
            message=message,
        )
        change = _recorded(Change(invoice, old, target), record)
        owe(*_notices(invoice, old, target, source, first))
    if known is not None:
        for name in values:
            setattr(known, name, getattr(invoice, name))
    return change


def _settle_order(invoice: Invoice) -> Invoice | None:
    """Under the paying invoice's row lock: make it the invoice that paid its order, or, when
    another invoice already did, return that one (this payment is the order's second).

    The common case costs nothing: the invoice already holds its order. One that does not (a
    late payment of an invoice whose order moved on) takes the order from its unpaid holder,
    under that holder's lock, or finds it paid.
    """
    if not invoice.reference or invoice.holds_order:
        return None
    for _ in range(_MAX_CLAIMS):
        holder = (
            Invoice.objects.select_for_update()
            .filter(account=invoice.account, reference=invoice.reference, holds_order=True)
            .exclude(pk=invoice.pk)
            .first()
        )
        if holder is not None and holder.status == Status.PAID:
            return holder
        try:
            with transaction.atomic():
                if holder is not None:
                    Invoice.objects.filter(pk=holder.pk).update(holds_order=False)
                Invoice.objects.filter(pk=invoice.pk).update(holds_order=True)
        except IntegrityError:
            continue  # a checkout gave the order a new invoice meanwhile: decide against it
        invoice.holds_order = True
        return None
    raise RuntimeError(f"could not settle order {invoice.reference!r}")  # pragma: no cover


def _duplicate_fields(invoice: Invoice, first: Invoice) -> dict[str, Any]:
    reason = (
        f"Paid twice: order {invoice.reference!r} was already paid by {first.transaction_id} "
        f"({first.amount}); refund this payment ({invoice.transaction_id}, {invoice.amount})."
    )
    logger.error(
        "Invoice %s paid order %r a second time (first: %s); flagged for a refund",
        invoice.transaction_id,
        invoice.reference,
        first.transaction_id,
        extra={"transaction_id": invoice.transaction_id, "reference": invoice.reference},
    )
    invoice.duplicate_of = first
    invoice.needs_review = True
    invoice.review_reason = reason
    return {"duplicate_of": first, "needs_review": True, "review_reason": reason}


def _move(
    invoice_pk: int, target: str, values: dict[str, Any], known: Invoice | None
) -> tuple[Invoice, str] | Change:
    """Write ``values`` if the invoice may move to ``target``; inside the caller's transaction.

    Returns the moved invoice and its old status, or the unchanged outcome when the row, read
    under its lock, may not move.
    """
    if known is not None:
        claim = {"pk": invoice_pk, "status": known.status}
        if target == Status.PAID:  # who paid the order first is decided on the order's holder
            claim["holds_order"] = known.holds_order
        claimed = Invoice.objects.filter(**claim).update(**values)
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


_OUTCOME_SIGNALS: dict[str, str] = {
    Status.PAID: SignalName.SUCCEEDED,
    Status.FAILED: SignalName.FAILED,
    Status.EXPIRED: SignalName.EXPIRED,
}


def _notices(
    invoice: Invoice, old: str, new: str, source: str, first: Invoice | None
) -> list[Notice]:
    """The signals a status change owes the shop: the change itself, and its outcome (a
    second payment of an order is announced as such, never as a success)."""
    notices = [
        Notice(
            SignalName.STATUS_CHANGED,
            invoice=invoice,
            data={"old_status": old, "new_status": new, "source": source},
            objects={"invoice": invoice},
        )
    ]
    if first is not None:
        notices.append(
            Notice(
                SignalName.DUPLICATED,
                invoice=invoice,
                data={"source": source, "first_invoice": first.pk},
                objects={"invoice": invoice, "first_invoice": first},
            )
        )
    elif new in _OUTCOME_SIGNALS:
        notices.append(
            Notice(
                _OUTCOME_SIGNALS[new],
                invoice=invoice,
                data={"source": source},
                objects={"invoice": invoice},
            )
        )
    return notices
