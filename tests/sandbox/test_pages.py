"""The hosted pages with Django's test client: forms, the way back to the shop, the timer."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from golomt_payments.sandbox import services, wire
from golomt_payments.sandbox.cards import TEST_CARDS, Behaviour
from golomt_payments.sandbox.models import Kind, State, Transaction
from tests.sandbox.conftest import MOUNT, SECRET, Configure, new_payment
from tests.sandbox.helpers import return_form

pytestmark = pytest.mark.django_db

SUCCESS = "9496 2500 0000 0003"
DECLINED = "9496 2500 0000 0011"


def page_url(tx: Transaction, lang: str = "en", page: str = "payment") -> str:
    return f"{MOUNT}/{page}/{lang}/{tx.invoice}"


def card_data(number: str = SUCCESS, expiry: str = "12/39") -> dict[str, str]:
    return {"number": number, "expiry": expiry, "cvv": "123", "holder": "bat  erdene"}


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def test_card_page_shows_the_amount_timer_and_test_cards(client: Client) -> None:
    tx = new_payment(amount="18000.00")

    page = client.get(page_url(tx)).content.decode()

    assert tx.transaction_id in page
    assert "18,000 ₮" in page
    assert 'data-remaining="' in page
    for card in TEST_CARDS:
        assert card.display in page


def test_pages_speak_mongolian_and_english(client: Client) -> None:
    tx = new_payment()

    mongolian = client.get(page_url(tx, "mn")).content.decode()
    english = client.get(page_url(tx, "en")).content.decode()

    assert "Картын дугаар" in mongolian
    assert 'lang="mn"' in mongolian
    assert "Card number" in english
    assert "Картын дугаар" not in english


def test_upper_case_language_is_accepted(client: Client) -> None:
    assert client.get(page_url(new_payment(), "MN")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/payment/en/00000000-0000-0000-0000-000000000000",
        "/payment/en/not-a-uuid",
        "/payment/fr/{invoice}",
        "/confirmation/en/{invoice}",
    ],
)
def test_unknown_pages_are_404(client: Client, path: str) -> None:
    tx = new_payment()
    assert client.get(MOUNT + path.format(invoice=tx.invoice)).status_code == 404


def test_success_with_return_type_get_redirects_with_a_query_string(client: Client) -> None:
    tx = new_payment(return_type="GET", callback="https://shop.test/payments/return/?shop=1")

    answer = client.post(page_url(tx), card_data())

    assert answer.status_code == 302
    location = answer["Location"]
    assert location.startswith("https://shop.test/payments/return/?")
    assert query_of(location) == {
        "shop": ["1"],
        "invoice": [tx.transaction_id],
        "status_code": ["000"],
        "desc": ["Амжилттай"],
    }


def test_success_with_return_type_post_renders_an_auto_submitting_form(client: Client) -> None:
    tx = new_payment(return_type="POST", callback="https://shop.test/payments/return/")

    answer = client.post(page_url(tx), card_data())

    assert answer.status_code == 200
    page = answer.content.decode()
    form = return_form(page)
    assert form.action == "https://shop.test/payments/return/"
    assert form.fields == {
        "invoice": tx.transaction_id,
        "status_code": "000",
        "desc": "Амжилттай",
    }
    assert 'id="golomt-continue"' in page  # the no-JavaScript fallback
    assert ".submit()" in page
    assert "csrfmiddlewaretoken" not in page  # the sandbox's token must not go to the shop


def test_return_type_mobile_opens_the_app_deeplink(client: Client) -> None:
    tx = new_payment(return_type="MOBILE", callback="myshop://payment/done")

    answer = client.post(page_url(tx), card_data())

    assert answer.status_code == 302
    assert answer["Location"].startswith("myshop://payment/done?invoice=")
    assert query_of(answer["Location"])["status_code"] == ["000"]


def test_success_records_the_payment(client: Client) -> None:
    tx = new_payment()

    client.post(page_url(tx), card_data())

    tx.refresh_from_db()
    assert tx.state == State.SENT
    assert tx.error_code == "000"
    assert tx.card_number == "949625******0003"
    assert tx.card_holder == "BAT ERDENE"
    assert tx.behaviour == Behaviour.SUCCESS
    assert tx.token == ""  # genToken was N


def test_declined_card_returns_300_to_the_shop(client: Client) -> None:
    tx = new_payment(return_type="GET")

    answer = client.post(page_url(tx), card_data(DECLINED))

    assert query_of(answer["Location"])["status_code"] == ["300"]
    assert query_of(answer["Location"])["desc"] == ["Картын хугацаа дууссан"]
    tx.refresh_from_db()
    assert (tx.state, tx.error_code, tx.token) == (State.SENT, "300", "")


def test_expiry_in_the_past_is_declined(client: Client) -> None:
    tx = new_payment(return_type="GET", gen_token=True)

    answer = client.post(page_url(tx), card_data(expiry="01/20"))

    assert query_of(answer["Location"])["status_code"] == ["300"]
    tx.refresh_from_db()
    assert tx.token == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (card_data("4111 1111 1111 1111"), "Unknown card"),
        (card_data(expiry="13/30"), "MM/YY"),
        ({**card_data(), "cvv": "12"}, "3 digits"),
        ({**card_data(), "holder": ""}, "This field is required"),
    ],
)
def test_form_errors_leave_the_invoice_unpaid(
    client: Client, data: dict[str, str], message: str
) -> None:
    tx = new_payment()

    answer = client.post(page_url(tx), data)

    assert answer.status_code == 200
    assert message in answer.content.decode()
    tx.refresh_from_db()
    assert tx.state == State.PENDING


def test_a_finished_invoice_cannot_be_paid_again(client: Client) -> None:
    tx = new_payment()
    client.post(page_url(tx), card_data())

    again = client.post(page_url(tx), card_data(DECLINED))
    shown = client.get(page_url(tx)).content.decode()

    assert again.status_code == 200
    assert "Payment successful" in shown
    assert 'id="golomt-continue"' in shown
    tx.refresh_from_db()
    assert tx.error_code == "000"


def test_page_timer_shows_the_time_left(client: Client, configure_sandbox: Configure) -> None:
    configure_sandbox(PAGE_TIMEOUT_SECONDS=120)
    tx = new_payment()

    page = client.get(page_url(tx)).content.decode()

    match = re.search(r'data-remaining="(\d+)">(\d\d:\d\d)<', page)
    assert match is not None
    left = int(match.group(1))
    assert 100 < left <= 120
    assert match.group(2) == f"{left // 60:02d}:{left % 60:02d}"


def test_page_timer_expiry_cancels_and_refuses_payment(
    client: Client, configure_sandbox: Configure
) -> None:
    configure_sandbox(PAGE_TIMEOUT_SECONDS=60)
    tx = new_payment()
    Transaction.objects.filter(pk=tx.pk).update(created_at=timezone.now() - timedelta(seconds=61))

    shown = client.get(page_url(tx)).content.decode()
    attempt = client.post(page_url(tx), card_data())

    assert "The payment time ran out" in shown
    assert attempt.status_code == 200
    assert "The payment time ran out" in attempt.content.decode()
    tx.refresh_from_db()
    assert tx.state == State.CANCELLED
    assert tx.error_code == ""
    answer = wire.inquiry_body(tx, SECRET)
    assert (answer["status"], answer["errorCode"]) == ("PENDING", None)


def test_expired_page_in_mongolian(client: Client, configure_sandbox: Configure) -> None:
    configure_sandbox(PAGE_TIMEOUT_SECONDS=1)
    tx = new_payment()
    Transaction.objects.filter(pk=tx.pk).update(created_at=timezone.now() - timedelta(seconds=5))

    assert "Төлбөр төлөх хугацаа дууссан" in client.get(page_url(tx, "mn")).content.decode()


@pytest.mark.parametrize("card", ["9496 2500 0000 0052", "9496 2500 0000 0060"])
def test_redirect_lost_cards_show_a_closed_page(client: Client, card: str) -> None:
    tx = new_payment(return_type="GET")

    answer = client.post(page_url(tx), card_data(card))

    assert answer.status_code == 200
    page = answer.content.decode()
    assert "The bank page was closed" in page
    assert "shop.test" not in page
    tx.refresh_from_db()
    assert tx.error_code == "000"
    assert 'id="golomt-continue"' not in client.get(page_url(tx)).content.decode()


def test_socialpay_page_shows_the_deeplink_when_asked(client: Client) -> None:
    tx = new_payment(social_deeplink=True)

    page = client.get(page_url(tx, page="socialpay")).content.decode()

    assert f"socialpay-payment://key={tx.invoice}" in page
    assert 'value="approve"' in page
    assert 'value="decline"' in page


def test_socialpay_approve_pays(client: Client) -> None:
    tx = new_payment(return_type="GET")

    answer = client.post(page_url(tx, page="socialpay"), {"action": "approve"})

    assert query_of(answer["Location"])["status_code"] == ["000"]
    tx.refresh_from_db()
    assert (tx.paid_via, tx.behaviour) == ("socialpay", Behaviour.SUCCESS)


def test_socialpay_decline_fails_with_300(client: Client) -> None:
    tx = new_payment(return_type="GET")

    answer = client.post(page_url(tx, page="socialpay"), {"action": "decline"})

    assert query_of(answer["Location"])["status_code"] == ["300"]


def test_socialpay_scenario_picks_a_test_card_outcome(client: Client) -> None:
    tx = new_payment(return_type="GET")

    answer = client.post(
        page_url(tx, page="socialpay"), {"action": "approve", "scenario": "redirect_lost"}
    )

    assert "The bank page was closed" in answer.content.decode()
    tx.refresh_from_db()
    assert tx.behaviour == Behaviour.REDIRECT_LOST


def test_confirmation_page_saves_a_card_with_a_small_charge(client: Client) -> None:
    tx = services.create_confirmation(
        transaction_id="save2", return_type="GET", callback="https://shop.test/card-saved/"
    )

    page = client.get(page_url(tx, page="confirmation")).content.decode()
    answer = client.post(page_url(tx, page="confirmation"), card_data())

    assert "refunds it" in page
    assert query_of(answer["Location"])["invoice"] == ["save2"]
    tx.refresh_from_db()
    assert tx.kind == Kind.CONFIRMATION
    assert len(tx.token) == 32
    assert 100 <= int(tx.amount) <= 999


def test_front_page_lists_cards_and_transactions(client: Client) -> None:
    tx = new_payment()

    page = client.get(MOUNT + "/").content.decode()

    assert tx.transaction_id in page
    assert TEST_CARDS[0].display in page
    assert "test-hmac-secret" not in page
    assert "test-bearer-token" not in page
