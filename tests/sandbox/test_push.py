"""Push notifications: their body and checksum, and the test cards that lose or repeat them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests
import responses
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks as CaptureCallbacks

from golomt_payments.gateway import parse_transaction_result
from golomt_payments.sandbox import conf, push
from golomt_payments.sandbox.cards import Behaviour
from golomt_payments.sandbox.models import PushDelivery, PushState, Transaction
from tests.sandbox.conftest import MOUNT, SECRET, Configure, new_payment

pytestmark = pytest.mark.django_db

PUSH_URL = "https://shop.test/payments/push/"
PUSH_FIELDS = {
    "amount",
    "bank",
    "errorDesc",
    "checksum",
    "errorCode",
    "cardHolder",
    "transactionId",
    "cardNumber",
}


@pytest.fixture
def shop(configure_sandbox: Configure) -> Iterator[responses.RequestsMock]:
    """The shop's push view, faked; pushes are sent synchronously."""
    configure_sandbox(PUSH_URL=PUSH_URL, PUSH_MODE="sync")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(PUSH_URL, json={"detail": "processed"})
        yield mock


Pay = Callable[..., None]


@pytest.fixture
def pay(client: Client, django_capture_on_commit_callbacks: CaptureCallbacks) -> Pay:
    """Pay on the card page; the pushes, queued for after the commit, go out meanwhile."""

    def pay(tx: Transaction, card: str = "9496 2500 0000 0003") -> None:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                f"{MOUNT}/payment/en/{tx.invoice}",
                {"number": card, "expiry": "12/39", "cvv": "123", "holder": "Bat"},
            )

    return pay


def pushed(mock: responses.RequestsMock) -> list[dict[str, object]]:
    bodies = []
    for call in mock.calls:
        assert call.request.headers["Content-Type"] == "application/json"
        body = call.request.body
        assert isinstance(body, bytes)
        bodies.append(json.loads(body.decode("utf-8")))
    return bodies


def test_push_body_verifies_with_the_gateway_parser(pay: Pay, shop: responses.RequestsMock) -> None:
    tx = new_payment(amount="18000.00")

    pay(tx)

    (body,) = pushed(shop)
    assert set(body) == PUSH_FIELDS  # no token without genToken
    result = parse_transaction_result(body, SECRET, kind="push")
    assert result.transaction_id == tx.transaction_id
    assert result.is_paid
    assert result.error_desc == "Амжилттай"
    assert result.amount == "18000"
    assert result.bank == "Голомт банк"
    assert result.card_number == "949625******0003"
    assert result.card_holder == "BAT"
    row = PushDelivery.objects.get()
    assert (row.state, row.http_status, row.attempts) == (PushState.DELIVERED, 200, 1)
    assert json.loads(row.body) == body


def test_push_carries_the_token_after_a_gen_token_payment(
    pay: Pay, shop: responses.RequestsMock
) -> None:
    tx = new_payment(gen_token=True)

    pay(tx)

    (body,) = pushed(shop)
    tx.refresh_from_db()
    assert body["token"] == tx.token
    assert parse_transaction_result(body, SECRET, kind="push").token == tx.token


def test_declined_push_has_300_and_no_token(pay: Pay, shop: responses.RequestsMock) -> None:
    tx = new_payment(gen_token=True)

    pay(tx, "9496 2500 0000 0011")

    (body,) = pushed(shop)
    assert "token" not in body
    result = parse_transaction_result(body, SECRET, kind="push")
    assert (result.error_code, result.error_desc) == ("300", "Картын хугацаа дууссан")


def test_push_twice_card_sends_the_same_body_twice(pay: Pay, shop: responses.RequestsMock) -> None:
    pay(new_payment(), "9496 2500 0000 0045")

    first, second = pushed(shop)
    assert first == second


@pytest.mark.parametrize("card", ["9496 2500 0000 0029", "9496 2500 0000 0060"])
def test_push_lost_cards_send_nothing(pay: Pay, shop: responses.RequestsMock, card: str) -> None:
    tx = new_payment()

    pay(tx, card)

    assert pushed(shop) == []
    assert not PushDelivery.objects.exists()
    tx.refresh_from_db()
    assert tx.error_code == "000"


def test_late_push_is_planned_late_and_sent_at_once_in_sync_mode(
    pay: Pay, shop: responses.RequestsMock
) -> None:
    tx = new_payment()

    pay(tx, "9496 2500 0000 0037")

    assert len(pushed(shop)) == 1
    row = PushDelivery.objects.get()
    assert row.due_at - tx.created_at >= timedelta(seconds=4)


def test_plan_gives_each_card_its_delays(configure_sandbox: Configure) -> None:
    configure_sandbox(PUSH_DELAY_SECONDS=0.5, LATE_PUSH_SECONDS=7, REPEAT_PUSH_SECONDS=2)
    settings = conf.get()

    assert push.plan(Behaviour.SUCCESS, settings) == [0.5]
    assert push.plan(Behaviour.DECLINED, settings) == [0.5]
    assert push.plan(Behaviour.PUSH_LATE, settings) == [7.0]
    assert push.plan(Behaviour.PUSH_TWICE, settings) == [0.5, 2.5]
    assert push.plan(Behaviour.PUSH_LOST, settings) == []
    assert push.plan(Behaviour.BOTH_LOST, settings) == []


@pytest.mark.parametrize("overrides", [{"PUSH_MODE": "off"}, {"PUSH_URL": ""}])
def test_no_push_when_switched_off(
    pay: Pay,
    shop: responses.RequestsMock,
    configure_sandbox: Configure,
    overrides: dict[str, str],
) -> None:
    configure_sandbox(**{"PUSH_URL": PUSH_URL, "PUSH_MODE": "sync", **overrides})

    pay(new_payment())

    assert pushed(shop) == []


def test_a_refused_push_is_recorded_as_failed(pay: Pay, shop: responses.RequestsMock) -> None:
    shop.replace(responses.POST, PUSH_URL, json={"detail": "retry later"}, status=503)

    pay(new_payment())

    row = PushDelivery.objects.get()
    assert (row.state, row.http_status) == (PushState.FAILED, 503)
    assert "retry later" in row.response


def test_an_unreachable_shop_is_recorded_as_failed(pay: Pay, shop: responses.RequestsMock) -> None:
    shop.replace(responses.POST, PUSH_URL, body=requests.ConnectionError("refused"))

    pay(new_payment())

    row = PushDelivery.objects.get()
    assert row.state == PushState.FAILED
    assert row.http_status is None
    assert "refused" in row.error


def test_thread_mode_queues_pushes_until_they_are_due(
    client: Client,
    configure_sandbox: Configure,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    configure_sandbox(PUSH_URL=PUSH_URL, PUSH_MODE="thread", LATE_PUSH_SECONDS=60)
    tx = new_payment()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(
            f"{MOUNT}/payment/en/{tx.invoice}",
            {"number": "9496 2500 0000 0037", "expiry": "12/39", "cvv": "123", "holder": "B"},
        )
    assert len(callbacks) == 1  # the thread starter, not run here

    with responses.RequestsMock() as mock:
        mock.post(PUSH_URL, json={})
        assert push.deliver_due() == []
        delivered = push.deliver_due(timezone.now() + timedelta(seconds=61))
        assert len(mock.calls) == 1

    assert [row.state for row in delivered] == [PushState.DELIVERED]
    assert push.deliver_due(timezone.now() + timedelta(days=1)) == []  # never twice
