"""Migration 0005 on a database of the previous version: each order gets the invoice that holds
it, and a second payment of an order already paid is flagged for staff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("golomt_payments", "0004_admin_list_indexes")]
AFTER = [("golomt_payments", "0005_one_payment_per_order_and_outbox")]


@pytest.fixture
def old_invoice() -> Iterator[Any]:
    """The Invoice model as it was before 0005, on a database migrated back to 0004."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    model = executor.loader.project_state(BEFORE).apps.get_model("golomt_payments", "Invoice")
    yield model
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_each_order_is_held_by_its_first_payment_else_its_newest_open_invoice(
    old_invoice: Any,
) -> None:
    now = timezone.now()
    serial = iter(range(1, 100))

    def invoice(reference: str, status: str, paid_minutes_ago: int | None = None) -> int:
        row = old_invoice.objects.create(
            transaction_id=f"MIG{next(serial):012d}",
            amount=Decimal("1000.00"),
            status=status,
            reference=reference,
            paid_at=None if paid_minutes_ago is None else now - timedelta(minutes=paid_minutes_ago),
        )
        return int(row.pk)

    # Paid twice: the invoice made first was paid last.
    paid_late = invoice("A", "paid", paid_minutes_ago=1)
    paid_first = invoice("A", "paid", paid_minutes_ago=30)
    invoice("A", "pending")
    old_failed = invoice("B", "failed")
    newest_open = invoice("B", "pending")
    invoice("C", "expired")
    no_order = invoice("", "pending")

    MigrationExecutor(connection).migrate(AFTER)

    from golomt_payments.models import Invoice

    holders = set(Invoice.objects.filter(holds_order=True).values_list("pk", flat=True))
    assert holders == {paid_first, newest_open}
    late = Invoice.objects.get(pk=paid_late)
    assert (late.duplicate_of_id, late.needs_review) == (paid_first, True)
    assert "refund this payment" in late.review_reason
    assert not Invoice.objects.get(pk=old_failed).needs_review
    assert not Invoice.objects.get(pk=no_order).holds_order
