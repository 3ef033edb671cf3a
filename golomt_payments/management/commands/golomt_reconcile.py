"""``manage.py golomt_reconcile``: ask the bank about invoices still open after the page timer,
finish push notifications whose processing failed, and send again the signals the shop was
owed and never received.

Run it every few minutes (cron, a systemd timer); several hosts may run it at once. The work
is in :func:`golomt_payments.services.reconcile`; this only reads options and prints.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from golomt_payments import conf, services


def _bounded(maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1 or (maximum is not None and value > maximum):
            bounds = "a positive integer" if maximum is None else f"from 1 to {maximum}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, not {text!r}")
        return value

    return parse


def summary_line(summary: services.ReconcileSummary) -> str:
    line = (
        f"checked {summary.checked} · paid {summary.paid} · failed {summary.failed} · "
        f"expired {summary.expired} · unchanged {summary.unchanged} · "
        f"unreachable {summary.unreachable} · messages replayed {summary.messages_replayed}"
    )
    if summary.registrations_checked:
        line += (
            f" · card registrations {summary.registrations_checked} "
            f"(saved {summary.cards_saved}, failed {summary.registrations_failed})"
        )
    if summary.notifications_delivered or summary.notifications_failed:
        line += (
            f" · notifications sent again {summary.notifications_delivered}"
            f" (failed {summary.notifications_failed})"
        )
    return f"dry run, nothing changed: {line}" if summary.dry_run else line


class ProgressBar:
    """``[#####     ] 120/500`` redrawn in place, at most ten times a second."""

    WIDTH = 30
    INTERVAL = 0.1

    def __init__(self, out: OutputWrapper, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self._drawn_at = 0.0
        self.draw()

    def update(self, done: int) -> None:
        self.done = done
        if time.monotonic() - self._drawn_at >= self.INTERVAL or done >= self.total:
            self.draw()

    def draw(self) -> None:
        total = max(self.total, self.done)
        filled = self.WIDTH * self.done // total if total else self.WIDTH
        bar = "#" * filled + " " * (self.WIDTH - filled)
        self.out.write(f"\r[{bar}] {self.done}/{total}", style_func=str, ending="")
        self.out.flush()
        self._drawn_at = time.monotonic()

    def close(self) -> None:
        self.draw()
        self.out.write("", style_func=str)


class Command(BaseCommand):
    help = (
        "Ask the bank about invoices still open after the page timer and apply its answers; "
        "expire those it does not know or that stayed unpaid past the grace period; "
        "finish push notifications whose processing failed; send again the signals the shop "
        "was owed and never received. Safe on several hosts at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=_bounded(conf.MAX_RECONCILE_CONCURRENCY),
            metavar="N",
            help="bank calls at once (default: the RECONCILE_CONCURRENCY setting)",
        )
        parser.add_argument(
            "--limit", type=_bounded(), metavar="N", help="ask about at most N invoices"
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="ask the bank and report what would change, but change nothing",
        )
        parser.add_argument(
            "--account", metavar="NAME", help="only invoices of this merchant account"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account: str | None = options["account"]
        limit: int | None = options["limit"]
        bar: ProgressBar | None = None
        try:
            if self.stderr.isatty():
                total = services.count_due(account=account)
                bar = ProgressBar(self.stderr, total if limit is None else min(total, limit))
            summary = services.reconcile(
                concurrency=options["concurrency"],
                limit=limit,
                dry_run=options["dry_run"],
                account=account,
                progress=bar.update if bar is not None else None,
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(summary_line(summary))
