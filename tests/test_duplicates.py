"""Money the bank took twice for one order is caught: recorded as paid (it was taken), flagged
"paid twice; refund it", announced once with ``payment_duplicated``, never as a second
``payment_succeeded``. Staff record the refund (made in the bank's portal) on the invoice."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from golomt_payments import services
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import Invoice, Refund, Source, Status
from tests.factories import InvoiceFactory
from tests.helpers import SECRET, FakeBank, SignalRecorder, push_body, result_body

pytestmark = pytest.mark.django_db

INVOICES = reverse("admin:golomt_payments_invoice_changelist")


def paid_result(invoice: Invoice) -> TransactionResult:
    body = result_body(invoice.transaction_id, amount=invoice.amount_sent)
    return parse_transaction_result(body, SECRET, kind="inquiry")


def push(client: Client, invoice: Invoice) -> Any:
    return client.post(
        "/payments/push/",
        data=json.dumps(push_body(invoice.transaction_id, amount=invoice.amount_sent)),
        content_type="application/json",
    )


# --- caught ---------------------------------------------------------------------------------


def test_a_late_payment_of_an_expired_invoice_after_another_paid_is_flagged_not_announced_paid(
    client: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first = InvoiceFactory(paid=True, reference="ORD-1")
    late = InvoiceFactory(expired=True, reference="ORD-1")  # its page was paid after all
    fake_bank.inquiry(error_code="000")

    with django_capture_on_commit_callbacks(execute=True):
        answer = push(client, late)
        again = push(client, late)  # the bank's retry

    assert (answer.status_code, again.status_code) == (200, 200)
    late.refresh_from_db()
    assert late.status == Status.PAID  # the money was taken: recorded
    assert (late.duplicate_of_id, late.needs_review, late.holds_order) == (first.pk, True, False)
    assert "Paid twice" in late.review_reason and "refund" in late.review_reason
    assert signal_log.received == [
        (
            "invoice_status_changed",
            late.pk,
            {"old_status": "expired", "new_status": "paid", "source": "push"},
        ),
        ("payment_duplicated", late.pk, {"first_invoice": first, "source": "push"}),
    ]


def test_a_late_payment_of_an_order_nobody_else_paid_pays_the_order(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    late = InvoiceFactory(expired=True, reference="ORD-2")

    with django_capture_on_commit_callbacks(execute=True):
        services.apply_result(late, paid_result(late), source=Source.RECONCILE)

    late.refresh_from_db()
    assert (late.status, late.holds_order, late.duplicate_of_id) == (Status.PAID, True, None)
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


def test_an_old_page_paid_while_a_new_one_is_open_pays_the_order_and_the_new_one_is_the_second(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    """The customer switched method after the bank said the card page was unpaid, then paid
    both: whichever is paid first pays the order, the other is flagged."""
    old = InvoiceFactory(reference="ORD-3", holds_order=False)  # let go of at the switch
    new = InvoiceFactory(socialpay=True, reference="ORD-3")

    with django_capture_on_commit_callbacks(execute=True):
        services.apply_result(old, paid_result(old), source=Source.PUSH)
        services.apply_result(new, paid_result(new), source=Source.PUSH)

    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.holds_order, old.duplicate_of_id) == (True, None)
    assert (new.holds_order, new.duplicate_of_id, new.needs_review) == (False, old.pk, True)
    assert [name for name in signal_log.names() if name != "invoice_status_changed"] == [
        "payment_succeeded",
        "payment_duplicated",
    ]


def test_payments_without_a_reference_are_never_duplicates(
    signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    one, two = InvoiceFactory(reference=""), InvoiceFactory(reference="")

    with django_capture_on_commit_callbacks(execute=True):
        for invoice in (one, two):
            services.apply_result(invoice, paid_result(invoice), source=Source.PUSH)

    assert signal_log.names().count("payment_succeeded") == 2
    assert not Invoice.objects.filter(duplicate_of__isnull=False).exists()


def test_the_admin_lists_invoices_paid_twice_with_a_filter_and_a_flag(
    admin_client: Client,
) -> None:
    first = InvoiceFactory(paid=True, reference="ORD-4")
    second = InvoiceFactory(
        paid=True, reference="ORD-4", holds_order=False, duplicate_of=first, needs_review=True
    )

    listed = admin_client.get(INVOICES + "?paid_twice=yes")

    shown = list(listed.context["cl"].result_list)
    assert shown == [second]
    assert 'class="golomt-paid-twice"' in listed.content.decode()
    page = admin_client.get(reverse("admin:golomt_payments_invoice_change", args=[second.pk]))
    assert first.transaction_id in page.content.decode()


# --- refunds --------------------------------------------------------------------------------


def test_a_refund_is_recorded_on_a_paid_invoice_and_announced(
    django_user_model: Any, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    clerk = django_user_model.objects.create_user("clerk")
    invoice = InvoiceFactory(paid=True, amount=Decimal("89000"))

    with django_capture_on_commit_callbacks(execute=True):
        part = services.record_refund(invoice, amount="9000", note="portal #771", by=clerk)
        rest = services.record_refund(invoice, amount=Decimal("80000"))

    assert (part.amount, part.note, part.recorded_by) == (Decimal("9000.00"), "portal #771", clerk)
    assert services.refunded_amount(invoice) == Decimal("89000.00")
    assert signal_log.received == [
        ("payment_refunded", invoice.pk, {"refund": part}),
        ("payment_refunded", invoice.pk, {"refund": rest}),
    ]


@pytest.mark.parametrize(
    ("status", "amount", "reason"),
    [
        (Status.PENDING, "100", "only a paid invoice"),
        (Status.FAILED, "100", "only a paid invoice"),
        (Status.PAID, "1000.01", "only 1000.00 is left"),
        (Status.PAID, "0", "more than zero"),
        (Status.PAID, "-5", "more than zero"),
        (Status.PAID, "lots", "not an amount"),
    ],
)
def test_a_refund_that_cannot_be_is_refused(status: str, amount: str, reason: str) -> None:
    invoice = InvoiceFactory(status=status, amount=Decimal("1000"))

    with pytest.raises(services.RefundRefused, match=reason):
        services.record_refund(invoice, amount=amount)

    assert not Refund.objects.exists()


def test_staff_with_the_permission_record_a_refund_from_the_admin(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = InvoiceFactory(paid=True, amount=Decimal("89000"))
    chosen = {"action": "record_refund", "_selected_action": [invoice.pk]}

    form = admin_client.post(INVOICES, chosen)
    too_much = admin_client.post(INVOICES, {**chosen, "amount": "90000", "note": ""})
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(
            INVOICES, {**chosen, "amount": "89000", "note": "#77"}, follow=True
        )

    assert form.status_code == 200 and 'id="golomt-refund"' in form.content.decode()
    assert "only 89000.00 is left" in too_much.content.decode()
    assert "a refund of 89,000\u00a0₮ is recorded" in done.content.decode()
    refund = Refund.objects.get()
    assert (refund.invoice, refund.amount, refund.note) == (invoice, Decimal("89000"), "#77")
    assert refund.recorded_by is not None and refund.recorded_by.username == "admin"
    page = admin_client.get(reverse("admin:golomt_payments_invoice_change", args=[invoice.pk]))
    assert "#77" in page.content.decode()  # kept on the invoice, in its history


def test_recording_a_refund_needs_its_own_permission(django_user_model: Any) -> None:
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="golomt_payments",
            codename__in=["view_invoice", "change_invoice"],
        )
    )
    client = Client()
    client.force_login(clerk)
    invoice = InvoiceFactory(paid=True)

    listed = client.get(INVOICES)
    client.post(
        INVOICES,
        {"action": "record_refund", "_selected_action": [invoice.pk], "amount": "10"},
    )

    form = listed.context["action_form"]
    assert form is None or "record_refund" not in dict(form.fields["action"].choices)
    assert not Refund.objects.exists()


def test_a_refund_is_offered_for_one_paid_invoice_at_a_time(admin_client: Client) -> None:
    paid, pending = InvoiceFactory(paid=True), InvoiceFactory()

    both = admin_client.post(
        INVOICES,
        {"action": "record_refund", "_selected_action": [paid.pk, pending.pk]},
        follow=True,
    )
    unpaid = admin_client.post(
        INVOICES, {"action": "record_refund", "_selected_action": [pending.pk]}, follow=True
    )

    for answer in (both, unpaid):
        assert "Select one paid invoice to record a refund for." in answer.content.decode()
    assert not Refund.objects.exists()
