"""The Celery tasks, run by a real worker over a real Redis broker started for this module.

The worker runs in a thread of this process, with its own database connection: hence
``transaction=True`` (the data must be committed for it to see) and the file-backed SQLite
of the test settings. ``responses`` patches ``requests`` process-wide, so the worker's bank
calls reach the fake bank registered by the test.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from golomt_payments import services
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    BankMessage,
    DeliveryState,
    Invoice,
    Notification,
    Outcome,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.services import notifications
from tests.factories import BankMessageFactory, InvoiceFactory
from tests.helpers import SECRET, FakeBank, SignalRecorder, push_body, result_body
from tests.sandbox.processes import child_env, free_port, serving

celery = pytest.importorskip("celery", reason="needs the celery extra: pip install -e .[celery]")

from celery.contrib.testing.worker import start_worker  # noqa: E402

from golomt_payments import tasks  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
RESULT_TIMEOUT = 30
RETRIES = 2  # for the tests, instead of the tasks' 5 with a 30 s first pause

on_worker = pytest.mark.django_db(transaction=True)

# Celery's Redis result backend still calls redis-py's deprecated ``setex``: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")


def redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    fallback = Path("/usr/bin/redis-server")
    return str(fallback) if fallback.exists() else None


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A throwaway Redis on a free loopback port, keeping nothing on disk; stopped by pid."""
    server = redis_server()
    if server is None:
        pytest.skip("needs redis-server: apt-get install redis-server")
    port = free_port()
    command = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with serving(command, port, child_env({})):
        yield f"redis://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def celery_app(redis_url: str) -> Iterator[Any]:
    app = celery.Celery("golomt-tests", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/0",
        result_backend=f"{redis_url}/1",
        broker_connection_retry_on_startup=True,
        task_annotations={
            name: {"max_retries": RETRIES, "default_retry_delay": 0}
            for name in (tasks.REFRESH_INVOICE, tasks.PROCESS_PUSH)
        },
        worker_hijack_root_logger=False,
    )
    app.loader.import_module("celery.contrib.testing.tasks")  # the worker's ping check
    yield app
    gc.collect()  # a result forgets its subscription on collection: while Redis still runs
    app.close()


@pytest.fixture(scope="module")
def golomt_worker(celery_app: Any) -> Iterator[Any]:
    """A real worker in a thread, consuming from the Redis broker (solo pool: one at a time)."""
    with start_worker(
        celery_app, pool="solo", concurrency=1, perform_ping_check=True, shutdown_timeout=10
    ) as worker:
        yield worker


def paid_result(invoice: Invoice) -> TransactionResult:
    body = result_body(invoice.transaction_id, amount=invoice.amount_sent)
    return parse_transaction_result(body, SECRET, kind="inquiry")


def aged(minutes: float) -> Invoice:
    invoice = InvoiceFactory()
    Invoice.objects.filter(pk=invoice.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )
    return Invoice.objects.get(pk=invoice.pk)


def logged_push(invoice: Invoice, outcome: str = Outcome.RECEIVED) -> BankMessage:
    message: BankMessage = BankMessageFactory(
        invoice=None,
        account="",
        transaction_id="",
        body=json.dumps(push_body(invoice.transaction_id), ensure_ascii=False),
        outcome=outcome,
        processed_at=None,
    )
    return message


# --- a real worker ---------------------------------------------------------------------------


@on_worker
def test_refresh_invoice_on_a_worker_marks_a_paid_invoice_paid(
    golomt_worker: Any, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    result = tasks.refresh_invoice.delay(invoice.pk).get(timeout=RESULT_TIMEOUT)

    assert result == {
        "invoice": invoice.pk,
        "old_status": Status.PENDING,
        "status": Status.PAID,
        "changed": True,
        "unknown_to_bank": False,
    }
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    change = StatusChange.objects.get(invoice=invoice)
    assert change.source == Source.RECONCILE


@on_worker
def test_refresh_invoice_on_a_worker_succeeds_for_a_missing_invoice(
    golomt_worker: Any, fake_bank: FakeBank
) -> None:
    assert tasks.refresh_invoice.delay(987654).get(timeout=RESULT_TIMEOUT) is None
    assert fake_bank.calls("/api/inquiry") == []


@on_worker
def test_refresh_invoice_retries_an_unreachable_bank_then_gives_up(
    golomt_worker: Any, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_down()

    outcome = tasks.refresh_invoice.delay(invoice.pk)
    with pytest.raises(Exception) as raised:
        outcome.get(timeout=RESULT_TIMEOUT)

    assert type(raised.value).__name__ == "BankTimeout"
    assert outcome.state == "FAILURE"
    assert len(fake_bank.calls("/api/inquiry")) == 1 + RETRIES
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


@on_worker
def test_refresh_invoice_succeeds_when_the_bank_answers_on_a_retry(
    golomt_worker: Any, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_down()
    fake_bank.inquiry(error_code="000")  # responses answers in order, then repeats the last

    result = tasks.refresh_invoice.delay(invoice.pk).get(timeout=RESULT_TIMEOUT)

    assert result["status"] == Status.PAID
    assert len(fake_bank.calls("/api/inquiry")) == 2


@on_worker
def test_process_push_on_a_worker_finishes_a_logged_push_once(
    golomt_worker: Any, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    message = logged_push(invoice)
    fake_bank.inquiry(error_code="000")

    first = tasks.process_push.delay(message.pk).get(timeout=RESULT_TIMEOUT)
    again = tasks.process_push.delay(message.pk).get(timeout=RESULT_TIMEOUT)

    assert first == {"message": message.pk, "outcome": Outcome.PROCESSED, "detail": "processed"}
    assert again == {
        "message": message.pk,
        "outcome": Outcome.PROCESSED,
        "detail": "already finished",
    }
    message.refresh_from_db()
    assert (message.outcome, message.invoice_id) == (Outcome.PROCESSED, invoice.pk)
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.source, change.message_id) == (Source.PUSH, message.pk)
    assert len(fake_bank.calls("/api/inquiry")) == 1


@on_worker
def test_process_push_the_bank_cannot_confirm_is_retried_then_left_failed(
    golomt_worker: Any, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    message = logged_push(invoice)
    fake_bank.inquiry_down()

    result = tasks.process_push.delay(message.pk).get(timeout=RESULT_TIMEOUT)

    assert result is not None and result["outcome"] == Outcome.FAILED
    assert len(fake_bank.calls("/api/inquiry")) == 1 + RETRIES
    message.refresh_from_db()
    assert message.outcome == Outcome.FAILED  # for the reconciler's next run
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


@on_worker
def test_reconcile_on_a_worker_returns_the_summary(golomt_worker: Any, fake_bank: FakeBank) -> None:
    due = aged(15)  # past the test settings' 10-minute page timer
    fresh = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    summary = tasks.reconcile.delay().get(timeout=RESULT_TIMEOUT)

    assert summary == {
        "checked": 1,
        "paid": 1,
        "failed": 0,
        "expired": 0,
        "unchanged": 0,
        "unreachable": 0,
        "messages_replayed": 0,
        "registrations_checked": 0,
        "cards_saved": 0,
        "registrations_failed": 0,
        "notifications_delivered": 0,
        "notifications_failed": 0,
        "dry_run": False,
    }
    assert Invoice.objects.get(pk=due.pk).status == Status.PAID
    assert Invoice.objects.get(pk=fresh.pk).status == Status.PENDING


# --- in this process, without a broker -------------------------------------------------------


@pytest.mark.django_db
def test_a_bank_answer_that_will_not_improve_fails_at_once(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    FakeBank(fake_bank.mock, secret="someone-elses-secret").inquiry(error_code="000")

    outcome = tasks.refresh_invoice.apply(args=[invoice.pk])

    assert outcome.failed()
    assert type(outcome.result).__name__ == "ChecksumMismatch"
    assert len(fake_bank.calls("/api/inquiry")) == 1
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


@pytest.mark.django_db
def test_a_missing_invoice_or_push_is_logged_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    assert tasks.refresh_invoice.apply(args=[987654]).get() is None
    assert tasks.process_push.apply(args=[987654]).get() is None
    assert "no invoice with id 987654" in caplog.text
    assert "no push notification with id 987654" in caplog.text


def test_the_core_does_not_import_celery() -> None:
    import subprocess
    import sys

    code = (
        "import sys, django; django.setup(); "
        "import golomt_payments.services, golomt_payments.views, golomt_payments.admin; "
        "sys.exit('celery' in sys.modules)"
    )
    env = child_env({"DJANGO_SETTINGS_MODULE": "tests.settings"})
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False)  # noqa: S603
    assert done.returncode == 0


def test_the_readme_beat_schedule_names_real_tasks() -> None:
    section = README.read_text(encoding="utf-8").split("## Background work with Celery", 1)
    assert len(section) == 2, "README has no 'Background work with Celery' section"
    named = set(re.findall(r'"task":\s*"([\w.]+)"', section[1]))
    assert named, "the section shows no beat schedule"
    app = celery.Celery("names", set_as_current=False)
    app.finalize()
    assert named <= set(app.tasks)


@on_worker
def test_deliver_notifications_on_a_worker_sends_what_a_dead_worker_owed_once(
    golomt_worker: Any, signal_log: SignalRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = InvoiceFactory()
    with monkeypatch.context() as dying:  # the payment commits; its worker dies before sending
        dying.setattr(notifications, "_deliver_written", lambda rows, objects: None)
        services.apply_result(invoice, paid_result(invoice), source=Source.PUSH)
    assert signal_log.received == []
    Notification.objects.update(due_at=timezone.now())  # the short delay has passed

    first = tasks.deliver_notifications.delay().get(timeout=RESULT_TIMEOUT)
    again = tasks.deliver_notifications.delay().get(timeout=RESULT_TIMEOUT)

    assert (first, again) == ({"delivered": 2, "failed": 0}, {"delivered": 0, "failed": 0})
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    assert set(Notification.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@on_worker
def test_reconcile_on_a_worker_sends_what_a_dead_worker_owed(
    golomt_worker: Any, signal_log: SignalRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = InvoiceFactory()
    with monkeypatch.context() as dying:
        dying.setattr(notifications, "_deliver_written", lambda rows, objects: None)
        services.apply_result(invoice, paid_result(invoice), source=Source.PUSH)
    Notification.objects.update(due_at=timezone.now())

    summary = tasks.reconcile.delay().get(timeout=RESULT_TIMEOUT)

    assert (summary["notifications_delivered"], summary["notifications_failed"]) == (2, 0)
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
