"""A shop's own order table and its ``payment_succeeded`` receiver, in plain SQL, for the tests
that kill a worker between the payment's commit and the receiver's write (PostgreSQL).

The receiver follows the pattern the README gives shops: a conditional UPDATE, so that a
redelivery (the same ``event_id``) changes nothing; ``times_marked`` counts the UPDATEs that
did change the order, which must end at one.
"""

from __future__ import annotations

import sys
from typing import Any

from django.db import connection, transaction

from golomt_payments.models import Invoice

TABLE = "test_shop_order"
#: Printed (and flushed) by the receiver just before its write, for a parent process to read.
WRITING = "receiver: writing"


def create(number: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS test_shop_order (number varchar(100) PRIMARY KEY,"
            " status varchar(10) NOT NULL, times_marked integer NOT NULL DEFAULT 0)"
        )
        cursor.execute(
            "INSERT INTO test_shop_order (number, status) VALUES (%s, 'awaiting')", [number]
        )


def drop() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS test_shop_order")


def state(number: str) -> tuple[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, times_marked FROM test_shop_order WHERE number = %s", [number]
        )
        status, times = cursor.fetchone()
    return str(status), int(times)


def mark_paid(sender: Any, *, invoice: Invoice, event_id: str, **kwargs: Any) -> None:
    """Marks the order paid in a transaction of its own, as a receiver that writes more than one
    row does: a worker killed before the COMMIT leaves the order as it was."""
    print(WRITING, event_id, flush=True, file=sys.stdout)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE test_shop_order SET status = 'paid', times_marked = times_marked + 1"
            " WHERE number = %s AND status <> 'paid'",
            [invoice.reference],
        )
