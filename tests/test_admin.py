"""Staff screens: invoices with history and messages, the check action, the read-only log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from golomt_payments.models import (
    BankMessage,
    Direction,
    Invoice,
    MessageKind,
    Source,
    Status,
    StatusChange,
)
from tests.factories import (
    BankMessageFactory,
    InvoiceFactory,
    OutboundMessageFactory,
    StatusChangeFactory,
)
from tests.helpers import SECRET, FakeBank, SignalRecorder, hmac_hex

pytestmark = pytest.mark.django_db

INVOICES = reverse("admin:golomt_payments_invoice_changelist")
MESSAGES = reverse("admin:golomt_payments_bankmessage_changelist")


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """admin_client's user gets a password; hash it cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def staff_client(django_user_model: Any) -> Client:
    """Staff who may view and change invoices, but not ask the bank about them."""
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="golomt_payments",
            codename__in=["view_invoice", "change_invoice", "view_bankmessage"],
        )
    )
    client = Client()
    client.force_login(user)
    return client


# --- invoices -------------------------------------------------------------------------------


def test_invoice_changelist_lists_invoices_with_their_status(admin_client: Client) -> None:
    paid = InvoiceFactory(paid=True, reference="ORD-PAID")
    pending = InvoiceFactory(reference="ORD-OPEN")

    response = admin_client.get(INVOICES)

    assert response.status_code == 200
    content = response.content.decode()
    assert paid.transaction_id in content and pending.transaction_id in content
    assert "Paid" in content and "Waiting for payment" in content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status__exact": "paid"}, {"paid"}),
        ({"status__exact": "pending"}, {"pending"}),
        ({"method__exact": "socialpay"}, {"social"}),
        ({"needs_review__exact": "1"}, {"review"}),
        ({"account": "wholesale"}, {"wholesale"}),
    ],
)
def test_invoice_changelist_filters(
    admin_client: Client, query: dict[str, str], expected: set[str]
) -> None:
    made = {
        "paid": InvoiceFactory(paid=True),
        "pending": InvoiceFactory(),
        "social": InvoiceFactory(socialpay=True, status=Status.NEW),
        "review": InvoiceFactory(needs_review=True, status=Status.FAILED),
        "wholesale": InvoiceFactory(account="wholesale", status=Status.EXPIRED),
    }

    response = admin_client.get(INVOICES, query)

    assert response.status_code == 200
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == {made[name].pk for name in expected}


def test_invoice_changelist_date_hierarchy_loads(admin_client: Client) -> None:
    invoice = InvoiceFactory()
    created = invoice.created_at

    response = admin_client.get(
        INVOICES, {"created_at__year": created.year, "created_at__month": created.month}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("field", ["transaction_id", "bank_invoice", "reference"])
def test_invoice_changelist_search(admin_client: Client, field: str) -> None:
    wanted = InvoiceFactory(reference="ORD-SEARCH-1")
    InvoiceFactory(reference="ORD-OTHER")

    response = admin_client.get(INVOICES, {"q": getattr(wanted, field)})

    assert response.status_code == 200
    assert [obj.pk for obj in response.context["cl"].result_list] == [wanted.pk]


def test_invoice_change_page_shows_history_and_messages_inline(admin_client: Client) -> None:
    invoice = InvoiceFactory(paid=True)
    push = BankMessageFactory(invoice=invoice)
    StatusChangeFactory(
        invoice=invoice, from_status="pending", to_status="paid", source="push", message=push
    )
    OutboundMessageFactory(invoice=invoice)

    response = admin_client.get(reverse("admin:golomt_payments_invoice_change", args=[invoice.pk]))

    assert response.status_code == 200
    formsets = {fs.formset.prefix: fs for fs in response.context["inline_admin_formsets"]}
    assert set(formsets) == {"history", "messages"}
    assert formsets["history"].formset.queryset.count() == 1
    assert formsets["messages"].formset.queryset.count() == 2
    content = response.content.decode()
    assert "Push notification" in content
    assert "Check transaction" in content
    assert invoice.transaction_id in content


def test_invoice_admin_never_adds_invoices_by_hand(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:golomt_payments_invoice_add"))

    assert response.status_code == 403


def test_invoice_status_is_read_only_in_the_admin(admin_client: Client) -> None:
    invoice = InvoiceFactory()
    url = reverse("admin:golomt_payments_invoice_change", args=[invoice.pk])

    admin_client.post(
        url,
        {
            "status": "paid",
            "amount": "1.00",
            "reference": "edited",
            "metadata": "{}",
            "review_reason": "",
            "history-TOTAL_FORMS": "0",
            "history-INITIAL_FORMS": "0",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
        },
    )

    invoice.refresh_from_db()
    assert invoice.reference == "edited"
    assert invoice.status == Status.PENDING
    assert invoice.amount == 1000


def test_invoice_admin_shows_no_credentials(admin_client: Client) -> None:
    invoice = InvoiceFactory()
    OutboundMessageFactory(invoice=invoice)

    pages = [
        admin_client.get(INVOICES),
        admin_client.get(reverse("admin:golomt_payments_invoice_change", args=[invoice.pk])),
        admin_client.get(MESSAGES),
    ]

    for page in pages:
        assert page.status_code == 200
        assert SECRET.encode() not in page.content
        assert b"test-bearer-token" not in page.content


# --- the "Check status with the bank" action ------------------------------------------------


def run_action(client: Client, *invoices: Invoice) -> Any:
    return client.post(
        INVOICES,
        {"action": "check_with_bank", "_selected_action": [inv.pk for inv in invoices]},
        follow=True,
    )


def test_check_action_reports_what_the_bank_said_and_changes_status_through_the_service(
    admin_client: Client,
    fake_bank: FakeBank,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    paid = InvoiceFactory(amount="1000.00")
    declined = InvoiceFactory(amount="1000.00")
    unpaid = InvoiceFactory(amount="1000.00")
    unknown = InvoiceFactory(amount="1000.00")
    answers = {
        paid.transaction_id: ("000", "Амжилттай"),
        declined.transaction_id: ("300", "Картын хугацаа дууссан"),
        unpaid.transaction_id: (None, None),
    }

    def inquiry(request: Any) -> tuple[int, dict[str, str], str]:
        tx = json.loads(request.body)["transactionId"]
        if tx not in answers:
            return 400, {}, json.dumps({"status": 400, "error": "NotFound", "message": "x"})
        code, desc = answers[tx]
        body = {
            "amount": "1000.00",
            "errorCode": code,
            "errorDesc": desc,
            "transactionId": tx,
            "status": "SENT" if code else "PENDING",
            "checksum": hmac_hex(tx, code, "1000.00"),
        }
        return 200, {}, json.dumps(body, ensure_ascii=False)

    fake_bank.inquiry_reply(inquiry)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, paid, declined, unpaid, unknown)

    assert response.status_code == 200
    said = " | ".join(messages_of(response))
    assert f"{paid.transaction_id}: the bank says 000 Амжилттай; pending → paid." in said
    assert (
        f"{declined.transaction_id}: the bank says 300 Картын хугацаа дууссан; pending → failed."
        in said
    )
    assert f"{unpaid.transaction_id}: the bank says —; unchanged (pending)." in said
    assert f"{unknown.transaction_id}: the bank says unknown to the bank; unchanged" in said
    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert statuses == {
        paid.pk: Status.PAID,
        declined.pk: Status.FAILED,
        unpaid.pk: Status.PENDING,
        unknown.pk: Status.PENDING,
    }
    assert set(StatusChange.objects.values_list("source", flat=True)) == {Source.ADMIN}
    assert StatusChange.objects.count() == 2
    assert sorted(signal_log.names()) == sorted(
        ["invoice_status_changed", "payment_succeeded", "invoice_status_changed", "payment_failed"]
    )
    assert len(fake_bank.calls("/api/inquiry")) == 4
    logged = BankMessage.objects.filter(direction=Direction.OUTBOUND, kind=MessageKind.INQUIRY)
    assert set(logged.values_list("invoice_id", flat=True)) == {
        paid.pk,
        declined.pk,
        unpaid.pk,
        unknown.pk,
    }


def test_check_action_reports_a_bank_that_cannot_be_reached(
    admin_client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry_down()

    response = run_action(admin_client, invoice)

    said = messages_of(response)
    assert said == [f"{invoice.transaction_id}: the bank could not be asked (BankTimeout)."]
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_check_action_is_offered_to_users_with_the_permission(admin_client: Client) -> None:
    InvoiceFactory()

    response = admin_client.get(INVOICES)

    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "check_with_bank" in choices
    assert "Check status with the bank" in response.content.decode()


def test_check_action_is_hidden_from_staff_without_the_permission(staff_client: Client) -> None:
    InvoiceFactory()

    response = staff_client.get(INVOICES)

    assert response.status_code == 200
    assert "check_with_bank" not in response.content.decode()
    assert "Check status with the bank" not in response.content.decode()


def test_check_action_is_refused_to_staff_without_the_permission(
    staff_client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    response = run_action(staff_client, invoice)

    assert response.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING
    assert not StatusChange.objects.exists()
    assert len(fake_bank.mock.calls) == 0
    assert not BankMessage.objects.exists()


def test_check_action_is_offered_once_the_permission_is_granted(
    staff_client: Client, django_user_model: Any, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    clerk = django_user_model.objects.get(username="clerk")
    clerk.user_permissions.add(Permission.objects.get(codename="check_invoice"))

    response = run_action(staff_client, invoice)

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    assert len(messages_of(response)) == 1


# --- the message log ------------------------------------------------------------------------


def test_message_log_changelist_loads_with_filters_and_search(admin_client: Client) -> None:
    push = BankMessageFactory()
    OutboundMessageFactory()

    listed = admin_client.get(MESSAGES)
    filtered = admin_client.get(MESSAGES, {"kind__exact": "push", "outcome__exact": "processed"})
    searched = admin_client.get(MESSAGES, {"q": push.transaction_id})

    assert listed.status_code == filtered.status_code == searched.status_code == 200
    assert [m.pk for m in filtered.context["cl"].result_list] == [push.pk]
    assert [m.pk for m in searched.context["cl"].result_list] == [push.pk]


def test_message_log_is_read_only(admin_client: Client) -> None:
    message = BankMessageFactory(body='{"transactionId": "x"}')
    change_url = reverse("admin:golomt_payments_bankmessage_change", args=[message.pk])

    add = admin_client.get(reverse("admin:golomt_payments_bankmessage_add"))
    view = admin_client.get(change_url)
    change = admin_client.post(change_url, {"body": "rewritten", "outcome": "rejected"})
    delete = admin_client.post(
        reverse("admin:golomt_payments_bankmessage_delete", args=[message.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        MESSAGES, {"action": "delete_selected", "_selected_action": [message.pk], "post": "yes"}
    )

    assert add.status_code == 403
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()
    assert change.status_code == 403
    assert delete.status_code == 403
    assert bulk.status_code in (200, 302)
    assert "delete_selected" not in admin_client.get(MESSAGES).content.decode()
    message.refresh_from_db()
    assert message.body == '{"transactionId": "x"}'
    assert BankMessage.objects.filter(pk=message.pk).exists()
