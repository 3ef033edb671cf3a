"""The reconciler's worker threads: one database connection each for the whole run, closed when
the run ends, also when a task fails.

Threads need a database that other connections can see, so these run on PostgreSQL only
(``DATABASE_URL``); on SQLite the reconciler runs one invoice at a time in the calling thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.utils import timezone

from golomt_payments import services
from golomt_payments.models import Invoice, Status
from golomt_payments.services import reconciliation
from tests.factories import InvoiceFactory
from tests.helpers import FakeBank

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL"
    ),
    pytest.mark.django_db(transaction=True),
]

WORKERS = 4
INVOICES = 30


def due_invoices(count: int) -> list[Invoice]:
    """Open invoices 15 minutes old: past the page timer, within the grace."""
    invoices = [InvoiceFactory() for _ in range(count)]
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(
        created_at=timezone.now() - timedelta(minutes=15)
    )
    return invoices


class Opened:
    """Every database connection opened from a reconcile worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wrappers: list[BaseDatabaseWrapper] = []
        self.by_thread: Counter[str] = Counter()

    def __call__(self, *, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        name = threading.current_thread().name
        if name.startswith("golomt-reconcile"):
            with self._lock:
                self.wrappers.append(connection)
                self.by_thread[name] += 1


@pytest.fixture
def opened() -> Iterator[Opened]:
    receiver = Opened()
    connection_created.connect(receiver, weak=False)
    yield receiver
    connection_created.disconnect(receiver)


def reconcile_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("golomt-reconcile")]


def test_each_worker_opens_one_connection_for_the_run_and_closes_it(
    fake_bank: FakeBank, opened: Opened
) -> None:
    invoices = due_invoices(INVOICES)
    fake_bank.inquiry(error_code="000")

    summary = services.reconcile(concurrency=WORKERS, batch_size=5)

    assert summary.checked == summary.paid == INVOICES
    assert {i.status for i in Invoice.objects.filter(pk__in=[i.pk for i in invoices])} == {
        Status.PAID
    }
    assert 1 <= len(opened.wrappers) <= WORKERS
    assert all(wrapper.connection is None for wrapper in opened.wrappers)
    assert reconcile_threads() == []


def test_a_failing_task_stops_the_run_and_still_closes_every_connection(
    fake_bank: FakeBank, opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoices = due_invoices(INVOICES)
    fake_bank.inquiry(error_code="000")
    poisoned = invoices[7].pk
    settle = reconciliation._settle

    def failing(invoice: Invoice, **kwargs: Any) -> str:
        if invoice.pk == poisoned:
            raise RuntimeError("boom")
        return settle(invoice, **kwargs)

    monkeypatch.setattr(reconciliation, "_settle", failing)

    with pytest.raises(RuntimeError, match="boom"):
        services.reconcile(concurrency=WORKERS, batch_size=5)

    assert opened.wrappers
    assert all(wrapper.connection is None for wrapper in opened.wrappers)
    assert reconcile_threads() == []
    # Not every invoice was asked about: the run stopped at the failure.
    assert Invoice.objects.filter(status=Status.PENDING).exists()


def test_a_connection_an_error_left_broken_is_replaced_for_the_next_invoice(
    fake_bank: FakeBank, opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that breaks its thread's connection (here: the server ends the session) costs
    that one invoice; the thread opens a new connection for the next."""
    invoices = due_invoices(INVOICES)
    fake_bank.inquiry(error_code="000")
    broken = invoices[3].pk
    breaker: list[str] = []
    settle = reconciliation._settle

    def breaking(invoice: Invoice, **kwargs: Any) -> str:
        if invoice.pk != broken:
            return settle(invoice, **kwargs)
        breaker.append(threading.current_thread().name)
        worker = connections["default"]
        worker.ensure_connection()
        pid = worker.connection.info.backend_pid
        with connection_for_admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        try:
            Invoice.objects.filter(pk=invoice.pk).exists()
        except Exception:
            return reconciliation.UNREACHABLE
        raise AssertionError("the terminated connection still answered")

    monkeypatch.setattr(reconciliation, "_settle", breaking)

    summary = services.reconcile(concurrency=WORKERS, batch_size=5)

    assert summary.checked == INVOICES
    assert summary.paid == INVOICES - 1
    assert summary.unreachable == 1
    assert opened.by_thread[breaker[0]] == 2  # the broken one, then its replacement
    assert all(count == 1 for name, count in opened.by_thread.items() if name != breaker[0])
    assert all(wrapper.connection is None for wrapper in opened.wrappers)


def connection_for_admin() -> Any:
    """A separate psycopg connection with the test database's credentials."""
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["autocommit"] = True
    return psycopg.connect(**params)
