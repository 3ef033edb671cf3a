"""The outbox: every signal the shop is owed, written with the change it announces.

``transaction.on_commit`` alone is at most once: a worker can die between the commit and the
receiver. So a change writes a :class:`~golomt_payments.models.Notification` row per signal in
its own transaction (:func:`owe`), and after the commit the signals are sent and the rows
marked delivered. A row never marked (the worker died, a receiver raised) is sent again by
:func:`deliver_due` (``golomt_reconcile``, the Celery task) once it is due, with the same
event id, until every receiver returns: at least once, each with an event id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from golomt_payments import conf, signals
from golomt_payments.models import (
    CardRegistration,
    CardToken,
    DeliveryState,
    Invoice,
    Notification,
    Refund,
    SignalName,
)

__all__ = ["DeliverySummary", "Notice", "deliver_again", "deliver_due", "owe"]

logger = logging.getLogger(__name__)

#: No failed notification waits longer than this for its next attempt.
MAX_RETRY_DELAY = timedelta(hours=1)

#: Notifications one sweep sends at most.
DEFAULT_DELIVERY_LIMIT = 500

_SIGNALS: dict[str, Signal] = {name.value: getattr(signals, name.value) for name in SignalName}
_CARD_SIGNALS = frozenset({SignalName.CARD_SAVED, SignalName.CARD_REMOVED})
_UNDELIVERED = (DeliveryState.PENDING, DeliveryState.FAILED)


@dataclass(frozen=True, slots=True)
class Notice:
    """One signal owed: its name, what it is about, and its other arguments.

    ``data`` is what is stored (JSON: statuses, source, the ids of related rows); ``objects``
    are the related rows themselves, handed to the first delivery so it reads nothing again
    (a redelivery loads them by the ids in ``data``).
    """

    signal: str
    invoice: Invoice | None = None
    card: CardToken | None = None
    data: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DeliverySummary:
    """What one sweep did: notifications sent with every receiver returning, and failed."""

    delivered: int = 0
    failed: int = 0


def owe(*notices: Notice) -> list[Notification]:
    """Write ``notices`` in the current transaction; send them once it commits.

    Call it inside the ``transaction.atomic()`` block of the change the notices announce: they
    commit or roll back with it.
    """
    due = timezone.now() + _retry_delay(0)
    rows = [
        Notification(
            signal=notice.signal,
            invoice=notice.invoice,
            card=notice.card,
            data=notice.data,
            due_at=due,
        )
        for notice in notices
    ]
    Notification.objects.bulk_create(rows)
    objects = [notice.objects for notice in notices]
    # robust: the change is committed whatever a delivery meets; a sweep sends what was not.
    transaction.on_commit(partial(_deliver_written, rows, objects), robust=True)
    return rows


def deliver_due(*, limit: int = DEFAULT_DELIVERY_LIMIT) -> DeliverySummary:
    """Send again the notifications that are due and not delivered, oldest due first.

    Each is claimed first (its ``due_at`` moved on with one conditional UPDATE), so two sweeps
    at once never send the same one; safe on several hosts.
    """
    summary = DeliverySummary()
    now = timezone.now()
    due = (
        Notification.objects.filter(state__in=_UNDELIVERED, due_at__lte=now)
        .select_related("invoice", "card")
        .order_by("due_at", "pk")[:limit]
    )
    for notification in list(due):
        claimed = Notification.objects.filter(
            pk=notification.pk, state=notification.state, due_at=notification.due_at
        ).update(due_at=now + _retry_delay(notification.attempts + 1))
        if not claimed:
            continue  # another sweep took it, or it was delivered meanwhile
        if _deliver_one(notification):
            summary.delivered += 1
        else:
            summary.failed += 1
    if summary.delivered or summary.failed:
        logger.info(
            "Notifications sent again: %s delivered, %s failed",
            summary.delivered,
            summary.failed,
            extra={"delivered": summary.delivered, "failed": summary.failed},
        )
    return summary


def deliver_again(notifications: Iterable[Notification]) -> DeliverySummary:
    """Send these notifications now, whatever their state (for staff: "Deliver again")."""
    summary = DeliverySummary()
    for notification in notifications:
        if _deliver_one(notification):
            summary.delivered += 1
        else:
            summary.failed += 1
    return summary


# --- sending --------------------------------------------------------------------------------


def _deliver_written(rows: list[Notification], objects: list[dict[str, Any]]) -> None:
    """After the commit: send what :func:`owe` wrote, then mark the delivered ones at once."""
    delivered: list[int] = []
    for row, known in zip(rows, objects, strict=True):
        error = _send(row, known)
        if error is None:
            delivered.append(row.pk)
        else:
            _mark_failed(row, error)
    if delivered:
        _mark_delivered(delivered)


def _deliver_one(notification: Notification) -> bool:
    error = _send(notification, {})
    if error is None:
        _mark_delivered([notification.pk])
        return True
    _mark_failed(notification, error)
    return False


def _mark_delivered(pks: list[int]) -> None:
    Notification.objects.filter(pk__in=pks).update(
        state=DeliveryState.DELIVERED,
        delivered_at=timezone.now(),
        attempts=F("attempts") + 1,
        last_error="",
    )


def _send(notification: Notification, known: Mapping[str, Any]) -> str | None:
    """Send one notification to every receiver; ``None`` when all returned, else what the
    failing ones raised (each logged with its traceback)."""
    signal = _SIGNALS[notification.signal]
    try:
        kwargs = _arguments(notification, known)
    except Exception as exc:  # a related row gone: nothing can be sent, say why
        logger.exception("Notification %s cannot be sent", notification.event_id)
        return f"{type(exc).__name__}: {exc}"
    try:
        sent = signal.send_robust(**kwargs)
    except Exception as exc:  # Django's own logging of a failure can fail on odd receivers
        logger.exception("Notification %s could not be sent", notification.event_id)
        return f"{type(exc).__name__}: {exc}"
    errors = []
    for receiver, response in sent:
        if isinstance(response, Exception):
            logger.error(
                "Receiver %r of %s failed (event %s)",
                receiver,
                notification.signal,
                notification.event_id,
                exc_info=response,
                extra={"event_id": str(notification.event_id), "signal": notification.signal},
            )
            errors.append(f"{getattr(receiver, '__qualname__', receiver)}: {response!r}")
    return "\n".join(errors)[:2000] if errors else None


def _mark_failed(notification: Notification, error: str) -> None:
    attempts = notification.attempts + 1
    Notification.objects.filter(pk=notification.pk).update(
        state=DeliveryState.FAILED,
        attempts=F("attempts") + 1,
        last_error=error,
        due_at=timezone.now() + _retry_delay(attempts),
    )


def _retry_delay(attempts: int) -> timedelta:
    """The pause before a sweep may send a notification after ``attempts`` tries: the
    setting's delay, doubled for every failed try, at most an hour."""
    first = timedelta(seconds=conf.get().notification_retry_seconds)
    doubled: timedelta = first * 2 ** max(attempts - 1, 0)
    return min(doubled, MAX_RETRY_DELAY)


def _arguments(notification: Notification, known: Mapping[str, Any]) -> dict[str, Any]:
    """The signal's keyword arguments, from the objects at hand or loaded by their ids."""
    data = notification.data
    kwargs: dict[str, Any] = {"event_id": str(notification.event_id)}
    if notification.signal in _CARD_SIGNALS:
        kwargs.update(sender=CardToken, card=known.get("card") or notification.card)
        if notification.signal == SignalName.CARD_SAVED:
            kwargs["invoice"] = _related(known, data, "invoice", Invoice)
            kwargs["registration"] = _related(known, data, "registration", CardRegistration)
        return kwargs
    kwargs.update(sender=Invoice, invoice=known.get("invoice") or notification.invoice)
    if notification.signal == SignalName.STATUS_CHANGED:
        kwargs.update(
            old_status=data["old_status"], new_status=data["new_status"], source=data["source"]
        )
    elif notification.signal == SignalName.REFUNDED:
        kwargs["refund"] = _related(known, data, "refund", Refund)
    else:
        kwargs["source"] = data.get("source", "")
        if notification.signal == SignalName.DUPLICATED:
            kwargs["first_invoice"] = _related(known, data, "first_invoice", Invoice)
    return kwargs


def _related(known: Mapping[str, Any], data: Mapping[str, Any], name: str, model: Any) -> Any:
    if name in known:
        return known[name]
    pk = data.get(name)
    return None if pk is None else model.objects.get(pk=pk)
