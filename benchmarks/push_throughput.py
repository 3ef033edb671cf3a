"""Push notification throughput under gunicorn (2 sync workers) on PostgreSQL, side by side
with a floor view that does only the unavoidable work (parse, one inquiry, one UPDATE).

Everything runs on 127.0.0.1: the standalone sandbox bank (push off, SQLite, its latency
injected) in its own process, gunicorn serving benchmarks.bench_wsgi, and a bounded Python
load generator (threads + requests.Session) in this process. Each invoice is pushed once per
phase: the "first delivery" phase marks it paid, the "duplicate" phase pushes the same body
again. App and floor are measured alternately in ``--rounds`` rounds and pooled, so both see
the same machine noise.

    .venv/bin/python benchmarks/push_throughput.py --n 400 --concurrency 4 --latency-ms 20
"""

# ruff: noqa: S603 - argv built here from sys.executable and fixed arguments

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common

APP = "/payments/push/"
FLOOR = "/floor/push/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=400, help="invoices per endpoint (max 20000)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (max 64)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--latency-ms", type=int, default=20, help="sandbox API latency")
    parser.add_argument("--rounds", type=int, default=2, help="alternating app/floor rounds")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up requests per endpoint")
    parser.add_argument("--no-duplicates", action="store_true", help="skip the duplicate phase")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="diagnostic: the server's sessions use synchronous_commit=off (no WAL flush wait)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", common.DEFAULT_DATABASE_URL),
        help="PostgreSQL database (created if missing; its golomt tables are emptied)",
    )
    args = parser.parse_args(argv)
    if not (1 <= args.n <= 20000 and 1 <= args.concurrency <= 64 and 1 <= args.rounds <= 10):
        parser.error("--n 1..20000, --concurrency 1..64, --rounds 1..10")
    return args


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def create_invoices(count: int) -> list[str]:
    from django.db import connection

    from golomt_payments.gateway import new_transaction_id
    from golomt_payments.models import Invoice, Status

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE golomt_payments_statuschange, golomt_payments_bankmessage, "
            "golomt_payments_invoice CASCADE"
        )
    ids = [new_transaction_id("B") for _ in range(count)]
    Invoice.objects.bulk_create(
        [
            Invoice(
                transaction_id=tid,
                amount=Decimal("1000.00"),
                amount_sent="1000.00",
                status=Status.PENDING,
            )
            for tid in ids
        ],
        batch_size=5000,
    )
    return ids


def push_body(transaction_id: str, secret: str) -> bytes:
    """What the sandbox would push for a paid transaction, signed with the shared secret."""
    from golomt_payments.gateway import checksum

    body = {
        "amount": "1000.00",
        "bank": "Голомт банк",
        "errorDesc": "Амжилттай",
        "errorCode": "000",
        "cardHolder": "9496250",
        "transactionId": transaction_id,
        "cardNumber": "949625******0003",
        "checksum": checksum.transaction_result(
            secret, transaction_id=transaction_id, error_code="000", amount="1000.00", token=None
        ),
    }
    return json.dumps(body, ensure_ascii=False).encode()


def drive(url: str, bodies: list[bytes], concurrency: int) -> dict[str, float]:
    """POST every body once with ``concurrency`` threads; wall time and per-request latency."""
    import requests

    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            start = time.perf_counter()
            try:
                response = session.post(
                    url, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                ok = response.status_code == 200
                detail = f"{response.status_code} {response.text[:80]}"
            except requests.RequestException as exc:
                ok, detail = False, repr(exc)[:80]
            mine.append(time.perf_counter() - start)
            if not ok:
                with lock:
                    errors.append(detail)
        session.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        print(f"  {len(errors)} errors at {url}, e.g. {errors[0]}", file=sys.stderr)
    return {"requests": len(bodies), "errors": len(errors), "wall": wall, "lat": latencies}


def chunks(items: list[bytes], parts: int) -> list[list[bytes]]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def summarise(runs: list[dict]) -> dict[str, float]:
    lat = [x for r in runs for x in r["lat"]]
    wall = sum(r["wall"] for r in runs)
    count = sum(r["requests"] for r in runs)
    return {
        "requests": count,
        "errors": sum(r["errors"] for r in runs),
        "rps": count / wall if wall else 0.0,
        "median": statistics.median(lat) * 1000,
        "p99": common.percentile(lat, 99) * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.conf import settings
    from django.db import connection

    from golomt_payments.models import BankMessage, Invoice, Status

    secret, token = settings.BENCH_SECRET, settings.BENCH_TOKEN
    t0 = time.perf_counter()
    warm = args.warmup
    ids = create_invoices(2 * args.n + 2 * warm)
    app_ids, floor_ids = ids[: args.n], ids[args.n : 2 * args.n]
    warm_app, warm_floor = ids[2 * args.n : 2 * args.n + warm], ids[2 * args.n + warm :]
    connection.close()

    workdir = tempfile.mkdtemp(prefix="golomt-bench-push-")
    db = str(Path(workdir) / "bank.sqlite3")
    common.seed_sandbox(db, ids, "paid")
    print(
        f"setup: {len(ids)} invoices in PostgreSQL and the sandbox "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    print(f"machine: {common.machine_state()} (before the run)")

    results: dict[tuple[str, str], list[dict]] = {}
    with common.sandbox(db, latency_ms=args.latency_ms, token=token, secret=secret) as bank_url:
        port = common.free_port()
        pidfile = str(Path(workdir) / "gunicorn.pid")
        gunicorn = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "benchmarks.bench_wsgi:application",
                "--workers", str(args.workers), "--bind", f"{common.HOST}:{port}",
                "--pid", pidfile, "--log-level", "warning",
            ],
            cwd=common.ROOT,
            env=common.env(
                DATABASE_URL=args.database_url, BENCH_BANK_URL=bank_url,
                DJANGO_SETTINGS_MODULE="benchmarks.bench_settings",
                BENCH_PG_OPTIONS="-c synchronous_commit=off" if args.async_commit else "",
            ),
        )  # fmt: skip
        try:
            common.wait_port(port, gunicorn)
            base = f"http://{common.HOST}:{port}"
            drive(base + APP, [push_body(t, secret) for t in warm_app], args.concurrency)
            drive(base + FLOOR, [push_body(t, secret) for t in warm_floor], args.concurrency)
            phases = ["first delivery"] + ([] if args.no_duplicates else ["duplicate"])
            for phase in phases:
                app_parts = chunks([push_body(t, secret) for t in app_ids], args.rounds)
                floor_parts = chunks([push_body(t, secret) for t in floor_ids], args.rounds)
                for i, (a, f) in enumerate(zip(app_parts, floor_parts, strict=True)):
                    order = [("app", APP, a), ("floor", FLOOR, f)]
                    for name, path, bodies in order if i % 2 == 0 else order[::-1]:
                        run = drive(base + path, bodies, args.concurrency)
                        results.setdefault((phase, name), []).append(run)
        finally:
            gpid = None
            try:
                gpid = int(Path(pidfile).read_text().strip())
            except (OSError, ValueError):
                pass
            common.stop(gunicorn, gpid)
    shutil.rmtree(workdir, ignore_errors=True)

    paid = Invoice.objects.filter(transaction_id__in=app_ids, status=Status.PAID).count()
    outcomes = dict(
        BankMessage.objects.filter(kind="push", transaction_id__in=app_ids)
        .values_list("outcome")
        .annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("id"))
    )
    print(
        f"\nPush throughput: gunicorn {args.workers} sync workers, PostgreSQL, sandbox latency "
        f"{args.latency_ms} ms, {args.concurrency} client threads, {args.n} invoices per "
        f"endpoint, {args.rounds} alternating rounds"
        f"{', synchronous_commit=off' if args.async_commit else ''}\n"
    )
    print(f"{'phase':<15} {'endpoint':<8} {'requests':>8} {'errors':>6} {'req/s':>8} "
          f"{'median ms':>9} {'p99 ms':>8}")  # fmt: skip
    summary: dict[tuple[str, str], dict[str, float]] = {}
    for (phase, name), runs in results.items():
        s = summarise(runs)
        summary[(phase, name)] = s
        print(f"{phase:<15} {name:<8} {s['requests']:>8} {s['errors']:>6} {s['rps']:>8.1f} "
              f"{s['median']:>9.1f} {s['p99']:>8.1f}")  # fmt: skip
    print()
    for phase in dict.fromkeys(p for p, _ in results):
        app, fl = summary[(phase, "app")], summary[(phase, "floor")]
        print(f"{phase}: app/floor throughput ratio {app['rps'] / fl['rps']:.2f} "
              f"(goal >= 0.80); median latency app/floor "
              f"{app['median'] / fl['median']:.2f}")  # fmt: skip
    print(f"\ncheck: {paid}/{len(app_ids)} app invoices paid; push log outcomes {outcomes}")
    print(f"machine: {common.machine_state()} (after the run)")


if __name__ == "__main__":
    main()
