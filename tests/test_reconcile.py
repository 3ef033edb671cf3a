"""The reconciler: asks the bank about invoices left open after the page timer, expires what
the bank no longer holds after the grace, finishes push notifications that failed, and claims
its invoices so that two runs never ask about the same one.

These run one invoice at a time in the test's thread (the test's transaction is invisible to
other connections); the runs with real threads on PostgreSQL are in ``test_concurrency.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from golomt_payments import bank, services
from golomt_payments.management.commands.golomt_reconcile import summary_line
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
from golomt_payments.services import ReconcileSummary
from tests.factories import BankMessageFactory, InvoiceFactory
from tests.helpers import (
    BASE_URL,
    BEARER,
    SECRET,
    FakeBank,
    SignalRecorder,
    error_body,
    push_body,
    result_body,
    unpaid_body,
)
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

# With the test settings: page timer 10 minutes, grace 30 more.
DUE = 15  # minutes old: past the page timer, within the grace
PAST_GRACE = 45  # minutes old: past the page timer and the grace
FRESH = 5  # minutes old: the customer may still be on the bank's page

Reply = tuple[int, dict[str, str], Any]
Answer = Callable[[str], Reply]


@pytest.fixture(autouse=True)
def one_at_a_time() -> Iterator[None]:
    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "RECONCILE_CONCURRENCY": 1}):
        yield


Runner = Callable[..., ReconcileSummary]


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Runner:
    """``services.reconcile`` with the signals sent as after a real commit."""

    def run(**kwargs: Any) -> ReconcileSummary:
        with django_capture_on_commit_callbacks(execute=True):
            return services.reconcile(**kwargs)

    return run


def aged(minutes: float, **kwargs: Any) -> Invoice:
    """An invoice created ``minutes`` ago."""
    invoice = InvoiceFactory(**kwargs)
    Invoice.objects.filter(pk=invoice.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )
    invoice.refresh_from_db()
    return invoice


def fresh(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(pk=invoice.pk)


# --- what the bank answers, per transaction id ---------------------------------------------


def paid(tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx), ensure_ascii=False)


def declined(tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx, error_code="300"), ensure_ascii=False)


def unpaid(tx: str) -> Reply:
    return 200, {}, json.dumps(unpaid_body(tx))


def unknown(tx: str) -> Reply:
    return 400, {}, json.dumps(error_body("/api/inquiry", "NotFound", "Payment not found"))


def down(tx: str) -> Reply:
    return 200, {}, requests.exceptions.ConnectionError("connection refused")


def server_error(tx: str) -> Reply:
    return 500, {}, "Internal Server Error"


def forged(tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx, secret="not-the-secret"), ensure_ascii=False)


def forbidden(tx: str) -> Reply:
    return 403, {}, ""


def wrong_amount(tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx, amount="1.00"), ensure_ascii=False)


def answers(
    fake_bank: FakeBank, by_id: dict[str, Answer] | None = None, default: Answer = unpaid
) -> list[str]:
    """Let the bank answer each inquiry by its transaction id; returns the ids asked, in order."""
    asked: list[str] = []
    by_id = by_id or {}

    def reply(request: requests.PreparedRequest) -> Reply:
        tx = json.loads(request.body or b"{}")["transactionId"]
        asked.append(tx)
        return by_id.get(tx, default)(tx)

    fake_bank.inquiry_reply(reply)
    return asked


def counts(summary: ReconcileSummary) -> dict[str, int]:
    return {
        "checked": summary.checked,
        "paid": summary.paid,
        "failed": summary.failed,
        "expired": summary.expired,
        "unchanged": summary.unchanged,
        "unreachable": summary.unreachable,
        "messages_replayed": summary.messages_replayed,
    }


def summary_of(**non_zero: int) -> dict[str, int]:
    return {key: non_zero.get(key, 0) for key in counts(ReconcileSummary())}


# --- which invoices are asked ----------------------------------------------------------------


def test_invoices_past_the_page_timer_are_asked_and_fresh_or_closed_ones_are_not(
    fake_bank: FakeBank,
) -> None:
    """Declined ones too, within the grace: their page took another card until it closed."""
    pending, new = aged(DUE), aged(DUE, new=True)
    declined = aged(DUE, failed=True)
    aged(FRESH), aged(FRESH, failed=True)
    aged(DUE, paid=True), aged(DUE, expired=True), aged(PAST_GRACE, failed=True)
    asked = answers(fake_bank)

    summary = services.reconcile()

    expected = [pending.transaction_id, new.transaction_id, declined.transaction_id]
    assert sorted(asked) == sorted(expected)
    assert counts(summary) == summary_of(checked=3, unchanged=3)


def test_invoices_are_read_in_id_order_one_bounded_batch_at_a_time(fake_bank: FakeBank) -> None:
    invoices = [aged(DUE) for _ in range(7)]
    asked = answers(fake_bank)

    with CaptureQueriesContext(connection) as queries:
        summary = services.reconcile(batch_size=3)

    assert asked == [invoice.transaction_id for invoice in invoices]
    assert summary.checked == 7
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "golomt_payments_invoice"' in q["sql"]
    ]
    assert len(reads) == 3  # 3 + 3 + 1: a short batch ends the run
    assert all("LIMIT 3" in sql for sql in reads)


def test_invoices_of_an_account_that_is_no_longer_configured_are_left_alone(
    fake_bank: FakeBank,
) -> None:
    aged(DUE, account="closed")
    asked = answers(fake_bank)

    summary = services.reconcile()

    assert asked == []
    assert summary.checked == 0


# --- what the bank says ----------------------------------------------------------------------


def test_an_invoice_the_bank_reports_paid_becomes_paid_once(
    fake_bank: FakeBank, signal_log: SignalRecorder, committed: Runner
) -> None:
    invoice = aged(DUE)
    answers(fake_bank, default=paid)

    summary = committed()

    assert counts(summary) == summary_of(checked=1, paid=1)
    assert fresh(invoice).status == Status.PAID
    assert fresh(invoice).paid_at is not None
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.from_status, change.to_status, change.source) == (
        Status.PENDING,
        Status.PAID,
        Source.RECONCILE,
    )
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


def test_an_invoice_the_bank_declined_becomes_failed_with_the_banks_words(
    fake_bank: FakeBank, signal_log: SignalRecorder, committed: Runner
) -> None:
    invoice = aged(DUE)
    answers(fake_bank, default=declined)

    summary = committed()

    assert counts(summary) == summary_of(checked=1, failed=1)
    assert fresh(invoice).status == Status.FAILED
    assert fresh(invoice).bank_code == "300"
    assert fresh(invoice).bank_description == "Картын хугацаа дууссан"
    assert signal_log.names() == ["invoice_status_changed", "payment_failed"]


@pytest.mark.parametrize("answer", [unpaid, unknown], ids=["still-unpaid", "unknown-to-bank"])
def test_an_invoice_the_bank_holds_no_payment_for_expires_only_after_the_grace(
    fake_bank: FakeBank, signal_log: SignalRecorder, committed: Runner, answer: Answer
) -> None:
    within, after = aged(DUE), aged(PAST_GRACE)
    answers(fake_bank, default=answer)

    summary = committed()

    assert counts(summary) == summary_of(checked=2, expired=1, unchanged=1)
    assert fresh(within).status == Status.PENDING
    assert fresh(after).status == Status.EXPIRED
    assert StatusChange.objects.get(invoice=after).source == Source.RECONCILE
    assert not StatusChange.objects.filter(invoice=within).exists()
    assert signal_log.names() == ["invoice_status_changed", "payment_expired"]


def test_a_new_invoice_the_bank_never_created_expires_after_the_grace(fake_bank: FakeBank) -> None:
    invoice = aged(PAST_GRACE, new=True)
    answers(fake_bank, default=unknown)

    summary = services.reconcile()

    assert summary.expired == 1
    assert fresh(invoice).status == Status.EXPIRED


def test_the_page_timer_and_the_grace_come_from_the_settings(fake_bank: FakeBank) -> None:
    invoice, too_fresh = aged(3), aged(1)
    asked = answers(fake_bank)

    with override_settings(
        GOLOMT_PAYMENTS={
            **GOLOMT_PAYMENTS,
            "RECONCILE_CONCURRENCY": 1,
            "PAGE_TIMEOUT_MINUTES": 2,
            "RECONCILE_GRACE_MINUTES": 0,
        }
    ):
        summary = services.reconcile()

    assert asked == [invoice.transaction_id]
    assert summary.expired == 1
    assert fresh(invoice).status == Status.EXPIRED
    assert fresh(too_fresh).status == Status.PENDING


@pytest.mark.parametrize("answer", [down, server_error, forged, forbidden])
def test_a_bank_that_does_not_answer_leaves_the_invoice_pending_and_is_counted(
    fake_bank: FakeBank, signal_log: SignalRecorder, committed: Runner, answer: Answer
) -> None:
    invoice = aged(PAST_GRACE)
    answers(fake_bank, default=answer)

    summary = committed()

    assert counts(summary) == summary_of(checked=1, unreachable=1)
    assert fresh(invoice).status == Status.PENDING
    assert not StatusChange.objects.exists()
    assert signal_log.names() == []


def test_a_paid_answer_with_the_wrong_amount_is_flagged_and_never_expired(
    fake_bank: FakeBank,
) -> None:
    invoice = aged(PAST_GRACE)
    answers(fake_bank, default=wrong_amount)

    summary = services.reconcile()

    assert counts(summary) == summary_of(checked=1, unchanged=1)
    assert fresh(invoice).status == Status.PENDING
    assert fresh(invoice).needs_review


# --- dry run -------------------------------------------------------------------------------


def test_dry_run_asks_the_bank_reports_what_would_change_and_changes_nothing(
    fake_bank: FakeBank, signal_log: SignalRecorder, committed: Runner
) -> None:
    to_pay, to_fail, to_expire, to_keep, unanswered = (aged(PAST_GRACE) for _ in range(5))
    failed_push = BankMessageFactory(
        invoice=aged(FRESH),
        outcome=Outcome.FAILED,
        body=json.dumps(push_body("x")),
        processed_at=timezone.now(),
    )
    asked = answers(
        fake_bank,
        {
            to_pay.transaction_id: paid,
            to_fail.transaction_id: declined,
            to_expire.transaction_id: unknown,
            to_keep.transaction_id: wrong_amount,
            unanswered.transaction_id: down,
        },
    )
    before = list(Invoice.objects.order_by("pk").values())

    summary = committed(dry_run=True)

    assert summary.dry_run
    assert counts(summary) == summary_of(
        checked=5, paid=1, failed=1, expired=1, unchanged=1, unreachable=1, messages_replayed=1
    )
    assert len(asked) == 5
    assert list(Invoice.objects.order_by("pk").values()) == before  # no status, no lease
    assert not StatusChange.objects.exists()
    assert BankMessage.objects.get(pk=failed_push.pk).outcome == Outcome.FAILED
    assert signal_log.names() == []


# --- push notifications that were never finished -----------------------------------------


def failed_push(invoice: Invoice, *, outcome: str = Outcome.FAILED, age: float = 0) -> BankMessage:
    """A push for ``invoice`` logged ``age`` minutes ago whose processing did not finish."""
    message = BankMessageFactory(
        invoice=None if outcome == Outcome.RECEIVED else invoice,
        account="" if outcome == Outcome.RECEIVED else invoice.account,
        transaction_id="" if outcome == Outcome.RECEIVED else invoice.transaction_id,
        body=json.dumps(push_body(invoice.transaction_id), ensure_ascii=False),
        outcome=outcome,
        processed_at=None if outcome == Outcome.RECEIVED else timezone.now(),
    )
    BankMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=age)
    )
    return message


def test_a_push_the_bank_could_not_confirm_is_replayed_and_finished(
    fake_bank: FakeBank, signal_log: SignalRecorder, committed: Runner
) -> None:
    invoice = aged(FRESH)
    fake_bank.inquiry_down()
    response = services.receive_push(
        json.dumps(push_body(invoice.transaction_id), ensure_ascii=False).encode(),
        content_type="application/json",
        headers={},
        remote_addr="203.0.113.10",
    )
    assert response.status == 503
    message = BankMessage.objects.get(direction=Direction.INBOUND)
    assert message.outcome == Outcome.FAILED
    fake_bank.mock.reset()
    answers(fake_bank, default=paid)

    summary = committed()

    assert counts(summary) == summary_of(messages_replayed=1)
    message.refresh_from_db()
    assert message.outcome == Outcome.PROCESSED
    assert fresh(invoice).status == Status.PAID
    change = StatusChange.objects.get(invoice=invoice)
    assert (change.source, change.message_id) == (Source.PUSH, message.pk)
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


def test_a_push_stuck_as_received_is_replayed_once_a_minute_has_passed(
    fake_bank: FakeBank,
) -> None:
    stuck_invoice, live_invoice = aged(FRESH), aged(FRESH)
    stuck = failed_push(stuck_invoice, outcome=Outcome.RECEIVED, age=2)
    live = failed_push(live_invoice, outcome=Outcome.RECEIVED, age=0.2)
    answers(fake_bank, default=paid)

    summary = services.reconcile()

    assert summary.messages_replayed == 1
    stuck.refresh_from_db()
    live.refresh_from_db()
    assert (stuck.outcome, stuck.invoice_id) == (Outcome.PROCESSED, stuck_invoice.pk)
    assert fresh(stuck_invoice).status == Status.PAID
    assert (live.outcome, live.processed_at) == (Outcome.RECEIVED, None)
    assert fresh(live_invoice).status == Status.PENDING


def test_a_replay_the_bank_still_cannot_confirm_stays_failed_for_the_next_run(
    fake_bank: FakeBank,
) -> None:
    invoice = aged(FRESH)
    message = failed_push(invoice)
    answers(fake_bank, default=down)

    first = services.reconcile()
    message.refresh_from_db()
    assert (first.messages_replayed, message.outcome) == (1, Outcome.FAILED)
    fake_bank.mock.reset()
    answers(fake_bank, default=paid)

    second = services.reconcile()

    message.refresh_from_db()
    assert (second.messages_replayed, message.outcome) == (1, Outcome.PROCESSED)
    assert fresh(invoice).status == Status.PAID


def test_message_replays_are_capped_per_run_least_recently_tried_first(
    fake_bank: FakeBank,
) -> None:
    messages = [failed_push(aged(FRESH)) for _ in range(3)]
    answers(fake_bank, default=paid)

    first = services.reconcile(message_limit=2)
    second = services.reconcile(message_limit=2)
    third = services.reconcile(message_limit=2)

    assert (first.messages_replayed, second.messages_replayed, third.messages_replayed) == (
        2,
        1,
        0,
    )
    outcomes = BankMessage.objects.filter(pk__in=[m.pk for m in messages])
    assert set(outcomes.values_list("outcome", flat=True)) == {Outcome.PROCESSED}


def test_finished_and_redirect_messages_are_not_replayed(fake_bank: FakeBank) -> None:
    invoice = aged(FRESH)
    for outcome in (Outcome.PROCESSED, Outcome.UNCHANGED, Outcome.REJECTED):
        failed_push(invoice, outcome=outcome)
    BankMessageFactory(invoice=invoice, kind=MessageKind.REDIRECT, outcome=Outcome.FAILED)
    asked = answers(fake_bank)

    summary = services.reconcile()

    assert (summary.messages_replayed, asked) == (0, [])


# --- claiming ------------------------------------------------------------------------------


def test_a_claimed_invoice_is_not_claimed_again_while_its_lease_holds(fake_bank: FakeBank) -> None:
    invoices = [aged(DUE) for _ in range(3)]
    asked = answers(fake_bank, default=down)

    first = services.reconcile()
    leases = set(Invoice.objects.values_list("reconcile_lease_until", flat=True))
    second = services.reconcile()

    assert (first.checked, first.unreachable, second.checked) == (3, 3, 0)
    assert len(asked) == 3
    assert None not in leases
    assert all(lease > timezone.now() for lease in leases if lease is not None)

    Invoice.objects.update(reconcile_lease_until=timezone.now() - timedelta(seconds=1))
    third = services.reconcile()

    assert third.checked == 3
    assert sorted(asked) == sorted(2 * [invoice.transaction_id for invoice in invoices])


def test_the_lease_does_not_touch_the_invoices_updated_time(fake_bank: FakeBank) -> None:
    invoice = aged(DUE)
    answers(fake_bank)

    services.reconcile()

    assert fresh(invoice).updated_at == invoice.updated_at
    assert fresh(invoice).reconcile_lease_until is not None


def test_dry_run_neither_claims_nor_asks_about_leased_invoices(fake_bank: FakeBank) -> None:
    leased, free = aged(DUE), aged(DUE)
    Invoice.objects.filter(pk=leased.pk).update(
        reconcile_lease_until=timezone.now() + timedelta(minutes=5)
    )
    asked = answers(fake_bank)

    services.reconcile(dry_run=True)

    assert asked == [free.transaction_id]
    assert fresh(free).reconcile_lease_until is None


def test_limit_caps_the_invoices_asked_about_lowest_ids_first(fake_bank: FakeBank) -> None:
    invoices = [aged(DUE) for _ in range(5)]
    asked = answers(fake_bank)

    summary = services.reconcile(limit=2, batch_size=10)

    assert summary.checked == 2
    assert asked == [invoice.transaction_id for invoice in invoices[:2]]
    assert Invoice.objects.filter(reconcile_lease_until__isnull=False).count() == 2


def test_progress_is_reported_after_every_invoice(fake_bank: FakeBank) -> None:
    for _ in range(3):
        aged(DUE)
    answers(fake_bank)
    seen: list[int] = []

    services.reconcile(progress=seen.append)

    assert seen == [1, 2, 3]
    assert services.count_due() == 0  # all three are leased now


def test_count_due_counts_what_a_run_would_ask_about() -> None:
    aged(DUE), aged(DUE, new=True), aged(FRESH), aged(DUE, paid=True)

    assert services.count_due() == 2


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 65}, "concurrency"),
        ({"limit": 0}, "limit"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_are_refused_before_anything_happens(
    kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        services.reconcile(**kwargs)


# --- the shared client -----------------------------------------------------------------------


def test_the_shared_client_keeps_a_connection_per_reconcile_worker() -> None:
    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "RECONCILE_CONCURRENCY": 24}):
        session = bank.client()._session
        adapter = session.get_adapter(BASE_URL)

        assert adapter._pool_maxsize >= 24  # type: ignore[attr-defined]
        assert bank.client() is bank.client()


# --- query budget --------------------------------------------------------------------------

# Measured on SQLite and PostgreSQL inside the test transaction, 10 due invoices, one at a
# time. One SELECT of the push messages to replay; claiming one batch of the default 10:
# SAVEPOINT, SELECT … FOR UPDATE SKIP LOCKED, UPDATE the leases, RELEASE SAVEPOINT (a batch of
# 10 is full, so one more, empty claim of 3 queries ends the run); one SELECT of the open card
# registrations; one SELECT of the notifications owed and not delivered. Then per invoice:
#   paid:      SAVEPOINT, UPDATE … WHERE status = <read>, INSERT history, INSERT the owed
#              signals, INSERT inquiry log, RELEASE SAVEPOINT (one commit in a server), and
#              after the commit one UPDATE marking the signals delivered    = 7
#   unchanged: INSERT inquiry log, UPDATE its lease to the short cool-down = 2
#              (a paid or expired invoice needs no such UPDATE: its status takes it out of
#              the claimable set; an open one would otherwise stay leased for the worst case)
#   expired:   INSERT inquiry log, then SAVEPOINT, UPDATE, INSERT history, INSERT the owed
#              signals, RELEASE, UPDATE marking them delivered             = 7
RUN_OVERHEAD_QUERIES = 10
PAID_QUERIES_PER_INVOICE = 7
UNCHANGED_QUERIES_PER_INVOICE = 2
EXPIRED_QUERIES_PER_INVOICE = 7


@pytest.mark.parametrize(
    ("age", "answer", "per_invoice", "status"),
    [
        (DUE, paid, PAID_QUERIES_PER_INVOICE, Status.PAID),
        (DUE, unpaid, UNCHANGED_QUERIES_PER_INVOICE, Status.PENDING),
        (PAST_GRACE, unknown, EXPIRED_QUERIES_PER_INVOICE, Status.EXPIRED),
    ],
    ids=["paid", "unchanged", "expired"],
)
def test_a_run_over_ten_invoices_stays_within_its_query_budget(
    fake_bank: FakeBank,
    django_assert_max_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
    age: int,
    answer: Answer,
    per_invoice: int,
    status: str,
) -> None:
    for _ in range(10):
        aged(age)
    answers(fake_bank, default=answer)

    with (
        django_assert_max_num_queries(RUN_OVERHEAD_QUERIES + 10 * per_invoice),
        django_capture_on_commit_callbacks(execute=True),
    ):
        summary = services.reconcile()

    assert summary.checked == 10
    assert set(Invoice.objects.values_list("status", flat=True)) == {status}


# --- no row lock while the bank is asked ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_while_the_bank_is_asked(fake_bank: FakeBank) -> None:
    to_pay, to_expire = aged(DUE), aged(PAST_GRACE)
    failed_push(aged(FRESH))
    in_transaction: list[bool] = []

    def reply(request: requests.PreparedRequest) -> Reply:
        in_transaction.append(connection.in_atomic_block)
        tx = json.loads(request.body or b"{}")["transactionId"]
        return paid(tx) if tx == to_pay.transaction_id else unknown(tx)

    fake_bank.inquiry_reply(reply)

    summary = services.reconcile()

    assert counts(summary) == summary_of(checked=2, paid=1, expired=1, messages_replayed=1)
    assert in_transaction == [False, False, False]
    assert fresh(to_expire).status == Status.EXPIRED


# --- the command ---------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_command(*args: str, stderr: io.StringIO | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    call_command("golomt_reconcile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_prints_one_summary_line_and_succeeds_with_unreachable_invoices(
    fake_bank: FakeBank,
) -> None:
    to_pay, to_expire, unanswered = aged(DUE), aged(PAST_GRACE), aged(DUE)
    aged(DUE)  # still unpaid: unchanged
    failed_push(aged(FRESH))
    answers(
        fake_bank,
        {
            to_pay.transaction_id: paid,
            to_expire.transaction_id: unknown,
            unanswered.transaction_id: down,
        },
    )

    out, err = run_command()

    assert out == (
        "checked 4 · paid 1 · failed 0 · expired 1 · unchanged 1 · unreachable 1 "
        "· messages replayed 1\n"
    )
    assert err == ""


def test_the_command_line_counts_card_registrations_when_there_were_any() -> None:
    summary = ReconcileSummary(checked=2, paid=2, registrations_checked=2, cards_saved=1)

    line = summary_line(summary)

    assert line.endswith("· card registrations 2 (saved 1, failed 0)")
    assert "card registrations" not in summary_line(ReconcileSummary(checked=2, paid=2))


def test_the_command_dry_run_says_so_and_changes_nothing(fake_bank: FakeBank) -> None:
    invoice = aged(PAST_GRACE)
    answers(fake_bank, default=unknown)

    out, _ = run_command("--dry-run")

    assert out == (
        "dry run, nothing changed: checked 1 · paid 0 · failed 0 · expired 1 · unchanged 0 "
        "· unreachable 0 · messages replayed 0\n"
    )
    assert fresh(invoice).status == Status.PENDING


def test_the_command_limit_caps_the_invoices_asked(fake_bank: FakeBank) -> None:
    for _ in range(5):
        aged(DUE)
    asked = answers(fake_bank)

    out, _ = run_command("--limit", "2")

    assert out.startswith("checked 2 · ")
    assert len(asked) == 2


def test_the_command_reconciles_only_the_account_asked_for(fake_bank: FakeBank) -> None:
    other_base, other_secret = "https://wholesale.bank.test", "wholesale-hmac-secret"
    two_accounts = {
        "ACCOUNTS": {
            "default": {"BEARER_TOKEN": BEARER, "SECRET": SECRET, "BASE_URL": BASE_URL},
            "wholesale": {
                "BEARER_TOKEN": "wholesale-token",
                "SECRET": other_secret,
                "BASE_URL": other_base,
            },
        },
        "READ_RETRIES": 0,
        "RECONCILE_CONCURRENCY": 1,
    }
    mine, theirs = aged(DUE, account="wholesale"), aged(DUE)
    other_bank = FakeBank(fake_bank.mock, base_url=other_base, secret=other_secret)
    other_bank.inquiry(error_code="000")
    asked_default = answers(fake_bank, default=paid)

    with override_settings(GOLOMT_PAYMENTS=two_accounts):
        out, _ = run_command("--account", "wholesale")

    assert out.startswith("checked 1 · paid 1 · ")
    assert fresh(mine).status == Status.PAID
    assert fresh(theirs).status == Status.PENDING
    assert asked_default == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--account", "nope"], "no merchant account named 'nope'"),
        (["--concurrency", "0"], "from 1 to 64"),
        (["--concurrency", "65"], "from 1 to 64"),
        (["--concurrency", "many"], "from 1 to 64"),
        (["--limit", "-1"], "positive integer"),
    ],
)
def test_a_configuration_error_fails_the_command(args: list[str], problem: str) -> None:
    with pytest.raises(CommandError, match=problem) as caught:
        run_command(*args)

    assert caught.value.returncode == 1


def test_the_command_fails_when_no_account_has_credentials() -> None:
    with (
        override_settings(GOLOMT_PAYMENTS={"BASE_URL": BASE_URL}),
        pytest.raises(CommandError, match="BEARER_TOKEN"),
    ):
        run_command()


def test_the_command_draws_a_progress_bar_on_a_terminal_only(fake_bank: FakeBank) -> None:
    for _ in range(3):
        aged(DUE)
    answers(fake_bank)

    out, err = run_command(stderr=Terminal())

    assert out == (
        "checked 3 · paid 0 · failed 0 · expired 0 · unchanged 3 · unreachable 0 "
        "· messages replayed 0\n"
    )
    assert err.startswith("\r[" + " " * 30 + "] 0/3")
    assert err.endswith("\r[" + "#" * 30 + "] 3/3\n")
