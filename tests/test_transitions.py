"""Every pair of statuses, driven through the services: the table decides, history and signals
follow exactly the real changes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import Invoice, Source, Status, StatusChange
from golomt_payments.services import TRANSITIONS, Change, apply_result, expire
from golomt_payments.services.payments import transition
from tests.factories import InvoiceFactory
from tests.helpers import SECRET, SignalRecorder, result_body, unpaid_body

pytestmark = pytest.mark.django_db

STATUSES = list(Status.values)
SPECIFIC_SIGNAL = {
    Status.PAID: "payment_succeeded",
    Status.FAILED: "payment_failed",
    Status.EXPIRED: "payment_expired",
}


def bank_result(invoice: Invoice, **kwargs: Any) -> TransactionResult:
    return parse_transaction_result(
        result_body(invoice.transaction_id, amount=invoice.amount_sent, **kwargs),
        SECRET,
        kind="inquiry",
    )


def drive(invoice: Invoice, target: str) -> Change:
    """Ask the services to move ``invoice`` to ``target`` the way production code would."""
    if target == Status.PAID:
        return apply_result(invoice, bank_result(invoice), source=Source.PUSH)
    if target == Status.FAILED:
        return apply_result(invoice, bank_result(invoice, error_code="300"), source=Source.PUSH)
    if target == Status.EXPIRED:
        return expire(invoice, source=Source.RECONCILE)
    # new/pending are only ever set by start_payment, through the same door.
    return transition(invoice.pk, target, source=Source.API, known=invoice)


def test_the_table_is_the_documented_one() -> None:
    """Written out by hand so that an edit to the table is a deliberate, reviewed change."""
    assert TRANSITIONS == {
        "new": {"pending", "paid", "failed", "expired"},
        "pending": {"paid", "failed", "expired"},
        "failed": {"paid"},
        "expired": {"paid"},
        "paid": set(),
    }


def test_the_table_names_every_status_and_paid_has_no_way_out() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert TRANSITIONS[Status.PAID] == frozenset()
    for old, targets in TRANSITIONS.items():
        assert old not in targets, f"{old} -> {old} must not count as a change"


@pytest.mark.parametrize(
    ("old", "new"),
    [pair for pair in itertools.product(STATUSES, STATUSES) if pair[1] in TRANSITIONS[pair[0]]],
)
def test_allowed_transition_changes_status_writes_history_and_signals(
    old: str,
    new: str,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory(status=old)

    with django_capture_on_commit_callbacks(execute=True):
        change = drive(invoice, new)

    assert change.changed
    assert (change.old_status, change.new_status) == (old, new)
    invoice.refresh_from_db()
    assert invoice.status == new
    history = list(
        StatusChange.objects.filter(invoice=invoice).values_list("from_status", "to_status")
    )
    assert history == [(old, new)]
    expected = ["invoice_status_changed"]
    if new in SPECIFIC_SIGNAL:
        expected.append(SPECIFIC_SIGNAL[new])
    assert signal_log.names() == expected
    _, pk, kwargs = signal_log.received[0]
    assert pk == invoice.pk
    assert kwargs["old_status"] == old
    assert kwargs["new_status"] == new


@pytest.mark.parametrize(
    ("old", "new"),
    [pair for pair in itertools.product(STATUSES, STATUSES) if pair[1] not in TRANSITIONS[pair[0]]],
)
def test_forbidden_transition_is_refused_without_history_or_signal(
    old: str,
    new: str,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    invoice = InvoiceFactory(status=old)
    before = Invoice.objects.values().get(pk=invoice.pk)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        change = drive(invoice, new)

    assert not change.changed
    assert change.new_status == old
    assert Invoice.objects.values().get(pk=invoice.pk) == before
    assert not StatusChange.objects.filter(invoice=invoice).exists()
    assert callbacks == []
    assert signal_log.received == []


@pytest.mark.parametrize("known", [True, False], ids=["caller-copy", "stale-copy"])
def test_forbidden_transition_is_refused_under_the_lock_even_with_a_stale_copy(
    known: bool, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    """A copy read before another request paid the invoice must not fail it afterwards."""
    invoice = InvoiceFactory(status=Status.PENDING)
    stale = Invoice.objects.get(pk=invoice.pk)
    Invoice.objects.filter(pk=invoice.pk).update(status=Status.PAID)

    with django_capture_on_commit_callbacks(execute=True):
        change = transition(
            invoice.pk, Status.FAILED, source=Source.PUSH, known=stale if known else None
        )
        declined = apply_result(stale, bank_result(stale, error_code="300"), source=Source.PUSH)

    assert not change.changed and not declined.changed
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    assert not StatusChange.objects.exists()
    assert signal_log.received == []


def test_a_stale_copy_that_may_still_move_is_decided_again_from_the_row_under_its_lock(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    """The conditional update misses (another request failed the invoice after this copy was
    read); the row is then read under its lock and the payment applied from what it says."""
    invoice = InvoiceFactory(status=Status.PENDING)
    stale = Invoice.objects.get(pk=invoice.pk)
    Invoice.objects.filter(pk=invoice.pk).update(status=Status.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        change = apply_result(stale, bank_result(stale), source=Source.PUSH)

    assert (change.old_status, change.new_status) == (Status.FAILED, Status.PAID)
    assert stale.status == Status.PAID
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    history = StatusChange.objects.get()
    assert (history.from_status, history.to_status) == (Status.FAILED, Status.PAID)
    assert [name for name in signal_log.names()] == ["invoice_status_changed", "payment_succeeded"]


@pytest.mark.parametrize(
    "make_result",
    [
        pytest.param(lambda inv: bank_result(inv), id="paid-again"),
        pytest.param(lambda inv: bank_result(inv, error_code="300"), id="declined"),
        pytest.param(
            lambda inv: parse_transaction_result(
                unpaid_body(inv.transaction_id, amount=inv.amount_sent), SECRET, kind="inquiry"
            ),
            id="unpaid",
        ),
    ],
)
def test_paid_is_final_whatever_the_bank_says_later(
    make_result: Any, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory(paid=True)

    with django_capture_on_commit_callbacks(execute=True):
        change = apply_result(invoice, make_result(invoice), source=Source.REDIRECT)
        expired = expire(invoice, source=Source.RECONCILE)

    assert not change.changed and not expired.changed
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert invoice.bank_code == "000"
    assert not StatusChange.objects.exists()
    assert signal_log.received == []


def test_unpaid_result_on_a_pending_invoice_changes_nothing_and_fires_nothing(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory()
    unpaid = parse_transaction_result(unpaid_body(invoice.transaction_id), SECRET, kind="inquiry")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        change = apply_result(invoice, unpaid, source=Source.STATUS)

    assert not change.changed
    assert change.reason == "bank has no result yet"
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert callbacks == []
    assert signal_log.received == []


def test_the_same_result_twice_changes_once(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory()
    result = bank_result(invoice)

    with django_capture_on_commit_callbacks(execute=True):
        first = apply_result(invoice, result, source=Source.PUSH)
        second = apply_result(Invoice.objects.get(pk=invoice.pk), result, source=Source.REDIRECT)

    assert first.changed and not second.changed
    assert StatusChange.objects.filter(invoice=invoice).count() == 1
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


def test_paid_result_records_the_banks_details() -> None:
    invoice = InvoiceFactory()

    apply_result(invoice, bank_result(invoice), source=Source.PUSH)

    invoice.refresh_from_db()
    assert invoice.bank_code == "000"
    assert invoice.bank_description == "Амжилттай"
    assert invoice.card_number == "949625******0003"
    assert invoice.card_bank == "Голомт банк"
    assert invoice.paid_at is not None
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.source, change.bank_code) == (Source.PUSH, "000")


def test_paid_result_for_another_amount_flags_the_invoice_and_does_not_pay(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory(amount="1000.00")
    result = parse_transaction_result(
        result_body(invoice.transaction_id, amount="10.00"), SECRET, kind="inquiry"
    )

    with django_capture_on_commit_callbacks(execute=True):
        change = apply_result(invoice, result, source=Source.PUSH)

    assert not change.changed
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    assert invoice.needs_review
    assert "10.00" in invoice.review_reason
    assert signal_log.received == []


def test_paid_result_with_the_amount_written_differently_still_pays() -> None:
    """The bank may answer "1000" for an invoice sent as "1000.00": compare as numbers."""
    invoice = InvoiceFactory(amount="1000.00")
    result = parse_transaction_result(
        result_body(invoice.transaction_id, amount="1000"), SECRET, kind="inquiry"
    )

    assert apply_result(invoice, result, source=Source.PUSH).changed
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


def test_result_about_another_transaction_flags_the_invoice_and_does_not_pay() -> None:
    invoice = InvoiceFactory()
    other = InvoiceFactory()

    change = apply_result(invoice, bank_result(other), source=Source.PUSH)

    assert not change.changed
    invoice.refresh_from_db()
    assert invoice.status == Status.PENDING
    assert invoice.needs_review
    assert other.transaction_id in invoice.review_reason
