"""One payment per order: a shop reference names one order, at most one of its invoices may be
paid at a time, and none is started once one paid. Every way in follows the rule.

The concurrent cases (many requests, many hosts) are in ``test_orders_concurrency.py``, on
PostgreSQL; here the rule's decisions, one request at a time.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone

from golomt_payments import services
from golomt_payments.checkout import sign_checkout
from golomt_payments.models import Invoice, Method, Status
from golomt_payments.services import payments
from tests.factories import CardTokenFactory, InvoiceFactory
from tests.helpers import BASE_URL, BEARER, SECRET, FakeBank, SignalRecorder

pytestmark = pytest.mark.django_db

CHECKOUT = "/payments/checkout/"
CALLBACK = "https://shop.test/payments/return/"
#: Past the page timer (10 minutes) and its margin (2).
PAST_TIMER = timedelta(minutes=13)


def checkout(client: Client, reference: str, amount: int = 1000, **data: str) -> Any:
    return client.post(
        CHECKOUT, {"payload": sign_checkout(amount=amount, reference=reference), **data}
    )


def age(invoice: Invoice, by: timedelta) -> Invoice:
    Invoice.objects.filter(pk=invoice.pk).update(created_at=timezone.now() - by)
    invoice.refresh_from_db()
    return invoice


def card_page(invoice: Invoice) -> str:
    return f"https://bank.test/payment/{invoice.language}/{invoice.bank_invoice}"


def bank_paths(fake_bank: FakeBank) -> list[str]:
    return [call.request.url.removeprefix("https://bank.test") for call in fake_bank.mock.calls]


# --- the same order again -------------------------------------------------------------------


def test_a_second_checkout_of_an_order_goes_to_the_same_bank_page_and_asks_the_bank_nothing(
    fake_bank: FakeBank,
) -> None:
    """Two tabs (or two devices) of one order page: one invoice, one bank page."""
    fake_bank.invoice()

    first = checkout(Client(), "ORD-1")
    second = checkout(Client(), "ORD-1")

    invoice = Invoice.objects.get()
    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"] == card_page(invoice)
    assert bank_paths(fake_bank) == ["/api/invoice"]
    assert invoice.holds_order


def test_the_signed_form_replayed_after_payment_shows_the_paid_order_and_sends_nothing(
    fake_bank: FakeBank, client: Client
) -> None:
    paid = InvoiceFactory(paid=True, reference="ORD-2")

    answer = checkout(client, "ORD-2")

    assert answer.status_code == 303
    assert answer["Location"] == f"/payments/result/{paid.key}/"
    assert "Payment received" in client.get(answer["Location"]).content.decode()
    assert not fake_bank.mock.calls
    assert Invoice.objects.count() == 1


def test_a_changed_amount_for_an_order_with_a_payment_open_is_refused_with_409(
    fake_bank: FakeBank, client: Client
) -> None:
    InvoiceFactory(reference="ORD-3", amount=Decimal("1000"))

    answer = checkout(client, "ORD-3", amount=2000)

    assert answer.status_code == 409
    assert "another amount" in answer.content.decode()
    assert not fake_bank.mock.calls
    assert Invoice.objects.count() == 1


def test_a_declined_card_goes_back_to_the_same_bank_page_while_its_timer_runs(
    fake_bank: FakeBank, client: Client
) -> None:
    declined = InvoiceFactory(failed=True, reference="ORD-4")

    answer = checkout(client, "ORD-4")

    assert answer["Location"] == card_page(declined)
    assert not fake_bank.mock.calls


def test_payments_without_a_reference_are_orders_of_their_own(fake_bank: FakeBank) -> None:
    fake_bank.invoice()

    first = services.start_payment(amount=1000, callback_url=CALLBACK)
    second = services.start_payment(amount=1000, callback_url=CALLBACK)

    assert first.pk != second.pk
    assert not first.holds_order and not second.holds_order


def test_the_same_reference_in_another_merchant_account_is_another_order(
    fake_bank: FakeBank, settings: Any
) -> None:
    account = {"BEARER_TOKEN": BEARER, "SECRET": SECRET, "BASE_URL": BASE_URL}
    settings.GOLOMT_PAYMENTS = {
        "ACCOUNTS": {"default": account, "wholesale": account},
        "CALLBACK_BASE_URL": "https://shop.test",
    }
    fake_bank.invoice()

    retail = services.start_payment(amount=1000, callback_url=CALLBACK, reference="A-1")
    wholesale = services.start_payment(
        amount=1000, callback_url=CALLBACK, reference="A-1", account="wholesale"
    )

    assert retail.pk != wholesale.pk
    assert retail.holds_order and wholesale.holds_order


def test_the_database_itself_allows_one_payable_invoice_per_order() -> None:
    """Not a check in Python that a second request could slip past: the table refuses."""
    InvoiceFactory(reference="ORD-5")

    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceFactory(reference="ORD-5")

    InvoiceFactory(reference="ORD-5", holds_order=False)  # an earlier, closed attempt: fine
    InvoiceFactory(reference="ORD-5", account="wholesale")  # another account's order


# --- when the page timer has run out ---------------------------------------------------------


def test_once_the_page_timer_ran_out_the_bank_is_asked_before_a_new_invoice_is_made(
    fake_bank: FakeBank, client: Client
) -> None:
    old = age(InvoiceFactory(reference="ORD-6"), PAST_TIMER)
    fake_bank.inquiry(error_code=None)  # the bank: nobody paid it
    fake_bank.invoice()

    answer = checkout(client, "ORD-6")

    new = Invoice.objects.exclude(pk=old.pk).get()
    assert answer["Location"] == card_page(new)
    assert bank_paths(fake_bank) == ["/api/inquiry", "/api/invoice"]
    old.refresh_from_db()
    assert (old.status, old.holds_order, new.holds_order) == (Status.PENDING, False, True)


def test_once_the_page_timer_ran_out_a_payment_the_bank_reports_is_recorded_and_nothing_made(
    fake_bank: FakeBank,
    client: Client,
    signal_log: SignalRecorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    old = age(InvoiceFactory(reference="ORD-7"), PAST_TIMER)
    fake_bank.inquiry(error_code="000")  # it was paid; the push and the redirect were lost

    with django_capture_on_commit_callbacks(execute=True):
        answer = checkout(client, "ORD-7")

    assert answer["Location"] == f"/payments/result/{old.key}/"
    assert bank_paths(fake_bank) == ["/api/inquiry"]
    assert Invoice.objects.get().status == Status.PAID
    assert signal_log.names() == ["invoice_status_changed", "payment_succeeded"]


def test_a_bank_that_does_not_answer_about_the_old_invoice_starts_nothing(
    fake_bank: FakeBank, client: Client
) -> None:
    old = age(InvoiceFactory(reference="ORD-8"), PAST_TIMER)
    fake_bank.inquiry_down()

    answer = checkout(client, "ORD-8")

    assert answer.status_code == 503
    assert "Nothing was charged" in answer.content.decode()
    assert bank_paths(fake_bank) == ["/api/inquiry"]
    old.refresh_from_db()
    assert old.holds_order


def test_an_expired_invoice_does_not_hold_its_order(fake_bank: FakeBank) -> None:
    InvoiceFactory(reference="ORD-9", expired=True)
    fake_bank.invoice()

    new = services.start_payment(amount=1000, callback_url=CALLBACK, reference="ORD-9")

    assert new.holds_order
    assert bank_paths(fake_bank) == ["/api/invoice"]


# --- another method -----------------------------------------------------------------------------


def test_switching_from_card_to_socialpay_asks_the_bank_about_the_card_page_first(
    fake_bank: FakeBank, client: Client
) -> None:
    card = InvoiceFactory(reference="ORD-10")
    fake_bank.inquiry(error_code=None)
    fake_bank.invoice()

    answer = checkout(client, "ORD-10", method=Method.SOCIALPAY)

    socialpay = Invoice.objects.get(method=Method.SOCIALPAY)
    assert answer["Location"] == f"/payments/socialpay/{socialpay.key}/"
    assert bank_paths(fake_bank) == ["/api/inquiry", "/api/invoice"]
    card.refresh_from_db()
    assert (card.holds_order, socialpay.holds_order) == (False, True)


def test_switching_method_after_the_first_page_was_paid_shows_the_paid_order(
    fake_bank: FakeBank, client: Client
) -> None:
    card = InvoiceFactory(reference="ORD-11")
    fake_bank.inquiry(error_code="000")

    answer = checkout(client, "ORD-11", method=Method.SOCIALPAY)

    assert answer["Location"] == f"/payments/result/{card.key}/"
    assert bank_paths(fake_bank) == ["/api/inquiry"]
    assert Invoice.objects.get().status == Status.PAID


# --- when the bank gives no page -----------------------------------------------------------


def test_an_invoice_the_bank_refused_lets_the_order_try_again(
    fake_bank: FakeBank, client: Client
) -> None:
    fake_bank.invoice_refused()
    assert checkout(client, "ORD-12").status_code == 502
    fake_bank.mock.reset()
    fake_bank.invoice()

    answer = checkout(client, "ORD-12")

    refused, new = Invoice.objects.order_by("pk")
    assert (refused.status, refused.holds_order) == (Status.FAILED, False)
    assert answer["Location"] == card_page(new)


def test_an_invoice_the_bank_did_not_answer_for_lets_the_order_try_again(
    fake_bank: FakeBank, client: Client
) -> None:
    fake_bank.invoice_down()
    assert checkout(client, "ORD-13").status_code == 503
    fake_bank.mock.reset()
    fake_bank.invoice()

    answer = checkout(client, "ORD-13")

    unanswered, new = Invoice.objects.order_by("pk")
    assert (unanswered.status, unanswered.holds_order) == (Status.NEW, False)
    assert answer["Location"] == card_page(new)


def test_a_request_that_finds_the_order_being_created_waits_for_its_page(
    fake_bank: FakeBank, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double click: the first request is still waiting for the bank; the second waits for
    the first's page instead of making its own invoice."""
    starting = InvoiceFactory(new=True, reference="ORD-14")

    def first_request_answered(seconds: float) -> None:
        Invoice.objects.filter(pk=starting.pk).update(
            status=Status.PENDING, bank_invoice="d7fb2858-df36-469e-b40d-2815fe9215cf"
        )

    monkeypatch.setattr(payments.time, "sleep", first_request_answered)

    answer = checkout(client, "ORD-14")

    starting.refresh_from_db()
    assert answer["Location"] == card_page(starting)
    assert not fake_bank.mock.calls


def test_a_request_that_finds_the_orders_creation_failed_is_asked_to_try_again(
    fake_bank: FakeBank, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    starting = InvoiceFactory(new=True, reference="ORD-15")

    def first_request_failed(seconds: float) -> None:
        Invoice.objects.filter(pk=starting.pk).update(holds_order=False)

    monkeypatch.setattr(payments.time, "sleep", first_request_failed)

    answer = checkout(client, "ORD-15")

    assert answer.status_code == 503
    assert "try again in a moment" in answer.content.decode()
    assert not fake_bank.mock.calls


def test_an_invoice_whose_creating_request_died_does_not_hold_the_order(
    fake_bank: FakeBank, client: Client
) -> None:
    """Past the create call's own timeouts, an invoice without the bank's answer never had a
    page in front of anybody: nobody can pay it, and the order goes on without it."""
    dead = age(InvoiceFactory(new=True, reference="ORD-16"), timedelta(minutes=1))
    fake_bank.invoice()

    answer = checkout(client, "ORD-16")

    new = Invoice.objects.exclude(pk=dead.pk).get()
    assert answer["Location"] == card_page(new)
    assert bank_paths(fake_bank) == ["/api/invoice"]


# --- saved cards and the order --------------------------------------------------------------


def test_a_saved_card_is_not_charged_while_the_orders_bank_page_is_open(
    fake_bank: FakeBank, client: Client, django_user_model: Any
) -> None:
    """The customer opened the bank's page, then pays with a saved card: nothing is charged,
    the customer is sent back to that page (paying both could take the money twice)."""
    customer = django_user_model.objects.create_user("ann")
    card = CardTokenFactory(owner=customer)
    page = InvoiceFactory(reference="ORD-17")
    client.force_login(customer)

    answer = client.post(
        CHECKOUT,
        {
            "payload": sign_checkout(amount=1000, reference="ORD-17"),
            "method": Method.SAVED_CARD,
            "card": str(card.pk),
        },
    )

    assert answer["Location"] == card_page(page)
    opened = services.charge_saved_card(card, amount=1000, reference="ORD-17")
    assert (opened.invoice.pk, opened.created) == (page.pk, False)
    assert not fake_bank.mock.calls


def test_a_saved_card_may_pay_an_order_whose_page_timed_out_unpaid(
    fake_bank: FakeBank, django_user_model: Any
) -> None:
    card = CardTokenFactory(owner=django_user_model.objects.create_user("ann"))
    page = age(InvoiceFactory(reference="ORD-17"), PAST_TIMER)
    fake_bank.inquiry(error_code=None)
    fake_bank.pay()

    charged = services.pay_with_saved_card(card, amount=1000, reference="ORD-17")

    page.refresh_from_db()
    assert (charged.status, charged.holds_order, page.holds_order) == (Status.PAID, True, False)
    assert bank_paths(fake_bank) == ["/api/inquiry", "/api/pay"]


def test_a_saved_card_is_not_charged_for_an_order_paid_on_the_banks_page(
    fake_bank: FakeBank, django_user_model: Any
) -> None:
    card = CardTokenFactory(owner=django_user_model.objects.create_user("ann"))
    page = age(InvoiceFactory(reference="ORD-18"), PAST_TIMER)
    fake_bank.inquiry(error_code="000")  # paid; its push and redirect were lost

    with pytest.raises(services.OrderAlreadyPaid) as refused:
        services.pay_with_saved_card(card, amount=1000, reference="ORD-18")

    assert refused.value.invoice.pk == page.pk
    assert not fake_bank.calls("/api/pay")


def test_a_page_offered_only_after_its_order_moved_on_is_never_handed_out(
    fake_bank: FakeBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bank answered one request so late that another took the order meanwhile: the late
    request goes on with the order's holder, never with a second live page."""
    other: list[Invoice] = []
    real = payments.bank.client

    def slow_bank(account: str = "default") -> Any:
        client = real(account)

        class Late:
            def __getattr__(self, name: str) -> Any:
                return getattr(client, name)

            def create_invoice(self, **kwargs: Any) -> Any:
                mine = Invoice.objects.get(transaction_id=kwargs["transaction_id"])
                payments.release_order(mine)  # another request took the order meanwhile
                other.append(InvoiceFactory(reference="ORD-19B"))
                return client.create_invoice(**kwargs)

        return Late()

    fake_bank.invoice()
    monkeypatch.setattr(payments.bank, "client", slow_bank)

    opened = services.open_payment(amount=1000, callback_url=CALLBACK, reference="ORD-19B")

    assert (opened.invoice.pk, opened.created) == (other[0].pk, False)
    late = Invoice.objects.exclude(pk=other[0].pk).get()
    assert (late.status, late.holds_order) == (Status.PENDING, False)


def test_a_declined_saved_card_lets_the_order_be_paid_another_way(
    fake_bank: FakeBank, django_user_model: Any
) -> None:
    card = CardTokenFactory(owner=django_user_model.objects.create_user("ann"))
    fake_bank.pay(error_code="300")
    fake_bank.invoice()

    declined = services.pay_with_saved_card(card, amount=1000, reference="ORD-19A")
    declined.refresh_from_db()
    assert (declined.status, declined.holds_order) == (Status.FAILED, False)
    assert services.order_state("ORD-19A").can_pay

    page = services.start_payment(amount=1000, callback_url=CALLBACK, reference="ORD-19A")

    assert page.holds_order
    assert bank_paths(fake_bank) == ["/api/pay", "/api/invoice"]  # nothing asked in between


# --- the pages --------------------------------------------------------------------------------


def test_the_socialpay_page_of_an_invoice_whose_order_moved_on_shows_its_outcome(
    client: Client,
) -> None:
    replaced = InvoiceFactory(socialpay=True, reference="ORD-20", holds_order=False)

    answer = client.get(f"/payments/socialpay/{replaced.key}/")

    assert answer.status_code == 302
    assert answer["Location"] == f"/payments/result/{replaced.key}/"


def test_resume_goes_back_to_the_bank_page_only_while_the_invoice_may_be_paid(
    client: Client,
) -> None:
    open_card = InvoiceFactory(reference="ORD-21")
    open_socialpay = InvoiceFactory(socialpay=True, reference="ORD-22")
    paid = InvoiceFactory(paid=True, reference="ORD-23")
    timed_out = age(InvoiceFactory(failed=True, reference="ORD-24"), PAST_TIMER)

    def resume(invoice: Invoice) -> str:
        return str(client.get(f"/payments/resume/{invoice.key}/")["Location"])

    assert resume(open_card) == card_page(open_card)
    assert resume(open_socialpay) == f"/payments/socialpay/{open_socialpay.key}/"
    assert resume(paid) == f"/payments/result/{paid.key}/"
    assert resume(timed_out) == f"/payments/result/{timed_out.key}/"


def test_the_failure_page_offers_the_same_bank_page_while_its_timer_runs(client: Client) -> None:
    declined = InvoiceFactory(failed=True, reference="ORD-25")
    closed = age(InvoiceFactory(failed=True, reference="ORD-26"), PAST_TIMER)

    retry = client.get(f"/payments/result/{declined.key}/").content.decode()
    too_late = client.get(f"/payments/result/{closed.key}/").content.decode()

    assert re.search(rf'id="golomt-resume" href="/payments/resume/{declined.key}/"', retry)
    assert "golomt-resume" not in too_late


# --- the order's state, for the shop's pages ------------------------------------------------


def test_order_state_tells_a_shop_page_what_to_offer() -> None:
    assert services.order_state("NONE").can_pay

    paying = services.order_state(InvoiceFactory(reference="S-1").reference)
    assert (paying.can_pay, paying.is_paid, paying.payable is not None) == (False, False, True)

    paid = InvoiceFactory(paid=True, reference="S-2")
    InvoiceFactory(failed=True, reference="S-2", holds_order=False)  # a later, failed try
    state = services.order_state("S-2")
    assert state.paid_by == paid and not state.can_pay

    gone = age(InvoiceFactory(reference="S-3"), PAST_TIMER)
    stale = services.order_state("S-3")
    assert (stale.holder, stale.payable, stale.can_pay) == (gone, None, True)


# --- a declined page paid after all ----------------------------------------------------------


def test_a_declined_page_paid_after_a_method_switch_is_found_by_reconcile_and_flagged(
    fake_bank: FakeBank, signal_log: SignalRecorder, django_capture_on_commit_callbacks: Any
) -> None:
    """Declined, the customer switched to SocialPay and paid that, then paid the old card page
    after all, its push and redirect lost: once the page has closed, the reconciler asks the
    bank about the declined invoice, and the second payment is recorded and flagged."""
    card = age(InvoiceFactory(failed=True, reference="ORD-30", holds_order=False), PAST_TIMER)
    socialpay = InvoiceFactory(paid=True, socialpay=True, reference="ORD-30")
    fake_bank.inquiry(error_code="000")

    with django_capture_on_commit_callbacks(execute=True):
        summary = services.reconcile(concurrency=1)  # in this test's transaction
        again = services.reconcile(concurrency=1)  # in this test's transaction

    card.refresh_from_db()
    assert (card.status, card.duplicate_of_id) == (Status.PAID, socialpay.pk)
    assert (summary.paid, again.checked) == (1, 0)
    assert signal_log.names().count("payment_duplicated") == 1


def test_a_declined_page_is_asked_about_once_after_it_closed(fake_bank: FakeBank) -> None:
    declined = age(InvoiceFactory(failed=True, reference="ORD-31"), PAST_TIMER)
    fresh = InvoiceFactory(failed=True, reference="ORD-32")  # its page still takes a card
    fake_bank.inquiry(error_code="300")

    first = services.reconcile(concurrency=1)  # in this test's transaction
    # Twenty minutes on for the closed page: the run's own lease has run out, the window in
    # which a declined invoice is asked about has not.
    Invoice.objects.filter(pk=declined.pk).update(
        created_at=F("created_at") - timedelta(minutes=20),
        reconcile_lease_until=F("reconcile_lease_until") - timedelta(minutes=20),
    )
    second = services.reconcile(concurrency=1)  # in this test's transaction

    assert (first.checked, first.unchanged, second.checked) == (1, 1, 0)
    assert [c.request.url for c in fake_bank.mock.calls] == ["https://bank.test/api/inquiry"]
    assert Invoice.objects.get(pk=declined.pk).status == Status.FAILED
    assert Invoice.objects.get(pk=fresh.pk).status == Status.FAILED


def test_the_status_page_asks_about_a_declined_page_whose_order_moved_on(
    fake_bank: FakeBank, client: Client
) -> None:
    switched_from = InvoiceFactory(failed=True, reference="ORD-33", holds_order=False)
    InvoiceFactory(socialpay=True, reference="ORD-33")
    fake_bank.inquiry(error_code="000")

    data = client.get(f"/payments/status/{switched_from.key}/").json()

    assert data["status"] == Status.PAID
    assert Invoice.objects.get(pk=switched_from.pk).duplicate_of_id is None  # it paid first


def test_a_success_redirect_moments_after_a_decline_is_confirmed_at_once(
    fake_bank: FakeBank, client: Client
) -> None:
    """The decline's redirect just asked the bank; the customer's second card succeeds on the
    same page seconds later: its redirect is not held back by the once-per-interval guard."""
    invoice = InvoiceFactory(reference="ORD-34")
    fake_bank.inquiry(error_code="300")
    fake_bank.inquiry(error_code="000")

    def come_back(code: str) -> Any:
        return client.post(
            "/payments/return/",
            {"invoice": invoice.transaction_id, "status_code": code, "desc": ""},
        )

    come_back("300")
    come_back("000")
    come_back("000")  # a forged or repeated claim within the interval asks nothing more

    invoice.refresh_from_db()
    assert invoice.status == Status.PAID
    assert len(fake_bank.calls("/api/inquiry")) == 2
