"""``manage.py golomt_prune_messages``: remove raw bank messages and delivered notifications
nobody will need again, older than ``MESSAGE_RETENTION_DAYS`` (see
:mod:`golomt_payments.services.retention`). Run it once a day."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from golomt_payments.services.retention import prune_messages


class Command(BaseCommand):
    help = (
        "Remove raw bank messages older than MESSAGE_RETENTION_DAYS that belong to no invoice "
        "(never one of a paid invoice, one under review or with a settlement mismatch, a "
        "settlement report or a push not yet processed), and delivered notifications."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, help="keep this many days instead of MESSAGE_RETENTION_DAYS"
        )
        parser.add_argument("--dry-run", action="store_true", help="count, remove nothing")

    def handle(self, *args: Any, days: int | None, dry_run: bool, **options: Any) -> None:
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        summary = prune_messages(days=days, dry_run=dry_run)
        verb = "would remove" if summary.dry_run else "removed"
        self.stdout.write(
            f"{verb} {summary.messages} messages and {summary.notifications} "
            "delivered notifications"
        )
