"""No signal ever lost: each signal the shop is owed is written in the change's transaction,
sent after the commit, marked delivered, and sent again (same event id) until it is.

Delivery: at least once, each with an event id. The shop's receiver makes it once in effect.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from golomt_payments import services, signals
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    CardToken,
    DeliveryState,
    Invoice,
    Notification,
    SignalName,
    Source,
    Status,
)
from golomt_payments.services import notifications
from tests.factories import CardTokenFactory, InvoiceFactory
from tests.helpers import SECRET, CardSignalRecorder, FakeBank, SignalRecorder, result_body

pytestmark = pytest.mark.django_db

NOTIFICATIONS = reverse("admin:golomt_payments_notification_changelist")


def paid_result(invoice: Invoice) -> TransactionResult:
    body = result_body(invoice.transaction_id, amount=invoice.amount_sent)
    return parse_transaction_result(body, SECRET, kind="inquiry")


def pay(invoice: Invoice) -> None:
    services.apply_result(invoice, paid_result(invoice), source=Source.PUSH)


def make_due() -> None:
    """Let the short delay before a sweep pass."""
    Notification.objects.update(due_at=timezone.now() - timedelta(seconds=1))


def owed(invoice: Invoice) -> list[tuple[str, str]]:
    return list(
        Notification.objects.filter(invoice=invoice).order_by("pk").values_list("signal", "state")
    )


class Receiver:
    """A shop's receiver of ``payment_succeeded`` that fails its first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def receive(self, sender: Any, *, invoice: Invoice, event_id: str, **kwargs: Any) -> None:
        self.calls.append(event_id)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the shop's database refused the write")


@pytest.fixture
def receiver() -> Any:
    connected: list[Receiver] = []

    def connect(failures: int = 0) -> Receiver:
        handler = Receiver(failures)
        signals.payment_succeeded.connect(handler.receive, weak=False)
        connected.append(handler)
        return handler

    yield connect
    for handler in connected:
        signals.payment_succeeded.disconnect(handler.receive)


# --- written with the change ----------------------------------------------------------------


def test_the_owed_signals_are_written_in_the_payments_own_transaction(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    """A change rolled back owes nothing; one committed owes its signals, whatever happens to
    the process afterwards."""
    invoice = InvoiceFactory()

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        pay(invoice)
        assert owed(invoice) == [
            (SignalName.STATUS_CHANGED, DeliveryState.PENDING),
            (SignalName.SUCCEEDED, DeliveryState.PENDING),
        ]
        transaction.set_rollback(True)

    assert not Notification.objects.exists()
    assert signal_log.received == []
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_signals_are_sent_after_the_commit_and_marked_delivered_each_with_its_event_id(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory()

    with django_capture_on_commit_callbacks(execute=True):
        pay(invoice)

    rows = list(Notification.objects.filter(invoice=invoice).order_by("pk"))
    assert [row.state for row in rows] == [DeliveryState.DELIVERED] * 2
    assert [row.attempts for row in rows] == [1, 1]
    assert signal_log.event_ids == [str(row.event_id) for row in rows]
    assert signal_log.received == [
        (
            "invoice_status_changed",
            invoice.pk,
            {"old_status": "pending", "new_status": "paid", "source": "push"},
        ),
        ("payment_succeeded", invoice.pk, {"source": "push"}),
    ]


def test_a_signal_whose_worker_died_after_the_commit_is_delivered_by_the_next_reconcile_once(
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()
    with django_capture_on_commit_callbacks(execute=False):  # committed; nothing sent after
        pay(invoice)
    assert owed(invoice) == [
        (SignalName.STATUS_CHANGED, DeliveryState.PENDING),
        (SignalName.SUCCEEDED, DeliveryState.PENDING),
    ]

    call_command("golomt_reconcile", stdout=open("/dev/null", "w"))
    assert signal_log.received == []  # not due yet: the first delivery may still be running

    make_due()
    summary = services.reconcile()
    again = services.reconcile()

    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    assert (summary.notifications_delivered, again.notifications_delivered) == (2, 0)
    first_ids = list(
        Notification.objects.filter(invoice=invoice)
        .order_by("pk")
        .values_list("event_id", flat=True)
    )
    assert signal_log.event_ids == [str(event_id) for event_id in first_ids]
    assert {state for _, state in owed(invoice)} == {DeliveryState.DELIVERED}


def test_a_receiver_that_fails_is_retried_later_with_the_same_event_id_until_it_returns(
    receiver: Any, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    shop = receiver(failures=2)
    invoice = InvoiceFactory()

    with django_capture_on_commit_callbacks(execute=True):
        pay(invoice)

    row = Notification.objects.get(invoice=invoice, signal=SignalName.SUCCEEDED)
    assert (row.state, row.attempts) == (DeliveryState.FAILED, 1)
    assert "the shop's database refused the write" in row.last_error
    assert row.due_at > timezone.now()
    assert services.deliver_due().failed == 0  # not due yet

    make_due()
    assert services.deliver_due().failed == 1
    make_due()
    assert services.deliver_due().delivered == 1
    make_due()
    assert services.deliver_due().delivered == 0

    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == (DeliveryState.DELIVERED, 3, "")
    assert shop.calls == [str(row.event_id)] * 3
    assert any("of payment_succeeded failed" in r.getMessage() for r in caplog.records)


def test_failed_deliveries_wait_longer_each_time_up_to_an_hour(settings: Any) -> None:
    delays = [notifications._retry_delay(attempts) for attempts in (1, 2, 3, 4, 10, 20)]

    assert delays[:4] == [timedelta(seconds=s) for s in (60, 120, 240, 480)]
    assert delays[4:] == [timedelta(hours=1)] * 2


def test_card_signals_are_owed_and_carry_event_ids_too(
    django_user_model: Any, django_capture_on_commit_callbacks: Any
) -> None:
    card: CardToken = CardTokenFactory(owner=django_user_model.objects.create_user("ann"))
    recorder = CardSignalRecorder()
    recorder.connect()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.remove_card(card)
    finally:
        recorder.disconnect()

    row = Notification.objects.get(card=card)
    assert (row.signal, row.state) == (SignalName.CARD_REMOVED, DeliveryState.DELIVERED)
    assert recorder.received == [("card_removed", card.pk, {})]
    assert recorder.event_ids == [str(row.event_id)]


def test_a_notification_whose_invoice_signal_cannot_be_built_is_kept_failed_with_the_reason(
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()
    with django_capture_on_commit_callbacks(execute=False):
        pay(invoice)
    Notification.objects.filter(signal=SignalName.STATUS_CHANGED).update(data={})
    make_due()

    summary = services.deliver_due()

    assert (summary.delivered, summary.failed) == (1, 1)
    broken = Notification.objects.get(signal=SignalName.STATUS_CHANGED)
    assert broken.state == DeliveryState.FAILED
    assert "KeyError" in broken.last_error


# --- staff ----------------------------------------------------------------------------------


@pytest.fixture
def clerk(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="golomt_payments", codename__in=["view_notification"]
        )
    )
    return user


def test_staff_with_the_permission_deliver_a_failed_notification_again(
    admin_client: Client, receiver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    shop = receiver(failures=1)
    invoice = InvoiceFactory()
    with django_capture_on_commit_callbacks(execute=True):
        pay(invoice)
    failed = Notification.objects.get(signal=SignalName.SUCCEEDED)
    assert failed.state == DeliveryState.FAILED

    listed = admin_client.get(NOTIFICATIONS + "?state__exact=failed").content.decode()
    answer = admin_client.post(
        NOTIFICATIONS,
        {"action": "deliver_again", "_selected_action": [failed.pk]},
        follow=True,
    )

    assert f"/notification/{failed.pk}/change/" in listed  # listed among the failed
    assert "1 notification(s) delivered." in answer.content.decode()
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == (DeliveryState.DELIVERED, 2)
    assert shop.calls == [str(failed.event_id)] * 2


def test_the_deliver_again_action_needs_its_own_permission(
    clerk: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        pay(InvoiceFactory())
    client = Client()
    client.force_login(clerk)

    listed = client.get(NOTIFICATIONS)

    assert listed.status_code == 200
    form = listed.context["action_form"]
    choices = [name for name, _ in form.fields["action"].choices] if form else []
    assert "deliver_again" not in choices
    refused = client.post(
        NOTIFICATIONS,
        {"action": "deliver_again", "_selected_action": [Notification.objects.first().pk]},
    )
    assert Notification.objects.filter(state=DeliveryState.DELIVERED).count() == 0
    assert refused.status_code in (200, 302)
