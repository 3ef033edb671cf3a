"""Celery tasks (the ``celery`` extra): thin adapters over :mod:`golomt_payments.services`.

Install with ``pip install "golomt-payments[celery]"``; nothing else in the package imports
this module, so the core works without Celery. The tasks carry ids, never model instances,
and return small JSON-friendly dicts. A bank that cannot be reached is retried with an
exponential backoff, at most ``max_retries`` times; a shop may tune both per task through
Celery's ``task_annotations`` (``default_retry_delay`` is the first pause, in seconds).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from celery import Task, shared_task

from golomt_payments import services
from golomt_payments.gateway import GolomtError, is_transient
from golomt_payments.models import BankMessage, Direction, Invoice, MessageKind, Outcome, Source
from golomt_payments.services.notifications import DEFAULT_DELIVERY_LIMIT

logger = logging.getLogger(__name__)

#: The names to use in ``CELERY_BEAT_SCHEDULE`` and ``send_task``: stable across refactoring.
RECONCILE = "golomt_payments.reconcile"
REFRESH_INVOICE = "golomt_payments.refresh_invoice"
PROCESS_PUSH = "golomt_payments.process_push"
DELIVER_NOTIFICATIONS = "golomt_payments.deliver_notifications"

#: No retry waits longer than this, however many came before.
MAX_RETRY_DELAY = 600


def _backoff(task: Task) -> float:
    """``default_retry_delay`` doubled for every retry already made, capped."""
    first: float = task.default_retry_delay
    retries: int = task.request.retries
    return float(min(first * 2**retries, MAX_RETRY_DELAY))


@shared_task(name=RECONCILE, ignore_result=False)
def reconcile(limit: int | None = None) -> dict[str, Any]:
    """The periodic sweep, as ``manage.py golomt_reconcile`` does it; returns its summary."""
    return dataclasses.asdict(services.reconcile(limit=limit))


@shared_task(name=DELIVER_NOTIFICATIONS, ignore_result=False)
def deliver_notifications(limit: int = DEFAULT_DELIVERY_LIMIT) -> dict[str, Any]:
    """Send again the signals the shop was owed and has not received (the outbox's sweep);
    cheap when there are none, so it may run every minute."""
    return dataclasses.asdict(services.deliver_due(limit=limit))


@shared_task(bind=True, name=REFRESH_INVOICE, max_retries=5, default_retry_delay=30)
def refresh_invoice(self: Task, invoice_id: int) -> dict[str, Any] | None:
    """Ask the bank about one invoice and apply its answer (``None``: no such invoice).

    A bank that cannot be reached, or fails on its side, is asked again later; any other
    bank error (a refusal, a forged answer) will not get better and fails the task at once.
    """
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        logger.warning("refresh_invoice: no invoice with id %s", invoice_id)
        return None
    try:
        change = services.refresh(invoice, source=Source.RECONCILE)
    except GolomtError as exc:
        if not is_transient(exc):
            raise
        # Re-raises ``exc`` itself once the retries are used up.
        raise self.retry(exc=exc, countdown=_backoff(self)) from exc
    return {
        "invoice": invoice_id,
        "old_status": change.old_status,
        "status": change.new_status,
        "changed": change.changed,
        "unknown_to_bank": change.unknown_to_bank,
    }


@shared_task(bind=True, name=PROCESS_PUSH, max_retries=5, default_retry_delay=30)
def process_push(self: Task, message_id: int) -> dict[str, Any] | None:
    """Process a logged push notification (``None``: no such push).

    Idempotent: a push already finished (processed, unchanged, rejected) is left as it is,
    and processing one twice changes the invoice once. A push the bank could not confirm
    stays ``failed`` and is tried again later; after the last retry the reconciler has it.
    """
    message = BankMessage.objects.filter(
        pk=message_id, direction=Direction.INBOUND, kind=MessageKind.PUSH
    ).first()
    if message is None:
        logger.warning("process_push: no push notification with id %s", message_id)
        return None
    if message.outcome not in (Outcome.RECEIVED, Outcome.FAILED):
        return {"message": message_id, "outcome": message.outcome, "detail": "already finished"}
    reply = services.process_push(message)
    if message.outcome == Outcome.FAILED and self.request.retries < self.max_retries:
        raise self.retry(countdown=_backoff(self))
    return {"message": message_id, "outcome": message.outcome, "detail": reply.detail}
