"""Print the SQL a push notification costs (first delivery and a duplicate), and a checkout
(a new payment of an order, and the same order again while its payment is open).

Runs the real view through Django's test client against ``tests.settings`` (SQLite on a RAM
disk, or PostgreSQL when DATABASE_URL is set, e.g. ``postgres://golomt:golomt@127.0.0.1/x``),
with the bank's inquiry faked by ``responses`` (no network at all). Each scenario is measured
twice: in autocommit, as under a real server (the status change's ``atomic()`` shows as
BEGIN/COMMIT, or BEGIN IMMEDIATE/COMMIT on SQLite), and inside an outer transaction, as in
the test suite (where it shows as SAVEPOINT/RELEASE). Both are counted, as the tests count.

    .venv/bin/python benchmarks/queries_per_push.py [--sql] [--no-inquiry]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sql", action="store_true", help="print every SQL statement")
    parser.add_argument(
        "--no-inquiry",
        action="store_true",
        help="also measure with CONFIRM_PUSH_WITH_INQUIRY off",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import responses
    from django.db import connection, transaction
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from golomt_payments.models import Invoice, Status
    from tests.factories import InvoiceFactory
    from tests.helpers import FakeBank, push_body
    from tests.settings import GOLOMT_PAYMENTS

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    rows: list[tuple[str, str, int, list[str]]] = []

    def measure(label: str, mode: str, wrapped: bool, extra: dict[str, Any]) -> None:
        sender = Client(enforce_csrf_checks=True)
        outer = transaction.atomic() if wrapped else contextlib.nullcontext()
        with (
            responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
            override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, **extra}),
        ):
            FakeBank(mock).inquiry(error_code="000")
            with outer:
                invoice = InvoiceFactory()
                data = json.dumps(push_body(invoice.transaction_id))
                for attempt in ("first delivery", "duplicate"):
                    with CaptureQueriesContext(connection) as ctx:
                        response = sender.post(
                            "/payments/push/", data=data, content_type="application/json"
                        )
                    assert response.status_code == 200, response.content
                    sql = [q["sql"] for q in ctx.captured_queries]
                    rows.append((f"{label}: {attempt}", mode, len(sql), sql))
                assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
                if wrapped:
                    transaction.set_rollback(True)

    def measure_checkout(mode: str, wrapped: bool) -> None:
        from golomt_payments.checkout import sign_checkout

        browser = Client()
        outer = transaction.atomic() if wrapped else contextlib.nullcontext()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            FakeBank(mock).invoice()
            with outer:
                payload = sign_checkout(amount="89000", reference=f"BENCH-{mode}")
                for attempt in ("new payment", "same order again"):
                    with CaptureQueriesContext(connection) as ctx:
                        response = browser.post("/payments/checkout/", {"payload": payload})
                    assert response.status_code == 303, response.content
                    sql = [q["sql"] for q in ctx.captured_queries]
                    rows.append((f"checkout: {attempt}", mode, len(sql), sql))
                if wrapped:
                    transaction.set_rollback(True)

    try:
        measure_checkout("autocommit (server)", False)
        measure_checkout("in transaction (tests)", True)
        scenarios = [("push + inquiry", {})]
        if args.no_inquiry:
            scenarios.append(("push, no inquiry", {"CONFIRM_PUSH_WITH_INQUIRY": False}))
        for label, extra in scenarios:
            measure(label, "autocommit (server)", False, extra)
            measure(label, "in transaction (tests)", True, extra)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    vendor = connection.vendor
    print(f"Queries per push notification and checkout ({vendor}, test client, bank faked)\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'mode':<24}  queries")
    print(f"{'-' * width}  {'-' * 24}  -------")
    for name, mode, count, _ in rows:
        print(f"{name:<{width}}  {mode:<24}  {count:>7}")
    if args.sql:
        for name, mode, count, sql in rows:
            print(f"\n## {name} — {mode} ({count})")
            for i, statement in enumerate(sql, 1):
                print(f"{i:>2}. {statement[:300]}")


if __name__ == "__main__":
    main()
