"""The admin invoice list with many invoices on PostgreSQL: median response time and query
count per page, for the plain list, each filter, search, the date hierarchy and a deep page.

The invoices are inserted server-side in one ``INSERT … SELECT generate_series`` (statuses,
methods, accounts and review flags spread evenly, created over the last ~2 years), then
VACUUM ANALYZE. Pages are fetched with Django's test client, logged in as a superuser, in this
process (no HTTP server): the time is Django + PostgreSQL, not the network.

    .venv/bin/python benchmarks/admin_list.py --invoices 1000000 --repeat 5
    .venv/bin/python benchmarks/admin_list.py --reuse       # keep the rows from the last run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common

DEFAULT_DB = "postgres://golomt:golomt@127.0.0.1:5432/golomt_bench_admin"
LIST = "/admin/golomt_payments/invoice/"

INSERT = """
INSERT INTO golomt_payments_invoice (
    key, account, transaction_id, bank_invoice, amount, amount_sent, status, method,
    return_type, language, callback_url, gen_token, social_deeplink, bank_code,
    bank_description, card_number, card_bank, reference, metadata, needs_review,
    review_reason, created_at, updated_at, paid_at
)
SELECT
    gen_random_uuid(),
    CASE WHEN g %% 10 = 0 THEN 'second' ELSE 'default' END,
    'A' || lpad(g::text, 14, '0'),
    md5(g::text),
    1000.00 + (g %% 1000),
    (1000.00 + (g %% 1000))::text,
    (ARRAY['new', 'pending', 'paid', 'failed', 'expired'])[1 + g %% 5],
    (ARRAY['payment', 'socialpay', 'token'])[1 + g %% 3],
    'POST', 'mn', '', false, '',
    CASE WHEN g %% 5 = 2 THEN '000' ELSE '' END,
    '',
    CASE WHEN g %% 5 = 2 THEN '949625******0003' ELSE '' END,
    '',
    'order-' || g,
    '{}'::jsonb,
    g %% 1000 = 0,
    '',
    now() - make_interval(mins => %(count)s - g),
    now() - make_interval(mins => %(count)s - g),
    CASE WHEN g %% 5 = 2 THEN now() - make_interval(mins => %(count)s - g) END
FROM generate_series(1, %(count)s) AS g
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=1_000_000, help="rows (max 2,000,000)")
    parser.add_argument("--repeat", type=int, default=5, help="requests per page (max 50)")
    parser.add_argument("--reuse", action="store_true", help="keep the existing rows")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args(argv)
    if not (1 <= args.invoices <= 2_000_000 and 1 <= args.repeat <= 50):
        parser.error("--invoices 1..2000000, --repeat 1..50")
    return args


def pages(count: int) -> list[tuple[str, str]]:
    from urllib.parse import urlencode

    from django.utils import timezone

    now = timezone.localtime()
    last = f"A{count // 2:014d}"
    deep = max(1, min(1000, count // 50))  # 50 a page
    # The "created" filter's own "This month" link: aware datetimes, as Django writes them.
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    this_month = urlencode({"created_at__gte": str(month_start), "created_at__lt": str(next_month)})
    return [
        ("plain list", ""),
        ("page 2", "?p=2"),
        (f"page {deep}", f"?p={deep}"),
        ("status=paid", "?status__exact=paid"),
        ("method=socialpay", "?method__exact=socialpay"),
        ("needs review", "?needs_review__exact=1"),
        ("account=second", "?account=second"),
        ("created: past 7 days", f"?created_at__gte={now.date().isoformat()}"),
        ("search transaction id", f"?q={last}"),
        ("search reference", f"?q=order-{count // 2}"),
        ("search, no match", "?q=nothing-like-this"),
        ("date hierarchy: year", f"?created_at__year={now.year}"),
        ("date hierarchy: month", f"?created_at__year={now.year}&created_at__month={now.month}"),
        (
            "hierarchy day + status",
            f"?created_at__year={now.year}&created_at__month={now.month}"
            f"&created_at__day={now.day}&status__exact=paid",
        ),
        ("created: this month", f"?{this_month}"),
        ("search reference prefix", f"?q=order-{count // 20}"),  # 11 references at 1,000,000
        ("review + paid (no rows)", "?needs_review__exact=1&status__exact=paid"),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.ensure_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings, setup_test_environment

    from golomt_payments.models import Invoice

    # The "created: past 7 days" page passes a plain date, and Django warns about it.
    warnings.filterwarnings(
        "ignore", message=".*received a naive datetime", category=RuntimeWarning
    )
    setup_test_environment()  # the test client's response.context, ALLOWED_HOSTS testserver
    # The rows carry two merchant accounts: configure both, as a shop issuing them would.
    account_keys = {"BEARER_TOKEN", "SECRET", "BASE_URL", "MERCHANT_ID", "SETTLEMENT_TOKEN"}
    account = {k: v for k, v in settings.GOLOMT_PAYMENTS.items() if k in account_keys}
    golomt = {k: v for k, v in settings.GOLOMT_PAYMENTS.items() if k not in account_keys}
    golomt["ACCOUNTS"] = {"default": account, "second": account}
    override_settings(GOLOMT_PAYMENTS=golomt).enable()
    call_command("migrate", verbosity=0, interactive=False)
    count = Invoice.objects.count() if args.reuse else args.invoices
    if not args.reuse:
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE golomt_payments_statuschange, golomt_payments_bankmessage, "
                "golomt_payments_invoice RESTART IDENTITY CASCADE"
            )
            cursor.execute(INSERT, {"count": args.invoices})
        insert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE golomt_payments_invoice")
        print(f"inserted {args.invoices:,} invoices in {insert_s:.1f}s "
              f"(VACUUM ANALYZE {time.perf_counter() - t0:.1f}s)")  # fmt: skip
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    print(f"machine: {common.machine_state()} (before the run)")
    rows = []
    for name, query in pages(count):
        times, queries, status = [], 0, 0
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as ctx:
                start = time.perf_counter()
                response = client.get(LIST + query)
                times.append(time.perf_counter() - start)
            status, queries = response.status_code, len(ctx.captured_queries)
            slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
        rows.append((name, status, statistics.median(times) * 1000, max(times) * 1000, queries,
                     float(slowest["time"]) * 1000, slowest["sql"][:140]))  # fmt: skip

    print(f"\nAdmin invoice changelist, {count:,} invoices, PostgreSQL, median of {args.repeat}\n")
    print(f"{'page':<24} {'HTTP':>4} {'median ms':>9} {'max ms':>8} {'queries':>7} "
          f"{'slowest q ms':>12}")  # fmt: skip
    for name, status, med, worst, queries, slow_ms, _ in rows:
        print(f"{name:<24} {status:>4} {med:>9.1f} {worst:>8.1f} {queries:>7} {slow_ms:>12.1f}")
    print("\nslowest query per page:")
    for name, *_, slow_ms, sql in rows:
        print(f"  {name:<24} {slow_ms:>7.1f} ms  {sql}")
    print(f"machine: {common.machine_state()} (after the run)")


if __name__ == "__main__":
    main()
