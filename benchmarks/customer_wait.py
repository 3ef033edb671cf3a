"""How long a customer waits between "Pay" on the bank's page and the shop's first page, and
the longest one request holds a shop worker thread meanwhile, for every sandbox test card:
with the customer's deadline (CUSTOMER_WAIT_SECONDS, default 3 s) and without it (61 s: the
old behaviour, the inquiry's 20 s read timeout tried three times).

Everything on 127.0.0.1: the standalone sandbox bank (push notifications on, sent by its
thread as the real bank does; its slow inquiry takes 25 s) and gunicorn (gthread) serving
benchmarks.wait_wsgi on PostgreSQL. The customer is `requests`: the shop's checkout, the bank's
card form, the return the bank's page submits, the shop's page, and the status polls its
"confirming" page makes for ~10 s. Cards run one after another; each flow waits for its push
notifications and its last shop request before the next starts.

    .venv/bin/python benchmarks/customer_wait.py                      # every card, both modes
    .venv/bin/python benchmarks/customer_wait.py --cards 0003,0086 --modes deadline
"""

# ruff: noqa: S603 - argv built here from sys.executable and fixed arguments

from __future__ import annotations

import argparse
import contextlib
import html.parser
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common

DEFAULT_DATABASE_URL = "postgres://golomt:golomt@127.0.0.1:5432/golomt_bench_slow"
PORTS = range(18100, 18200)  # the loopback ports this benchmark may use
MODES = {"deadline": "deadline 3 s", "none": "no deadline (61 s)"}
REQUEST_TIMEOUT = 90.0  # every HTTP request the customer makes
CUSTOMER = {"number": "", "expiry": "12/30", "cvv": "123", "holder": "BENCH CUSTOMER"}
FINAL = ("paid", "failed", "expired")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--cards",
        default="all",
        help="test cards by their last 4 digits, comma-separated (default: all)",
    )
    parser.add_argument(
        "--modes",
        default="deadline,none",
        help="deadline (CUSTOMER_WAIT_SECONDS at its default, 3 s) and/or none (61 s)",
    )
    parser.add_argument(
        "--no-deadline-seconds",
        type=float,
        default=61.0,
        help="CUSTOMER_WAIT_SECONDS of the 'none' mode (default 61, max 85)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=10.0,
        help="how long the customer stays on a confirming page, polling (max 60)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=120.0,
        help="bound on the wait for a flow's pushes and last request (max 300)",
    )
    parser.add_argument(
        "--push",
        choices=("thread", "off"),
        default="thread",
        help="the sandbox's push notifications: sent by its thread (default), or none at all",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (max 8)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (max 16)")
    parser.add_argument(
        "--port",
        type=int,
        default=18110,
        help="the sandbox's port; gunicorn takes the next (both within 18100-18199)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=25.0,
        help="no flow starts after this many minutes (max 60)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database (created if missing; its golomt tables are emptied)",
    )
    args = parser.parse_args(argv)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.mode_list or any(m not in MODES for m in args.mode_list):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    if not (
        3 < args.no_deadline_seconds <= 85
        and 0 <= args.poll_seconds <= 60
        and 1 <= args.settle_seconds <= 300
        and 1 <= args.workers <= 8
        and 1 <= args.threads <= 16
        and 0 < args.max_minutes <= 60
    ):
        parser.error(
            "--no-deadline-seconds 3..85, --poll-seconds 0..60, --settle-seconds 1..300, "
            "--workers 1..8, --threads 1..16, --max-minutes up to 60"
        )
    if args.port not in PORTS or args.port + 1 not in PORTS:
        parser.error("--port: both it and the next port must be within 18100-18199")
    return args


# --- servers --------------------------------------------------------------------------------


def check_free(port: int) -> None:
    """Refuse a port something listens on (a closed connection's TIME_WAIT does not count:
    the servers bind with SO_REUSEADDR)."""
    with contextlib.suppress(OSError), socket.create_connection((common.HOST, port), timeout=1):
        raise SystemExit(f"port {port} is in use")


@contextlib.contextmanager
def sandbox(
    port: int, db: str, push_url: str, push_mode: str, token: str, secret: str
) -> Iterator[str]:
    """The standalone sandbox bank, pushing to the shop from its thread (``push_mode``
    ``thread``) or not at all (``off``); yields its BASE_URL.
    Its slow inquiry is SLOW_INQUIRY_SECONDS at its default, 25 s (the standalone server takes
    no option for it)."""
    check_free(port)
    log = Path(db).with_name("sandbox.log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                common.PYTHON, "-m", "golomt_payments.sandbox.standalone",
                "--host", common.HOST, "--port", str(port), "--db", db,
                "--push-url", push_url, "--push-mode", push_mode,
            ],
            cwd=common.ROOT, stdout=out, stderr=subprocess.STDOUT,
            env=common.env(GOLOMT_SANDBOX_BEARER_TOKEN=token, GOLOMT_SANDBOX_SECRET=secret),
        )  # fmt: skip
        try:
            common.wait_port(port, proc)
            yield f"http://{common.HOST}:{port}"
        except BaseException:
            print(f"sandbox log: {log}", file=sys.stderr)
            raise
        finally:
            common.stop(proc)


@contextlib.contextmanager
def shop(args: argparse.Namespace, port: int, env: dict[str, str], workdir: str) -> Iterator[str]:
    """gunicorn (gthread) serving benchmarks.wait_wsgi; yields its base URL."""
    check_free(port)
    pidfile = str(Path(workdir) / f"gunicorn-{port}.pid")
    with (Path(workdir) / "gunicorn.log").open("ab") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")), "benchmarks.wait_wsgi:application",
                "--worker-class", "gthread", "--workers", str(args.workers),
                "--threads", str(args.threads), "--bind", f"{common.HOST}:{port}",
                "--pid", pidfile, "--timeout", "120", "--graceful-timeout", "10",
                "--log-level", "warning",
            ],
            cwd=common.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            common.wait_port(port, proc)
            yield f"http://{common.HOST}:{port}"
        finally:
            pid = None
            with contextlib.suppress(OSError, ValueError):
                pid = int(Path(pidfile).read_text().strip())
            common.stop(proc, pid)


# --- the customer ---------------------------------------------------------------------------


class _Forms(html.parser.HTMLParser):
    """The forms of a page: action and the named inputs' values, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id", ""), "action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def forms(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def page_kind(response: Any) -> str:
    """Which page of the shop the customer sees."""
    text = response.text
    if 'class="golomt-spinner"' in text:
        return "confirming"
    if 'class="golomt-icon golomt-ok"' in text:
        return "paid"
    if 'class="golomt-icon golomt-bad"' in text:
        return "failed"
    return f"HTTP {response.status_code}"


@dataclass
class Flow:
    card: Any
    mode: str
    flow_id: str
    reference: str
    transaction_id: str = ""
    key: str = ""
    paid_at: float = 0.0  # wall clock of "Pay"
    pay_to_page: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    page: str = ""
    polls: list[tuple[float, float, str]] = field(default_factory=list)
    finished_by: str = ""
    status_final: str = ""
    holds: list[dict[str, Any]] = field(default_factory=list)
    inquiries: int = 0
    inquiries_failed: int = 0
    pushes: str = ""
    settle_seconds: float = 0.0
    note: str = ""


def run_flow(flow: Flow, shop_url: str, poll_seconds: float, poll_every: float) -> None:
    """One customer: checkout, the bank's card form, back to the shop, the confirming page's
    polls. Raises on anything a browser would not get past."""
    import requests

    from golomt_payments.checkout import sign_checkout
    from golomt_payments.models import Invoice

    headers = {"X-Bench-Flow": flow.flow_id}
    csrf = secrets.token_hex(16)  # a CSRF secret of ours, as the shop's form page would set
    with requests.Session() as at_shop, requests.Session() as at_bank:
        at_shop.headers.update(headers)
        at_shop.cookies.set("csrftoken", csrf, domain=common.HOST)
        payload = sign_checkout(amount=1000, reference=flow.reference)
        r = at_shop.post(
            f"{shop_url}/payments/checkout/",
            data={"payload": payload, "method": "payment", "csrfmiddlewaretoken": csrf},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )
        if r.status_code != 303:
            raise RuntimeError(f"checkout answered {r.status_code}: {r.text[:200]}")
        invoice = Invoice.objects.get(reference=flow.reference)
        flow.transaction_id, flow.key = invoice.transaction_id, str(invoice.key)
        bank_page = r.headers["Location"]
        r = at_bank.get(bank_page, timeout=REQUEST_TIMEOUT)
        token = next(f["fields"] for f in forms(r.text) if "number" in f["fields"])
        card_form = {**CUSTOMER, "number": flow.card.display}
        card_form["csrfmiddlewaretoken"] = token["csrfmiddlewaretoken"]

        # "Pay": from here to the shop's first page.
        flow.paid_at = time.time()
        start = time.perf_counter()
        r = at_bank.post(bank_page, data=card_form, allow_redirects=False, timeout=REQUEST_TIMEOUT)
        flow.steps["bank"] = time.perf_counter() - start
        back = [f for f in forms(r.text) if f["id"] == "golomt-return"]
        if r.status_code == 200 and back:  # RETURN_TYPE POST: the page submits this form
            t = time.perf_counter()
            r = at_shop.post(
                back[0]["action"], data=back[0]["fields"], allow_redirects=False,
                timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        elif r.status_code in (301, 302, 303) and r.headers["Location"].startswith(shop_url):
            t = time.perf_counter()  # RETURN_TYPE GET
            r = at_shop.get(r.headers["Location"], allow_redirects=False, timeout=REQUEST_TIMEOUT)
        else:
            flow.page = "none: bank page closed"
            return
        flow.steps["return"] = time.perf_counter() - t
        if r.status_code not in (301, 302, 303):
            flow.page = f"return HTTP {r.status_code}"
            flow.pay_to_page = time.perf_counter() - start
            return
        t = time.perf_counter()
        r = at_shop.get(urljoin(shop_url, r.headers["Location"]), timeout=REQUEST_TIMEOUT)
        flow.steps["page"] = time.perf_counter() - t
        flow.pay_to_page = time.perf_counter() - start
        flow.page = page_kind(r)

        # The confirming page polls every STATUS_POLL_SECONDS until final, and moves on.
        shown = time.perf_counter()
        while (
            flow.page == "confirming" and time.perf_counter() - shown + poll_every <= poll_seconds
        ):
            time.sleep(poll_every)
            t = time.perf_counter()
            r = at_shop.get(
                f"{shop_url}/payments/status/{flow.key}/",
                headers={"Accept": "application/json"},
                timeout=REQUEST_TIMEOUT,
            )
            took = time.perf_counter() - t
            data = r.json() if r.status_code == 200 else {}
            flow.polls.append((t - start, took, data.get("status", f"HTTP {r.status_code}")))
            if data.get("final"):
                r = at_shop.get(urljoin(shop_url, data["next"]), timeout=REQUEST_TIMEOUT)
                flow.page += f" -> {page_kind(r)} at +{time.perf_counter() - start:.1f}s"
                break


def next_polls(flow: Flow, shop_url: str, every: float, count: int) -> str:
    """The confirming page's next polls, had the customer stayed: until final, at most
    ``count``. What each answered."""
    import requests

    answers = []
    with requests.Session() as at_shop:
        for _ in range(count):
            time.sleep(every)
            r = at_shop.get(
                f"{shop_url}/payments/status/{flow.key}/",
                headers={"Accept": "application/json", "X-Bench-Flow": flow.flow_id},
                timeout=REQUEST_TIMEOUT,
            )
            data = r.json() if r.status_code == 200 else {}
            answers.append(str(data.get("status", f"HTTP {r.status_code}")))
            if data.get("final"):
                break
    return ", ".join(answers)


# --- what the servers saw -------------------------------------------------------------------


def read_log(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The request log: begun and ended requests by id."""
    begun: dict[str, dict[str, Any]] = {}
    ended: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                (begun if record["ev"] == "begin" else ended)[record["id"]] = record
    return begun, ended


def mine(flow: Flow, record: dict[str, Any]) -> bool:
    return record.get("flow") == flow.flow_id or (
        bool(flow.transaction_id) and record.get("tid") == flow.transaction_id
    )


def pushes_open(bank_db: str, transaction_id: str) -> tuple[int, str]:
    """The sandbox's pushes for a transaction not finished yet, and a summary of all of them."""
    with contextlib.closing(sqlite3.connect(f"file:{bank_db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT p.state, p.attempts, p.http_status FROM golomt_sandbox_pushdelivery p "
            "JOIN golomt_sandbox_transaction t ON p.transaction_id = t.id "
            "WHERE t.transaction_id = ? ORDER BY p.id",
            [transaction_id],
        ).fetchall()
    busy = sum(1 for state, _, _ in rows if state in ("pending", "sending"))
    summary = ", ".join(f"{s} x{a} ({h or '-'})" for s, a, h in rows) or "none sent"
    return busy, summary


def settle(flow: Flow, log: Path, bank_db: str, bound: float) -> None:
    """Wait until the flow's pushes are finished and none of its requests is in a worker."""
    start = time.monotonic()
    while True:
        busy_pushes, flow.pushes = pushes_open(bank_db, flow.transaction_id)
        begun, ended = read_log(log)
        running = [r for i, r in begun.items() if i not in ended and mine(flow, r)]
        if not busy_pushes and not running:
            break
        if time.monotonic() - start > bound:
            flow.note += f" settle bound {bound:.0f}s reached ({len(running)} requests running);"
            break
        time.sleep(0.5)
    flow.settle_seconds = time.monotonic() - start
    flow.holds = [r for r in ended.values() if mine(flow, r)]


def history(flow: Flow) -> str:
    from golomt_payments.models import StatusChange

    change = (
        StatusChange.objects.filter(invoice__key=flow.key, to_status__in=FINAL)
        .order_by("created_at")
        .first()
    )
    if change is None:
        return ""
    return f"{change.source} +{change.created_at.timestamp() - flow.paid_at:.1f}s"


def finish(flow: Flow, shop_url: str, every: float, log: Path) -> None:
    """The invoice's state now; if still open, the confirming page's next polls (when the
    customer is on it, at most 3), then the reconciler, as it runs once the page timer is
    over. The flow's requests as the shop's log has them, these polls included."""
    from django.db.models import Q

    from golomt_payments import conf, services
    from golomt_payments.models import BankMessage, Invoice

    invoice = Invoice.objects.get(key=flow.key)
    if invoice.status not in FINAL and flow.page.startswith("confirming"):
        flow.note += f" next polls: {next_polls(flow, shop_url, every, 3)};"
        invoice.refresh_from_db()
    if invoice.status not in FINAL:
        # The reconciler takes invoices past the page timer: move this one's clock back.
        back = timedelta(minutes=conf.get().page_timeout_minutes + 1)
        Invoice.objects.filter(pk=invoice.pk).update(created_at=invoice.created_at - back)
        t = time.perf_counter()
        summary = services.reconcile(concurrency=1)
        flow.note += f" reconcile {time.perf_counter() - t:.1f}s: {summary.checked} checked;"
        invoice.refresh_from_db()
    flow.status_final = invoice.status
    flow.finished_by = history(flow) or "open"
    inquiries = BankMessage.objects.filter(
        transaction_id=flow.transaction_id, kind="inquiry", direction="out"
    )
    flow.inquiries = inquiries.count()
    flow.inquiries_failed = inquiries.filter(~Q(http_status=200)).count()
    _, ended = read_log(log)
    flow.holds = [r for r in ended.values() if mine(flow, r)]


# --- the run --------------------------------------------------------------------------------


def setup_django(database_url: str, bank_url: str, shop_url: str, cache_dir: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        BENCH_BANK_URL=bank_url,
        BENCH_SHOP_URL=shop_url,
        BENCH_CACHE_DIR=cache_dir,
        DJANGO_SETTINGS_MODULE="benchmarks.wait_settings",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE golomt_payments_statuschange, golomt_payments_bankmessage, "
            "golomt_payments_invoice CASCADE"
        )


def choose_cards(spec: str) -> list[Any]:
    from golomt_payments.sandbox.cards import TEST_CARDS

    if spec == "all":
        return list(TEST_CARDS)
    wanted = [s.strip().replace(" ", "") for s in spec.split(",") if s.strip()]
    chosen = []
    for w in wanted:
        match = [c for c in TEST_CARDS if c.number.endswith(w)]
        if len(match) != 1:
            raise SystemExit(f"--cards: {w!r} names no single test card")
        chosen.append(match[0])
    return chosen


def hold_of(flow: Flow, kinds: tuple[str, ...]) -> tuple[float, str]:
    best = (0.0, "")
    for r in flow.holds:
        kind = "push" if r["path"].endswith("/push/") else "customer"
        if kind in kinds and r["seconds"] > best[0]:
            best = (r["seconds"], r["path"].strip("/").split("/")[1])
    return best


SOURCES = {
    "redirect": "return",
    "status": "status poll",
    "push": "push",
    "reconcile": "reconciler*",
    "api": "API",
}


def table(rows: list[list[str]], right: set[int]) -> str:
    """A Markdown table, padded so it also reads as plain text."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            rule = [
                ("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)
            ]
            lines.append("|" + "|".join(rule) + "|")
    return "\n".join(lines)


def report(flows: list[Flow], args: argparse.Namespace, wall: float) -> None:
    print(
        f"\nCustomer wait: gunicorn gthread, {args.workers} workers x {args.threads} threads, "
        f"PostgreSQL; standalone sandbox (push {args.push}, slow inquiry 25 s); READ_TIMEOUT "
        f"20 s, READ_RETRIES 2; the confirming page polled for {args.poll_seconds:g} s\n"
    )
    rows = [
        [
            "card", "behaviour", "mode", "pay→page s", "first page", "longest hold s",
            "longest customer request s", "final status (finished by)", "inquiries (failed)",
            "pushes (sandbox)",
        ]
    ]  # fmt: skip
    for f in flows:
        any_hold, any_what = hold_of(f, ("push", "customer"))
        cust_hold, cust_what = hold_of(f, ("customer",))
        source, _, after = f.finished_by.partition(" ")
        by = SOURCES.get(source, source) + ("" if source == "reconcile" else f" {after}")
        rows.append(
            [
                f.card.number[-4:], f.card.behaviour.value, MODES[f.mode],
                "—" if f.pay_to_page is None else f"{f.pay_to_page:.2f}", f.page,
                f"{any_hold:.2f} ({any_what})", f"{cust_hold:.2f} ({cust_what})",
                f"{f.status_final} ({by.strip()})", f"{f.inquiries} ({f.inquiries_failed})",
                f.pushes,
            ]
        )  # fmt: skip
    print(table(rows, {3, 5, 6, 8}))
    print(
        "\n* the benchmark runs the reconciler right after the flow (the invoice's clock moved "
        "back past the page timer); deployed, it runs from cron once the page timer is over."
    )
    print("\nper flow: steps (s); polls [+s from Pay, took s, status]; notes")
    for f in flows:
        steps = " ".join(f"{k} {v:.2f}" for k, v in f.steps.items())
        polls = " ".join(f"[+{a:.1f} {b:.2f} {c}]" for a, b, c in f.polls)
        settled = f"settled {f.settle_seconds:.1f}s after the customer;"
        print(f"  {f.card.number[-4:]} {MODES[f.mode]:<19} {steps} {polls} {settled}{f.note}")
        for r in sorted(f.holds, key=lambda r: r["at"]):
            if r["seconds"] >= 1:
                what = r["path"].strip("/").split("/")[1]
                print(
                    f"      held {r['seconds']:.2f}s: {r['method']} {what} "
                    f"at +{r['at'] - f.paid_at:.1f}s -> {r.get('status')} (worker {r['pid']})"
                )
    print(f"\nwall time {wall:.0f} s; machine: {common.machine_state()} (after the run)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t0 = time.monotonic()
    common.ensure_database(args.database_url)
    workdir = tempfile.mkdtemp(prefix="golomt-bench-wait-")
    bank_port, shop_port = args.port, args.port + 1
    bank_url = f"http://{common.HOST}:{bank_port}"
    shop_url = f"http://{common.HOST}:{shop_port}"
    cache_dir = str(Path(workdir) / "cache")
    setup_django(args.database_url, bank_url, shop_url, cache_dir)
    from django.conf import settings

    from golomt_payments import conf
    from golomt_payments.sandbox.cards import SOCIALPAY_CARD as SUCCESS  # 0003, plain success

    cards = choose_cards(args.cards)
    poll_every = conf.get().status_poll_seconds
    print(f"machine: {common.machine_state()} (before the run); work files in {workdir}")
    bank_db = str(Path(workdir) / "bank.sqlite3")
    flows: list[Flow] = []
    run = secrets.token_hex(3)
    push_url = f"{shop_url}/payments/push/"
    token, secret = settings.BENCH_TOKEN, settings.BENCH_SECRET
    with sandbox(bank_port, bank_db, push_url, args.push, token, secret):
        for mode in args.mode_list:
            wait = "" if mode == "deadline" else f"{args.no_deadline_seconds:g}"
            log = Path(workdir) / f"requests-{mode}.jsonl"
            env = common.env(
                DATABASE_URL=args.database_url, BENCH_BANK_URL=bank_url, BENCH_SHOP_URL=shop_url,
                BENCH_CACHE_DIR=cache_dir, BENCH_CUSTOMER_WAIT=wait,
                BENCH_REQUEST_LOG=str(log), DJANGO_SETTINGS_MODULE="benchmarks.wait_settings",
            )  # fmt: skip
            with shop(args, shop_port, env, workdir):
                for i in range(2):  # warm-up: templates, URL resolver, connections
                    warm = Flow(SUCCESS, mode, f"warm-{mode}-{i}", f"cw-{run}-warm-{mode}-{i}")
                    run_flow(warm, shop_url, 0, poll_every)
                    settle(warm, log, bank_db, args.settle_seconds)
                for card in cards:
                    if time.monotonic() - t0 > args.max_minutes * 60:
                        print(f"time limit: {card.number} ({mode}) and the rest not run")
                        break
                    flow = Flow(
                        card, mode, f"{mode}-{card.number}", f"cw-{run}-{mode}-{card.number}"
                    )
                    print(
                        f"  {MODES[mode]}: {card.display} ({card.behaviour.value}) ...", flush=True
                    )
                    try:
                        run_flow(flow, shop_url, args.poll_seconds, poll_every)
                    except Exception as exc:  # reported in the table; the run goes on
                        flow.note += f" customer failed: {type(exc).__name__}: {exc};"
                    if flow.key:
                        settle(flow, log, bank_db, args.settle_seconds)
                        finish(flow, shop_url, poll_every, log)
                    flows.append(flow)
    shutil.rmtree(workdir, ignore_errors=True)
    report(flows, args, time.monotonic() - t0)


if __name__ == "__main__":
    main()
