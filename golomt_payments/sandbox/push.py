"""Push notifications from the simulated bank to the shop's registered URL.

Each push is a :class:`~golomt_payments.sandbox.models.PushDelivery` row first, so what was
sent, when and what the shop answered can be read afterwards. ``PUSH_MODE`` decides delivery:

* ``thread`` (default): a background thread sends it after ``PUSH_DELAY_SECONDS`` (or the
  test card's delay), so the push races the browser redirect as with the real bank, and retries
  a 5xx or unreachable shop up to ``PUSH_RETRIES`` times;
* ``sync``: sent once, before the page answers, delays ignored (deterministic for tests);
* ``off``: never sent, like an empty ``PUSH_URL``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

import requests
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from golomt_payments.sandbox import conf
from golomt_payments.sandbox.cards import Behaviour
from golomt_payments.sandbox.conf import SandboxSettings
from golomt_payments.sandbox.models import Kind, PushDelivery, PushState, Transaction
from golomt_payments.sandbox.wire import push_body

__all__ = ["deliver", "deliver_due", "plan", "schedule"]

logger = logging.getLogger(__name__)

_RESPONSE_EXCERPT = 2000


def plan(behaviour: Behaviour, settings: SandboxSettings) -> list[float]:
    """Seconds after the payment at which each push is sent; empty when none is."""
    if behaviour in (Behaviour.PUSH_LOST, Behaviour.BOTH_LOST):
        return []
    if behaviour is Behaviour.PUSH_LATE:
        return [settings.late_push_seconds]
    if behaviour is Behaviour.PUSH_TWICE:
        first = settings.push_delay_seconds
        return [first, first + settings.repeat_push_seconds]
    return [settings.push_delay_seconds]


def schedule(tx: Transaction, behaviour: Behaviour) -> list[PushDelivery]:
    """Queue the pushes a finished payment causes; they leave after the transaction commits."""
    settings = conf.get()
    if tx.kind != Kind.PAYMENT or not settings.push_url or settings.push_mode == "off":
        return []
    body = json.dumps(push_body(tx, settings.secret), ensure_ascii=False)
    now = timezone.now()
    rows = [
        PushDelivery.objects.create(
            transaction=tx,
            url=settings.push_url,
            body=body,
            due_at=now + timedelta(seconds=delay),
        )
        for delay in plan(behaviour, settings)
    ]
    if rows:
        ids = [row.pk for row in rows]
        if settings.push_mode == "sync":
            transaction.on_commit(partial(_deliver_all, ids))
        else:
            transaction.on_commit(partial(_start_threads, ids, settings.push_retries))
    return rows


def deliver(push_id: int, *, retries: int = 0) -> PushDelivery:
    """Send one queued push now (claiming it, so two workers never send the same row)."""
    claimed = PushDelivery.objects.filter(pk=push_id, state=PushState.PENDING).update(
        state=PushState.SENDING
    )
    row = PushDelivery.objects.get(pk=push_id)
    if not claimed:
        return row
    timeout = conf.get().push_timeout_seconds
    attempt = 0
    while True:
        attempt += 1
        status, response, error = _post(row.url, row.body, timeout)
        retryable = status is None or status >= 500
        if not retryable or attempt > retries:
            break
        time.sleep(min(2**attempt, 30))
    row.attempts = attempt
    row.http_status = status
    row.response = response
    row.error = error
    row.state = PushState.DELIVERED if status is not None and status < 300 else PushState.FAILED
    row.finished_at = timezone.now()
    row.save(update_fields=["attempts", "http_status", "response", "error", "state", "finished_at"])
    return row


def deliver_due(now: datetime | None = None) -> list[PushDelivery]:
    """Send every queued push whose time has come: for tests, and after a restart lost a thread."""
    moment = now or timezone.now()
    due = PushDelivery.objects.filter(state=PushState.PENDING, due_at__lte=moment)
    return [deliver(pk) for pk in due.values_list("pk", flat=True)]


def _post(url: str, body: str, timeout: float) -> tuple[int | None, str, str]:
    try:
        response = requests.post(
            url,
            data=body.encode("utf-8"),
            headers={"Content-Type": "application/json"},
            timeout=(5.0, timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        logger.warning("Sandbox push to %s failed: %s", url, exc)
        return None, "", f"{type(exc).__name__}: {exc}"[:_RESPONSE_EXCERPT]
    text = response.content.decode("utf-8", errors="replace")[:_RESPONSE_EXCERPT]
    return response.status_code, text, ""


def _deliver_all(ids: Sequence[int]) -> None:
    for push_id in ids:
        deliver(push_id)


def _start_threads(ids: Sequence[int], retries: int) -> None:
    for push_id in ids:
        thread = threading.Thread(
            target=_deliver_later,
            args=(push_id, retries),
            name=f"golomt-sandbox-push-{push_id}",
            daemon=True,
        )
        thread.start()


def _deliver_later(push_id: int, retries: int) -> None:
    """Thread body: wait until the row is due, send it, and give back the DB connection."""
    try:
        row = PushDelivery.objects.get(pk=push_id)
        wait = (row.due_at - timezone.now()).total_seconds()
        if wait > 0:
            time.sleep(wait)
        close_old_connections()
        deliver(push_id, retries=retries)
    except Exception:
        logger.exception("Sandbox push #%s could not be delivered", push_id)
    finally:
        connections.close_all()
