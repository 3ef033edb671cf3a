"""Reconcile of N open invoices against the sandbox bank with injected latency: wall time,
peak memory and CPU per process, with concurrency 1 and with the default, for several N.

The shop's invoices are bulk-created in PostgreSQL as pending, created an hour ago (past the
page timer and the grace period). The sandbox knows every one of them: matching transactions
are bulk-inserted into its SQLite file as paid (``--bank-state paid``, the default: each
invoice costs one inquiry, a row lock, an UPDATE and a history row) or as still pending
(``--bank-state pending``: the invoice is expired). Each run is a fresh Python process that
calls ``services.reconcile`` once; its peak RSS is VmHWM (``ru_maxrss`` where there is no
/proc), with the Django baseline before the run printed too. Between runs the invoices are
put back to pending. A run taking longer than ``--max-seconds`` is killed and left out.

Where /proc is there (Linux, PostgreSQL on this machine), the CPU time each run cost is split
per invoice between the reconcile process, the sandbox bank and the PostgreSQL processes of
the benchmark database, to tell which of them bounds the run.

At 20 ms per call, concurrency 1 costs about 33 ms per invoice (10,000: ~5.5 min) and
concurrency 8 about 5 ms on a shared 2-core machine (10,000: ~50 s; 100,000: ~8 min; the
400/s latency bound would be ~4 min): 100,000 runs only when asked for (``--with-100k``, or
``--sizes 100000 --concurrency default`` for concurrency 8 alone; concurrency 1 would take
~55 min, beyond the default ``--max-seconds``).

    .venv/bin/python benchmarks/reconcile_scale.py --sizes 1000,10000
    .venv/bin/python benchmarks/reconcile_scale.py --sizes 100000 --concurrency default
"""

# ruff: noqa: S603 - argv built here from sys.executable and fixed arguments

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common

DEFAULT_DB = "postgres://golomt:golomt@127.0.0.1:5432/golomt_bench_reconcile"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated invoice counts")
    parser.add_argument(
        "--with-100k",
        action="store_true",
        help="add 100,000 (~8 min at concurrency 8 on 2 cores; concurrency 1 would need ~55 min "
        "and a bigger --max-seconds)",
    )
    parser.add_argument(
        "--concurrency", default="1,default", help="comma-separated: numbers or 'default'"
    )
    parser.add_argument("--latency-ms", type=int, default=20, help="sandbox API latency")
    parser.add_argument("--bank-state", choices=("paid", "pending"), default="paid")
    parser.add_argument(
        "--max-seconds", type=int, default=900, help="give up on one run after this long"
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-concurrency", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.with_100k and 100_000 not in sizes:
        sizes.append(100_000)
    if any(not 1 <= s <= 100_000 for s in sizes):
        parser.error("sizes must be 1..100000")
    args.size_list = sizes
    args.levels = [c.strip() for c in args.concurrency.split(",") if c.strip()]
    for level in args.levels:
        if level != "default" and not level.isdigit():
            parser.error(f"--concurrency: {level!r} is neither a number nor 'default'")
    return args


def setup_django(database_url: str, bank_url: str = "") -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"
    if bank_url:
        os.environ["BENCH_BANK_URL"] = bank_url
    import django

    django.setup()


def peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM where Linux has it: ``ru_maxrss`` survives execve, so a
    child started by a big parent would report the parent's peak; VmHWM belongs to the new
    address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``; ``None`` elsewhere or when
    it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_pid(*parts: str) -> int | None:
    """The process whose command line contains every one of ``parts`` (Linux ``/proc``)."""
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(part in cmdline for part in parts):
                return int(entry.name)
    return None


class BackendCpu:
    """CPU time of the PostgreSQL processes of one database (its backends and autovacuum
    workers) while the block runs, read
    from ``/proc`` every 50 ms (the server must be on this machine). A backend that lives
    less than that is missed: the figure is for a client keeping its connections, as the
    reconciler does; ``backends`` counts the backends seen, to tell. ``seconds`` is ``None``
    where there is no ``/proc``."""

    def __init__(self, database: str) -> None:
        self._needle = f" {database} "
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.seconds: float | None = None
        self.backends = 0

    def __enter__(self) -> BackendCpu:
        if Path("/proc/self/stat").exists():
            self._sample(initial=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._sample()
            self.seconds = sum(self._last[pid] - self._first[pid] for pid in self._last)
            self.backends = len(self._last)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def _sample(self, initial: bool = False) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid not in self._last:
                try:
                    title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if not title.startswith("postgres: ") or self._needle not in title:
                    continue
            used = cpu_seconds(pid)
            if used is None:
                continue
            # A backend already there when the block starts counts from then on; one that
            # starts inside it, from its start.
            self._first.setdefault(pid, used if initial else 0.0)
            self._last[pid] = used


def child(args: argparse.Namespace) -> None:
    """One reconcile run in this fresh process; prints a JSON line."""
    setup_django(args.database_url)
    from golomt_payments import conf, services

    baseline = peak_rss_kb()
    concurrency = None if args.child_concurrency == "default" else int(args.child_concurrency)
    cpu_start = time.process_time()
    start = time.perf_counter()
    summary = services.reconcile(concurrency=concurrency)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = peak_rss_kb()
    print(
        json.dumps(
            {
                "concurrency": concurrency or conf.get().reconcile_concurrency,
                "wall": wall,
                "cpu": cpu,
                "baseline_kb": baseline,
                "peak_kb": peak,
                "checked": summary.checked,
                "paid": summary.paid,
                "expired": summary.expired,
                "unreachable": summary.unreachable,
            }
        )
    )


def reset(ids: list[str]) -> None:
    """Exactly these invoices, pending, created an hour ago, no lease, no log or history."""
    from django.db import connection
    from django.utils import timezone

    from golomt_payments.models import Invoice, Status

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE golomt_payments_statuschange, golomt_payments_bankmessage, "
            "golomt_payments_invoice RESTART IDENTITY CASCADE"
        )
    Invoice.objects.bulk_create(
        [Invoice(transaction_id=t, amount=Decimal("1000.00"), amount_sent="1000.00") for t in ids],
        batch_size=5000,
    )
    Invoice.objects.update(status=Status.PENDING, created_at=timezone.now() - timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE golomt_payments_invoice")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    common.ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    from golomt_payments.gateway import new_transaction_id

    call_command("migrate", verbosity=0, interactive=False)

    biggest = max(args.size_list)
    all_ids = [new_transaction_id("R") for _ in range(biggest)]
    workdir = tempfile.mkdtemp(prefix="golomt-bench-reconcile-")
    try:
        rows = run_all(args, all_ids, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, rows)


def run_all(args: argparse.Namespace, all_ids: list[str], workdir: str) -> list[dict[str, Any]]:
    """Seed the sandbox, start it, and run one child per (size, concurrency)."""
    from django.conf import settings
    from django.db import connection

    db = str(Path(workdir) / "bank.sqlite3")
    t0 = time.perf_counter()
    common.seed_sandbox(db, all_ids, args.bank_state)
    print(f"sandbox seeded with {len(all_ids)} {args.bank_state} transactions in "
          f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    print(f"machine: {common.machine_state()} (before the run)")
    database = settings.DATABASES["default"]["NAME"]
    rows = []
    with common.sandbox(
        db, latency_ms=args.latency_ms, token=settings.BENCH_TOKEN, secret=settings.BENCH_SECRET
    ) as bank_url:
        bank_pid = find_pid(
            "golomt_payments.sandbox.standalone", f"--port {bank_url.split(':')[-1]} "
        )
        for size in args.size_list:
            for level in args.levels:
                t0 = time.perf_counter()
                reset(all_ids[:size])
                connection.close()
                setup_s = time.perf_counter() - t0
                bank_before = cpu_seconds(bank_pid) if bank_pid else None
                try:
                    with BackendCpu(database) as backends:
                        proc = subprocess.run(
                            [sys.executable, __file__, "--child", "--child-concurrency", level,
                             "--database-url", args.database_url],
                            cwd=common.ROOT, env=common.env(BENCH_BANK_URL=bank_url),
                            capture_output=True, text=True, timeout=args.max_seconds,
                            check=False,
                        )  # fmt: skip
                except subprocess.TimeoutExpired:  # the child is killed; go on with the next
                    print(f"  N={size:>6} concurrency={level}: gave up after "
                          f"{args.max_seconds}s (--max-seconds)", flush=True)  # fmt: skip
                    continue
                bank_after = cpu_seconds(bank_pid) if bank_pid else None
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"reconcile run failed (N={size}, concurrency={level})")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result.update(
                    size=size,
                    level=level,
                    setup=setup_s,
                    bank_cpu=None if bank_before is None or bank_after is None
                    else bank_after - bank_before,
                    pg_cpu=backends.seconds,
                    pg_backends=backends.backends,
                    load=os.getloadavg()[0],
                )  # fmt: skip
                rows.append(result)
                print(f"  N={size:>6} concurrency={result['concurrency']:>2}: "
                      f"{result['wall']:.1f}s (load {result['load']:.2f})", flush=True)  # fmt: skip
    return rows


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    def per_invoice(seconds: float | None, size: int) -> str:
        return "-" if seconds is None else f"{1000 * seconds / size:.2f}"

    print(
        f"\nReconcile against the sandbox ({args.latency_ms} ms latency, bank says "
        f"{args.bank_state}), PostgreSQL, one fresh process per run\n"
    )
    print(f"{'invoices':>8} {'conc.':>5} {'wall s':>8} {'ms/inv':>7} {'inv/s':>7} "
          f"{'peak RSS MB':>11} {'baseline MB':>11} "
          f"{'checked':>7} {'paid':>6} {'expired':>7} {'load':>5}")  # fmt: skip
    for r in rows:
        print(
            f"{r['size']:>8} {r['concurrency']:>5} {r['wall']:>8.1f} "
            f"{1000 * r['wall'] / r['size']:>7.2f} {r['size'] / r['wall']:>7.1f} "
            f"{r['peak_kb'] / 1024:>11.1f} {r['baseline_kb'] / 1024:>11.1f} "
            f"{r['checked']:>7} {r['paid']:>6} {r['expired']:>7} {r['load']:>5.2f}"
        )
    print(
        "\nCPU per invoice (ms), by process: the reconciler (after its start-up), the sandbox "
        "bank,\nthe PostgreSQL processes of the benchmark database (and how many were seen: "
        "one living\nunder 50 ms is missed); all three per second of wall time "
        f"({os.cpu_count()} CPUs here)\n"
    )
    print(f"{'invoices':>8} {'conc.':>5} {'reconcile':>9} {'bank':>7} {'postgres':>8} "
          f"{'backends':>8} {'total':>7} {'CPUs busy':>9}")  # fmt: skip
    for r in rows:
        parts = [r.get("cpu"), r["bank_cpu"], r["pg_cpu"]]
        total = None if None in parts else sum(parts)
        busy = "-" if total is None else f"{total / r['wall']:.2f}"
        print(
            f"{r['size']:>8} {r['concurrency']:>5} {per_invoice(parts[0], r['size']):>9} "
            f"{per_invoice(parts[1], r['size']):>7} {per_invoice(parts[2], r['size']):>8} "
            f"{r['pg_backends']:>8} {per_invoice(total, r['size']):>7} "
            f"{busy:>9}"
        )
    sizes = sorted({r["size"] for r in rows})
    if len(sizes) > 1:
        print()
        for level in args.levels:
            mine = {r["size"]: r for r in rows if r["level"] == level}
            if sizes[0] not in mine or sizes[-1] not in mine:
                continue
            lo, hi = mine[sizes[0]], mine[sizes[-1]]
            print(
                f"concurrency {lo['concurrency']}: {sizes[0]} -> {sizes[-1]} invoices "
                f"(x{sizes[-1] / sizes[0]:.0f}): time x{hi['wall'] / lo['wall']:.1f}, "
                f"peak RSS x{hi['peak_kb'] / lo['peak_kb']:.2f}"
            )
    print(f"machine: {common.machine_state()} (after the run)")


if __name__ == "__main__":
    main()
