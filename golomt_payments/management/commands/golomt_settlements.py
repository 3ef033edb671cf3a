"""``manage.py golomt_settlements``: fetch the bank's settlement report for a date range and
match it with the invoices paid here.

Run it once a day for yesterday (the default). The work is in
:func:`golomt_payments.services.reconcile_settlements`; this only reads options and prints.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from golomt_payments import bank, conf, services
from golomt_payments.gateway import GolomtError


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date like 2024-01-31, not {text!r}") from None


def summary_line(run: services.SettlementRun) -> str:
    fetched, matched = run.fetch, run.match
    pages = f"{fetched.pages} page" + ("" if fetched.pages == 1 else "s")
    line = (
        f"fetched {fetched.rows} rows ({pages}) · matched {matched.matched} · "
        f"paid here not settled {matched.not_settled} · "
        f"settled not paid here {matched.not_paid} · amounts differ {matched.amount_differs}"
    )
    if fetched.skipped:
        line += f" · unreadable rows skipped {fetched.skipped}"
    if matched.already_resolved:
        line += f" · already resolved {matched.already_resolved}"
    return line


class Command(BaseCommand):
    help = (
        "Fetch the bank's settled transactions for a date range (all pages), store them, and "
        "record the differences with the invoices paid here: paid but not settled, settled "
        "but not paid, amounts that differ. Re-running a range replaces its open differences."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--start", type=_day, metavar="YYYY-MM-DD", help="first day (default: yesterday)"
        )
        parser.add_argument(
            "--end",
            type=_day,
            metavar="YYYY-MM-DD",
            help="last day, included (default: the start day)",
        )
        parser.add_argument(
            "--account",
            metavar="NAME",
            default=conf.DEFAULT_ACCOUNT,
            help="the merchant account (default: default)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        yesterday = timezone.localdate() - timedelta(days=1)
        start: date = options["start"] or options["end"] or yesterday
        end: date = options["end"] or start
        account: str = options["account"]
        if start > end:
            raise CommandError(f"--start {start} is after --end {end}.")
        try:
            run = services.reconcile_settlements(start, end, account)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        except GolomtError as exc:
            token = conf.get().account(account).settlement_token
            problem = bank.scrub_settlement_token(str(exc), token)
            raise CommandError(
                f"The bank's settlement report for {start}..{end} could not be fetched; "
                f"nothing was stored or matched. {type(exc).__name__}: {problem}"
            ) from None
        self.stdout.write(summary_line(run))
