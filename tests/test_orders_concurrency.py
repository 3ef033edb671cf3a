"""Exactly once where the shop feels it, under real concurrency (PostgreSQL): one charge per
order whatever arrives at once, and no ``payment_succeeded`` lost when a worker dies after the
commit.

SQLite does not lock rows, so these run on PostgreSQL only (``DATABASE_URL``).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from golomt_payments import services, signals
from golomt_payments.checkout import sign_checkout
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    CardToken,
    DeliveryState,
    Invoice,
    Method,
    Notification,
    SignalName,
    Source,
    Status,
)
from tests import shop_orders
from tests.factories import CardTokenFactory, InvoiceFactory
from tests.helpers import SECRET, FakeBank, result_body
from tests.test_concurrency import THREADS, Signals, run_together

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL"
    ),
    pytest.mark.django_db(transaction=True),
]

REPO = Path(__file__).resolve().parents[1]
RACES = 10


@pytest.fixture
def signal_counter() -> Iterator[Signals]:
    recorder = Signals()
    recorder.NAMES = (*Signals.NAMES, "payment_duplicated")  # type: ignore[misc]
    recorder.connect()
    yield recorder
    recorder.disconnect()


def paid_result(invoice: Invoice) -> TransactionResult:
    body = result_body(invoice.transaction_id, amount=invoice.amount_sent)
    return parse_transaction_result(body, SECRET, kind="inquiry")


ONE_PAYMENT_ONE_DUPLICATE = Counter(payment_succeeded=1, payment_duplicated=1)


def pay_at_once(signals_seen: Signals, *invoices: Invoice) -> Counter[str]:
    """Apply a paid result to every invoice at once, each in its own thread; what the shop
    heard of them, besides the status changes."""

    def pay(invoice: Invoice) -> Any:
        return lambda: services.apply_result(
            Invoice.objects.get(pk=invoice.pk), paid_result(invoice), source=Source.PUSH
        )

    run_together(*[pay(invoice) for invoice in invoices])
    return Counter(
        name
        for invoice in invoices
        for name in signals_seen.names(invoice).elements()
        if name != "invoice_status_changed"
    )


# --- one charge per order -------------------------------------------------------------------


def test_twenty_checkouts_of_one_order_at_once_make_one_bank_invoice_and_all_get_its_page(
    fake_bank: FakeBank,
) -> None:
    fake_bank.invoice(delay=0.5)  # a bank slow enough that the others arrive while it thinks
    payload = sign_checkout(amount=Decimal("89000"), reference="ORD-20")

    def press_pay() -> tuple[int, str]:
        answer = Client().post("/payments/checkout/", {"payload": payload})
        return answer.status_code, answer.get("Location", "")

    answers = run_together(*[press_pay] * THREADS)

    invoice = Invoice.objects.get()
    page = f"https://bank.test/payment/{invoice.language}/{invoice.bank_invoice}"
    assert set(answers) == {(303, page)}
    assert len(fake_bank.invoices_created) == 1
    assert invoice.holds_order and invoice.status == Status.PENDING


def test_two_saved_cards_paying_one_order_at_once_charge_once(
    fake_bank: FakeBank, django_user_model: Any
) -> None:
    owner: AbstractBaseUser = django_user_model.objects.create_user("ann")
    cards: list[CardToken] = [
        CardTokenFactory(owner=owner, token="card-one"),
        CardTokenFactory(owner=owner, token="card-two"),
    ]
    fake_bank.pay(delay=0.3)

    def pay_with(card: CardToken) -> Any:
        return lambda: services.charge_saved_card(card, amount=1000, reference="ORD-2C")

    opened = run_together(*[pay_with(card) for card in cards])

    assert len(fake_bank.calls("/api/pay")) == 1
    assert sorted(o.created for o in opened) == [False, True]
    assert {o.invoice.pk for o in opened} == {Invoice.objects.get().pk}
    assert Invoice.objects.get().status == Status.PAID


def test_two_invoices_of_one_order_paid_at_once_announce_one_success_and_one_duplicate(
    signal_counter: Signals,
) -> None:
    for race in range(RACES):
        reference = f"RACE-{race}"
        old = InvoiceFactory(reference=reference, holds_order=False)  # a page let go of
        new = InvoiceFactory(socialpay=True, reference=reference)

        assert pay_at_once(signal_counter, old, new) == ONE_PAYMENT_ONE_DUPLICATE, race
        holder = Invoice.objects.get(reference=reference, holds_order=True)
        duplicate = Invoice.objects.get(reference=reference, holds_order=False)
        assert signal_counter.names(holder)["payment_succeeded"] == 1
        assert (duplicate.duplicate_of_id, duplicate.needs_review) == (holder.pk, True)
        assert {holder.status, duplicate.status} == {Status.PAID}


def test_two_saved_card_charges_of_one_order_and_one_card_paid_at_once_never_deadlock(
    django_user_model: Any, signal_counter: Signals
) -> None:
    """Paying an invoice locks its order and marks its card used: when two charges of one
    order with one card are paid at once (a lost answer found by the reconciler as the other
    comes in), both take the order's lock before the card's, so neither waits for the other
    in a circle."""
    card = CardTokenFactory(owner=django_user_model.objects.create_user("ann"))
    for race in range(RACES):
        reference = f"CARD-{race}"
        saved = {"method": Method.SAVED_CARD, "bank_invoice": "", "card_token": card}
        holder = InvoiceFactory(reference=reference, **saved)
        earlier = InvoiceFactory(reference=reference, holds_order=False, **saved)

        assert pay_at_once(signal_counter, earlier, holder) == ONE_PAYMENT_ONE_DUPLICATE, race


def test_a_late_payment_racing_a_new_checkout_of_its_order_pays_the_order_once(
    fake_bank: FakeBank, signal_counter: Signals
) -> None:
    fake_bank.invoice(delay=0.1)
    for race in range(RACES):
        reference = f"LATE-{race}"
        late = InvoiceFactory(expired=True, reference=reference)

        def checkout(reference: str = reference) -> str:
            try:
                services.start_payment(
                    amount=1000, reference=reference, callback_url="https://shop.test/r/"
                )
            except services.OrderAlreadyPaid:
                return "already paid"
            return "started"

        def pay(invoice: Invoice = late) -> Any:
            return services.apply_result(
                Invoice.objects.get(pk=invoice.pk), paid_result(invoice), source=Source.PUSH
            )

        run_together(checkout, pay)

        assert signal_counter.names(late)["payment_succeeded"] == 1, race
        assert Invoice.objects.get(reference=reference, holds_order=True).pk == late.pk
        others = Invoice.objects.filter(reference=reference).exclude(pk=late.pk)
        assert all(signal_counter.names(other)["payment_succeeded"] == 0 for other in others)


def test_two_sweeps_at_once_deliver_each_owed_signal_once() -> None:
    invoices = [InvoiceFactory() for _ in range(10)]
    for invoice in invoices:
        services.apply_result(invoice, paid_result(invoice), source=Source.PUSH)
    Notification.objects.update(
        state=DeliveryState.PENDING, due_at=timezone.now(), delivered_at=None
    )
    received: list[str] = []
    lock = threading.Lock()

    def slow_receiver(sender: Any, *, event_id: str, **kwargs: Any) -> None:
        time.sleep(0.02)
        with lock:
            received.append(event_id)

    signals.payment_succeeded.connect(slow_receiver, weak=False)
    try:
        summaries = run_together(services.deliver_due, services.deliver_due)
    finally:
        signals.payment_succeeded.disconnect(slow_receiver)

    assert sum(s.delivered for s in summaries) == Notification.objects.count() == 20
    assert sorted(received) == sorted(
        str(event_id)
        for event_id in Notification.objects.filter(signal=SignalName.SUCCEEDED).values_list(
            "event_id", flat=True
        )
    )


# --- a worker killed after the commit ------------------------------------------------------

WORKER = """
import sys
import django

django.setup()
from golomt_payments import services, signals
from golomt_payments.gateway import parse_transaction_result
from golomt_payments.models import Invoice, Source
from tests.helpers import SECRET, result_body
from tests.shop_orders import mark_paid

signals.payment_succeeded.connect(mark_paid)
invoice = Invoice.objects.get(pk=int(sys.argv[1]))
body = result_body(invoice.transaction_id, amount=invoice.amount_sent)
services.apply_result(
    invoice, parse_transaction_result(body, SECRET, kind="inquiry"), source=Source.PUSH
)
print("worker: done", flush=True)
"""


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def _lines(stream: Any) -> queue.SimpleQueue[str]:
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _receiver_waits_on_a_lock(deadline: float) -> bool:
    """The worker's UPDATE of the shop's order is queued behind the table lock."""
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'UPDATE test_shop_order%%'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture
def shop_order() -> Iterator[str]:
    shop_orders.create("ORD-KILLED")
    yield "ORD-KILLED"
    shop_orders.drop()


def test_a_worker_killed_after_the_commit_while_the_receiver_waits_is_made_good_by_reconcile(
    shop_order: str,
) -> None:
    """The shop's order table is locked (a migration during a deploy); the push's worker
    commits the payment, starts the receiver, which waits on the lock, and is killed. The
    payment is recorded and the shop is still owed its signal: the next ``golomt_reconcile``
    delivers it, and the order ends paid, once."""
    import psycopg

    invoice = InvoiceFactory(reference=shop_order)
    db = connection.settings_dict
    migration = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname=db["NAME"],
    )
    migration.execute(f"LOCK TABLE {shop_orders.TABLE} IN ACCESS EXCLUSIVE MODE")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "PYTHONPATH": str(REPO),
    }
    worker = subprocess.Popen(  # noqa: S603 - a fixed command line built by the test
        [sys.executable, "-c", WORKER, str(invoice.pk)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _lines(worker.stdout)
        line = lines.get(timeout=60)
        while not line.startswith(shop_orders.WRITING):
            line = lines.get(timeout=60)
        assert _receiver_waits_on_a_lock(time.monotonic() + 30)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        migration.rollback()
        migration.close()

    invoice.refresh_from_db()
    assert invoice.status == Status.PAID  # committed before the receiver ran
    assert shop_orders.state(shop_order) == ("awaiting", 0)  # the receiver's write died
    owed = Notification.objects.get(invoice=invoice, signal=SignalName.SUCCEEDED)
    assert owed.state == DeliveryState.PENDING

    signals.payment_succeeded.connect(shop_orders.mark_paid)
    try:
        Notification.objects.update(due_at=timezone.now())  # the short delay has passed
        call_command("golomt_reconcile", stdout=open(os.devnull, "w"))
        call_command("golomt_reconcile", stdout=open(os.devnull, "w"))
    finally:
        signals.payment_succeeded.disconnect(shop_orders.mark_paid)

    assert shop_orders.state(shop_order) == ("paid", 1)
    owed.refresh_from_db()
    assert owed.state == DeliveryState.DELIVERED
