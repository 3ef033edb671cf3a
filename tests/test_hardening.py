"""Regression tests for the review's findings on the inbound paths, the admin and checkout.

Each test here failed before the fix it names. The NUL-character tests only bite on PostgreSQL
(SQLite stores NUL happily), so run the suite there too (DATABASE_URL).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from golomt_payments import services
from golomt_payments.admin import InvoiceAdmin
from golomt_payments.checkout import SALT, sign_checkout
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    BankMessage,
    Direction,
    Invoice,
    MessageKind,
    Outcome,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.services import TRANSITIONS, can_transition
from golomt_payments.services.payments import transition
from tests.factories import InvoiceFactory, OutboundMessageFactory
from tests.helpers import (
    SECRET,
    Clock,
    FakeBank,
    Reply,
    SignalRecorder,
    push_body,
    result_body,
    unpaid_body,
)
from tests.settings import GOLOMT_PAYMENTS

PUSH = "/payments/push/"
RETURN = "/payments/return/"
CHECKOUT = "/payments/checkout/"
INVOICES = reverse("admin:golomt_payments_invoice_changelist")
STATUSES = list(Status.values)


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """The inquiry throttle lives in the cache: every test starts with none asked."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """admin_client's user gets a password; hash it cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def paid_result(invoice: Invoice) -> TransactionResult:
    return parse_transaction_result(
        result_body(invoice.transaction_id, amount=invoice.amount_sent), SECRET, kind="inquiry"
    )


def send_push(client: Client, body: dict[str, Any] | bytes, path: str = PUSH, **extra: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False)
    return client.post(path, data=data, content_type="application/json", **extra)


def inbound(kind: str) -> list[BankMessage]:
    return list(BankMessage.objects.filter(direction=Direction.INBOUND, kind=kind).order_by("pk"))


# --- 1. an admin save never undoes a payment ------------------------------------------------


def change_url(invoice: Invoice) -> str:
    return reverse("admin:golomt_payments_invoice_change", args=[invoice.pk])


def form_data(page: Any) -> dict[str, Any]:
    """The POST data of an admin change form as the browser would send it back unedited (main
    form with its hidden initial values, inline management forms and inline rows)."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for field in form:
            value = field.value()
            if value is None or value is False:
                continue  # an unchecked checkbox is not sent
            data[field.html_name] = "on" if value is True else value
            if field.field.show_hidden_initial:  # fields with a callable default (metadata)
                data[field.html_initial_name] = data[field.html_name]

    add(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("when", ["before-the-post", "while-the-admin-saves"])
def test_admin_save_of_a_stale_form_keeps_a_payment_that_landed_meanwhile(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Staff open the form, the bank's push pays the invoice, staff save new metadata.

    ``while-the-admin-saves`` lands the payment after the admin read the row for the POST and
    before it saved: a full ``obj.save()`` wrote the old status and ``paid_at`` back.
    """
    invoice = InvoiceFactory(metadata={"note": "old"})
    page = admin_client.get(change_url(invoice))
    assert page.status_code == 200
    stale = form_data(page)
    assert json.loads(stale["metadata"]) == {"note": "old"}

    def pay() -> None:
        change = services.apply_result(
            Invoice.objects.get(pk=invoice.pk), paid_result(invoice), source=Source.PUSH
        )
        assert change.changed

    if when == "before-the-post":
        pay()
    else:
        read_for_post = InvoiceAdmin.get_object

        def get_object_then_pay(self: InvoiceAdmin, request: Any, *args: Any) -> Any:
            obj = read_for_post(self, request, *args)
            if request.method == "POST":
                pay()
            return obj

        monkeypatch.setattr(InvoiceAdmin, "get_object", get_object_then_pay)

    response = admin_client.post(change_url(invoice), {**stale, "metadata": '{"note": "new"}'})

    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.metadata == {"note": "new"}
    assert invoice.status == Status.PAID
    assert invoice.paid_at is not None
    assert invoice.bank_code == "000"
    assert invoice.card_number == "949625******0003"
    assert list(invoice.history.values_list("from_status", "to_status")) == [("pending", "paid")]


@pytest.mark.django_db
def test_admin_save_of_a_stale_form_keeps_a_review_flag_raised_meanwhile(
    admin_client: Client,
) -> None:
    """Staff open the form, a push paying the wrong amount flags the invoice, staff save new
    metadata: the flag they never saw must survive (a mismatch is recorded for a human)."""
    invoice = InvoiceFactory(metadata={"note": "old"})
    stale = form_data(admin_client.get(change_url(invoice)))
    services.flag_for_review(invoice, "bank reports '1.00' paid, invoice is for 1000.00")

    response = admin_client.post(change_url(invoice), {**stale, "metadata": '{"note": "new"}'})

    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.metadata == {"note": "new"}
    assert invoice.needs_review is True
    assert invoice.review_reason == "bank reports '1.00' paid, invoice is for 1000.00"


@pytest.mark.django_db
def test_admin_save_without_edits_writes_nothing(admin_client: Client) -> None:
    invoice = InvoiceFactory(reference="ORD-SAME")
    before = Invoice.objects.values().get(pk=invoice.pk)
    page = admin_client.get(change_url(invoice))

    response = admin_client.post(change_url(invoice), form_data(page))

    assert response.status_code == 302
    assert Invoice.objects.values().get(pk=invoice.pk) == before


# --- 2. no bank call inside a database transaction ------------------------------------------


class AtomicProbe:
    """Answers the bank's inquiry, signed, and records whether the caller was in a
    transaction at that moment."""

    def __init__(self, error_code: str | None = "000") -> None:
        self.error_code = error_code
        self.in_atomic_block: list[bool] = []

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        self.in_atomic_block.append(connection.in_atomic_block)
        tx = json.loads(request.body or b"{}")["transactionId"]
        body = result_body(tx, error_code=self.error_code)
        return 200, {}, json.dumps(body, ensure_ascii=False)


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shop that runs with ``ATOMIC_REQUESTS = True``."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("atomic_requests")
def test_admin_check_action_asks_the_bank_outside_any_transaction(
    admin_client: Client, fake_bank: FakeBank
) -> None:
    first, second = InvoiceFactory(), InvoiceFactory()
    probe = AtomicProbe()
    fake_bank.inquiry_reply(probe)

    response = admin_client.post(
        INVOICES,
        {"action": "check_with_bank", "_selected_action": [first.pk, second.pk]},
    )

    assert response.status_code == 302
    assert probe.in_atomic_block == [False, False]
    assert set(Invoice.objects.values_list("status", flat=True)) == {Status.PAID}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("atomic_requests")
@pytest.mark.parametrize("entry", ["redirect", "push", "status"])
def test_inbound_views_ask_the_bank_outside_any_transaction(
    client: Client, fake_bank: FakeBank, entry: str
) -> None:
    invoice = InvoiceFactory()
    probe = AtomicProbe()
    fake_bank.inquiry_reply(probe)

    if entry == "redirect":
        response = client.get(RETURN, {"invoice": invoice.transaction_id})
        assert response.status_code == 302
    elif entry == "push":
        response = send_push(client, push_body(invoice.transaction_id))
        assert response.status_code == 200
    else:
        response = client.get(reverse("golomt_payments:status", kwargs={"key": invoice.key}))
        assert response.status_code == 200

    assert probe.in_atomic_block == [False]
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


# --- 3. NUL characters are logged, never a 500 ------------------------------------------------


@pytest.mark.django_db
def test_push_with_a_raw_nul_byte_is_rejected_and_logged(
    client: Client, fake_bank: FakeBank
) -> None:
    response = send_push(client, b'{"transactionId":"abc\x00"}')

    assert response.status_code == 400
    (message,) = inbound(MessageKind.PUSH)
    assert message.outcome == Outcome.REJECTED
    assert "\x00" not in message.body
    assert message.body == '{"transactionId":"abc\ufffd"}'
    assert len(fake_bank.mock.calls) == 0


@pytest.mark.django_db
def test_forged_push_with_an_escaped_nul_in_error_desc_is_rejected_and_logged(
    client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    body = push_body(invoice.transaction_id, error_desc="Амжилттай\x00")
    body["checksum"] = "0" * 64
    assert "\\u0000" in json.dumps(body)

    response = send_push(client, body)

    assert response.status_code == 400
    (message,) = inbound(MessageKind.PUSH)
    assert (message.outcome, message.checksum_valid) == (Outcome.REJECTED, False)
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("confirm", [True, False], ids=["confirmed-by-inquiry", "trusted"])
def test_signed_push_with_an_escaped_nul_in_error_desc_is_processed_and_logged(
    client: Client, fake_bank: FakeBank, confirm: bool
) -> None:
    """errorDesc is outside the checksum: a NUL in it must not make the push a 500."""
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    body = push_body(invoice.transaction_id, error_desc="Амжилттай\x00")

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CONFIRM_PUSH_WITH_INQUIRY": confirm}
    ):
        response = send_push(client, body)

    assert response.status_code == 200
    (message,) = inbound(MessageKind.PUSH)
    assert message.outcome == Outcome.PROCESSED
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert "\x00" not in invoice.bank_description


@pytest.mark.django_db
def test_inquiry_answer_with_a_nul_in_error_desc_is_applied_not_a_500(
    client: Client, fake_bank: FakeBank
) -> None:
    """The inquiry's errorDesc, bank and cardNumber are outside its checksum too."""
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="300", error_desc="Татгалзсан\x00", bank="Голомт\x00")

    response = client.get(RETURN, {"invoice": invoice.transaction_id})

    assert response.status_code == 302
    (message,) = inbound(MessageKind.REDIRECT)
    assert message.outcome == Outcome.PROCESSED
    invoice.refresh_from_db()
    assert invoice.status == Status.FAILED
    assert "\x00" not in invoice.bank_description + invoice.card_bank


@pytest.mark.django_db
def test_push_with_a_nul_in_a_header_is_logged(client: Client, fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    response = send_push(client, push_body(invoice.transaction_id), HTTP_X_TRACE="a\x00b")

    assert response.status_code == 200
    (message,) = inbound(MessageKind.PUSH)
    assert message.headers["X-Trace"] == "a\ufffdb"
    assert message.outcome == Outcome.PROCESSED


@pytest.mark.django_db
def test_redirect_with_a_nul_in_the_invoice_parameter_is_refused_and_logged(
    client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()

    response = client.get(f"{RETURN}?invoice={invoice.transaction_id}%00")

    assert response.status_code == 400
    (message,) = inbound(MessageKind.REDIRECT)
    assert message.outcome == Outcome.REJECTED
    assert message.body == f"invoice={invoice.transaction_id}%00"
    assert len(fake_bank.mock.calls) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_redirect_with_a_nul_in_another_parameter_is_processed_and_logged(
    client: Client, fake_bank: FakeBank, method: str
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")
    query = f"invoice={invoice.transaction_id}&desc=%00&status_code=000"

    if method == "GET":
        response = client.get(f"{RETURN}?{query}", HTTP_X_TRACE="a\x00b")
    else:  # a raw NUL byte in the form body, as a broken client could send it
        raw = f"invoice={invoice.transaction_id}&desc=\x00&status_code=000"
        response = client.post(
            RETURN, raw.encode(), content_type="application/x-www-form-urlencoded"
        )

    assert response.status_code == 302
    (message,) = inbound(MessageKind.REDIRECT)
    assert message.outcome == Outcome.PROCESSED
    assert "\x00" not in message.body
    assert "\x00" not in json.dumps(message.headers)
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


# --- 4. the push is answered and logged whatever the client asks for -------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", "text/html"),
        ("", "application/xml"),
        ("?format=xml", "application/json"),
        ("?format=html", "text/html"),
    ],
)
def test_push_is_answered_in_json_and_logged_whatever_the_accept_header_or_format(
    client: Client, fake_bank: FakeBank, query: str, accept: str
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000")

    response = send_push(
        client, push_body(invoice.transaction_id), PUSH + query, HTTP_ACCEPT=accept
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "processed"}
    (message,) = inbound(MessageKind.PUSH)
    assert message.outcome == Outcome.PROCESSED
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


@pytest.mark.django_db
def test_forged_push_asking_for_html_is_rejected_in_json_and_logged(client: Client) -> None:
    invoice = InvoiceFactory()
    body = push_body(invoice.transaction_id)
    body["checksum"] = "0" * 64

    response = send_push(client, body, HTTP_ACCEPT="text/html")

    assert response.status_code == 400
    assert response.json() == {"detail": "checksum does not verify"}
    (message,) = inbound(MessageKind.PUSH)
    assert message.outcome == Outcome.REJECTED


# --- 5. checkout refuses a signed payload that could never become an invoice -----------------


def hand_signed(*, reference: str = "ORD-1", account: str = "default") -> str:
    """Signed the way :func:`sign_checkout` does, without its checks (an older shop release,
    or a shop that signs by hand)."""
    payload = {"a": "1000.00", "r": reference, "c": account, "t": False}
    return signing.dumps(payload, salt=SALT, compress=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"reference": "R" * 101}, id="reference-too-long"),
        pytest.param({"account": "nonexistent"}, id="unknown-account"),
    ],
)
def test_checkout_with_a_signed_but_unusable_payload_is_a_400_page_and_no_invoice(
    client: Client, fake_bank: FakeBank, payload: dict[str, str]
) -> None:
    fake_bank.invoice()

    response = client.post(CHECKOUT, {"payload": hand_signed(**payload)})

    assert response.status_code == 400
    assert "This checkout form is invalid or has expired." in response.content.decode()
    assert not Invoice.objects.exists()
    assert len(fake_bank.mock.calls) == 0


@pytest.mark.django_db
def test_checkout_accepts_a_reference_of_exactly_100_characters(
    client: Client, fake_bank: FakeBank
) -> None:
    fake_bank.invoice()

    response = client.post(CHECKOUT, {"payload": sign_checkout(amount=1000, reference="R" * 100)})

    assert response.status_code == 303
    assert Invoice.objects.get().reference == "R" * 100


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"reference": "R" * 101}, "longer than 100"),
        ({"reference": "ORD-1", "account": "nonexistent"}, "no merchant account"),
    ],
)
def test_sign_checkout_refuses_what_could_never_become_an_invoice(
    kwargs: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        sign_checkout(amount=Decimal("1000"), **kwargs)


# --- 6. staff see card tokens masked -----------------------------------------------------------


TOKEN = "7a1c0e9b5d2f4a6c8e0b1d3f5a7c9e1b"


@pytest.mark.django_db
def test_message_log_admin_masks_card_tokens_in_body_and_response(admin_client: Client) -> None:
    invoice = InvoiceFactory()
    sent = json.dumps({"amount": "1000.00", "token": TOKEN, "transactionId": "x"}, sort_keys=True)
    answer = json.dumps(result_body(invoice.transaction_id, token=TOKEN), ensure_ascii=False)
    message = OutboundMessageFactory(
        invoice=invoice, kind=MessageKind.PAY, endpoint="/api/pay", body=sent, response=answer
    )

    page = admin_client.get(reverse("admin:golomt_payments_bankmessage_change", args=[message.pk]))

    assert page.status_code == 200
    content = page.content.decode()
    assert TOKEN not in content
    assert TOKEN[:-4] not in content
    assert content.count(f"…{TOKEN[-4:]}") == 2  # once in the body, once in the response
    assert invoice.transaction_id in content  # the rest of the message is shown
    raw = BankMessage.objects.get(pk=message.pk)
    assert json.loads(raw.body)["token"] == TOKEN
    assert json.loads(raw.response)["token"] == TOKEN


@pytest.mark.django_db
def test_message_log_admin_masks_the_token_of_a_logged_push(
    admin_client: Client, fake_bank: FakeBank
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code="000", token=TOKEN)
    assert send_push(Client(), push_body(invoice.transaction_id, token=TOKEN)).status_code == 200
    (push,) = inbound(MessageKind.PUSH)
    inquiry = BankMessage.objects.get(direction=Direction.OUTBOUND, kind=MessageKind.INQUIRY)

    for message in (push, inquiry):
        page = admin_client.get(
            reverse("admin:golomt_payments_bankmessage_change", args=[message.pk])
        )
        assert page.status_code == 200
        assert TOKEN not in page.content.decode()
    assert TOKEN in push.body


# --- 7. one inquiry per interval, shared by the redirect and the status page -----------------


def status_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:status", kwargs={"key": invoice.key})


@pytest.mark.django_db
def test_redirects_within_the_interval_ask_the_bank_once_and_are_all_logged(
    client: Client, fake_bank: FakeBank, clock: Clock
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)

    for _ in range(20):
        assert client.get(RETURN, {"invoice": invoice.transaction_id}).status_code == 302

    assert len(fake_bank.calls("/api/inquiry")) == 1
    redirects = inbound(MessageKind.REDIRECT)
    assert len(redirects) == 20
    assert {m.invoice_id for m in redirects} == {invoice.pk}
    assert [m.outcome for m in redirects] == [Outcome.UNCHANGED] * 20
    assert redirects[1].error == "asked the bank moments ago"

    clock.offset = 6  # the default interval is 5 seconds
    client.get(RETURN, {"invoice": invoice.transaction_id})

    assert len(fake_bank.calls("/api/inquiry")) == 2


@pytest.mark.django_db
def test_throttled_redirect_still_asks_once_the_interval_has_passed_and_pays(
    client: Client, fake_bank: FakeBank, clock: Clock
) -> None:
    invoice = InvoiceFactory()
    answers = iter([unpaid_body(invoice.transaction_id), result_body(invoice.transaction_id)])
    fake_bank.inquiry_reply(lambda request: (200, {}, json.dumps(next(answers))))

    client.get(RETURN, {"invoice": invoice.transaction_id})
    client.get(RETURN, {"invoice": invoice.transaction_id})
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING

    clock.offset = 6
    client.get(RETURN, {"invoice": invoice.transaction_id})

    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID
    assert len(fake_bank.calls("/api/inquiry")) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("first", ["redirect", "status"])
def test_redirect_and_status_page_share_one_inquiry_throttle(
    client: Client, fake_bank: FakeBank, clock: Clock, first: str
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None)

    def redirect() -> None:
        assert client.get(RETURN, {"invoice": invoice.transaction_id}).status_code == 302

    def poll() -> None:
        assert client.get(status_url(invoice)).status_code == 200

    order = [redirect, poll] if first == "redirect" else [poll, redirect]
    for visit in order * 3:
        visit()

    assert len(fake_bank.calls("/api/inquiry")) == 1

    clock.offset = 6
    order[1]()

    assert len(fake_bank.calls("/api/inquiry")) == 2


# --- 8. the transition table: why the unlocked pre-check is safe ------------------------------


def reachable(start: str) -> set[str]:
    """Every status an invoice at ``start`` can be in later (one or more steps)."""
    seen: set[str] = set()
    todo = list(TRANSITIONS[start])
    while todo:
        status = todo.pop()
        if status not in seen:
            seen.add(status)
            todo.extend(TRANSITIONS[status])
    return seen


@pytest.mark.parametrize(("start", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_a_move_refused_from_a_status_is_refused_from_every_later_status(
    start: str, target: str
) -> None:
    """``transition`` skips the lock when its caller's (possibly stale) copy already refuses
    the move. That is only safe if the row, wherever it has got to since, refuses it too."""
    if can_transition(start, target):
        return
    for later in reachable(start):
        assert not can_transition(later, target), f"{start} refuses {target}, {later} allows it"


@given(start=st.sampled_from(STATUSES), target=st.sampled_from(STATUSES), data=st.data())
def test_a_stale_copy_never_refuses_what_the_locked_row_would_allow(
    start: str, target: str, data: st.DataObject
) -> None:
    """Walk the table at random from what a request read; the row where the walk ends must
    refuse every move the stale read refused."""
    now = start
    for _ in range(data.draw(st.integers(0, 6), label="steps")):
        nexts = sorted(TRANSITIONS[now])
        if not nexts:
            break
        now = data.draw(st.sampled_from(nexts), label="moved to")
    if not can_transition(start, target):
        assert not can_transition(now, target)


def test_paid_has_no_way_out() -> None:
    assert TRANSITIONS[Status.PAID] == frozenset()
    assert reachable(Status.PAID) == set()
    assert not any(can_transition(Status.PAID, target) for target in STATUSES)


def test_every_status_can_still_end_paid_except_paid_itself() -> None:
    """Money the bank took is never left unrecorded: paid stays reachable from everywhere."""
    for status in STATUSES:
        if status != Status.PAID:
            assert Status.PAID in reachable(status), status


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("read", "now"),
    [(read, now) for read in STATUSES for now in sorted({read} | reachable(read))],
)
def test_transition_with_a_stale_copy_never_makes_a_move_the_row_refuses(
    read: str, now: str, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    """A caller read the invoice at ``read``; the row has since moved on to ``now``."""
    for target in STATUSES:
        if can_transition(now, target):
            continue
        invoice = InvoiceFactory(status=now)
        stale = Invoice.objects.get(pk=invoice.pk)
        stale.status = read
        before = Invoice.objects.values().get(pk=invoice.pk)

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            change = transition(invoice.pk, target, source=Source.PUSH, known=stale)

        assert not change.changed, (read, now, target)
        assert Invoice.objects.values().get(pk=invoice.pk) == before
        assert not StatusChange.objects.filter(invoice=invoice).exists()
        assert callbacks == []
    assert signal_log.received == []
