"""Exactly once under real concurrency: many threads, each with its own PostgreSQL connection.

The reconciler's runs here use real worker threads (it runs one at a time on SQLite).

SQLite does not lock rows, so these run on PostgreSQL only (``DATABASE_URL``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection, connections, transaction
from django.dispatch import Signal
from django.test import Client, override_settings
from django.utils import timezone

from golomt_payments import signals
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    BankMessage,
    Direction,
    Invoice,
    MessageKind,
    Outcome,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.services import Change, ReconcileSummary, apply_result, reconcile
from tests.factories import InvoiceFactory
from tests.helpers import SECRET, FakeBank, Later, push_body, result_body, unpaid_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL"
    ),
    pytest.mark.django_db(transaction=True),
]

THREADS = 20
RACES = 15  # paid against failed, each on a new invoice: either may land first
T = TypeVar("T")


class Signals:
    """Every app signal received, from any thread, in the order received."""

    NAMES = ("invoice_status_changed", "payment_succeeded", "payment_failed", "payment_expired")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[tuple[str, int, str | None, str | None]] = []
        self._connected: list[tuple[Signal, Callable[..., None]]] = []

    def connect(self) -> None:
        for name in self.NAMES:
            signal: Signal = getattr(signals, name)

            def receiver(sender: Any, *, invoice: Invoice, _name: str = name, **kw: Any) -> None:
                with self._lock:
                    self.received.append(
                        (_name, invoice.pk, kw.get("old_status"), kw.get("new_status"))
                    )

            signal.connect(receiver, weak=False)
            self._connected.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver)

    def names(self, invoice: Invoice) -> Counter[str]:
        return Counter(name for name, pk, _, _ in self.received if pk == invoice.pk)

    def moves(self, invoice: Invoice) -> Counter[tuple[str | None, str | None]]:
        return Counter(
            (old, new)
            for name, pk, old, new in self.received
            if pk == invoice.pk and name == "invoice_status_changed"
        )


@pytest.fixture
def signal_counter() -> Iterator[Signals]:
    recorder = Signals()
    recorder.connect()
    yield recorder
    recorder.disconnect()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def run_together(*jobs: Callable[[], T]) -> list[T]:
    """Run every job in its own thread, released at once by a barrier; re-raise the first
    failure. Each thread closes its own database connection when done."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = job()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def bank_result(invoice: Invoice, error_code: str = "000") -> TransactionResult:
    return parse_transaction_result(
        result_body(invoice.transaction_id, error_code=error_code, amount=invoice.amount_sent),
        SECRET,
        kind="inquiry",
    )


def fresh(invoice: Invoice) -> Invoice:
    """The invoice as a request would read it: its own unlocked copy."""
    return Invoice.objects.get(pk=invoice.pk)


def applying(invoice: Invoice, result: TransactionResult, source: str) -> Callable[[], Change]:
    """A job that applies ``result`` to its own fresh copy of ``invoice``."""
    return lambda: apply_result(fresh(invoice), result, source=source)


def history(invoice: Invoice) -> list[tuple[str, str]]:
    return list(
        StatusChange.objects.filter(invoice=invoice)
        .order_by("pk")
        .values_list("from_status", "to_status")
    )


def test_the_same_paid_result_applied_by_many_threads_at_once_pays_once(
    signal_counter: Signals,
) -> None:
    invoice = InvoiceFactory()
    result = bank_result(invoice)

    changes = run_together(*[applying(invoice, result, Source.PUSH)] * THREADS)

    assert sum(change.changed for change in changes) == 1
    assert fresh(invoice).status == Status.PAID
    assert fresh(invoice).paid_at is not None
    assert history(invoice) == [(Status.PENDING, Status.PAID)]
    assert signal_counter.names(invoice) == {"invoice_status_changed": 1, "payment_succeeded": 1}


def test_concurrent_duplicate_pushes_and_a_redirect_pay_once_and_are_all_answered(
    fake_bank: FakeBank, signal_counter: Signals
) -> None:
    """``responses`` patches ``requests`` process-wide and looks up its registry under a lock,
    so activated once here it answers the inquiries of every thread."""
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = json.dumps(push_body(invoice.transaction_id), ensure_ascii=False)

    def push() -> int:
        response = Client().post("/payments/push/", body, content_type="application/json")
        return int(response.status_code)

    def redirect() -> int:
        response = Client().get("/payments/return/", {"invoice": invoice.transaction_id})
        return int(response.status_code)

    answers = run_together(*[push] * THREADS, redirect)

    assert answers == [200] * THREADS + [302]
    assert fresh(invoice).status == Status.PAID
    assert len(history(invoice)) == 1
    assert signal_counter.names(invoice) == {"invoice_status_changed": 1, "payment_succeeded": 1}
    pushes = BankMessage.objects.filter(direction=Direction.INBOUND, kind=MessageKind.PUSH)
    outcomes = Counter(pushes.values_list("outcome", flat=True))
    assert sum(outcomes.values()) == THREADS
    assert set(outcomes) <= {Outcome.PROCESSED, Outcome.UNCHANGED}
    redirects = BankMessage.objects.filter(kind=MessageKind.REDIRECT)
    all_processed = outcomes[Outcome.PROCESSED] + sum(
        outcome == Outcome.PROCESSED for outcome in redirects.values_list("outcome", flat=True)
    )
    assert all_processed == 1
    assert redirects.count() == 1
    # Every push read before the payment was committed asks the bank; later ones need not.
    assert 1 <= len(fake_bank.calls("/api/inquiry")) <= THREADS + 1


def test_paid_wins_a_race_with_failed_and_is_never_followed_by_payment_failed(
    signal_counter: Signals,
) -> None:
    """failed -> paid is allowed, paid -> failed never: whichever result lands first, the
    invoice ends paid, and each signal matches a move the history shows."""
    for _ in range(RACES):
        invoice = InvoiceFactory()
        paid, declined = bank_result(invoice), bank_result(invoice, error_code="300")

        run_together(
            applying(invoice, paid, Source.PUSH), applying(invoice, declined, Source.REDIRECT)
        )

        moves = history(invoice)
        assert fresh(invoice).status == Status.PAID
        assert moves in (
            [(Status.PENDING, Status.PAID)],
            [(Status.PENDING, Status.FAILED), (Status.FAILED, Status.PAID)],
        )
        assert signal_counter.moves(invoice) == Counter(moves)
        names = signal_counter.names(invoice)
        assert names["payment_succeeded"] == 1
        assert names["payment_failed"] == (1 if (Status.PENDING, Status.FAILED) in moves else 0)
        assert not any(old == Status.PAID for old, _ in signal_counter.moves(invoice))


def test_a_locked_invoice_does_not_block_results_for_another(signal_counter: Signals) -> None:
    locked, other = InvoiceFactory(), InvoiceFactory()
    holding = threading.Event()
    other_done = threading.Event()
    released = threading.Event()

    def hold_the_lock() -> None:
        try:
            with transaction.atomic():
                Invoice.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                other_done.wait(timeout=2)  # hold for up to 2 seconds
            released.set()
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        with pytest.raises(DatabaseError), transaction.atomic():
            Invoice.objects.select_for_update(nowait=True).get(pk=locked.pk)

        change = apply_result(fresh(other), bank_result(other), source=Source.PUSH)

        lock_still_held = not released.is_set()
    finally:
        other_done.set()
        holder.join(timeout=10)

    assert change.changed
    assert lock_still_held, "the other invoice waited for the lock on the first"
    assert fresh(other).status == Status.PAID
    assert fresh(locked).status == Status.PENDING
    assert signal_counter.names(other) == {"invoice_status_changed": 1, "payment_succeeded": 1}


# --- the reconciler -----------------------------------------------------------------------

RECONCILE_INVOICES = 50


def aged(minutes: float) -> Invoice:
    invoice = InvoiceFactory()
    Invoice.objects.filter(pk=invoice.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )
    return fresh(invoice)


class CountingBank:
    """Answers inquiries per transaction id from any thread, counting them, and notes every
    call made while its thread's connection was inside a transaction (a row lock held)."""

    def __init__(self, fake_bank: FakeBank, answers: dict[str, dict[str, Any]]) -> None:
        self._lock = threading.Lock()
        self.asked: Counter[str] = Counter()
        self.in_transaction: list[str] = []
        self._answers = answers
        fake_bank.inquiry_reply(self.reply)

    def reply(self, request: Any) -> tuple[int, dict[str, str], str]:
        tx = json.loads(request.body)["transactionId"]
        with self._lock:
            self.asked[tx] += 1
            if connection.in_atomic_block:
                self.in_transaction.append(tx)
        return 200, {}, json.dumps(self._answers[tx], ensure_ascii=False)


def test_two_reconcile_runs_at_once_ask_about_every_invoice_exactly_once(
    fake_bank: FakeBank, signal_counter: Signals
) -> None:
    """Paid, expired (unknown past the grace) and unchanged (unpaid within the grace): the
    unchanged ones stay open, so only the claim keeps the second run away from them."""
    to_pay = [aged(15) for _ in range(20)]
    to_expire = [aged(45) for _ in range(20)]
    to_keep = [aged(15) for _ in range(RECONCILE_INVOICES - 40)]
    answers = {i.transaction_id: result_body(i.transaction_id) for i in to_pay}
    answers |= {i.transaction_id: unpaid_body(i.transaction_id) for i in to_expire + to_keep}
    bank = CountingBank(fake_bank, answers)

    summaries = run_together(*[lambda: reconcile(concurrency=4, batch_size=5)] * 2)

    assert bank.asked == Counter(answers.keys())  # every id exactly once
    assert bank.in_transaction == []
    assert sum(s.checked for s in summaries) == RECONCILE_INVOICES
    assert sum(s.paid for s in summaries) == 20
    assert sum(s.expired for s in summaries) == 20
    assert sum(s.unchanged for s in summaries) == RECONCILE_INVOICES - 40
    for invoice in to_pay:
        assert history(invoice) == [(Status.PENDING, Status.PAID)]
        assert signal_counter.names(invoice) == {
            "invoice_status_changed": 1,
            "payment_succeeded": 1,
        }
    for invoice in to_expire:
        assert history(invoice) == [(Status.PENDING, Status.EXPIRED)]
        assert signal_counter.names(invoice)["payment_expired"] == 1
    for invoice in to_keep:
        assert history(invoice) == []
        assert fresh(invoice).status == Status.PENDING
        assert fresh(invoice).reconcile_lease_until is not None


def test_two_runs_whose_cool_downs_run_out_as_they_walk_never_ask_about_one_invoice_at_once(
    fake_bank: FakeBank, later: Later
) -> None:
    """Every answer moves the app's clock on by the whole one-second cool-down, so an invoice
    one run hands back is due again while the other still walks: the other may ask about it
    again (each run once at most), but never while a run is still asking about it."""
    invoices = [aged(15) for _ in range(RECONCILE_INVOICES)]
    lock = threading.Lock()
    asking: set[str] = set()
    at_once: list[str] = []
    asked: Counter[str] = Counter()

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        tx = json.loads(request.body)["transactionId"]
        with lock:
            if tx in asking:
                at_once.append(tx)
            asking.add(tx)
            asked[tx] += 1
        time.sleep(0.005)
        later.move(seconds=1)
        with lock:
            asking.discard(tx)
        return 200, {}, json.dumps(unpaid_body(tx))

    fake_bank.inquiry_reply(reply)

    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "RECONCILE_RECHECK_SECONDS": 1}):
        summaries = run_together(*[lambda: reconcile(concurrency=4, batch_size=5)] * 2)

    assert at_once == []
    assert set(asked) == {invoice.transaction_id for invoice in invoices}
    assert max(asked.values()) <= 2  # once per run at most
    assert sum(s.checked for s in summaries) == sum(asked.values())
    assert all(s.checked == s.unchanged for s in summaries)


def test_pushes_a_redirect_and_a_reconcile_run_at_once_pay_once(
    fake_bank: FakeBank, signal_counter: Signals
) -> None:
    invoice = aged(15)
    fake_bank.inquiry(error_code="000")
    body = json.dumps(push_body(invoice.transaction_id), ensure_ascii=False)

    def push() -> int:
        response = Client().post("/payments/push/", body, content_type="application/json")
        return int(response.status_code)

    def redirect() -> int:
        response = Client().get("/payments/return/", {"invoice": invoice.transaction_id})
        return int(response.status_code)

    def reconciling() -> ReconcileSummary:
        return reconcile(concurrency=2)

    *answers, summary = run_together(*[push] * THREADS, redirect, reconciling)

    assert answers == [200] * THREADS + [302]
    assert summary.checked in (0, 1)  # 0 when a push already paid it before the claim
    assert fresh(invoice).status == Status.PAID
    assert history(invoice) == [(Status.PENDING, Status.PAID)]
    assert signal_counter.names(invoice) == {"invoice_status_changed": 1, "payment_succeeded": 1}


def test_reconcile_skips_an_invoice_locked_by_a_payment_in_progress(fake_bank: FakeBank) -> None:
    locked, other = aged(15), aged(15)
    bank = CountingBank(
        fake_bank,
        {i.transaction_id: unpaid_body(i.transaction_id) for i in (locked, other)},
    )
    holding, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        try:
            with transaction.atomic():
                Invoice.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                done.wait(timeout=10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        summary = reconcile(concurrency=2)
    finally:
        done.set()
        holder.join(timeout=10)

    assert bank.asked == Counter({other.transaction_id: 1})
    assert summary.checked == 1
    assert fresh(locked).reconcile_lease_until is None
