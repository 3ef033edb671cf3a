"""Rules the code keeps that no other test held in place, each driven through a real entry
point: the push view, the return view, the status view and the services.

Grouped by rule; each group's docstring names the rule it pins.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.db import connection, connections, transaction
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from golomt_payments import services, views
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    BankMessage,
    CardToken,
    Direction,
    Invoice,
    MessageKind,
    Outcome,
    Source,
    Status,
    StatusChange,
)
from tests.factories import InvoiceFactory
from tests.helpers import SECRET, FakeBank, SignalRecorder, push_body, result_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

PUSH = "/payments/push/"
RETURN = "/payments/return/"

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL"
)

#: Codes that look like success but are not the bank's "000": the settlement report's "00",
#: one digit too many, a stray space, and the empty string.
NEAR_MISSES = ["00", "0000", " 000", ""]


@pytest.fixture
def bank_sender() -> Client:
    """The bank's server: no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def browser() -> Client:
    """A customer's browser arriving cross-site: CSRF enforced, no session cookie."""
    return Client(enforce_csrf_checks=True)


def settings_with(**extra: Any) -> Any:
    return override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, **extra})


def send_push(
    sender: Client,
    body: dict[str, Any],
    *,
    content_type: str = "application/json",
    **extra: Any,
) -> Any:
    data = json.dumps(body, ensure_ascii=False)
    return sender.post(PUSH, data=data, content_type=content_type, **extra)


def come_back(browser: Client, invoice: Invoice, *, secure: bool = False, **params: str) -> Any:
    """The bank's POST back to the return view, claiming success unless told otherwise."""
    data = {"invoice": invoice.transaction_id, "status_code": "000", "desc": "Амжилттай", **params}
    return browser.post(
        RETURN, urlencode(data), content_type="application/x-www-form-urlencoded", secure=secure
    )


def poll_status(client: Client, invoice: Invoice) -> dict[str, Any]:
    response = client.get(reverse("golomt_payments:status", kwargs={"key": invoice.key}))
    assert response.status_code == 200
    return dict(response.json())


def result_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:result", kwargs={"key": invoice.key})


def bank_result(invoice: Invoice, **kwargs: Any) -> TransactionResult:
    """A verified inquiry answer about ``invoice`` (paid unless told otherwise)."""
    body = result_body(invoice.transaction_id, amount=invoice.amount_sent, **kwargs)
    return parse_transaction_result(body, SECRET, kind="inquiry")


def push_message() -> BankMessage:
    return BankMessage.objects.get(direction=Direction.INBOUND, kind=MessageKind.PUSH)


def status_of(invoice: Invoice) -> str:
    return str(Invoice.objects.values_list("status", flat=True).get(pk=invoice.pk))


def moves(invoice: Invoice) -> list[tuple[str, str]]:
    return list(
        StatusChange.objects.filter(invoice=invoice)
        .order_by("pk")
        .values_list("from_status", "to_status")
    )


def after_near_miss(code: str) -> str:
    """Where a pending invoice ends when the bank answers ``code``: "" is no result yet, any
    other code but "000" is a decline."""
    return Status.PENDING if code == "" else Status.FAILED


# --- 1. only "000" is paid -------------------------------------------------------------------


class TestOnlyTripleZeroIsPaid:
    """Rule: the one errorCode that means the money moved is exactly "000". "00" (the
    settlement report's success code), "0000", " 000" and "" never mark an invoice paid,
    whoever brings them: the inquiry behind a redirect, the status page or ``refresh``, and the
    push, applied on its own word or confirmed by an inquiry."""

    @pytest.mark.parametrize("code", NEAR_MISSES)
    def test_inquiry_answer_behind_a_redirect_does_not_mark_paid(
        self,
        browser: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
        code: str,
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        with django_capture_on_commit_callbacks(execute=True):
            response = come_back(browser, invoice)

        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == after_near_miss(code)
        assert "payment_succeeded" not in signal_log.names()
        assert response["Location"] == result_url(invoice)

    @pytest.mark.parametrize("code", NEAR_MISSES)
    def test_inquiry_answer_behind_the_status_page_does_not_mark_paid(
        self, client: Client, fake_bank: FakeBank, code: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        status = poll_status(client, invoice)

        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status["paid"] is False
        assert status["status"] == after_near_miss(code)
        assert status_of(invoice) == after_near_miss(code)

    @pytest.mark.parametrize("code", NEAR_MISSES)
    def test_refresh_does_not_mark_paid(
        self, fake_bank: FakeBank, signal_log: SignalRecorder, code: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        change = services.refresh(invoice, source=Source.RECONCILE)

        assert change.new_status == after_near_miss(code)
        assert status_of(invoice) == after_near_miss(code)
        assert Invoice.objects.get(pk=invoice.pk).paid_at is None

    @pytest.mark.parametrize("code", NEAR_MISSES)
    def test_push_applied_on_its_own_word_does_not_mark_paid(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
        code: str,
    ) -> None:
        invoice = InvoiceFactory()

        with (
            settings_with(CONFIRM_PUSH_WITH_INQUIRY=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = send_push(bank_sender, push_body(invoice.transaction_id, error_code=code))

        assert response.status_code == 200
        assert len(fake_bank.mock.calls) == 0  # the push's own word was applied
        assert status_of(invoice) == after_near_miss(code)
        assert "payment_succeeded" not in signal_log.names()

    @pytest.mark.parametrize("code", NEAR_MISSES)
    def test_push_confirmed_by_the_inquiry_does_not_mark_paid(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
        code: str,
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        with (
            settings_with(CONFIRM_PUSH_WITH_INQUIRY=True),
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = send_push(bank_sender, push_body(invoice.transaction_id, error_code=code))

        assert response.status_code == 200
        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == after_near_miss(code)
        assert "payment_succeeded" not in signal_log.names()

    def test_triple_zero_pushed_on_its_own_word_marks_paid(
        self, bank_sender: Client, fake_bank: FakeBank
    ) -> None:
        """The control: the same push with "000" pays."""
        invoice = InvoiceFactory()

        with settings_with(CONFIRM_PUSH_WITH_INQUIRY=False):
            response = send_push(bank_sender, push_body(invoice.transaction_id, error_code="000"))

        assert response.status_code == 200
        assert status_of(invoice) == Status.PAID


# --- 2. an empty errorCode is no result yet ----------------------------------------------------


class TestEmptyCodeIsNoResultYet:
    """Rule: an errorCode of "" or null means the bank has no outcome yet (the customer has not
    finished). The invoice stays open, with no history row and no signal; it is never read as
    a decline (``failed``)."""

    @pytest.mark.parametrize("code", ["", None])
    def test_inquiry_with_no_code_leaves_the_invoice_pending(
        self, fake_bank: FakeBank, signal_log: SignalRecorder, code: str | None
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        change = services.refresh(invoice, source=Source.RECONCILE)

        assert not change.changed
        assert change.reason == "bank has no result yet"
        assert status_of(invoice) == Status.PENDING
        assert moves(invoice) == []
        assert signal_log.received == []

    @pytest.mark.parametrize("code", ["", None])
    def test_redirect_with_no_code_from_the_bank_leaves_the_invoice_pending(
        self, browser: Client, fake_bank: FakeBank, code: str | None
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        come_back(browser, invoice, status_code="", desc="")

        assert status_of(invoice) == Status.PENDING
        assert BankMessage.objects.get(kind=MessageKind.REDIRECT).outcome == Outcome.UNCHANGED

    @pytest.mark.parametrize("code", ["", None])
    def test_status_page_with_no_code_from_the_bank_is_not_final(
        self, client: Client, fake_bank: FakeBank, code: str | None
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        status = poll_status(client, invoice)

        assert (status["status"], status["final"], status["next"]) == (
            Status.PENDING,
            False,
            None,
        )

    @pytest.mark.parametrize("confirm", [False, True])
    @pytest.mark.parametrize("code", ["", None])
    def test_push_with_no_code_leaves_the_invoice_pending(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        code: str | None,
        confirm: bool,
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code=code)

        with settings_with(CONFIRM_PUSH_WITH_INQUIRY=confirm):
            response = send_push(bank_sender, push_body(invoice.transaction_id, error_code=code))

        assert response.status_code == 200
        assert response.json() == {"detail": "bank has no result yet"}
        assert status_of(invoice) == Status.PENDING
        assert moves(invoice) == []
        assert signal_log.received == []
        assert push_message().outcome == Outcome.UNCHANGED

    def test_no_code_does_not_close_a_new_invoice_either(self, fake_bank: FakeBank) -> None:
        invoice = InvoiceFactory(status=Status.NEW)
        fake_bank.inquiry(error_code="")

        services.refresh(invoice, source=Source.RECONCILE)

        assert status_of(invoice) == Status.NEW


# --- 3. a closed invoice the bank now reports paid ---------------------------------------------


CLOSED = [
    pytest.param({"failed": True}, id="failed"),
    pytest.param({"expired": True}, id="expired"),
]


class TestClosedInvoicePaidAfterAll:
    """Rule: a failed or expired invoice that the bank now reports paid becomes paid (money the
    bank took is never left unrecorded), but only on the inquiry's word: a push for it is
    confirmed with an inquiry like any other, and so is the customer's redirect."""

    @pytest.mark.parametrize("closed", CLOSED)
    def test_push_is_confirmed_by_an_inquiry_and_marks_paid(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
        closed: dict[str, bool],
    ) -> None:
        invoice = InvoiceFactory(**closed)
        before = invoice.status
        fake_bank.inquiry(error_code="000")

        with django_capture_on_commit_callbacks(execute=True):
            response = send_push(bank_sender, push_body(invoice.transaction_id))

        assert response.status_code == 200
        assert response.json() == {"detail": "processed"}
        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == Status.PAID
        assert moves(invoice) == [(before, Status.PAID)]
        assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
        assert StatusChange.objects.get(invoice=invoice).source == Source.PUSH

    @pytest.mark.parametrize("answer", [None, "300"])
    @pytest.mark.parametrize("closed", CLOSED)
    def test_push_claiming_paid_is_not_believed_when_the_inquiry_says_otherwise(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        closed: dict[str, bool],
        answer: str | None,
    ) -> None:
        invoice = InvoiceFactory(**closed)
        before = invoice.status
        fake_bank.inquiry(error_code=answer)

        response = send_push(bank_sender, push_body(invoice.transaction_id))

        assert response.status_code == 200
        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == before
        assert moves(invoice) == []
        assert signal_log.received == []

    @pytest.mark.parametrize("closed", CLOSED)
    def test_push_is_not_applied_while_the_bank_cannot_confirm_it(
        self, bank_sender: Client, fake_bank: FakeBank, closed: dict[str, bool]
    ) -> None:
        invoice = InvoiceFactory(**closed)
        before = invoice.status
        fake_bank.inquiry_down()

        response = send_push(bank_sender, push_body(invoice.transaction_id))

        assert response.status_code == 503
        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == before

    @pytest.mark.parametrize("closed", CLOSED)
    def test_redirect_is_confirmed_by_an_inquiry_and_marks_paid(
        self,
        browser: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
        closed: dict[str, bool],
    ) -> None:
        invoice = InvoiceFactory(**closed)
        before = invoice.status
        fake_bank.inquiry(error_code="000")

        with django_capture_on_commit_callbacks(execute=True):
            response = come_back(browser, invoice)

        assert response["Location"] == result_url(invoice)
        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == Status.PAID
        assert moves(invoice) == [(before, Status.PAID)]
        assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
        assert StatusChange.objects.get(invoice=invoice).source == Source.REDIRECT

    @pytest.mark.parametrize("closed", CLOSED)
    def test_redirect_claiming_paid_is_not_believed_when_the_inquiry_says_unpaid(
        self, browser: Client, fake_bank: FakeBank, closed: dict[str, bool]
    ) -> None:
        invoice = InvoiceFactory(**closed)
        before = invoice.status
        fake_bank.inquiry(error_code=None)

        come_back(browser, invoice)

        assert len(fake_bank.calls("/api/inquiry")) == 1
        assert status_of(invoice) == before


# --- 4. the locked re-read when the claim misses -------------------------------------------------


def declined_by_another_writer(invoice: Invoice) -> None:
    """Another request (a redirect) declines ``invoice`` and commits."""
    fresh = Invoice.objects.get(pk=invoice.pk)
    services.apply_result(fresh, bank_result(fresh, error_code="300"), source=Source.REDIRECT)


def paid_by_another_writer(invoice: Invoice) -> None:
    """Another request (a redirect) pays ``invoice`` and commits."""
    fresh = Invoice.objects.get(pk=invoice.pk)
    services.apply_result(fresh, bank_result(fresh), source=Source.REDIRECT)


def inquiry_meanwhile(
    fake_bank: FakeBank, invoice: Invoice, meanwhile: Callable[[Invoice], None]
) -> None:
    """The bank answers "paid", and while it is being asked, ``meanwhile`` changes the row: the
    push then applies the answer with the copy of the invoice it read before asking."""

    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        meanwhile(invoice)
        body = result_body(invoice.transaction_id, amount=invoice.amount_sent)
        return 200, {}, json.dumps(body, ensure_ascii=False)

    fake_bank.inquiry_reply(reply)


class TestClaimMissedDecidesAgainUnderTheLock:
    """Rule: ``transition`` claims the row with an UPDATE conditional on the status (and, to
    pay, the order's holder) it read. When another writer changed the row in between, the claim
    misses and the row is read again under ``SELECT … FOR UPDATE`` and the table consulted
    there: a move the new status still allows is made (a decline overtaken by the bank's
    "paid"), one it does not is not (already paid: no second history row, no second signal)."""

    def test_push_whose_invoice_was_declined_meanwhile_still_pays_it(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        invoice = InvoiceFactory()
        inquiry_meanwhile(fake_bank, invoice, declined_by_another_writer)

        with django_capture_on_commit_callbacks(execute=True):
            response = send_push(bank_sender, push_body(invoice.transaction_id))

        assert response.status_code == 200
        assert response.json() == {"detail": "processed"}
        assert status_of(invoice) == Status.PAID
        assert moves(invoice) == [(Status.PENDING, Status.FAILED), (Status.FAILED, Status.PAID)]
        assert signal_log.names() == [
            "invoice_status_changed",
            "payment_failed",
            "invoice_status_changed",
            "payment_succeeded",
        ]
        assert signal_log.received[2][2]["old_status"] == Status.FAILED
        assert push_message().outcome == Outcome.PROCESSED

    def test_push_whose_invoice_was_paid_meanwhile_changes_nothing_more(
        self,
        bank_sender: Client,
        fake_bank: FakeBank,
        signal_log: SignalRecorder,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        invoice = InvoiceFactory()
        inquiry_meanwhile(fake_bank, invoice, paid_by_another_writer)

        with django_capture_on_commit_callbacks(execute=True):
            response = send_push(bank_sender, push_body(invoice.transaction_id))

        assert response.status_code == 200
        assert response.json() == {"detail": "no change"}
        assert status_of(invoice) == Status.PAID
        assert moves(invoice) == [(Status.PENDING, Status.PAID)]
        assert StatusChange.objects.get(invoice=invoice).source == Source.REDIRECT
        assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]
        assert push_message().outcome == Outcome.UNCHANGED

    def test_stale_new_copy_of_a_failed_invoice_is_paid(
        self, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
    ) -> None:
        invoice = InvoiceFactory(new=True)
        stale = Invoice.objects.get(pk=invoice.pk)
        Invoice.objects.filter(pk=invoice.pk).update(status=Status.FAILED)

        with django_capture_on_commit_callbacks(execute=True):
            change = services.apply_result(stale, bank_result(stale), source=Source.RECONCILE)

        assert (change.old_status, change.new_status) == (Status.FAILED, Status.PAID)
        assert status_of(invoice) == Status.PAID
        assert stale.status == Status.PAID
        assert moves(invoice) == [(Status.FAILED, Status.PAID)]
        assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]

    def test_stale_copy_of_a_paid_invoice_changes_nothing(
        self, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
    ) -> None:
        invoice = InvoiceFactory()
        stale = Invoice.objects.get(pk=invoice.pk)
        with django_capture_on_commit_callbacks(execute=True):
            services.apply_result(
                Invoice.objects.get(pk=invoice.pk), bank_result(invoice), source=Source.PUSH
            )

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            change = services.apply_result(stale, bank_result(stale), source=Source.RECONCILE)

        assert not change.changed
        assert callbacks == []
        assert moves(invoice) == [(Status.PENDING, Status.PAID)]
        assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]

    def test_stale_holder_of_an_order_another_invoice_paid_is_a_second_payment(
        self, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
    ) -> None:
        """The claim to pay is conditional on the order's holder read too: a stale copy that
        still thinks it holds the order must not pay it a second time as its first payment."""
        first = InvoiceFactory(reference="ORD-1")
        stale = Invoice.objects.get(pk=first.pk)
        Invoice.objects.filter(pk=first.pk).update(holds_order=False)
        other = InvoiceFactory(reference="ORD-1", paid=True)

        with django_capture_on_commit_callbacks(execute=True):
            change = services.apply_result(stale, bank_result(stale), source=Source.PUSH)

        assert change.new_status == Status.PAID
        paid_again = Invoice.objects.get(pk=first.pk)
        assert paid_again.duplicate_of_id == other.pk
        assert paid_again.needs_review
        assert signal_log.names() == ["invoice_status_changed", "payment_duplicated"]


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
class TestClaimMissedUnderRealRowLocks:
    """Rule 4 under real row locks (PostgreSQL): one writer holds the invoice's row, having
    moved it, while a second applies the bank's "paid" with the copy it read before. The
    second's conditional UPDATE waits for the lock, then misses; the re-read under
    ``SELECT … FOR UPDATE`` decides: paid after a decline, nothing after a payment."""

    @pytest.mark.parametrize(
        ("writer_code", "expected_moves", "payer_changed"),
        [
            pytest.param(
                "300",
                [(Status.PENDING, Status.FAILED), (Status.FAILED, Status.PAID)],
                True,
                id="declined-meanwhile",
            ),
            pytest.param("000", [(Status.PENDING, Status.PAID)], False, id="paid-meanwhile"),
        ],
    )
    def test_claim_blocked_behind_another_writers_lock_decides_again_when_it_commits(
        self,
        writer_code: str,
        expected_moves: list[tuple[str, str]],
        payer_changed: bool,
        signal_log: SignalRecorder,
    ) -> None:
        invoice = InvoiceFactory()
        known = Invoice.objects.get(pk=invoice.pk)
        paid = bank_result(invoice)
        holding, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []
        outcome: dict[str, services.Change] = {}

        def writer() -> None:
            try:
                with transaction.atomic():
                    fresh = Invoice.objects.get(pk=invoice.pk)
                    result = bank_result(fresh, error_code=writer_code)
                    services.apply_result(fresh, result, source=Source.REDIRECT)
                    holding.set()
                    release.wait(10)
            except BaseException as exc:
                errors.append(exc)
            finally:
                holding.set()
                connections.close_all()

        def payer() -> None:
            try:
                outcome["change"] = services.apply_result(known, paid, source=Source.PUSH)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        first = threading.Thread(target=writer)
        first.start()
        assert holding.wait(10)
        second = threading.Thread(target=payer)
        second.start()
        try:
            assert wait_for_a_lock_wait(), "the second writer never waited for the row lock"
        finally:
            release.set()
            first.join(10)
            second.join(10)

        assert errors == []
        assert outcome["change"].changed is payer_changed
        assert status_of(invoice) == Status.PAID
        assert moves(invoice) == expected_moves
        assert signal_log.names().count("payment_succeeded") == 1


def wait_for_a_lock_wait(timeout: float = 10) -> bool:
    """Whether some session of this database comes to wait for a lock within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            (waiting,) = cursor.fetchone()
        if waiting:
            return True
        time.sleep(0.02)
    return False


# --- 5. bank texts longer than their columns ------------------------------------------------------

#: One character more than each column holds (models: bank_description 255, card_number 32,
#: card_bank 100, bank_code 10; the saved card's card_holder 100).
LONG_DESC = ("Амжилттай " * 26)[:256]
LONG_CARD = "949625" + "*" * 23 + "0003"  # 33
LONG_BANK = ("Голомт банк " * 9)[:101]
LONG_HOLDER = "B" * 101
LONG_CODE = "30000000000"  # 11


def long_texts(**overrides: Any) -> dict[str, Any]:
    texts = {"error_desc": LONG_DESC, "cardNumber": LONG_CARD, "bank": LONG_BANK}
    texts.update(overrides)
    return texts


@pytest.mark.postgres
@needs_postgres
class TestOverLongBankTextsOnPostgres:
    """Rule: the bank's texts are outside its checksum and may be any length; a result is
    recorded with each cut to its column (PostgreSQL refuses an over-long value where SQLite
    stores it, so only PostgreSQL shows a missing cut). A paid result is never lost to it."""

    def test_paid_push_with_over_long_texts_is_recorded(
        self, bank_sender: Client, fake_bank: FakeBank
    ) -> None:
        assert (len(LONG_DESC), len(LONG_CARD), len(LONG_BANK)) == (256, 33, 101)
        invoice = InvoiceFactory()

        with settings_with(CONFIRM_PUSH_WITH_INQUIRY=False):
            response = send_push(bank_sender, push_body(invoice.transaction_id, **long_texts()))

        assert response.status_code == 200
        stored = Invoice.objects.get(pk=invoice.pk)
        assert stored.status == Status.PAID
        assert stored.bank_description == LONG_DESC[:255]
        assert stored.card_number == LONG_CARD[:32]
        assert stored.card_bank == LONG_BANK[:100]

    def test_paid_inquiry_with_over_long_texts_is_recorded(self, fake_bank: FakeBank) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000", **long_texts())

        change = services.refresh(invoice, source=Source.RECONCILE)

        assert change.new_status == Status.PAID
        stored = Invoice.objects.get(pk=invoice.pk)
        assert stored.status == Status.PAID
        assert (stored.bank_description, stored.card_number, stored.card_bank) == (
            LONG_DESC[:255],
            LONG_CARD[:32],
            LONG_BANK[:100],
        )

    def test_paid_redirect_with_over_long_texts_is_recorded(
        self, browser: Client, fake_bank: FakeBank
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000", **long_texts())

        come_back(browser, invoice)

        assert status_of(invoice) == Status.PAID

    def test_decline_with_an_over_long_code_is_recorded(
        self, bank_sender: Client, fake_bank: FakeBank
    ) -> None:
        assert len(LONG_CODE) == 11
        invoice = InvoiceFactory()

        with settings_with(CONFIRM_PUSH_WITH_INQUIRY=False):
            response = send_push(
                bank_sender,
                push_body(invoice.transaction_id, error_code=LONG_CODE, **long_texts()),
            )

        assert response.status_code == 200
        stored = Invoice.objects.get(pk=invoice.pk)
        assert stored.status == Status.FAILED
        assert stored.bank_code == LONG_CODE[:10]
        assert stored.bank_description == LONG_DESC[:255]
        assert StatusChange.objects.get(invoice=invoice).bank_code == LONG_CODE[:10]

    def test_card_saved_by_a_payment_with_over_long_texts_is_kept(
        self, fake_bank: FakeBank, django_user_model: Any
    ) -> None:
        owner = django_user_model.objects.create_user("saver")
        invoice = InvoiceFactory(gen_token=True, owner=owner)
        fake_bank.inquiry(
            error_code="000", token="long-texts-token", cardHolder=LONG_HOLDER, **long_texts()
        )

        services.refresh(invoice, source=Source.RECONCILE)

        assert status_of(invoice) == Status.PAID
        card = CardToken.objects.get(token="long-texts-token")
        assert (card.card_number, card.card_bank, card.card_holder) == (
            LONG_CARD[:32],
            LONG_BANK[:100],
            LONG_HOLDER[:100],
        )


# --- 6. the push allow-list never fails open ------------------------------------------------------

BANK_NET = "203.0.113.0/24"


def allow_list(*networks: str, **extra: Any) -> Any:
    return settings_with(PUSH_ALLOWED_IPS=list(networks or [BANK_NET]), **extra)


class TestAllowListWithoutSenderAddress:
    """Rule: with ``PUSH_ALLOWED_IPS`` set, a push whose sender address is missing, empty or not
    an address is refused with 403 before anything is processed; it is never let through."""

    @pytest.mark.parametrize("remote", ["", "not-an-address", "unix:/run/app.sock", "203.0.113"])
    def test_push_without_a_usable_remote_addr_is_refused(
        self, bank_sender: Client, fake_bank: FakeBank, remote: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")

        with allow_list():
            response = send_push(bank_sender, push_body(invoice.transaction_id), REMOTE_ADDR=remote)

        assert response.status_code == 403
        assert status_of(invoice) == Status.PENDING
        assert len(fake_bank.mock.calls) == 0
        message = push_message()
        assert (message.outcome, message.remote_addr) == (Outcome.REJECTED, None)

    def test_push_with_no_remote_addr_at_all_is_refused(self, fake_bank: FakeBank) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")
        request = RequestFactory().post(
            PUSH,
            data=json.dumps(push_body(invoice.transaction_id)),
            content_type="application/json",
        )
        del request.META["REMOTE_ADDR"]

        with allow_list("0.0.0.0/0", "::/0"):
            response = views.push(request)

        assert response.status_code == 403
        assert status_of(invoice) == Status.PENDING
        assert len(fake_bank.mock.calls) == 0

    @pytest.mark.parametrize("forwarded", ["unknown", "203.0.113:443", "_hidden", "[nope]:1"])
    def test_push_whose_forwarded_address_is_not_an_address_is_refused(
        self, bank_sender: Client, fake_bank: FakeBank, forwarded: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")

        with allow_list(TRUSTED_PROXY_COUNT=1):
            response = send_push(
                bank_sender,
                push_body(invoice.transaction_id),
                REMOTE_ADDR="203.0.113.1",
                HTTP_X_FORWARDED_FOR=forwarded,
            )

        assert response.status_code == 403
        assert status_of(invoice) == Status.PENDING

    @pytest.mark.parametrize("forwarded", ["203.0.113.7:443", "[::ffff:203.0.113.7]:443"])
    def test_a_forwarded_address_with_its_port_is_read_without_it(
        self, bank_sender: Client, fake_bank: FakeBank, forwarded: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")

        with allow_list(TRUSTED_PROXY_COUNT=1):
            response = send_push(
                bank_sender,
                push_body(invoice.transaction_id),
                REMOTE_ADDR="10.0.0.1",
                HTTP_X_FORWARDED_FOR=forwarded,
            )

        assert response.status_code == 200
        assert status_of(invoice) == Status.PAID

    @pytest.mark.parametrize("remote", [None, ""])
    def test_push_service_without_an_address_is_refused(
        self, fake_bank: FakeBank, remote: str | None
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")
        raw = json.dumps(push_body(invoice.transaction_id)).encode()

        with allow_list("0.0.0.0/0", "::/0"):
            reply = services.receive_push(
                raw, content_type="application/json", headers={}, remote_addr=remote
            )

        assert reply.status == 403
        assert status_of(invoice) == Status.PENDING
        assert len(fake_bank.mock.calls) == 0

    def test_push_service_with_something_that_is_no_address_is_refused_and_logged(
        self, fake_bank: FakeBank
    ) -> None:
        invoice = InvoiceFactory()
        raw = json.dumps(push_body(invoice.transaction_id)).encode()

        with allow_list("0.0.0.0/0", "::/0"):
            reply = services.receive_push(
                raw, content_type="application/json", headers={}, remote_addr="not-an-address"
            )

        assert reply.status == 403
        assert push_message().remote_addr is None
        assert len(fake_bank.mock.calls) == 0

    def test_an_ipv4_sender_seen_through_a_dual_stack_socket_is_on_the_list(
        self, bank_sender: Client, fake_bank: FakeBank
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")

        with allow_list():
            response = send_push(
                bank_sender, push_body(invoice.transaction_id), REMOTE_ADDR="::ffff:203.0.113.7"
            )

        assert response.status_code == 200
        assert status_of(invoice) == Status.PAID


# --- 7. JSON with parameters or in other letter case --------------------------------------------

JSON_TYPES = [
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    "Application/JSON",
    "APPLICATION/JSON; charset=utf-8",
]


class TestPushContentType:
    """Rule: a push is JSON whatever the letter case of its media type and whatever parameters
    follow it (``charset``): it is processed (200), not refused as 415."""

    @pytest.mark.parametrize("content_type", JSON_TYPES)
    def test_push_view_accepts_json_with_parameters_or_in_capitals(
        self, bank_sender: Client, fake_bank: FakeBank, content_type: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")

        response = send_push(
            bank_sender, push_body(invoice.transaction_id), content_type=content_type
        )

        assert response.status_code == 200
        assert response.json() == {"detail": "processed"}
        assert status_of(invoice) == Status.PAID
        assert push_message().outcome == Outcome.PROCESSED

    @pytest.mark.parametrize("content_type", JSON_TYPES)
    def test_push_service_accepts_json_with_parameters_or_in_capitals(
        self, fake_bank: FakeBank, content_type: str
    ) -> None:
        invoice = InvoiceFactory()
        fake_bank.inquiry(error_code="000")
        raw = json.dumps(push_body(invoice.transaction_id), ensure_ascii=False).encode()

        reply = services.receive_push(
            raw, content_type=content_type, headers={}, remote_addr="203.0.113.7"
        )

        assert (reply.status, reply.detail) == (200, "processed")
        assert status_of(invoice) == Status.PAID

    def test_other_media_types_are_still_refused(
        self, bank_sender: Client, fake_bank: FakeBank
    ) -> None:
        invoice = InvoiceFactory()

        response = send_push(
            bank_sender, push_body(invoice.transaction_id), content_type="text/json; charset=utf-8"
        )

        assert response.status_code == 415
        assert status_of(invoice) == Status.PENDING


# --- 8. no downgrade from https ------------------------------------------------------------------

SHOP_HOST = "www.shop.example"


class TestNoRedirectFromHttpsToHttp:
    """Rule: a customer on the https site is never sent to a plain-http result URL, even on an
    allowed host (or this site's own): they land on the app's own result page instead. An
    https URL on an allowed host, and a path on this site, are followed."""

    @pytest.mark.parametrize(
        "success_url",
        [f"http://{SHOP_HOST}/done/{{reference}}", "http://testserver/done/{reference}"],
    )
    def test_http_success_url_is_not_followed_from_https(
        self, browser: Client, fake_bank: FakeBank, success_url: str
    ) -> None:
        invoice = InvoiceFactory(reference="A1")
        fake_bank.inquiry(error_code="000")

        with settings_with(SUCCESS_URL=success_url, ALLOWED_REDIRECT_HOSTS=[SHOP_HOST]):
            response = come_back(browser, invoice, secure=True)

        assert response.status_code == 302
        assert response["Location"] == result_url(invoice)
        assert status_of(invoice) == Status.PAID

    def test_http_failure_url_is_not_followed_from_https(
        self, browser: Client, fake_bank: FakeBank
    ) -> None:
        invoice = InvoiceFactory(reference="A1")
        fake_bank.inquiry(error_code="300")

        with settings_with(
            FAILURE_URL=f"http://{SHOP_HOST}/retry/{{reference}}",
            ALLOWED_REDIRECT_HOSTS=[SHOP_HOST],
        ):
            response = come_back(browser, invoice, secure=True, status_code="300")

        assert response["Location"] == result_url(invoice)
        assert status_of(invoice) == Status.FAILED

    def test_status_page_next_url_is_not_http_from_https(
        self, client: Client, fake_bank: FakeBank
    ) -> None:
        invoice = InvoiceFactory(reference="A1")
        fake_bank.inquiry(error_code="000")

        with settings_with(
            SUCCESS_URL=f"http://{SHOP_HOST}/done/{{reference}}",
            ALLOWED_REDIRECT_HOSTS=[SHOP_HOST],
        ):
            url = reverse("golomt_payments:status", kwargs={"key": invoice.key})
            status = client.get(url, secure=True).json()

        assert status["next"] == result_url(invoice)

    @pytest.mark.parametrize(
        ("success_url", "expected"),
        [
            (f"https://{SHOP_HOST}/done/{{reference}}", f"https://{SHOP_HOST}/done/A1"),
            ("/orders/{reference}/thanks/", "/orders/A1/thanks/"),
        ],
    )
    def test_https_or_same_site_success_url_is_followed_from_https(
        self, browser: Client, fake_bank: FakeBank, success_url: str, expected: str
    ) -> None:
        invoice = InvoiceFactory(reference="A1")
        fake_bank.inquiry(error_code="000")

        with settings_with(SUCCESS_URL=success_url, ALLOWED_REDIRECT_HOSTS=[SHOP_HOST]):
            response = come_back(browser, invoice, secure=True)

        assert response["Location"] == expected
