"""Reconcile: ask the bank about invoices still open after its page timer ran out, finish
push notifications whose processing failed, card registrations whose return was lost, and
notifications the shop was owed and never received.

Several hosts may run it at once. A run claims a small batch of due invoices in one short
transaction (``SELECT … FOR UPDATE SKIP LOCKED``, then a lease written on those rows), commits,
and only then asks the bank: no row lock is ever held during a bank call. Other runs skip a
leased invoice until its lease runs out. The lease is sized for the worst case (the calls
queued before the invoice's and its own all timing out), but it only has to last while the run
holds the invoice: once the bank has been asked, an invoice still open, or whose bank did not
answer, gets a short cool-down instead (``RECONCILE_RECHECK_SECONDS``), so the next run a
minute later asks again. A declined invoice whose page has closed gets a lease past the window
it is asked about in (it is asked once); a paid or expired one leaves the claimable set by its
status. Only the run's own lease is replaced, never one another run took after it ran out.

Invoices are read one batch at a time in id order (keyset pagination), so memory stays flat
however many are open, and a run never comes back to an invoice it has passed, even one whose
cool-down ran out while it walked on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Generic, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from golomt_payments import conf
from golomt_payments.gateway import GolomtError, TransactionResult
from golomt_payments.models import (
    BankMessage,
    CardRegistration,
    Direction,
    Invoice,
    MessageKind,
    Method,
    Outcome,
    RegistrationStatus,
    Source,
    Status,
)
from golomt_payments.services.cards import close_unfinished_registration, finish_card_registration
from golomt_payments.services.decision import decide
from golomt_payments.services.inbound import finish, process_push
from golomt_payments.services.notifications import deliver_due
from golomt_payments.services.payments import (
    PAYABLE_MARGIN,
    expire,
    inquire,
    mismatch,
    refresh,
)

__all__ = ["DEFAULT_MESSAGE_LIMIT", "ReconcileSummary", "count_due", "reconcile"]

logger = logging.getLogger(__name__)

OPEN = (Status.NEW, Status.PENDING)

#: Push notifications replayed per run at most.
DEFAULT_MESSAGE_LIMIT = 100

#: A push still ``received`` this long after it came is taken for crashed mid-way (at least;
#: longer when one inquiry with its retries may take longer, see :func:`_call_seconds`).
STUCK_AFTER = timedelta(minutes=1)

#: Added to every lease for the database work around the bank calls.
_LEASE_MARGIN = timedelta(minutes=1)

# GolomtClient's default pause before the first retry, doubled for each next one.
_CLIENT_BACKOFF = 0.5

# What one invoice came to; the names are ReconcileSummary's fields.
PAID, FAILED, EXPIRED, UNCHANGED, UNREACHABLE = (
    "paid",
    "failed",
    "expired",
    "unchanged",
    "unreachable",
)
#: A card registration whose card the bank gave (it may also come to FAILED, UNCHANGED or
#: UNREACHABLE).
SAVED = "saved"

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(slots=True)
class ReconcileSummary:
    """What one run did (or, in a dry run, would do). ``checked`` counts invoices asked
    about: ``paid + failed + expired + unchanged + unreachable``."""

    checked: int = 0
    paid: int = 0
    failed: int = 0
    expired: int = 0
    unchanged: int = 0
    unreachable: int = 0
    messages_replayed: int = 0
    #: Card registrations asked about (``/api/get/token``), and what became of them.
    registrations_checked: int = 0
    cards_saved: int = 0
    registrations_failed: int = 0
    #: Notifications the shop was owed and had not received, sent again (none in a dry run).
    notifications_delivered: int = 0
    notifications_failed: int = 0
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class _Plan:
    """One run's fixed view of time and scope, decided when it starts."""

    accounts: tuple[str, ...]
    only_account: str | None
    due_before: datetime
    #: A declined invoice created before this has seen its page close, margin included.
    retry_due_before: datetime
    expire_before: datetime
    #: A lease that outlasts the window a declined invoice is asked about in.
    window_closed: datetime
    lease: timedelta
    #: How long after it was asked an invoice still open, or whose bank did not answer, waits.
    recheck: timedelta
    stuck_after: timedelta


def reconcile(
    *,
    concurrency: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    account: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
    lease_seconds: float | None = None,
    message_limit: int = DEFAULT_MESSAGE_LIMIT,
) -> ReconcileSummary:
    """Ask the bank about every invoice still open after the page timer, and apply its answer.

    Paid and declined invoices become paid and failed. An invoice the bank does not know, or
    knows as still unpaid, is expired once ``RECONCILE_GRACE_MINUTES`` have passed after the
    page timer (the bank cancels unfinished payments when its timer runs out). A bank that
    does not answer leaves the invoice as it is. Push notifications that were never finished
    (``received`` and stuck, or ``failed`` because the bank could not confirm them) are
    processed again first, at most ``message_limit`` per run. Card registrations still open
    after the page timer (the customer's return from the card-saving page was lost) are
    finished from the bank's answer, and closed as failed when the bank still has no card for
    them after the grace; at most ``message_limit`` per run, none in a dry run. Last,
    notifications the shop is owed and has not received are sent again (none in a dry run).

    ``concurrency`` bank calls run at once (default ``RECONCILE_CONCURRENCY``), sharing the
    account's pooled client; on SQLite, which has one writer at a time, invoices are done one
    by one in the calling thread. ``limit`` caps the invoices asked about. ``dry_run`` asks the
    bank and reports what would change, changing nothing (the inquiries are still logged).
    ``progress`` is called with the number of invoices done so far, from the calling thread.
    ``batch_size`` invoices are claimed at a time (default twice ``concurrency``, at least 10),
    each for ``lease_seconds`` (default: long enough even if every bank call times out); once
    asked, an invoice still open, or whose bank did not answer, is due again after
    ``RECONCILE_RECHECK_SECONDS``.

    Call it outside a transaction: inside one, the claims would stay locked and invisible to
    other runs until it commits. Raises ImproperlyConfigured for an unknown or unconfigured
    ``account``, ValueError for a bad argument.
    """
    settings = conf.get()
    workers = settings.reconcile_concurrency if concurrency is None else concurrency
    _check_positive("concurrency", workers, conf.MAX_RECONCILE_CONCURRENCY)
    if limit is not None:
        _check_positive("limit", limit)
    if not _threads_allowed():
        workers = 1
    batch = max(10, 2 * workers) if batch_size is None else batch_size
    _check_positive("batch_size", batch)
    plan = _plan(settings, account, workers, batch, lease_seconds)
    summary = ReconcileSummary(dry_run=dry_run)

    messages = _replayable(plan, message_limit)
    if dry_run:
        summary.messages_replayed = len(messages)
    else:
        replayed = _run_all([messages], _replay, workers)
        summary.messages_replayed = sum(replayed)

    if dry_run:
        batches = _due_batches(plan, batch, limit)
        verdicts = _run_all(batches, partial(_inspect, plan=plan), workers)
    else:
        batches = _claimed_batches(plan, batch, limit)
        verdicts = _run_all(batches, partial(_settle, plan=plan), workers)
    for verdict in verdicts:
        summary.checked += 1
        setattr(summary, verdict, getattr(summary, verdict) + 1)
        if progress is not None:
            progress(summary.checked)

    if not dry_run:
        registrations = _open_registrations(plan, message_limit)
        for outcome in _run_all([registrations], partial(_finish_registration, plan=plan), workers):
            summary.registrations_checked += 1
            summary.cards_saved += outcome == SAVED
            summary.registrations_failed += outcome == FAILED
        # Last: what this run itself changed was delivered after its commits.
        delivery = deliver_due()
        summary.notifications_delivered = delivery.delivered
        summary.notifications_failed = delivery.failed

    logger.info("Golomt reconcile%s: %s", " (dry run)" if dry_run else "", summary)
    return summary


def count_due(*, account: str | None = None) -> int:
    """How many open invoices a run started now would ask about (for a progress bar)."""
    settings = conf.get()
    plan = _plan(settings, account, 1, 1, None)
    return _claimable(plan, timezone.now()).count()


# --- scope and time ---------------------------------------------------------------------------


def _plan(
    settings: conf.GolomtSettings,
    account: str | None,
    workers: int,
    batch: int,
    lease_seconds: float | None,
) -> _Plan:
    if account is not None:
        if not settings.account(account).is_configured:
            raise ImproperlyConfigured(
                f"{conf.SETTING_NAME}: account {account!r} has no BEARER_TOKEN or SECRET."
            )
        accounts: tuple[str, ...] = (account,)
    else:
        # Nobody can be asked about an invoice of an account that is gone or has no
        # credentials: such invoices are left alone.
        accounts = tuple(name for name, acct in settings.accounts.items() if acct.is_configured)
        if not accounts:
            raise ImproperlyConfigured(
                f"{conf.SETTING_NAME}: no merchant account has a BEARER_TOKEN and a SECRET."
            )
    call = _call_seconds(settings)
    if lease_seconds is None:
        # A claimed invoice waits behind at most ``workers + batch - 1`` others, each done by
        # one of ``workers`` threads within one call's time at worst.
        rounds = math.ceil((workers + batch) / workers)
        lease = timedelta(seconds=rounds * call) + _LEASE_MARGIN
    else:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        lease = timedelta(seconds=lease_seconds)
    now = timezone.now()
    timer = timedelta(minutes=settings.page_timeout_minutes)
    return _Plan(
        accounts=accounts,
        only_account=account,
        due_before=now - timer,
        retry_due_before=now - timer - PAYABLE_MARGIN,
        expire_before=now - timer - timedelta(minutes=settings.reconcile_grace_minutes),
        window_closed=now + timer + timedelta(minutes=settings.reconcile_grace_minutes),
        lease=lease,
        recheck=timedelta(seconds=settings.reconcile_recheck_seconds),
        stuck_after=max(STUCK_AFTER, timedelta(seconds=call)),
    )


def _call_seconds(settings: conf.GolomtSettings) -> float:
    """The longest one inquiry may take: every attempt running into both timeouts."""
    retries = settings.read_retries
    per_attempt = settings.connect_timeout + settings.read_timeout
    return (retries + 1) * per_attempt + _CLIENT_BACKOFF * float(2**retries - 1)


def _check_positive(name: str, value: object, maximum: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 1
        or (maximum is not None and value > maximum)
    ):
        bounds = "a positive integer" if maximum is None else f"an integer from 1 to {maximum}"
        raise ValueError(f"{name} must be {bounds}")


def _threads_allowed() -> bool:
    """SQLite has one writer at a time, and a test's in-memory database one connection."""
    return connections[router.db_for_write(Invoice)].vendor != "sqlite"


# --- which invoices -----------------------------------------------------------------------


def _claimable(plan: _Plan, now: datetime) -> QuerySet[Invoice]:
    """Invoices past the page timer that no other run holds: the open ones, and the declined
    ones whose page took another card until its timer ran out (asked once, see
    :func:`_settle`), whose payment would otherwise go unrecorded if its push and redirect
    were lost."""
    retried = (
        Q(
            status=Status.FAILED,
            created_at__lt=plan.retry_due_before,
            created_at__gte=plan.expire_before,
        )
        & ~Q(method=Method.SAVED_CARD)
        & ~Q(bank_invoice="")
    )
    return Invoice.objects.filter(
        Q(status__in=OPEN, created_at__lt=plan.due_before) | retried,
        Q(reconcile_lease_until__isnull=True) | Q(reconcile_lease_until__lte=now),
        account__in=plan.accounts,
    )


def _claimed_batches(plan: _Plan, size: int, limit: int | None) -> Iterator[list[Invoice]]:
    """Claim and yield batches in id order until none is left or ``limit`` is reached."""
    after, claimed = 0, 0
    while limit is None or claimed < limit:
        want = size if limit is None else min(size, limit - claimed)
        batch = _claim(plan, after, want)
        if batch:
            yield batch
        if len(batch) < want:  # the scan reached the end: nothing more to claim now
            return
        after, claimed = batch[-1].pk, claimed + len(batch)


def _claim(plan: _Plan, after: int, size: int) -> list[Invoice]:
    """One short transaction: lock a batch (skipping rows another run has locked), lease it,
    commit. The lease is what other runs see once the locks are gone."""
    now = timezone.now()
    with transaction.atomic():
        batch = list(
            _claimable(plan, now)
            .filter(pk__gt=after)
            .select_for_update(skip_locked=True)
            .order_by("pk")[:size]
        )
        if batch:
            until = now + plan.lease
            Invoice.objects.filter(pk__in=[invoice.pk for invoice in batch]).update(
                reconcile_lease_until=until
            )
            for invoice in batch:  # what :func:`_hand_back` tells this run's lease by
                invoice.reconcile_lease_until = until
    return batch


def _due_batches(plan: _Plan, size: int, limit: int | None) -> Iterator[list[Invoice]]:
    """Like :func:`_claimed_batches` without claiming: for a dry run, which writes nothing."""
    after, seen = 0, 0
    while limit is None or seen < limit:
        want = size if limit is None else min(size, limit - seen)
        batch = list(_claimable(plan, timezone.now()).filter(pk__gt=after).order_by("pk")[:want])
        if batch:
            yield batch
        if len(batch) < want:
            return
        after, seen = batch[-1].pk, seen + len(batch)


# --- one invoice ----------------------------------------------------------------------------


def _settle(invoice: Invoice, *, plan: _Plan) -> str:
    """Ask the bank about one claimed invoice, apply what it says, and hand the invoice back
    with the lease its outcome calls for (one UPDATE; none for a paid or expired one, which
    leaves the claimable set by its status)."""
    try:
        change = refresh(invoice, source=Source.RECONCILE)
    except GolomtError as exc:
        logger.info("Reconcile: the bank did not answer for %s: %s", invoice.transaction_id, exc)
        _hand_back(invoice, _recheck_at(plan))
        return UNREACHABLE
    if change.changed and change.new_status == Status.PAID:
        return PAID
    if invoice.status == Status.FAILED:
        # Declined, now or again. Once its page has closed that is the bank's last word: never
        # asked again. Before, it is due again once the page has closed (see _claimable).
        page_closed = invoice.created_at < plan.retry_due_before
        _hand_back(invoice, plan.window_closed if page_closed else _recheck_at(plan))
        return FAILED if change.changed else UNCHANGED
    no_payment = change.unknown_to_bank or _has_no_payment(invoice, change.result)
    if (
        no_payment
        and _past_grace(invoice, plan)
        and expire(invoice, source=Source.RECONCILE).changed
    ):
        return EXPIRED
    _hand_back(invoice, _recheck_at(plan))
    return UNCHANGED


def _recheck_at(plan: _Plan) -> datetime:
    return timezone.now() + plan.recheck


def _hand_back(invoice: Invoice, until: datetime) -> None:
    """Replace this run's lease on ``invoice`` by ``until``; a lease another run took since
    (this run's ran out) is left alone."""
    Invoice.objects.filter(
        pk=invoice.pk, reconcile_lease_until=invoice.reconcile_lease_until
    ).update(reconcile_lease_until=until)


def _inspect(invoice: Invoice, *, plan: _Plan) -> str:
    """What :func:`_settle` would do with the bank's answer, without applying it."""
    try:
        result = inquire(invoice)
    except GolomtError as exc:
        logger.info("Reconcile: the bank did not answer for %s: %s", invoice.transaction_id, exc)
        return UNREACHABLE
    if result is None or _has_no_payment(invoice, result):
        return EXPIRED if _past_grace(invoice, plan) else UNCHANGED
    decided = decide(
        invoice.status, result, transaction_id=invoice.transaction_id, amount=invoice.amount
    )
    if not decided.moves:
        return UNCHANGED
    return PAID if decided.target == Status.PAID else FAILED


# --- card registrations ---------------------------------------------------------------------


def _open_registrations(plan: _Plan, limit: int) -> list[CardRegistration]:
    """Registrations still open after the page timer, oldest first."""
    return list(
        CardRegistration.objects.filter(
            status__in=(RegistrationStatus.NEW, RegistrationStatus.PENDING),
            account__in=plan.accounts,
            created_at__lt=plan.due_before,
        ).order_by("pk")[:limit]
    )


def _finish_registration(registration: CardRegistration, *, plan: _Plan) -> str:
    """Ask the bank for the registration's token and record its answer; close it as failed
    when it still has none after the grace."""
    try:
        card = finish_card_registration(registration)
    except GolomtError as exc:
        logger.info(
            "Reconcile: the bank did not answer for card registration %s: %s",
            registration.transaction_id,
            exc,
        )
        return UNREACHABLE
    if card is not None:
        return SAVED
    if registration.status == RegistrationStatus.FAILED:
        return FAILED
    if registration.created_at < plan.expire_before and close_unfinished_registration(registration):
        return FAILED
    return UNCHANGED


def _has_no_payment(invoice: Invoice, result: TransactionResult | None) -> bool:
    """The bank holds no payment for the invoice: it does not know the id (``None``), or it
    answers, about this very invoice, that nobody has paid yet."""
    return result is None or (result.is_unpaid and mismatch(invoice, result) is None)


def _past_grace(invoice: Invoice, plan: _Plan) -> bool:
    return invoice.created_at < plan.expire_before


# --- push notifications that were never finished -------------------------------------------


def _replayable(plan: _Plan, limit: int) -> list[BankMessage]:
    """Pushes whose processing failed or stopped, least recently tried first.

    A ``received`` row with ``processed_at`` set is one a run claimed for replay at that time.
    """
    if limit < 1:
        return []
    now = timezone.now()
    stuck = Q(outcome=Outcome.RECEIVED) & (
        Q(processed_at__isnull=True, created_at__lt=now - plan.stuck_after)
        | Q(processed_at__lt=now - plan.lease)
    )
    messages = BankMessage.objects.filter(
        stuck | Q(outcome=Outcome.FAILED),
        direction=Direction.INBOUND,
        kind=MessageKind.PUSH,
    )
    if plan.only_account is not None:
        # A push that stopped before its invoice was found has no account yet: such rows are
        # replayed by runs over every account.
        messages = messages.filter(account=plan.only_account)
    return list(messages.order_by(F("processed_at").asc(nulls_first=True), "pk")[:limit])


def _replay(message: BankMessage) -> bool:
    """Claim ``message`` with one conditional UPDATE (lost to another run: skip), then process
    it again; :func:`process_push` is safe to run twice on the same row."""
    as_read = (
        Q(processed_at__isnull=True)
        if message.processed_at is None
        else Q(processed_at=message.processed_at)
    )
    claimed = BankMessage.objects.filter(as_read, pk=message.pk, outcome=message.outcome)
    if not claimed.update(outcome=Outcome.RECEIVED, processed_at=timezone.now()):
        return False
    logger.info("Reconcile: replaying push notification #%s", message.pk)
    try:
        process_push(message)
    except Exception as exc:  # one bad row must not stop the run; it is retried next time
        logger.exception("Reconcile: replaying push notification #%s failed", message.pk)
        finish(message, Outcome.FAILED, error=f"replay failed: {type(exc).__name__}: {exc}")
    return True


# --- running many at once -------------------------------------------------------------------


def _run_all(batches: Iterable[list[_T]], work: Callable[[_T], _R], workers: int) -> Iterator[_R]:
    """Run ``work`` over every item of every batch, ``workers`` at a time; yield the results
    as they come.

    The next batch is taken only when no more than ``workers`` items are outstanding, so at
    most ``workers + batch`` are in memory (and under lease) at once. With one worker all runs
    in the calling thread, on its database connection. Otherwise each worker thread keeps its
    own database connection from one item to the next and closes it when the run ends:
    opening one per item would cost more than the item's own queries.
    """
    if workers == 1:
        for batch in batches:
            for item in batch:
                yield work(item)
        return
    pool = _Workers(work, workers)
    outstanding = 0
    try:
        for batch in batches:
            for item in batch:
                pool.submit(item)
            outstanding += len(batch)
            while outstanding > workers:
                outstanding -= 1
                yield pool.result()
        while outstanding:
            outstanding -= 1
            yield pool.result()
    finally:
        pool.close()


class _Stop:
    """Tells a worker thread to finish."""


_STOP = _Stop()


class _Workers(Generic[_T, _R]):
    """Up to ``size`` threads running ``work`` on submitted items; results in completion order.

    A thread is started per submitted item until there are ``size``. Each thread keeps its
    database connections between items (closing only one an item left unusable) and closes
    them when it stops.
    """

    def __init__(self, work: Callable[[_T], _R], size: int) -> None:
        self._work = work
        self._size = size
        self._tasks: queue.SimpleQueue[_T | _Stop] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[_R, None] | tuple[None, BaseException]] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []

    def submit(self, item: _T) -> None:
        self._tasks.put(item)
        if len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._serve, name=f"golomt-reconcile_{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def result(self) -> _R:
        """The next result to come; re-raises what a task raised."""
        value, error = self._results.get()
        if error is not None:
            raise error
        return cast(_R, value)

    def close(self) -> None:
        """Drop the items not started yet, let the running ones finish, stop every thread."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._tasks.get_nowait()
        for _ in self._threads:
            self._tasks.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        try:
            while not isinstance(item := self._tasks.get(), _Stop):
                try:
                    self._results.put((self._work(item), None))
                except BaseException as exc:  # handed to the caller's thread, raised there
                    self._results.put((None, exc))
                finally:
                    _drop_unusable_connections()
        finally:
            connections.close_all()


def _drop_unusable_connections() -> None:
    """Close this thread's connections that an error left unusable; keep the healthy ones."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
