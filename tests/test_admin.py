"""Staff screens: invoices with history and messages, the check action, the read-only log."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from golomt_payments.models import (
    BankMessage,
    CardToken,
    Direction,
    Invoice,
    MessageKind,
    SettledTransaction,
    SettlementMismatch,
    Source,
    Status,
    StatusChange,
)
from tests.factories import (
    BankMessageFactory,
    CardTokenFactory,
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
    assert set(formsets) == {"history", "refunds", "notifications", "messages"}
    assert formsets["history"].formset.queryset.count() == 1
    assert formsets["messages"].formset.queryset.count() == 2
    content = response.content.decode()
    assert "Push notification" in content
    assert "Check transaction" in content
    assert invoice.transaction_id in content


def test_invoice_admin_never_adds_invoices_by_hand(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:golomt_payments_invoice_add"))

    assert response.status_code == 403


def test_invoice_status_amount_and_reference_are_read_only_in_the_admin(
    admin_client: Client,
) -> None:
    """Status moves only through the services; the reference names the order, which the
    database keeps to one payment: neither is edited by hand. Metadata is the shop's."""
    invoice = InvoiceFactory()
    reference = invoice.reference
    url = reverse("admin:golomt_payments_invoice_change", args=[invoice.pk])

    admin_client.post(
        url,
        {
            "status": "paid",
            "amount": "1.00",
            "reference": "edited",
            "metadata": '{"note": "edited"}',
            "review_reason": "",
            **{
                f"{inline}-{count}": "0"
                for inline in ("history", "refunds", "notifications", "messages")
                for count in ("TOTAL_FORMS", "INITIAL_FORMS")
            },
        },
    )

    invoice.refresh_from_db()
    assert invoice.metadata == {"note": "edited"}
    assert invoice.reference == reference
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


# --- how the pages show what they show ----------------------------------------------------

TWO_ACCOUNTS = {
    "ACCOUNTS": {
        "default": {"BEARER_TOKEN": "t", "SECRET": "s", "BASE_URL": "https://bank.test"},
        "wholesale": {"BEARER_TOKEN": "t2", "SECRET": "s2", "BASE_URL": "https://bank.test"},
    },
    "CALLBACK_BASE_URL": "https://shop.test",
}


def change_url(obj: Model) -> str:
    return reverse(f"admin:golomt_payments_{obj._meta.model_name}_change", args=[obj.pk])


def test_invoice_list_groups_amounts_in_tugrik_and_still_sorts_by_the_amount(
    admin_client: Client,
) -> None:
    big = InvoiceFactory(amount=Decimal("1250000"), reference="ORD-BIG")
    cents = InvoiceFactory(amount=Decimal("9800.50"), reference="ORD-CENTS")
    small = InvoiceFactory(amount=Decimal("45000"), reference="ORD-SMALL")

    listed = admin_client.get(INVOICES)
    column = listed.context["cl"].list_display.index("amount_and_method")
    ascending = admin_client.get(INVOICES, {"o": str(column)})
    descending = admin_client.get(INVOICES, {"o": f"-{column}"})

    page = listed.content.decode()
    assert "1,250,000\u00a0₮" in page and "9,800.50\u00a0₮" in page and "45,000\u00a0₮" in page
    assert "1250000.00" not in page
    assert [i.pk for i in ascending.context["cl"].result_list] == [cents.pk, small.pk, big.pk]
    assert [i.pk for i in descending.context["cl"].result_list] == [big.pk, small.pk, cents.pk]


def test_invoice_page_groups_the_amount_and_shows_the_amount_as_sent_as_it_was_sent(
    admin_client: Client,
) -> None:
    invoice = InvoiceFactory(amount=Decimal("1250000"))

    page = admin_client.get(change_url(invoice)).content.decode()

    assert '<div class="readonly">1,250,000\u00a0₮</div>' in page
    assert '<div class="readonly">1250000.00</div>' in page  # the text the bank was sent


def test_settlement_lists_group_their_amounts(admin_client: Client) -> None:
    invoice = InvoiceFactory(paid=True, amount=Decimal("18000"))
    settled = SettledTransaction.objects.create(
        bank_id="S-1",
        merchant_invoice=invoice.transaction_id,
        settled_on=datetime.date(2024, 12, 5),
        amount=Decimal("1800"),
    )
    SettlementMismatch.objects.create(
        day=settled.settled_on,
        kind="amount",
        invoice=invoice,
        settled=settled,
        expected_amount=invoice.amount,
        settled_amount=settled.amount,
    )

    settled_list = admin_client.get(
        reverse("admin:golomt_payments_settledtransaction_changelist")
    ).content.decode()
    settled_page = admin_client.get(change_url(settled)).content.decode()
    mismatches = admin_client.get(
        reverse("admin:golomt_payments_settlementmismatch_changelist")
    ).content.decode()

    assert "1,800\u00a0₮" in settled_list and "1,800\u00a0₮" in settled_page
    assert "18,000\u00a0₮" in mismatches and "1,800\u00a0₮" in mismatches
    assert "1800.00" not in settled_list + mismatches


def test_invoice_list_marks_the_invoice_to_review_beside_its_status(admin_client: Client) -> None:
    InvoiceFactory(paid=True, needs_review=True, review_reason="Paid 1800.00 of 18000.00.")
    InvoiceFactory(paid=True)

    page = admin_client.get(INVOICES).content.decode()

    assert page.count('class="golomt-needs-review"') == 1
    assert 'title="Paid 1800.00 of 18000.00."' in page
    assert "⚑ Needs review" in page


def test_invoice_list_shows_the_account_only_where_there_are_several(
    admin_client: Client, settings: Any
) -> None:
    InvoiceFactory(account="default")

    one = admin_client.get(INVOICES).context["cl"].list_display
    settings.GOLOMT_PAYMENTS = TWO_ACCOUNTS
    two = admin_client.get(INVOICES).context["cl"].list_display

    assert "account_shown" not in one
    assert two[two.index("amount_and_method") + 1] == "account_shown"


@pytest.mark.parametrize(
    "model", [Invoice, StatusChange, BankMessage, SettledTransaction, CardToken]
)
def test_payment_records_cannot_be_deleted_in_the_admin(
    rf: RequestFactory, admin_user: Any, model: type[Model]
) -> None:
    request = rf.get("/")
    request.user = admin_user
    invoice_admin = admin.site._registry[Invoice]
    inlines = {inline.model: inline for inline in invoice_admin.get_inline_instances(request)}
    model_admin = inlines[model] if model is StatusChange else admin.site._registry[model]

    assert model_admin.has_delete_permission(request) is False


def test_an_invoice_is_not_deleted_from_its_page_nor_from_the_list(admin_client: Client) -> None:
    invoice = InvoiceFactory(paid=True)
    BankMessageFactory(invoice=invoice)
    StatusChangeFactory(invoice=invoice)

    page = admin_client.get(change_url(invoice)).content.decode()
    delete = admin_client.post(
        reverse("admin:golomt_payments_invoice_delete", args=[invoice.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        INVOICES, {"action": "delete_selected", "_selected_action": [invoice.pk], "post": "yes"}
    )

    assert "deletelink" not in page and 'name="history-0-DELETE"' not in page
    assert delete.status_code == 403
    assert bulk.status_code in (200, 302)
    assert "delete_selected" not in admin_client.get(INVOICES).content.decode()
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    assert invoice.history.count() == 1 and invoice.messages.count() == 1


def test_a_saved_card_is_not_deleted_from_its_page(
    admin_client: Client, django_user_model: Any
) -> None:
    card = CardTokenFactory(owner=django_user_model.objects.create_user("customer"))

    delete = admin_client.post(
        reverse("admin:golomt_payments_cardtoken_delete", args=[card.pk]), {"post": "yes"}
    )

    assert delete.status_code == 403
    assert CardToken.objects.filter(pk=card.pk).exists()


def test_the_history_rows_read_in_the_staff_members_language(admin_client: Client) -> None:
    invoice = InvoiceFactory(paid=True)
    change = StatusChangeFactory(
        invoice=invoice, from_status=Status.PENDING, to_status=Status.PAID, source=Source.PUSH
    )

    mongolian = admin_client.get(change_url(invoice), HTTP_ACCEPT_LANGUAGE="mn")
    english = admin_client.get(change_url(invoice), HTTP_ACCEPT_LANGUAGE="en")

    with translation.override("mn"):
        assert str(change) == "Төлбөр хүлээж байна → Төлөгдсөн (Push мэдэгдэл)"
    with translation.override("en"):
        assert str(change) == "Waiting for payment → Paid (Push notification)"
    page = mongolian.content.decode()
    assert "pending → paid (push)" not in page
    assert "Waiting for payment" not in page
    history = page[page.index('id="history-group"') : page.index('id="messages-group"')]
    assert "Төлбөр хүлээж байна" in history and "Төлөгдсөн" in history
    assert "Push мэдэгдэл" in history
    assert "pending → paid" not in english.content.decode()


def test_the_message_links_on_an_invoice_page_say_view(admin_client: Client) -> None:
    invoice = InvoiceFactory()
    message = OutboundMessageFactory(invoice=invoice)

    page = admin_client.get(change_url(invoice)).content.decode()

    assert f'href="{change_url(message)}" class="inlineviewlink">View</a>' in page
    assert "inlinechangelink" not in page


def test_message_page_shows_indented_json_with_the_card_token_still_masked(
    admin_client: Client,
) -> None:
    message = OutboundMessageFactory(
        kind=MessageKind.GET_TOKEN,
        body=json.dumps({"invoice": "GP1", "lang": "mn"}),
        response=json.dumps({"token": "tok-5b1e0c7d2a9f3a", "errorCode": "000"}),
    )

    page = admin_client.get(change_url(message)).content.decode()

    response = '{\n  "token": "…9f3a",\n  "errorCode": "000"\n}'
    body = '{\n  "invoice": "GP1",\n  "lang": "mn"\n}'
    assert f">{escape(response)}</pre>" in page
    assert f">{escape(body)}</pre>" in page
    assert "tok-5b1e0c7d2a9f3a" not in page and "5b1e0c7d2a" not in page


def test_message_page_shows_a_body_that_is_not_json_as_it_came_with_tokens_masked(
    admin_client: Client,
) -> None:
    message = BankMessageFactory(
        body='invoice=GP1&status_code=000 "token": "tok-5b1e0c7d2a9f3a"', response=""
    )

    page = admin_client.get(change_url(message)).content.decode()

    shown = 'invoice=GP1&status_code=000 "token": "…9f3a"'
    assert f">{escape(shown)}</pre>" in page
    assert "tok-5b1e0c7d2a9f3a" not in page


def test_every_empty_value_shows_as_one_dash(admin_client: Client) -> None:
    invoice = InvoiceFactory()  # no card, no customer, not paid
    message = BankMessageFactory(invoice=invoice, remote_addr=None, error="")

    pages = [
        admin_client.get(change_url(invoice)).content.decode(),
        admin_client.get(change_url(message)).content.decode(),
    ]

    for page in pages:
        assert '<div class="readonly">—</div>' in page
        assert '<div class="readonly">-</div>' not in page
        assert "<p>-</p>" not in page
