"""Signals: sent once per real change, only after the commit, and never able to undo it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import responses
from django.db import transaction
from django.test import Client

from golomt_payments import signals
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    DeliveryState,
    Invoice,
    Notification,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.services import apply_result, expire
from tests.factories import InvoiceFactory
from tests.helpers import SECRET, FakeBank, SignalRecorder, push_body, result_body


def paid_result(invoice: Invoice, **kwargs: Any) -> TransactionResult:
    return parse_transaction_result(
        result_body(invoice.transaction_id, amount=invoice.amount_sent, **kwargs),
        SECRET,
        kind="inquiry",
    )


@pytest.mark.django_db
def test_signals_wait_for_the_commit(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        apply_result(invoice, paid_result(invoice), source=Source.PUSH)
        assert signal_log.received == []

    assert signal_log.received == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


@pytest.mark.django_db
def test_signals_carry_the_invoice_the_old_and_new_status_and_the_source(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory()

    with django_capture_on_commit_callbacks(execute=True):
        apply_result(invoice, paid_result(invoice), source=Source.REDIRECT)

    (changed_name, changed_pk, changed), (paid_name, paid_pk, paid) = signal_log.received
    assert (changed_name, changed_pk) == ("invoice_status_changed", invoice.pk)
    assert changed == {"old_status": "pending", "new_status": "paid", "source": "redirect"}
    assert (paid_name, paid_pk, paid) == ("payment_succeeded", invoice.pk, {"source": "redirect"})


@pytest.mark.django_db
def test_receivers_see_the_saved_invoice(django_capture_on_commit_callbacks: Any) -> None:
    invoice = InvoiceFactory()
    seen: list[tuple[str, str]] = []

    def receiver(sender: Any, invoice: Invoice, **kwargs: Any) -> None:
        seen.append((invoice.status, Invoice.objects.get(pk=invoice.pk).status))

    signals.payment_succeeded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            apply_result(invoice, paid_result(invoice), source=Source.PUSH)
    finally:
        signals.payment_succeeded.disconnect(receiver)

    assert seen == [(Status.PAID, Status.PAID)]


@pytest.mark.django_db(transaction=True)
def test_no_signal_when_the_surrounding_transaction_rolls_back(
    signal_log: SignalRecorder,
) -> None:
    invoice = InvoiceFactory()

    with pytest.raises(RuntimeError), transaction.atomic():
        apply_result(invoice, paid_result(invoice), source=Source.PUSH)
        raise RuntimeError("the shop's own code failed after applying")

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert not StatusChange.objects.exists()
    assert signal_log.received == []


@pytest.mark.django_db(transaction=True)
def test_signals_are_sent_once_the_transaction_commits(signal_log: SignalRecorder) -> None:
    invoice = InvoiceFactory()

    with transaction.atomic():
        apply_result(invoice, paid_result(invoice), source=Source.PUSH)
        assert signal_log.received == []

    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_raises_does_not_undo_the_payment(
    signal_log: SignalRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    invoice = InvoiceFactory()

    def broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("the shop's receiver is broken")

    signals.payment_succeeded.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="golomt_payments.services.notifications"):
            change = apply_result(invoice, paid_result(invoice), source=Source.PUSH)
    finally:
        signals.payment_succeeded.disconnect(broken)

    assert change.changed
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert StatusChange.objects.filter(invoice=invoice, to_status=Status.PAID).count() == 1
    # The other receivers still ran, and the failure was logged with its traceback.
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
    failures = [r for r in caplog.records if "of payment_succeeded failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    # ... and the notification is kept as failed, for a sweep or staff to deliver again.
    owed = Notification.objects.get(invoice=invoice, signal="payment_succeeded")
    assert (owed.state, owed.attempts) == (DeliveryState.FAILED, 1)
    assert "the shop's receiver is broken" in owed.last_error


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_raises_does_not_break_the_push_reply(
    signal_log: SignalRecorder,
) -> None:
    """Committed, then signalled: the bank gets its 200 even if the shop's receiver fails."""
    invoice = InvoiceFactory()

    def broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("broken")

    signals.invoice_status_changed.connect(broken)
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            FakeBank(mock).inquiry(error_code="000")
            response = Client().post(
                "/payments/push/",
                data=json.dumps(push_body(invoice.transaction_id)),
                content_type="application/json",
            )
    finally:
        signals.invoice_status_changed.disconnect(broken)

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("act", "expected"),
    [
        (
            lambda inv: apply_result(inv, paid_result(inv, error_code="300"), source="push"),
            ["invoice_status_changed", "payment_failed"],
        ),
        (
            lambda inv: expire(inv, source="reconcile"),
            ["invoice_status_changed", "payment_expired"],
        ),
    ],
    ids=["failed", "expired"],
)
def test_each_outcome_has_its_own_signal(
    act: Any,
    expected: list[str],
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory()

    with django_capture_on_commit_callbacks(execute=True):
        act(invoice)

    assert signal_log.names() == expected
