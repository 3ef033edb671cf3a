"""``golomt_prune_messages``: the raw log keeps what an invoice, a review or a mismatch needs
and loses the rest after ``MESSAGE_RETENTION_DAYS``."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from golomt_payments.models import (
    BankMessage,
    DeliveryState,
    Direction,
    MessageKind,
    MismatchKind,
    Notification,
    Outcome,
    SettledTransaction,
    SettlementMismatch,
    SignalName,
    Status,
)
from golomt_payments.services.retention import prune_messages
from tests.factories import InvoiceFactory
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db


def message(age_days: int, **fields: Any) -> BankMessage:
    fields.setdefault("direction", Direction.INBOUND)
    fields.setdefault("kind", MessageKind.PUSH)
    fields.setdefault("outcome", Outcome.REJECTED)
    row = BankMessage.objects.create(**fields)
    BankMessage.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(days=age_days)
    )
    return row


def notification(age_days: int, state: str) -> Notification:
    row = Notification.objects.create(
        signal=SignalName.SUCCEEDED, state=state, due_at=timezone.now()
    )
    Notification.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(days=age_days)
    )
    return row


def remaining() -> set[int]:
    return set(BankMessage.objects.values_list("pk", flat=True))


def test_old_messages_of_nobody_go_and_everything_a_payment_needs_stays() -> None:
    paid = InvoiceFactory(status=Status.PAID)
    reviewed = InvoiceFactory(needs_review=True, review_reason="odd")
    mismatched = InvoiceFactory(status=Status.FAILED)
    SettlementMismatch.objects.create(
        day=date(2026, 1, 1), kind=MismatchKind.NOT_PAID, invoice=mismatched
    )
    failed = InvoiceFactory(status=Status.FAILED)

    flood = message(91, body="x" * 100)
    recent = message(89)
    forged_about_paid = message(91, transaction_id=paid.transaction_id)
    about_reviewed = message(91, transaction_id=reviewed.transaction_id)
    about_mismatch = message(91, transaction_id=mismatched.transaction_id)
    of_an_invoice = message(91, invoice=failed, transaction_id=failed.transaction_id)
    settlement = message(91, direction=Direction.OUTBOUND, kind=MessageKind.SETTLEMENT)
    unprocessed = message(91, outcome=Outcome.FAILED)
    received = message(91, outcome=Outcome.RECEIVED)
    delivered_old = notification(91, DeliveryState.DELIVERED)
    delivered_new = notification(10, DeliveryState.DELIVERED)
    pending_old = notification(91, DeliveryState.PENDING)

    summary = prune_messages()

    assert (summary.messages, summary.notifications) == (1, 1)
    assert remaining() == {
        row.pk
        for row in (
            recent,
            forged_about_paid,
            about_reviewed,
            about_mismatch,
            of_an_invoice,
            settlement,
            unprocessed,
            received,
        )
    }
    assert flood.pk not in remaining()
    assert set(Notification.objects.values_list("pk", flat=True)) == {
        delivered_new.pk,
        pending_old.pk,
    }
    assert not Notification.objects.filter(pk=delivered_old.pk).exists()


def test_the_setting_and_the_option_choose_the_age() -> None:
    row = message(10)
    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "MESSAGE_RETENTION_DAYS": 30}):
        assert prune_messages().messages == 0
        assert prune_messages(days=7).messages == 1
    assert row.pk not in remaining()


def test_many_rows_go_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("golomt_payments.services.retention.BATCH", 3)
    for _ in range(8):
        message(100)
    assert prune_messages().messages == 8
    assert not remaining()


def test_the_command_dry_run_counts_and_keeps() -> None:
    message(100)
    out = StringIO()

    call_command("golomt_prune_messages", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "would remove 1 messages and 0 delivered notifications"
    assert len(remaining()) == 1

    call_command("golomt_prune_messages", stdout=out)
    assert "removed 1 messages" in out.getvalue()
    assert not remaining()


def test_the_command_refuses_a_zero_age() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("golomt_prune_messages", "--days", "0")


def test_a_message_about_a_settled_transaction_we_hold_no_invoice_for_stays() -> None:
    settled = SettledTransaction.objects.create(
        bank_id="B1", merchant_invoice="T-UNKNOWN", settled_on=date(2026, 1, 1), amount=1000
    )
    SettlementMismatch.objects.create(
        day=date(2026, 1, 1), kind=MismatchKind.NOT_PAID, settled=settled
    )
    evidence = message(400, transaction_id="T-UNKNOWN")
    noise = message(400, transaction_id="T-OTHER")

    assert prune_messages().messages == 1
    assert remaining() == {evidence.pk}
    assert noise.pk not in remaining()
