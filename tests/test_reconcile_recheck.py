"""The reconciler's cool-down: an invoice a run asked about and left open, or whose bank did not
answer, is due again ``RECONCILE_RECHECK_SECONDS`` later, not when the worst-case lease it was
claimed with would have run out. A declined invoice whose page has closed is still asked about
once, and a run never comes back to an invoice it has passed.

Time is moved with the ``later`` fixture (``timezone.now``), one invoice at a time in the
test's thread; two runs at once on PostgreSQL are in ``test_concurrency.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.test import override_settings
from django.utils import timezone

from golomt_payments import services
from golomt_payments.models import Invoice, Status
from golomt_payments.services import ReconcileSummary
from tests.factories import InvoiceFactory
from tests.helpers import FakeBank, Later, result_body, unpaid_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

# With the test settings: page timer 10 minutes, then 2 more in which a customer who pressed Pay
# may still be answered, grace 30 minutes.
DUE = 15  # minutes old: past the page timer and its margin, within the grace
CLOSING = 11  # minutes old: past the page timer, its page may still take a card

Reply = tuple[int, dict[str, str], Any]
Answer = Callable[[str], Reply]


@pytest.fixture(autouse=True)
def one_at_a_time() -> Iterator[None]:
    with override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "RECONCILE_CONCURRENCY": 1}):
        yield


def aged(minutes: float, **kwargs: Any) -> Invoice:
    invoice = InvoiceFactory(**kwargs)
    Invoice.objects.filter(pk=invoice.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )
    return Invoice.objects.get(pk=invoice.pk)


def paid(tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx), ensure_ascii=False)


def declined(tx: str) -> Reply:
    return 200, {}, json.dumps(result_body(tx, error_code="300"), ensure_ascii=False)


def unpaid(tx: str) -> Reply:
    return 200, {}, json.dumps(unpaid_body(tx))


def down(tx: str) -> Reply:
    return 200, {}, requests.exceptions.ConnectionError("connection refused")


class Bank:
    """Answers every inquiry with ``answer`` (change it between runs) and keeps the ids asked."""

    def __init__(self, fake_bank: FakeBank, answer: Answer) -> None:
        self.answer = answer
        self.asked: list[str] = []
        self.on_ask: Callable[[str], None] = lambda tx: None
        fake_bank.inquiry_reply(self.reply)

    def reply(self, request: requests.PreparedRequest) -> Reply:
        tx = json.loads(request.body or b"{}")["transactionId"]
        self.asked.append(tx)
        self.on_ask(tx)
        return self.answer(tx)


def checked(summary: ReconcileSummary) -> dict[str, int]:
    names = ("checked", "paid", "failed", "expired", "unchanged", "unreachable")
    return {name: getattr(summary, name) for name in names if getattr(summary, name)}


def test_a_run_a_minute_after_the_bank_was_down_asks_again_and_pays(
    fake_bank: FakeBank, later: Later
) -> None:
    invoice = aged(DUE)
    bank = Bank(fake_bank, down)

    first = services.reconcile()
    bank.answer = paid
    later.move(minutes=1)
    second = services.reconcile()

    assert checked(first) == {"checked": 1, "unreachable": 1}
    assert checked(second) == {"checked": 1, "paid": 1}
    assert bank.asked == 2 * [invoice.transaction_id]
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PAID


@pytest.mark.parametrize(
    ("recheck", "before", "after"),
    [(None, 20, 31), (300, 240, 301)],
    ids=["default-30s", "setting-300s"],
)
def test_an_invoice_still_unpaid_is_asked_again_after_the_cool_down_and_not_before(
    fake_bank: FakeBank, later: Later, recheck: int | None, before: int, after: int
) -> None:
    invoice = aged(DUE)
    bank = Bank(fake_bank, unpaid)
    extra = {} if recheck is None else {"RECONCILE_RECHECK_SECONDS": recheck}

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "RECONCILE_CONCURRENCY": 1, **extra}
    ):
        first = services.reconcile()
        later.move(seconds=before)
        too_soon = services.reconcile()
        later.move(seconds=after - before)
        again = services.reconcile()

    assert checked(first) == {"checked": 1, "unchanged": 1}
    assert checked(too_soon) == {}
    assert checked(again) == {"checked": 1, "unchanged": 1}
    assert bank.asked == 2 * [invoice.transaction_id]
    assert Invoice.objects.get(pk=invoice.pk).status == Status.PENDING


def test_a_declined_invoice_whose_page_closed_is_asked_about_once(
    fake_bank: FakeBank, later: Later
) -> None:
    invoice = aged(DUE, failed=True)
    bank = Bank(fake_bank, declined)

    first = services.reconcile()
    runs = []
    for minutes in (1, 5, 10):
        later.move(minutes=minutes)
        runs.append(services.reconcile())

    assert checked(first) == {"checked": 1, "unchanged": 1}
    assert [run.checked for run in runs] == [0, 0, 0]
    assert bank.asked == [invoice.transaction_id]


def test_a_declined_invoice_the_bank_did_not_answer_for_is_asked_again_then_once(
    fake_bank: FakeBank, later: Later
) -> None:
    """The question was never answered, so the one time has not happened yet."""
    invoice = aged(DUE, failed=True)
    bank = Bank(fake_bank, down)

    first = services.reconcile()
    bank.answer = declined
    later.move(minutes=1)
    second = services.reconcile()
    later.move(minutes=1)
    third = services.reconcile()

    assert checked(first) == {"checked": 1, "unreachable": 1}
    assert checked(second) == {"checked": 1, "unchanged": 1}
    assert third.checked == 0
    assert bank.asked == 2 * [invoice.transaction_id]


def test_an_invoice_the_run_finds_declined_after_its_page_closed_is_not_asked_again(
    fake_bank: FakeBank, later: Later
) -> None:
    invoice = aged(DUE)
    bank = Bank(fake_bank, declined)

    first = services.reconcile()
    later.move(minutes=1)
    second = services.reconcile()

    assert checked(first) == {"checked": 1, "failed": 1}
    assert second.checked == 0
    assert bank.asked == [invoice.transaction_id]
    assert Invoice.objects.get(pk=invoice.pk).status == Status.FAILED


def test_an_invoice_found_declined_while_its_page_may_take_a_card_is_asked_once_after_it_closed(
    fake_bank: FakeBank, later: Later
) -> None:
    invoice = aged(CLOSING)
    bank = Bank(fake_bank, declined)

    first = services.reconcile()
    later.move(seconds=45)  # the cool-down is over, the page may still take a card
    while_open = services.reconcile()
    later.move(minutes=1)  # 12¾ minutes old: the page has closed
    after_close = services.reconcile()
    later.move(minutes=1)
    last = services.reconcile()

    assert checked(first) == {"checked": 1, "failed": 1}
    assert while_open.checked == 0
    assert checked(after_close) == {"checked": 1, "unchanged": 1}
    assert last.checked == 0
    assert bank.asked == 2 * [invoice.transaction_id]


def test_a_run_never_comes_back_to_an_invoice_whose_cool_down_ran_out_while_it_walked(
    fake_bank: FakeBank, later: Later
) -> None:
    invoices = [aged(DUE) for _ in range(4)]
    bank = Bank(fake_bank, unpaid)
    bank.on_ask = lambda tx: later.move(minutes=1)  # each answer takes twice the cool-down

    walked = services.reconcile(batch_size=1)
    bank.on_ask = lambda tx: None
    next_run = services.reconcile(batch_size=1)

    ids = [invoice.transaction_id for invoice in invoices]
    assert walked.checked == 4
    # The last one was handed back moments ago; the three before it are due again.
    assert next_run.checked == 3
    assert bank.asked == ids + ids[:3]


def test_a_run_whose_lease_ran_out_leaves_the_next_runs_lease_alone(
    fake_bank: FakeBank, later: Later
) -> None:
    invoice = aged(DUE)
    bank = Bank(fake_bank, unpaid)
    theirs = timezone.now() + timedelta(hours=1)

    def another_run_claims(tx: str) -> None:
        Invoice.objects.filter(pk=invoice.pk).update(reconcile_lease_until=theirs)

    bank.on_ask = another_run_claims

    summary = services.reconcile()

    assert summary.checked == 1
    assert Invoice.objects.get(pk=invoice.pk).reconcile_lease_until == theirs


def test_the_cool_down_does_not_touch_the_invoices_updated_time(fake_bank: FakeBank) -> None:
    invoice = aged(DUE)
    Bank(fake_bank, unpaid)

    services.reconcile()

    handed_back = Invoice.objects.get(pk=invoice.pk)
    assert handed_back.updated_at == invoice.updated_at
    lease = handed_back.reconcile_lease_until
    assert lease is not None
    assert timezone.now() < lease <= timezone.now() + timedelta(seconds=30)
