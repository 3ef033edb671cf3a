"""Saved cards: kept once from a confirmed payment, paid with in one call, added without
buying, listed and removed by their owner, and never shown in full anywhere."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import responses
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.template import Context, Template
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from golomt_payments import services
from golomt_payments.checkout import sign_checkout
from golomt_payments.gateway import BankTimeout, GolomtClient
from golomt_payments.models import (
    BankMessage,
    CardRegistration,
    CardToken,
    Direction,
    Invoice,
    MessageKind,
    Method,
    Outcome,
    RegistrationStatus,
    Source,
    Status,
)
from golomt_payments.sandbox.cards import Behaviour
from golomt_payments.services.cards import DECLINE_COOL_DOWN
from golomt_payments.testing.sandbox import BANK_URL, SandboxBank
from tests.factories import CardTokenFactory, InvoiceFactory
from tests.helpers import (
    CardSignalRecorder,
    FakeBank,
    SignalRecorder,
    hmac_hex,
    push_body,
)
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

#: A token whose every part would be noticed on a page: "SECRET" and its last four, "1234".
TOKEN = "card-token-SECRET-1234"
PUSH = "/payments/push/"
RETURN = "/payments/return/"
CARDS = "/payments/cards/"
CARD_RETURN = "/payments/cards/return/"
CHECKOUT = "/payments/checkout/"


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def customer(django_user_model: Any) -> AbstractBaseUser:
    user: AbstractBaseUser = django_user_model.objects.create_user("bat", password="pw")
    return user


@pytest.fixture
def stranger(django_user_model: Any) -> AbstractBaseUser:
    user: AbstractBaseUser = django_user_model.objects.create_user("dorj", password="pw")
    return user


@pytest.fixture
def browser(customer: AbstractBaseUser) -> Client:
    """The customer's browser, logged in to the shop."""
    client = Client()
    client.force_login(customer)
    return client


@pytest.fixture
def card_signals() -> Iterator[CardSignalRecorder]:
    recorder = CardSignalRecorder()
    recorder.connect()
    yield recorder
    recorder.disconnect()


@pytest.fixture
def bank_sender() -> Client:
    """The bank's server: no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Run the on-commit callbacks (the signals) of what happens inside the block."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def send_push(sender: Client, body: dict[str, Any]) -> Any:
    return sender.post(
        PUSH, data=json.dumps(body, ensure_ascii=False), content_type="application/json"
    )


def history(invoice: Invoice) -> list[tuple[str, str, str]]:
    return list(invoice.history.values_list("from_status", "to_status", "source"))


def card_of(owner: AbstractBaseUser, token: str = TOKEN, **kwargs: Any) -> CardToken:
    card: CardToken = CardTokenFactory(owner=owner, token=token, **kwargs)
    return card


# --- a card saved by a payment --------------------------------------------------------------


def test_confirmed_push_with_a_token_saves_the_card_for_the_invoices_owner(
    bank_sender: Client,
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    fake_bank.inquiry(token=TOKEN)

    with commit():
        answer = send_push(bank_sender, push_body(invoice.transaction_id, token=TOKEN))

    assert answer.status_code == 200
    card = CardToken.objects.get()
    assert (card.owner_id, card.account, card.token, card.is_active) == (
        customer.pk,
        "default",
        TOKEN,
        True,
    )
    assert (card.card_number, card.card_bank, card.card_holder) == (
        "949625******0003",
        "Голомт банк",
        "9496250",
    )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.card_token_id) == (Status.PAID, card.pk)
    assert card_signals.received == [
        ("card_saved", card.pk, {"invoice": invoice, "registration": None})
    ]


def test_redirect_alone_saves_the_card_from_the_inquiry(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    fake_bank.inquiry(token=TOKEN)

    with commit():
        Client().post(RETURN, {"invoice": invoice.transaction_id, "status_code": "000"})

    card = CardToken.objects.get()
    assert Invoice.objects.get().card_token == card
    assert card_signals.names() == ["card_saved"]


def test_repeated_pushes_and_the_redirect_save_the_card_once_and_signal_once(
    bank_sender: Client,
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    signal_log: SignalRecorder,
    commit: Any,
) -> None:
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    fake_bank.inquiry(token=TOKEN)
    body = push_body(invoice.transaction_id, token=TOKEN)

    with commit():
        answers = [send_push(bank_sender, body) for _ in range(3)]
        Client().post(RETURN, {"invoice": invoice.transaction_id, "status_code": "000"})
        services.refresh(invoice, source=Source.ADMIN)

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert CardToken.objects.count() == 1
    assert card_signals.names() == ["card_saved"]
    assert signal_log.names().count("payment_succeeded") == 1


def test_a_token_for_an_invoice_without_a_customer_is_not_kept(
    bank_sender: Client,
    fake_bank: FakeBank,
    card_signals: CardSignalRecorder,
    caplog: pytest.LogCaptureFixture,
    commit: Any,
) -> None:
    invoice = InvoiceFactory(gen_token=True, owner=None)
    fake_bank.inquiry(token=TOKEN)

    with commit(), caplog.at_level(logging.INFO, logger="golomt_payments.services.card_tokens"):
        send_push(bank_sender, push_body(invoice.transaction_id, token=TOKEN))

    invoice.refresh_from_db()
    assert (invoice.status, invoice.card_token_id) == (Status.PAID, None)
    assert not CardToken.objects.exists()
    assert card_signals.received == []
    assert "has no customer" in caplog.text
    assert TOKEN not in caplog.text


def test_a_token_is_not_kept_when_the_customer_did_not_ask_to_save_the_card(
    fake_bank: FakeBank, customer: AbstractBaseUser, card_signals: CardSignalRecorder
) -> None:
    invoice = InvoiceFactory(gen_token=False, owner=customer)
    fake_bank.inquiry(token=TOKEN)

    services.refresh(invoice, source=Source.ADMIN)

    assert Invoice.objects.get().status == Status.PAID
    assert not CardToken.objects.exists()


def test_a_declined_payment_saves_no_card(fake_bank: FakeBank, customer: AbstractBaseUser) -> None:
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    fake_bank.inquiry(error_code="300")

    services.refresh(invoice, source=Source.ADMIN)

    assert Invoice.objects.get().status == Status.FAILED
    assert not CardToken.objects.exists()


def test_a_removed_card_paid_with_save_ticked_again_is_saved_again(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    card = card_of(customer, is_active=False, card_holder="")
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    fake_bank.inquiry(token=TOKEN)

    with commit():
        services.refresh(invoice, source=Source.ADMIN)

    card.refresh_from_db()
    assert (card.is_active, card.card_holder) == (True, "9496250")
    assert CardToken.objects.count() == 1
    assert card_signals.names() == ["card_saved"]


def test_another_customers_card_is_never_handed_over(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    stranger: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    theirs = card_of(stranger)
    invoice = InvoiceFactory(gen_token=True, owner=customer)
    fake_bank.inquiry(token=TOKEN)

    with commit():
        services.refresh(invoice, source=Source.ADMIN)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.card_token_id) == (Status.PAID, None)
    assert list(CardToken.objects.values_list("pk", "owner_id")) == [(theirs.pk, stranger.pk)]
    assert card_signals.received == []


# --- paying with a saved card ---------------------------------------------------------------


def test_pay_with_a_saved_card_pays_like_a_card_payment(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    signal_log: SignalRecorder,
    commit: Any,
) -> None:
    card = card_of(customer)
    fake_bank.pay()

    with commit():
        invoice = services.pay_with_saved_card(
            card, amount=Decimal("1000"), reference="ORD-1", metadata={"cart": 1}
        )

    assert invoice.status == Status.PAID
    assert (invoice.method, invoice.owner_id, invoice.card_token_id) == (
        Method.SAVED_CARD,
        customer.pk,
        card.pk,
    )
    assert (invoice.reference, invoice.metadata, invoice.amount_sent) == (
        "ORD-1",
        {"cart": 1},
        "1000.00",
    )
    assert invoice.bank_code == "000"
    assert invoice.paid_at is not None
    tx = invoice.transaction_id
    assert fake_bank.sent("/api/pay") == {
        "amount": "1000.00",
        "transactionId": tx,
        "lang": "MN",
        "token": TOKEN,
        "checksum": hmac_hex("1000.00", tx, TOKEN),
    }
    assert history(invoice) == [
        (Status.NEW, Status.PENDING, Source.API),
        (Status.PENDING, Status.PAID, Source.API),
    ]
    assert signal_log.names() == [
        "invoice_status_changed",
        "invoice_status_changed",
        "payment_succeeded",
    ]
    card.refresh_from_db()
    assert card.last_used_at is not None
    assert not fake_bank.calls("/api/check")


def test_every_payment_gets_a_fresh_transaction_id_and_the_pay_language(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay()

    first = services.pay_with_saved_card(card, amount=1000, language="en")
    second = services.pay_with_saved_card(card, amount=1000)

    assert first.transaction_id != second.transaction_id
    assert [fake_bank.sent("/api/pay", i)["lang"] for i in (0, 1)] == ["EN", "MN"]


def test_declined_saved_card_fails_with_the_banks_words(
    fake_bank: FakeBank, customer: AbstractBaseUser, signal_log: SignalRecorder, commit: Any
) -> None:
    card = card_of(customer)
    fake_bank.pay(error_code="300")

    with commit():
        invoice = services.pay_with_saved_card(card, amount=1000)

    assert (invoice.status, invoice.bank_code, invoice.bank_description) == (
        Status.FAILED,
        "300",
        "Картын хугацаа дууссан",
    )
    assert "payment_failed" in signal_log.names()
    card.refresh_from_db()
    assert card.last_used_at is None


def test_token_payment_the_bank_turns_away_fails_and_charges_nothing(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay_refused("token is not valid.")

    invoice = services.pay_with_saved_card(card, amount=1000)

    assert (invoice.status, invoice.bank_description) == (Status.FAILED, "token is not valid.")
    assert not fake_bank.calls("/api/check")


def test_lost_pay_answer_is_decided_by_check_and_pay_is_never_repeated(
    fake_bank: FakeBank, customer: AbstractBaseUser, signal_log: SignalRecorder, commit: Any
) -> None:
    card = card_of(customer)
    fake_bank.pay_down()
    fake_bank.check(error_code="000", amount="1000")

    with commit():
        invoice = services.pay_with_saved_card(card, amount=1000)

    assert invoice.status == Status.PAID
    assert len(fake_bank.calls("/api/pay")) == 1
    assert len(fake_bank.calls("/api/check")) == 1
    assert fake_bank.sent("/api/check") == {
        "transactionId": invoice.transaction_id,
        "checksum": hmac_hex(invoice.transaction_id, invoice.transaction_id),
    }
    assert not fake_bank.calls("/api/inquiry")
    assert signal_log.names().count("payment_succeeded") == 1
    card.refresh_from_db()
    assert card.last_used_at is not None


def test_pay_answer_with_a_bad_checksum_is_not_trusted_and_check_decides(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay(error_code="000", checksum="0" * 64)
    fake_bank.check(error_code="300")

    invoice = services.pay_with_saved_card(card, amount=1000)

    assert (invoice.status, invoice.bank_code) == (Status.FAILED, "300")


def test_pay_and_check_both_lost_leave_the_invoice_pending_then_reconcile_asks_check(
    fake_bank: FakeBank, customer: AbstractBaseUser, signal_log: SignalRecorder, commit: Any
) -> None:
    card = card_of(customer)
    fake_bank.pay_down()
    fake_bank.check_down()

    invoice = services.pay_with_saved_card(card, amount=1000)

    assert invoice.status == Status.PENDING
    assert "payment_succeeded" not in signal_log.names()
    Invoice.objects.filter(pk=invoice.pk).update(created_at=timezone.now() - timedelta(minutes=15))
    fake_bank.mock.remove("POST", fake_bank.url("/api/check"))
    fake_bank.check(error_code="000", amount="1000")

    with commit():
        summary = services.reconcile(concurrency=1)  # one connection: the test's

    invoice.refresh_from_db()
    assert (summary.paid, invoice.status) == (1, Status.PAID)
    assert history(invoice)[-1] == (Status.PENDING, Status.PAID, Source.RECONCILE)
    assert not fake_bank.calls("/api/inquiry")
    assert len(fake_bank.calls("/api/pay")) == 1
    card.refresh_from_db()
    assert card.last_used_at is not None


def test_token_payment_the_bank_never_received_expires_after_the_grace(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay_down()
    fake_bank.check_not_found()

    invoice = services.pay_with_saved_card(card, amount=1000)
    assert invoice.status == Status.PENDING
    Invoice.objects.filter(pk=invoice.pk).update(created_at=timezone.now() - timedelta(hours=1))

    services.reconcile(concurrency=1)  # one connection: the test's

    assert Invoice.objects.get().status == Status.EXPIRED


def test_status_page_of_a_pending_token_payment_asks_check(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay_down()
    fake_bank.check_down()
    invoice = services.pay_with_saved_card(card, amount=1000)
    fake_bank.mock.remove("POST", fake_bank.url("/api/check"))
    fake_bank.check(error_code="000", amount="1000", token=TOKEN)

    answer = Client().get(reverse("golomt_payments:status", kwargs={"key": invoice.key}))

    assert answer.json()["status"] == Status.PAID
    assert TOKEN not in answer.content.decode()
    assert not fake_bank.calls("/api/inquiry")


def test_a_removed_card_cannot_pay(fake_bank: FakeBank, customer: AbstractBaseUser) -> None:
    card = card_of(customer, is_active=False)

    with pytest.raises(services.CardRemoved, match="removed"):
        services.pay_with_saved_card(card, amount=1000)

    assert not Invoice.objects.exists()
    assert not fake_bank.mock.calls


def test_a_card_removed_after_it_was_read_cannot_pay(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    services.remove_card(CardToken.objects.get(pk=card.pk))

    with pytest.raises(services.CardRemoved):
        services.pay_with_saved_card(card, amount=1000)  # a stale copy that still says active

    assert not fake_bank.mock.calls


def test_the_same_order_submitted_again_once_paid_is_refused_and_charged_once(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay()

    first = services.pay_with_saved_card(card, amount=1000, reference="ORD-9")
    with pytest.raises(services.OrderAlreadyPaid) as refused:
        services.pay_with_saved_card(card, amount=1000, reference="ORD-9")

    assert first.status == Status.PAID
    assert refused.value.invoice.pk == first.pk
    assert len(fake_bank.calls("/api/pay")) == 1


def test_a_saved_card_charge_under_way_is_the_answer_to_a_second_one(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    first_card, second_card = card_of(customer), card_of(customer, token="another-card")
    fake_bank.pay_down()  # the first charge's answer is lost: its outcome is still coming
    fake_bank.check_down()
    under_way = services.pay_with_saved_card(first_card, amount=1000, reference="ORD-9")

    again = services.charge_saved_card(second_card, amount=1000, reference="ORD-9")

    assert under_way.status == Status.PENDING
    assert (again.invoice.pk, again.created) == (under_way.pk, False)
    assert len(fake_bank.calls("/api/pay")) == 1


def declined_for(invoice: Invoice, seconds: float) -> None:
    """Let ``seconds`` pass since the bank declined ``invoice``."""
    at = timezone.now() - timedelta(seconds=seconds)
    Invoice.objects.filter(pk=invoice.pk).update(updated_at=at)


@pytest.mark.parametrize("declines", ["declined", "turned_away"])
def test_clicks_on_a_card_declined_moments_ago_answer_with_the_decline_and_charge_nothing(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    signal_log: SignalRecorder,
    commit: Any,
    declines: str,
) -> None:
    card = card_of(customer)
    if declines == "declined":
        fake_bank.pay(error_code="300")
    else:
        fake_bank.pay_refused()
    fake_bank.pay()  # what a new charge would get: the test fails if one is sent
    with commit():
        declined = services.pay_with_saved_card(card, amount=1000, reference="ORD-9")
    declined_for(declined, DECLINE_COOL_DOWN.total_seconds() - 2)  # still cooling down

    with commit():
        clicks = [
            services.charge_saved_card(card, amount=1000, reference="ORD-9") for _ in range(10)
        ]

    assert len(fake_bank.calls("/api/pay")) == 1
    assert {(click.invoice.pk, click.created, click.invoice.status) for click in clicks} == {
        (declined.pk, False, Status.FAILED)
    }
    assert Invoice.objects.count() == 1
    assert signal_log.names().count("payment_failed") == 1


def test_after_the_cool_down_the_declined_card_may_pay_the_order_again(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay(error_code="300")
    fake_bank.pay()

    first = services.pay_with_saved_card(card, amount=1000, reference="ORD-9")
    declined_for(first, DECLINE_COOL_DOWN.total_seconds() + 1)
    again = services.pay_with_saved_card(card, amount=1000, reference="ORD-9")

    assert (first.status, again.status) == (Status.FAILED, Status.PAID)
    assert again.pk != first.pk
    assert len(fake_bank.calls("/api/pay")) == 2


def test_a_decline_holds_back_neither_another_card_nor_another_order_nor_another_amount(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card, other_card = card_of(customer), card_of(customer, token="another-card")
    fake_bank.pay(error_code="300")  # every charge is declined
    services.pay_with_saved_card(card, amount=1000, reference="ORD-9")

    others = [
        services.charge_saved_card(card, amount=1000, reference="ORD-10"),
        services.charge_saved_card(card, amount=900, reference="ORD-9"),  # the cart changed
        services.charge_saved_card(other_card, amount=1000, reference="ORD-9"),
    ]

    assert [(other.created, other.invoice.status) for other in others] == [
        (True, Status.FAILED)
    ] * 3
    assert len(fake_bank.calls("/api/pay")) == 4


def test_a_decline_without_an_order_holds_nothing_back(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay(error_code="300")

    first = services.pay_with_saved_card(card, amount=1000)  # no reference: an order of its own
    second = services.pay_with_saved_card(card, amount=1000)

    assert (first.status, second.status) == (Status.FAILED, Status.FAILED)
    assert len(fake_bank.calls("/api/pay")) == 2


def test_clicks_in_the_checkout_on_a_card_declined_moments_ago_show_the_decline(
    fake_bank: FakeBank, customer: AbstractBaseUser, browser: Client
) -> None:
    card = card_of(customer)
    fake_bank.pay(error_code="300")
    payload = sign_checkout(amount=Decimal("25000"), reference="ORD-5")
    form = {"payload": payload, "method": "token", "card": str(card.pk), "lang": "en"}
    assert browser.post(CHECKOUT, form).status_code == 303
    declined = Invoice.objects.get()

    answers = [browser.post(CHECKOUT, form) for _ in range(10)]

    outcome = reverse("golomt_payments:result", kwargs={"key": declined.key})
    assert {(answer.status_code, answer["Location"]) for answer in answers} == {(303, outcome)}
    assert len(fake_bank.calls("/api/pay")) == 1
    page = browser.get(outcome).content.decode()
    assert "Payment not completed" in page
    assert "Картын хугацаа дууссан" in page  # the bank's words

    declined_for(declined, DECLINE_COOL_DOWN.total_seconds() + 1)
    after = browser.post(CHECKOUT, form)

    assert after["Location"] != outcome
    assert len(fake_bank.calls("/api/pay")) == 2


def price_order(request: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The shop's API resolver here: every order costs 1000."""
    return {"amount": Decimal("1000")}


def test_api_clicks_on_a_card_declined_moments_ago_answer_with_the_declined_payment(
    fake_bank: FakeBank, customer: AbstractBaseUser, settings: Any
) -> None:
    settings.GOLOMT_PAYMENTS = {**GOLOMT_PAYMENTS, "API_ORDER_RESOLVER": f"{__name__}.price_order"}
    card, other_card = card_of(customer), card_of(customer, token="another-card")
    fake_bank.pay(error_code="300")
    api = APIClient()
    api.force_authenticate(customer)

    def click(pay_with: CardToken = card, order: str = "ORD-1") -> Any:
        url = reverse("golomt_payments:api:card-pay", args=[pay_with.pk])
        return api.post(url, {"order": order}, format="json")

    declined = click()
    clicks = [click() for _ in range(10)]

    assert (declined.status_code, declined.json()["status"]) == (201, Status.FAILED)
    assert {
        (answer.status_code, answer.json()["key"], answer.json()["status"]) for answer in clicks
    } == {(200, declined.json()["key"], Status.FAILED)}
    assert len(fake_bank.calls("/api/pay")) == 1
    assert click(other_card).status_code == 201
    assert click(order="ORD-2").status_code == 201
    assert len(fake_bank.calls("/api/pay")) == 3


# --- adding a card without buying -----------------------------------------------------------


def start_registration(owner: AbstractBaseUser, **kwargs: Any) -> CardRegistration:
    kwargs.setdefault("callback_url", "https://shop.test" + CARD_RETURN)
    return services.start_card_registration(owner, **kwargs)


def test_start_card_registration_asks_for_a_signed_card_saving_page(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation(bank_invoice="d7fb2858-df36-469e-b40d-2815fe9215cf")

    registration = start_registration(customer, language="en")

    tx = registration.transaction_id
    callback = "https://shop.test" + CARD_RETURN
    assert fake_bank.sent("/api/confirmation") == {
        "callback": callback,
        "returnType": "POST",
        "transactionId": tx,
        "checksum": hmac_hex(tx, "POST", callback),
    }
    assert (registration.status, registration.bank_invoice, registration.owner_id) == (
        RegistrationStatus.PENDING,
        "d7fb2858-df36-469e-b40d-2815fe9215cf",
        customer.pk,
    )
    assert services.registration_url(registration) == (
        "https://bank.test/confirmation/en/d7fb2858-df36-469e-b40d-2815fe9215cf"
    )


def test_finished_registration_saves_the_card_once(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = start_registration(customer)

    with commit():
        card = services.finish_card_registration(registration)
        again = services.finish_card_registration(CardRegistration.objects.get())

    assert card is not None and again == card
    assert (card.owner_id, card.token, card.card_holder) == (customer.pk, TOKEN, "BAT ERDENE")
    registration.refresh_from_db()
    assert (registration.status, registration.card_token_id) == (RegistrationStatus.SAVED, card.pk)
    assert len(fake_bank.calls("/api/get/token")) == 1
    assert card_signals.received == [
        ("card_saved", card.pk, {"invoice": None, "registration": registration})
    ]
    sent = fake_bank.sent("/api/get/token")
    assert sent["checksum"] == hmac_hex(registration.transaction_id, registration.transaction_id)


def test_declined_registration_fails_with_the_banks_words(
    fake_bank: FakeBank, customer: AbstractBaseUser, card_signals: CardSignalRecorder
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=None, error_code="300")
    registration = start_registration(customer)

    assert services.finish_card_registration(registration) is None

    registration.refresh_from_db()
    assert (registration.status, registration.bank_code, registration.bank_description) == (
        RegistrationStatus.FAILED,
        "300",
        "Картын хугацаа дууссан",
    )
    assert not CardToken.objects.exists()


def test_unfinished_registration_stays_pending(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=None, error_code=None)
    registration = start_registration(customer)

    assert services.finish_card_registration(registration) is None

    assert CardRegistration.objects.get().status == RegistrationStatus.PENDING


# --- a card registration whose return was lost: the reconciler finishes it -------------------
# (one at a time, in the test's thread: other connections cannot see the test's transaction)


def registration_aged(owner: AbstractBaseUser, minutes: float) -> CardRegistration:
    """A registration started ``minutes`` ago whose customer never came back to the shop."""
    registration = start_registration(owner)
    CardRegistration.objects.filter(pk=registration.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )
    return CardRegistration.objects.get(pk=registration.pk)


def test_reconcile_saves_the_card_of_a_registration_whose_return_was_lost(
    fake_bank: FakeBank, customer: AbstractBaseUser, card_signals: CardSignalRecorder, commit: Any
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = registration_aged(customer, minutes=15)

    with commit():
        summary = services.reconcile(concurrency=1)

    registration.refresh_from_db()
    assert registration.status == RegistrationStatus.SAVED
    assert registration.card_token is not None and registration.card_token.owner_id == customer.pk
    assert (summary.registrations_checked, summary.cards_saved) == (1, 1)
    assert [name for name, _, _ in card_signals.received] == ["card_saved"]
    with commit():
        assert (
            services.reconcile(concurrency=1).registrations_checked == 0
        )  # finished: never asked again
    assert len(fake_bank.calls("/api/get/token")) == 1


def test_reconcile_leaves_a_registration_alone_while_the_customer_may_be_on_the_page(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration_aged(customer, minutes=5)

    summary = services.reconcile(concurrency=1)

    assert summary.registrations_checked == 0
    assert fake_bank.calls("/api/get/token") == []
    assert CardRegistration.objects.get().status == RegistrationStatus.PENDING


@pytest.mark.parametrize(
    ("minutes", "status"),
    [(15, RegistrationStatus.PENDING), (45, RegistrationStatus.FAILED)],
    ids=["within-the-grace", "past-the-grace"],
)
def test_reconcile_closes_an_unfinished_registration_only_after_the_grace(
    fake_bank: FakeBank, customer: AbstractBaseUser, minutes: int, status: str
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=None, error_code=None)  # the bank has no card for it
    registration_aged(customer, minutes=minutes)

    summary = services.reconcile(concurrency=1)

    registration = CardRegistration.objects.get()
    assert registration.status == status
    assert summary.registrations_checked == 1
    assert summary.registrations_failed == (status == RegistrationStatus.FAILED)
    if status == RegistrationStatus.FAILED:
        assert registration.bank_description == "The card-saving page was not finished in time."
    assert not CardToken.objects.exists()


def test_reconcile_keeps_a_registration_open_while_the_bank_cannot_be_reached(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.mock.add(
        responses.POST,
        fake_bank.url("/api/get/token"),
        body=requests.exceptions.ConnectTimeout("timed out"),
    )
    registration_aged(customer, minutes=45)

    summary = services.reconcile(concurrency=1)

    assert (summary.registrations_checked, summary.registrations_failed) == (1, 0)
    assert CardRegistration.objects.get().status == RegistrationStatus.PENDING


def test_a_dry_run_does_not_touch_card_registrations(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration_aged(customer, minutes=45)

    summary = services.reconcile(dry_run=True, concurrency=1)

    assert summary.registrations_checked == 0
    assert fake_bank.calls("/api/get/token") == []


def test_card_return_view_logs_the_redirect_saves_the_card_and_shows_the_cards(
    fake_bank: FakeBank, customer: AbstractBaseUser, bank_sender: Client
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = start_registration(customer)

    answer = bank_sender.post(
        CARD_RETURN,
        f"invoice={registration.transaction_id}&status_code=000&desc=OK",
        content_type="application/x-www-form-urlencoded",
    )

    assert answer.status_code == 302
    assert answer["Location"] == f"{CARDS}?added={registration.key}"
    assert CardToken.objects.get().owner_id == customer.pk
    message = BankMessage.objects.get(direction=Direction.INBOUND)
    assert (message.kind, message.outcome, message.transaction_id) == (
        MessageKind.REDIRECT,
        Outcome.PROCESSED,
        registration.transaction_id,
    )
    assert f"invoice={registration.transaction_id}" in message.body


def test_card_return_by_get_and_repeated_asks_the_bank_once(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = start_registration(customer)
    url = f"{CARD_RETURN}?invoice={registration.transaction_id}&status_code=000"

    answers = [Client().get(url) for _ in range(3)]

    assert [a.status_code for a in answers] == [302, 302, 302]
    assert len(fake_bank.calls("/api/get/token")) == 1
    assert list(
        BankMessage.objects.filter(direction=Direction.INBOUND)
        .order_by("pk")
        .values_list("outcome", flat=True)
    ) == [Outcome.PROCESSED, Outcome.UNCHANGED, Outcome.UNCHANGED]


@pytest.mark.parametrize("query", ["", "?invoice=", "?invoice=nosuchtx", "?invoice=a%20b"])
def test_card_return_for_no_registration_of_ours_is_400(fake_bank: FakeBank, query: str) -> None:
    answer = Client().get(CARD_RETURN + query)

    assert answer.status_code == 400
    assert BankMessage.objects.get().outcome == Outcome.REJECTED
    assert not fake_bank.mock.calls


def test_card_return_when_the_bank_is_down_leaves_the_registration_pending(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    registration = start_registration(customer)

    answer = Client().get(f"{CARD_RETURN}?invoice={registration.transaction_id}")

    assert answer.status_code == 302
    assert CardRegistration.objects.get().status == RegistrationStatus.PENDING
    assert BankMessage.objects.get(direction=Direction.INBOUND).outcome == Outcome.FAILED


def test_card_return_goes_to_cards_url_with_its_placeholders(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = start_registration(customer)

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CARDS_URL": "/account/cards/?r={key}&s={status}"}
    ):
        answer = Client().get(f"{CARD_RETURN}?invoice={registration.transaction_id}")

    assert answer["Location"] == f"/account/cards/?r={registration.key}&s=saved"


def test_card_return_never_leaves_for_a_host_not_allowed(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=TOKEN)
    registration = start_registration(customer)

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "CARDS_URL": "https://evil.test/{key}"}
    ):
        answer = Client().get(f"{CARD_RETURN}?invoice={registration.transaction_id}")

    assert answer["Location"] == f"{CARDS}?added={registration.key}"


def test_cards_url_with_an_unknown_placeholder_is_a_configuration_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from golomt_payments import conf

    with pytest.raises(ImproperlyConfigured, match="CARDS_URL"):
        conf.build({**GOLOMT_PAYMENTS, "CARDS_URL": "/cards/{reference}/"})


# --- removing a card ------------------------------------------------------------------------


def test_removing_a_card_twice_deactivates_it_and_signals_once(
    customer: AbstractBaseUser, card_signals: CardSignalRecorder, commit: Any
) -> None:
    card = card_of(customer)

    with commit():
        first = services.remove_card(card)
        second = services.remove_card(CardToken.objects.get())

    assert (first, second) == (True, False)
    assert CardToken.objects.get().is_active is False
    assert card_signals.received == [("card_removed", card.pk, {})]


# --- the customer's pages ---------------------------------------------------------------------


def test_cards_page_lists_only_the_customers_own_active_cards(
    browser: Client, customer: AbstractBaseUser, stranger: AbstractBaseUser
) -> None:
    mine = card_of(customer, card_number="949625******0003", card_holder="BAT ERDENE")
    card_of(customer, token="removed-token", card_number="949625******0011", is_active=False)
    card_of(stranger, token="their-token", card_number="949625******0029")

    page = browser.get(CARDS).content.decode()

    assert "949625******0003" in page and "BAT ERDENE" in page and "Голомт банк" in page
    assert "949625******0011" not in page
    assert "949625******0029" not in page
    assert f'action="{CARDS}{mine.pk}/delete/"' in page
    assert 'action="/payments/cards/add/"' in page
    assert TOKEN not in page and "SECRET" not in page


def test_cards_pages_need_a_login() -> None:
    anonymous = Client()

    answers = [anonymous.get(CARDS), anonymous.post(f"{CARDS}add/")]

    assert [a.status_code for a in answers] == [302, 302]
    assert all("/accounts/login/" in a["Location"] for a in answers)


def test_customer_deletes_their_own_card(
    browser: Client,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    card = card_of(customer)

    with commit():
        answer = browser.post(f"{CARDS}{card.pk}/delete/")
        again = browser.post(f"{CARDS}{card.pk}/delete/")

    assert (answer.status_code, answer["Location"]) == (303, CARDS)
    assert again.status_code == 303
    assert CardToken.objects.get().is_active is False
    assert card_signals.names() == ["card_removed"]
    assert "949625******0003" not in browser.get(CARDS).content.decode()


def test_deleting_somebody_elses_card_is_404_and_get_is_405(
    browser: Client, stranger: AbstractBaseUser, card_signals: CardSignalRecorder
) -> None:
    theirs = card_of(stranger)

    answers = [
        browser.post(f"{CARDS}{theirs.pk}/delete/"),
        browser.post(f"{CARDS}999999/delete/"),
        browser.get(f"{CARDS}{theirs.pk}/delete/"),
    ]

    assert [a.status_code for a in answers] == [404, 404, 405]
    assert CardToken.objects.get().is_active is True
    assert card_signals.received == []


def test_delete_needs_the_shops_csrf_token(customer: AbstractBaseUser) -> None:
    card = card_of(customer)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(customer)

    assert browser.post(f"{CARDS}{card.pk}/delete/").status_code == 403
    assert CardToken.objects.get().is_active is True


def test_add_a_card_button_sends_the_browser_to_the_banks_card_saving_page(
    browser: Client, fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation(bank_invoice="d7fb2858-df36-469e-b40d-2815fe9215cf")

    answer = browser.post(f"{CARDS}add/", {"lang": "en"})

    assert answer.status_code == 303
    assert answer["Location"] == (
        "https://bank.test/confirmation/en/d7fb2858-df36-469e-b40d-2815fe9215cf"
    )
    registration = CardRegistration.objects.get()
    assert registration.owner_id == customer.pk
    assert fake_bank.sent("/api/confirmation")["callback"] == "https://shop.test" + CARD_RETURN
    assert browser.get(f"{CARDS}add/").status_code == 405


def test_add_a_card_when_the_bank_is_down_shows_a_friendly_503(
    browser: Client, fake_bank: FakeBank
) -> None:
    answer = browser.post(f"{CARDS}add/")

    assert answer.status_code == 503
    assert "not answering" in answer.content.decode()


def test_cards_page_shows_the_outcome_of_the_customers_registration_only(
    browser: Client,
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    stranger: AbstractBaseUser,
) -> None:
    fake_bank.confirmation()
    fake_bank.get_token(token=None, error_code="300")
    mine = start_registration(customer)
    theirs = start_registration(stranger)

    own_page = browser.get(f"{CARDS}?added={mine.key}").content.decode()
    their_page = browser.get(f"{CARDS}?added={theirs.key}").content.decode()
    junk = browser.get(f"{CARDS}?added=not-a-uuid")

    assert 'data-registration="failed"' in own_page
    assert "Картын хугацаа дууссан" in own_page
    assert "data-registration" not in their_page
    assert junk.status_code == 200
    assert CardRegistration.objects.get(pk=theirs.pk).status == RegistrationStatus.PENDING


# --- checkout: saving a card, and paying with one --------------------------------------------


def render_form(user: Any, **params: Any) -> str:
    request = RequestFactory().get("/shop/")
    request.user = user
    args = " ".join(f"{name}={name}" for name in params)
    template = Template(
        "{% load golomt_payments %}{% golomt_checkout_form amount=1000 reference='R' "
        + args
        + " %}"
    )
    return template.render(Context({"request": request, **params}))


def test_checkout_form_offers_to_save_the_card_only_to_a_logged_in_customer(
    customer: AbstractBaseUser,
) -> None:
    from django.contrib.auth.models import AnonymousUser

    offered = render_form(customer, save_card=True)
    not_offered = render_form(customer)
    anonymous = render_form(AnonymousUser(), save_card=True)

    assert 'name="save_card"' in offered
    assert 'name="save_card"' not in not_offered
    assert 'name="save_card"' not in anonymous
    assert 'value="token"' not in offered  # no saved cards yet


def test_checkout_form_offers_the_customers_saved_cards_first(
    customer: AbstractBaseUser, stranger: AbstractBaseUser
) -> None:
    mine = card_of(customer)
    card_of(customer, token="removed-token", card_number="949625******0011", is_active=False)
    card_of(customer, token="other-account", card_number="949625******0045", account="other")
    card_of(stranger, token="their-token", card_number="949625******0029")

    form = render_form(customer)

    assert re.search(r'value="token" checked', form)
    assert f'<option value="{mine.pk}">949625******0003 · Голомт банк</option>' in form
    assert "0011" not in form and "0029" not in form and "0045" not in form
    assert TOKEN not in form and "SECRET" not in form


def test_checkout_asks_the_bank_to_save_the_card_only_for_a_logged_in_customer_who_ticked(
    fake_bank: FakeBank, customer: AbstractBaseUser, browser: Client
) -> None:
    fake_bank.invoice()

    def offered(reference: str) -> str:
        return sign_checkout(amount=1000, reference=reference, gen_token=True)

    Client().post(CHECKOUT, {"payload": offered("R1"), "save_card": "1"})
    browser.post(CHECKOUT, {"payload": offered("R2")})
    browser.post(CHECKOUT, {"payload": offered("R3"), "save_card": "1"})

    assert [fake_bank.sent("/api/invoice", i)["genToken"] for i in (0, 1, 2)] == ["N", "N", "Y"]
    assert list(Invoice.objects.order_by("pk").values_list("owner_id", "gen_token")) == [
        (None, False),
        (customer.pk, False),
        (customer.pk, True),
    ]


def test_checkout_with_a_saved_card_pays_at_once_and_shows_the_result(
    fake_bank: FakeBank, customer: AbstractBaseUser, browser: Client
) -> None:
    card = card_of(customer)
    fake_bank.pay()
    payload = sign_checkout(amount=Decimal("25000"), reference="ORD-5")

    answer = browser.post(
        CHECKOUT, {"payload": payload, "method": "token", "card": str(card.pk), "lang": "en"}
    )

    invoice = Invoice.objects.get()
    assert answer.status_code == 303
    assert answer["Location"] == reverse("golomt_payments:result", kwargs={"key": invoice.key})
    assert (invoice.status, invoice.method, invoice.amount, invoice.reference) == (
        Status.PAID,
        Method.SAVED_CARD,
        Decimal("25000.00"),
        "ORD-5",
    )
    assert not fake_bank.calls("/api/invoice")
    page = browser.get(answer["Location"]).content.decode()
    assert "Payment received" in page
    assert TOKEN not in page


@pytest.mark.parametrize("which", ["stranger", "removed", "junk", "missing"])
def test_checkout_with_a_card_that_is_not_the_customers_charges_nothing(
    fake_bank: FakeBank,
    customer: AbstractBaseUser,
    stranger: AbstractBaseUser,
    browser: Client,
    which: str,
) -> None:
    cards = {
        "stranger": str(card_of(stranger).pk),
        "removed": str(card_of(customer, token="gone", is_active=False).pk),
        "junk": "1e3",
        "missing": "",
    }
    payload = sign_checkout(amount=1000, reference="R")

    answer = browser.post(CHECKOUT, {"payload": payload, "method": "token", "card": cards[which]})

    assert answer.status_code == 404
    assert not Invoice.objects.exists()
    assert not fake_bank.mock.calls


def test_checkout_with_a_saved_card_needs_a_login(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    payload = sign_checkout(amount=1000, reference="R")

    answer = Client().post(CHECKOUT, {"payload": payload, "method": "token", "card": card.pk})

    assert answer.status_code == 403
    assert not Invoice.objects.exists()


# --- the token is never shown -----------------------------------------------------------------


def test_staff_never_see_a_card_token_in_full(
    admin_client: Client, fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay()
    invoice = services.pay_with_saved_card(card, amount=1000)
    outbound = BankMessage.objects.get(kind=MessageKind.PAY)
    assert TOKEN not in outbound.body  # the charge request is logged with the token redacted
    assert '"token": "[redacted]"' in outbound.body

    pages = {
        "cards": admin_client.get(reverse("admin:golomt_payments_cardtoken_changelist")),
        "card": admin_client.get(reverse("admin:golomt_payments_cardtoken_change", args=[card.pk])),
        "invoice": admin_client.get(
            reverse("admin:golomt_payments_invoice_change", args=[invoice.pk])
        ),
        "message": admin_client.get(
            reverse("admin:golomt_payments_bankmessage_change", args=[outbound.pk])
        ),
    }

    for name, page in pages.items():
        assert page.status_code == 200, name
        assert TOKEN not in page.content.decode(), name
        assert "SECRET" not in page.content.decode(), name
    assert "…1234" in pages["card"].content.decode()
    invoice_page = pages["invoice"].content.decode()
    assert "bat" in invoice_page and "949625******0003" in invoice_page
    assert 'name="token"' not in pages["card"].content.decode()


def test_admin_finds_cards_by_masked_number_and_customer_and_removes_them(
    admin_client: Client,
    customer: AbstractBaseUser,
    stranger: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    mine = card_of(customer, card_number="949625******0003")
    card_of(stranger, token="their-token", card_number="949625******0029")
    url = reverse("admin:golomt_payments_cardtoken_changelist")

    by_number = admin_client.get(url, {"q": "0029"}).context["cl"].result_list
    by_owner = admin_client.get(url, {"q": "bat"}).context["cl"].result_list
    with commit():
        admin_client.post(url, {"action": "remove_cards", "_selected_action": [mine.pk]})

    assert [c.card_number for c in by_number] == ["949625******0029"]
    assert [c.pk for c in by_owner] == [mine.pk]
    assert CardToken.objects.get(pk=mine.pk).is_active is False
    assert card_signals.names() == ["card_removed"]
    assert admin_client.get(reverse("admin:golomt_payments_cardtoken_add")).status_code == 403


def test_card_registrations_are_read_only_for_staff(
    admin_client: Client, fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    fake_bank.confirmation()
    registration = start_registration(customer)
    change = reverse("admin:golomt_payments_cardregistration_change", args=[registration.pk])

    page = admin_client.get(change)
    posted = admin_client.post(change, {"status": "saved"})

    assert page.status_code == 200
    assert registration.transaction_id in page.content.decode()
    assert 'name="status"' not in page.content.decode()
    assert posted.status_code == 403
    assert CardRegistration.objects.get().status == RegistrationStatus.PENDING


# --- against the sandbox bank -----------------------------------------------------------------


def test_sandbox_payment_with_save_ticked_saves_the_card_once_and_it_pays_again(
    golomt_sandbox: SandboxBank,
    customer: AbstractBaseUser,
    card_signals: CardSignalRecorder,
    commit: Any,
) -> None:
    invoice = golomt_sandbox.start_payment(1000, owner=customer, gen_token=True)

    payment = golomt_sandbox.pay(invoice, Behaviour.PUSH_TWICE)

    card = CardToken.objects.get()
    assert payment.invoice.status == Status.PAID
    assert payment.invoice.card_token == card
    assert (card.owner_id, card.card_number) == (customer.pk, "949625******0045")
    assert len(payment.pushes) == 2
    assert card_signals.names() == ["card_saved"]

    with commit():
        again = services.pay_with_saved_card(card, amount=Decimal("2500.50"), reference="NEXT")

    assert (again.status, again.method, again.card_token_id) == (
        Status.PAID,
        Method.SAVED_CARD,
        card.pk,
    )
    assert services.inquire(again) is not None  # /api/check knows it
    assert CardToken.objects.count() == 1
    assert card_signals.names() == ["card_saved"]


def test_sandbox_card_saved_then_declined_fails_the_saved_card_payment_with_the_banks_words(
    golomt_sandbox: SandboxBank, customer: AbstractBaseUser, commit: Any
) -> None:
    invoice = golomt_sandbox.start_payment(1000, owner=customer, gen_token=True)
    payment = golomt_sandbox.pay(invoice, Behaviour.SAVED_CARD_DECLINED)
    card = CardToken.objects.get()
    assert payment.invoice.status == Status.PAID

    with commit():
        declined = services.pay_with_saved_card(card, amount=1000, reference="NEXT")

    assert (declined.status, declined.bank_code) == (Status.FAILED, "300")
    assert declined.bank_description == "Картын хугацаа дууссан"
    check = services.inquire(declined)  # /api/check says the same
    assert check is not None and check.error_code == "300"
    assert CardToken.objects.get().is_active  # a declined payment does not remove the card


def test_sandbox_payment_of_an_anonymous_customer_keeps_no_token(
    golomt_sandbox: SandboxBank,
) -> None:
    invoice = golomt_sandbox.start_payment(1000, gen_token=True)

    payment = golomt_sandbox.pay(invoice)

    assert payment.invoice.status == Status.PAID
    assert not CardToken.objects.exists()


def test_sandbox_add_a_card_end_to_end(
    golomt_sandbox: SandboxBank,
    customer: AbstractBaseUser,
    browser: Client,
    card_signals: CardSignalRecorder,
) -> None:
    golomt_sandbox.browser = browser
    answer = browser.post(f"{CARDS}add/", {"lang": "en"})
    registration = CardRegistration.objects.get()
    assert answer.status_code == 303
    assert answer["Location"] == f"{BANK_URL}/confirmation/en/{registration.bank_invoice}"

    confirmed = golomt_sandbox.confirm_card(registration, holder="BAT ERDENE")

    assert confirmed.redirect is not None
    assert confirmed.redirect["Location"] == f"{CARDS}?added={registration.key}"
    assert confirmed.registration.status == RegistrationStatus.SAVED
    card = confirmed.card
    assert card is not None and card.owner_id == customer.pk
    assert card.card_holder == "BAT ERDENE"
    assert card_signals.names() == ["card_saved"]
    page = browser.get(confirmed.redirect["Location"]).content.decode()
    assert 'data-registration="saved"' in page and "949625******0003" in page
    assert card.token not in page

    payload = sign_checkout(amount=1000, reference="AFTER-ADD")
    paid = browser.post(CHECKOUT, {"payload": payload, "method": "token", "card": card.pk})

    assert paid.status_code == 303
    assert Invoice.objects.get(reference="AFTER-ADD").status == Status.PAID
    assert urlsplit(paid["Location"]).path.startswith("/payments/result/")


def test_sandbox_card_saving_with_a_declined_card_fails(
    golomt_sandbox: SandboxBank, customer: AbstractBaseUser
) -> None:
    registration = golomt_sandbox.start_card_registration(customer)

    confirmed = golomt_sandbox.confirm_card(registration, "9496 2500 0000 0011")

    assert confirmed.card is None
    assert (confirmed.registration.status, confirmed.registration.bank_code) == (
        RegistrationStatus.FAILED,
        "300",
    )


def test_sandbox_token_payment_whose_answer_is_lost_after_the_charge_is_decided_by_check(
    golomt_sandbox: SandboxBank,
    customer: AbstractBaseUser,
    monkeypatch: pytest.MonkeyPatch,
    signal_log: SignalRecorder,
    commit: Any,
) -> None:
    invoice = golomt_sandbox.start_payment(1000, owner=customer, gen_token=True)
    golomt_sandbox.pay(invoice)
    card = CardToken.objects.get()
    charge = GolomtClient.pay

    def charged_but_lost(self: GolomtClient, **kwargs: Any) -> Any:
        charge(self, **kwargs)  # the bank takes the money...
        raise BankTimeout("/api/pay: no answer from the bank in time", endpoint="/api/pay")

    monkeypatch.setattr(GolomtClient, "pay", charged_but_lost)

    with commit():
        again = services.pay_with_saved_card(card, amount=1000, reference="LOST")

    assert again.status == Status.PAID
    assert history(again)[-1] == (Status.PENDING, Status.PAID, Source.API)
    kinds = BankMessage.objects.filter(invoice=again).values_list("kind", flat=True)
    assert sorted(kinds) == [MessageKind.CHECK, MessageKind.PAY]
    assert signal_log.names().count("payment_succeeded") == 2  # the first payment, and this


def test_a_bank_error_echoing_the_card_token_does_not_spread_it(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.mock.add(
        responses.POST,
        fake_bank.url("/api/pay"),
        json={"error": "Validation", "message": f"token {TOKEN} is not valid", "status": 400},
        status=400,
    )

    invoice = services.pay_with_saved_card(card, amount=1000)

    assert invoice.status == Status.FAILED
    assert TOKEN not in invoice.bank_description
    outbound = BankMessage.objects.get(kind=MessageKind.PAY)
    assert TOKEN not in outbound.body + outbound.response + outbound.error


def test_the_same_reference_for_another_amount_is_refused_not_passed_off_as_paid(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay()
    services.pay_with_saved_card(card, amount=1000, reference="plan-monthly")

    with pytest.raises(services.OrderAlreadyPaid):
        services.pay_with_saved_card(card, amount=5000, reference="plan-monthly")

    assert len(fake_bank.calls("/api/pay")) == 1


def test_a_saved_card_is_never_charged_inside_the_callers_transaction(
    fake_bank: FakeBank, customer: AbstractBaseUser
) -> None:
    card = card_of(customer)
    fake_bank.pay()

    with pytest.raises(RuntimeError), transaction.atomic():
        services.pay_with_saved_card(card, amount=1000)

    assert not fake_bank.calls("/api/pay")


def test_a_double_submitted_saved_card_form_without_a_reference_charges_once(
    fake_bank: FakeBank, customer: AbstractBaseUser, browser: Client
) -> None:
    card = card_of(customer)
    fake_bank.pay()
    payload = sign_checkout(amount=Decimal("25000"), reference="")
    form = {"payload": payload, "method": "token", "card": str(card.pk)}

    first = browser.post(CHECKOUT, form)
    second = browser.post(CHECKOUT, form)

    assert first["Location"] == second["Location"]
    assert len(fake_bank.calls("/api/pay")) == 1


@pytest.mark.parametrize(
    ("callback_url", "return_type"),
    [("/cards/return/", "POST"), ("javascript:alert(1)", "MOBILE"), ("no scheme", "MOBILE")],
)
def test_card_registration_refuses_the_callbacks_a_payment_refuses(
    fake_bank: FakeBank, customer: AbstractBaseUser, callback_url: str, return_type: str
) -> None:
    with pytest.raises(ValueError, match="callback_url"):
        start_registration(customer, callback_url=callback_url, return_type=return_type)

    assert not CardRegistration.objects.exists()
    assert not fake_bank.mock.calls
