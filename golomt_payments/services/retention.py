"""Keeping the raw message log to the size it needs: what nobody will ever ask about again is
removed after ``MESSAGE_RETENTION_DAYS``.

Removed: messages older than that which belong to no invoice (floods, forged or malformed
requests, probes) and delivered notifications. Never removed: a message tied to an invoice;
one naming the transaction id of a paid invoice, of one under review or with a settlement
mismatch, or of a settled transaction we hold no invoice for; the settlement reports; a push
still waiting to be processed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from golomt_payments import conf
from golomt_payments.models import (
    BankMessage,
    DeliveryState,
    Direction,
    Invoice,
    MessageKind,
    Notification,
    Outcome,
    SettlementMismatch,
    Status,
)

__all__ = ["PruneSummary", "prune_messages"]

#: Rows deleted per statement: short transactions on a busy table.
BATCH = 2000


@dataclass(frozen=True, slots=True)
class PruneSummary:
    messages: int
    notifications: int
    dry_run: bool = False


def prunable_messages(days: int) -> QuerySet[BankMessage]:
    """Messages older than ``days`` that no invoice, review or mismatch will ever need."""
    cutoff = timezone.now() - timedelta(days=days)
    kept_ids = Invoice.objects.filter(
        Q(status=Status.PAID)
        | Q(needs_review=True)
        | Q(pk__in=SettlementMismatch.objects.filter(invoice__isnull=False).values("invoice"))
    ).values("transaction_id")
    settled_ids = SettlementMismatch.objects.filter(settled__isnull=False).values(
        "settled__merchant_invoice"
    )
    unprocessed = Q(direction=Direction.INBOUND, outcome__in=(Outcome.RECEIVED, Outcome.FAILED))
    return (
        BankMessage.objects.filter(created_at__lt=cutoff, invoice__isnull=True)
        .exclude(kind=MessageKind.SETTLEMENT)
        .exclude(unprocessed)
        .exclude(Q(transaction_id__gt="") & Q(transaction_id__in=kept_ids))
        .exclude(Q(transaction_id__gt="") & Q(transaction_id__in=settled_ids))
    )


def prunable_notifications(days: int) -> QuerySet[Notification]:
    cutoff = timezone.now() - timedelta(days=days)
    return Notification.objects.filter(state=DeliveryState.DELIVERED, created_at__lt=cutoff)


def prune_messages(*, days: int | None = None, dry_run: bool = False) -> PruneSummary:
    """Remove what :func:`prunable_messages` and :func:`prunable_notifications` select, in
    batches; a dry run only counts."""
    days = conf.get().message_retention_days if days is None else days
    if days < 1:
        raise ValueError("days must be at least 1")
    if dry_run:
        return PruneSummary(
            prunable_messages(days).count(), prunable_notifications(days).count(), True
        )
    return PruneSummary(
        _delete(lambda: prunable_messages(days)), _delete(lambda: prunable_notifications(days))
    )


def _delete(selected: Callable[[], QuerySet[Any]]) -> int:
    total = 0
    while True:
        batch = selected()
        ids = list(batch.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        batch.model.objects.filter(pk__in=ids).delete()
        total += len(ids)
