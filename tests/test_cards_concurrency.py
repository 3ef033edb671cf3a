"""Saved cards exactly once under real concurrency: threads with their own PostgreSQL
connections deliver the same token, finish the same registration, or submit the same order.

SQLite does not lock rows, so these run on PostgreSQL only (``DATABASE_URL``).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from golomt_payments import services
from golomt_payments.checkout import sign_checkout
from golomt_payments.gateway import TransactionResult, parse_transaction_result
from golomt_payments.models import (
    CardRegistration,
    CardToken,
    Invoice,
    RegistrationStatus,
    Source,
    Status,
)
from golomt_payments.services import cards
from tests.factories import CardTokenFactory, InvoiceFactory
from tests.helpers import SECRET, CardSignalRecorder, FakeBank, result_body
from tests.test_concurrency import THREADS, run_together

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL"
    ),
    pytest.mark.django_db(transaction=True),
]

TOKEN = "card-token-SECRET-1234"
CLICKS = 10


def price_order(request: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The shop's API resolver here: every order costs 1000."""
    return {"amount": Decimal("1000")}


@pytest.fixture
def customer(django_user_model: Any) -> AbstractBaseUser:
    user: AbstractBaseUser = django_user_model.objects.create_user("bat")
    return user


@pytest.fixture
def card_signals() -> Any:
    recorder = CardSignalRecorder()
    recorder.connect()
    yield recorder
    recorder.disconnect()


def paid_with(invoice: Invoice, token: str) -> TransactionResult:
    body = result_body(invoice.transaction_id, amount=invoice.amount_sent, token=token)
    return parse_transaction_result(body, SECRET, kind="inquiry")


def test_a_paid_result_with_a_token_applied_by_many_threads_saves_one_card(
    customer: AbstractBaseUser, card_signals: CardSignalRecorder
) -> None:
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    result = paid_with(invoice, TOKEN)

    def apply() -> bool:
        fresh = Invoice.objects.get(pk=invoice.pk)
        return services.apply_result(fresh, result, source=Source.PUSH).changed

    changed = run_together(*[apply] * THREADS)

    assert sum(changed) == 1
    card = CardToken.objects.get()
    assert Invoice.objects.get().card_token_id == card.pk
    assert card_signals.names() == ["card_saved"]


def test_two_payments_saving_the_same_card_at_once_keep_one_card(
    customer: AbstractBaseUser, card_signals: CardSignalRecorder
) -> None:
    invoices = [InvoiceFactory(gen_token=True, owner=customer) for _ in range(THREADS)]

    def apply(invoice: Invoice) -> Any:
        return lambda: services.apply_result(
            Invoice.objects.get(pk=invoice.pk), paid_with(invoice, TOKEN), source=Source.PUSH
        )

    run_together(*[apply(invoice) for invoice in invoices])

    card = CardToken.objects.get()
    assert set(Invoice.objects.values_list("status", "card_token_id")) == {(Status.PAID, card.pk)}
    assert card_signals.names() == ["card_saved"]


def test_a_registration_finished_by_many_requests_at_once_saves_one_card(
    fake_bank: FakeBank, customer: AbstractBaseUser, card_signals: CardSignalRecorder
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = services.start_card_registration(
        customer, callback_url="https://shop.test/payments/cards/return/"
    )

    def finish() -> Any:
        return services.finish_card_registration(CardRegistration.objects.get())

    cards = run_together(*[finish] * THREADS)

    card = CardToken.objects.get()
    assert {c.pk for c in cards} == {card.pk}
    registration.refresh_from_db()
    assert (registration.status, registration.card_token_id) == (RegistrationStatus.SAVED, card.pk)
    assert card_signals.names() == ["card_saved"]


def test_the_same_order_submitted_many_times_at_once_is_charged_once(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = CardTokenFactory(owner=customer, token=TOKEN)
    fake_bank.pay()

    def submit() -> int:
        try:
            return services.pay_with_saved_card(
                CardToken.objects.get(pk=card.pk), amount=1000, reference="ORD-1"
            ).pk
        except services.OrderAlreadyPaid as paid:  # came after the first was paid
            return paid.invoice.pk

    invoices = run_together(*[submit] * THREADS)

    assert len(set(invoices)) == 1
    assert len(fake_bank.calls("/api/pay")) == 1
    assert Invoice.objects.get().status == Status.PAID


def test_a_card_removed_while_it_pays_is_either_charged_or_refused_never_both(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = CardTokenFactory(owner=customer, token=TOKEN)
    fake_bank.pay()

    def pay() -> str:
        try:
            services.pay_with_saved_card(CardToken.objects.get(pk=card.pk), amount=1000)
        except services.CardRemoved:
            return "refused"
        return "paid"

    def remove() -> str:
        services.remove_card(CardToken.objects.get(pk=card.pk))
        return "removed"

    outcome = run_together(pay, remove)

    assert outcome[1] == "removed"
    assert CardToken.objects.get().is_active is False
    assert len(fake_bank.calls("/api/pay")) == (1 if outcome[0] == "paid" else 0)
    assert Invoice.objects.count() == (1 if outcome[0] == "paid" else 0)


def test_ten_clicks_at_once_right_after_a_decline_charge_the_card_no_more(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = CardTokenFactory(owner=customer, token=TOKEN)
    fake_bank.pay(error_code="300")  # the card stays declined, however often it is charged
    form = {
        "payload": sign_checkout(amount=1000, reference="ORD-1"),
        "method": "token",
        "card": str(card.pk),
    }
    browsers = [Client() for _ in range(CLICKS + 1)]
    for browser in browsers:
        browser.force_login(customer)
    assert browsers[0].post("/payments/checkout/", form).status_code == 303
    declined = Invoice.objects.get()

    def click(browser: Client) -> Any:
        def job() -> tuple[int, str]:
            response = browser.post("/payments/checkout/", form)
            return response.status_code, response.get("Location", "")

        return job

    answers = run_together(*[click(browser) for browser in browsers[1:]])

    assert len(fake_bank.calls("/api/pay")) == 1  # the decline's own, none more
    outcome = reverse("golomt_payments:result", kwargs={"key": declined.key})
    assert answers == [(303, outcome)] * CLICKS
    assert list(Invoice.objects.values_list("pk", "status")) == [(declined.pk, Status.FAILED)]


def test_clicks_that_go_on_while_the_bank_declines_the_card_charge_it_once(
    fake_bank: FakeBank, customer: AbstractBaseUser, settings: Any
) -> None:
    settings.GOLOMT_PAYMENTS = {
        **settings.GOLOMT_PAYMENTS,
        "API_ORDER_RESOLVER": f"{__name__}.price_order",
    }
    card = CardTokenFactory(owner=customer, token=TOKEN)
    fake_bank.pay(error_code="300", delay=0.2)  # each decline takes the bank a moment
    api = APIClient()
    api.force_authenticate(customer)

    def click(after: float) -> Any:
        def job() -> tuple[int, str]:
            time.sleep(after)  # the clicks come over a second, across the bank's decline
            response = api.post(
                f"/payments/api/cards/{card.pk}/pay/", {"order": "ORD-1"}, format="json"
            )
            return response.status_code, response.json().get("key", "")

        return job

    answers = run_together(*[click(0.1 * i) for i in range(CLICKS)])

    assert len(fake_bank.calls("/api/pay")) == 1
    charge = Invoice.objects.get()
    assert charge.status == Status.FAILED
    assert sorted(code for code, _ in answers) == [200] * (CLICKS - 1) + [201]
    assert {key for _, key in answers} == {str(charge.key)}


def test_a_click_that_looks_for_a_decline_as_the_bank_declines_charges_nothing_more(
    fake_bank: FakeBank, customer: AbstractBaseUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decline is looked for once the order is claimed, not before: a click whose look
    comes just before the decline lets go of the order must not then claim it and charge."""
    card = CardTokenFactory(owner=customer, token=TOKEN)
    fake_bank.pay(error_code="300", delay=0.3)
    look = cards._declined_moments_ago

    def slow_look(*args: Any) -> Invoice | None:
        found = look(*args)
        time.sleep(0.3)  # the decline lands meanwhile
        return found

    monkeypatch.setattr(cards, "_declined_moments_ago", slow_look)

    def click(after: float) -> Any:
        def job() -> int:
            time.sleep(after)
            fresh = CardToken.objects.get(pk=card.pk)
            return services.pay_with_saved_card(fresh, amount=1000, reference="ORD-1").pk

        return job

    invoices = run_together(click(0), click(0.45))

    assert len(fake_bank.calls("/api/pay")) == 1
    assert len(set(invoices)) == 1
    assert Invoice.objects.get().status == Status.FAILED
