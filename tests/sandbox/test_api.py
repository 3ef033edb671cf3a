"""The sandbox API spoken to by the app's real GolomtClient over HTTP (pytest-django's live_server).

If the client and the sandbox agree here, both follow the same reading of the bank's protocol;
the hand-made requests check what the client never sends (a missing field, no token).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from golomt_payments.gateway import (
    BankRefused,
    BankServerError,
    BankTimeout,
    GolomtClient,
    PaymentNotFound,
    Unauthorized,
    checksum,
)
from golomt_payments.sandbox.services import BANK_TIME_ZONE
from tests.sandbox.conftest import SECRET, TOKEN, Configure, invoice_body
from tests.sandbox.helpers import pay_on_page

pytestmark = pytest.mark.django_db(transaction=True)

RawPost = Callable[..., requests.Response]
CALLBACK = "https://shop.test/payments/return/"
ENDPOINTS = (
    "/api/invoice",
    "/api/inquiry",
    "/api/pay",
    "/api/check",
    "/api/confirmation",
    "/api/get/token",
    "/api/getSettlementDetails",
)


def paid_invoice(
    golomt: GolomtClient,
    transaction_id: str,
    amount: str = "18000.00",
    *,
    card: str = "9496 2500 0000 0003",
    gen_token: bool = False,
) -> None:
    """Create an invoice through the API and pay it on the hosted page, like a customer."""
    created = golomt.create_invoice(
        transaction_id=transaction_id, amount=amount, callback=CALLBACK, gen_token=gen_token
    )
    with requests.Session() as browser:
        answer = pay_on_page(browser, golomt.payment_url(created.invoice, lang="en"), card)
    assert answer.status_code == 200, answer.text


# --- the happy paths ----------------------------------------------------------------------


def test_new_invoice_is_pending_with_a_null_error_code(golomt: GolomtClient) -> None:
    created = golomt.create_invoice(transaction_id="shop1", amount="18000.00", callback=CALLBACK)
    assert re.fullmatch(r"[0-9a-f-]{36}", created.invoice)
    assert created.transaction_id == "shop1"
    assert created.social_deeplink is None

    result = golomt.inquiry("shop1")

    assert result.status == "PENDING"
    assert result.is_unpaid
    assert "errorCode" in result.raw
    assert result.raw["errorCode"] is None  # JSON null, hashed by the bank as ""
    assert result.amount == "18000"  # echoed normalised; the client compares as numbers
    assert result.amount_value == Decimal("18000.00")


def test_social_deeplink_is_returned_when_asked(golomt: GolomtClient) -> None:
    created = golomt.create_invoice(
        transaction_id="shop2", amount="1000", callback=CALLBACK, social_deeplink=True
    )
    assert created.social_deeplink == f"socialpay-payment://key={created.invoice}"


def test_client_page_urls_open_the_sandbox_pages(golomt: GolomtClient) -> None:
    created = golomt.create_invoice(transaction_id="shop3", amount="1000", callback=CALLBACK)
    for method in ("payment", "socialpay"):
        page = requests.get(golomt.payment_url(created.invoice, method=method), timeout=10)
        assert page.status_code == 200
        assert "shop3" in page.text


def test_paid_invoice_inquiry_reports_success(golomt: GolomtClient) -> None:
    paid_invoice(golomt, "shop4", "1.00")

    result = golomt.inquiry("shop4")

    assert result.is_paid
    assert result.status == "SENT"
    assert result.error_desc == "Амжилттай"
    assert result.amount == "1"  # sent as "1.00"
    assert result.bank == "Голомт банк"
    assert result.card_number == "949625******0003"
    assert result.card_holder == "BAT ERDENE"
    assert result.token is None
    assert "token" not in result.raw


def test_declined_card_inquiry_reports_300(golomt: GolomtClient) -> None:
    paid_invoice(golomt, "shop5", card="9496 2500 0000 0011")

    result = golomt.inquiry("shop5")

    assert result.status == "SENT"
    assert result.error_code == "300"
    assert result.error_desc == "Картын хугацаа дууссан"
    assert not result.is_paid
    assert result.token is None


def test_gen_token_payment_gives_a_token_that_pays_and_checks(golomt: GolomtClient) -> None:
    paid_invoice(golomt, "shop6", gen_token=True)
    token = golomt.inquiry("shop6").token
    assert token

    paid = golomt.pay(transaction_id="shop6pay", amount="2500.50", token=token, lang="EN")
    checked = golomt.check("shop6pay")

    assert paid.is_paid
    assert paid.error_desc == "Success"
    assert paid.amount == "2500.5"
    assert paid.card_number == "949625******0003"
    assert "token" not in paid.raw
    assert checked.is_paid
    assert checked.token == token
    assert checked.amount == "2500.5"
    assert "bank" not in checked.raw
    assert "cardHolder" not in checked.raw


def test_pay_with_an_unknown_token_is_refused(golomt: GolomtClient) -> None:
    with pytest.raises(BankRefused) as refused:
        golomt.pay(transaction_id="shop7", amount="100", token="not-a-token")
    assert refused.value.error == "Validation"


def test_confirmation_flow_saves_a_card(golomt: GolomtClient) -> None:
    created = golomt.create_token(transaction_id="save1", callback=CALLBACK, return_type="GET")
    before = golomt.get_token("save1")
    assert before.token is None
    assert before.error_code is None

    with requests.Session() as browser:
        answer = pay_on_page(browser, golomt.confirmation_url(created.invoice))
    assert answer.status_code == 302
    assert "invoice=save1" in answer.headers["Location"]

    after = golomt.get_token("save1")
    assert after.error_code == "000"
    assert after.token
    assert after.card_number == "949625******0003"
    assert golomt.pay(transaction_id="save1pay", amount="500", token=after.token).is_paid


def test_settlement_pages_list_the_paid_invoices(golomt: GolomtClient) -> None:
    for number, amount in enumerate(("1000.00", "2000.00", "3000.50")):
        paid_invoice(golomt, f"settle{number}", amount)
    paid_invoice(golomt, "settledeclined", card="9496 2500 0000 0011")
    today = timezone.now().astimezone(BANK_TIME_ZONE).date()

    first = golomt.settlement_details(
        merchant_id="123456789012345", token="settle-token", start=today, end=today, size=2
    )
    rows = list(
        golomt.iter_settlements(
            merchant_id="123456789012345", token="settle-token", start=today, end=today, size=2
        )
    )

    assert (first.first, first.last, first.total_pages, first.total_elements) == (
        True,
        False,
        2,
        3,
    )
    assert [row.merchant_invoice for row in rows] == ["settle0", "settle1", "settle2"]
    assert [row.amount for row in rows] == ["1000", "2000", "3000.5"]
    row = rows[0]
    assert row.resp_code == "00"
    assert row.merchant_id == "123456789012345"
    assert row.card_number == "949625******0003"
    assert row.tran_date == today.strftime("%m%d")
    assert row.tran_time is not None and re.fullmatch(r"[0-9]{6}", row.tran_time)
    assert row.sys_reference is not None and len(row.sys_reference) == 12


def test_settlement_outside_the_dates_is_empty(golomt: GolomtClient) -> None:
    paid_invoice(golomt, "settle9")
    long_ago = timezone.now().date() - timedelta(days=30)

    page = golomt.settlement_details(
        merchant_id="1", token="t", start=long_ago, end=long_ago + timedelta(days=1)
    )

    assert page.rows == ()
    assert page.total_elements == 0


# --- the error answers --------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("token", ["wrong-token", None])
def test_bad_or_missing_token_is_403_with_an_empty_body(
    raw_post: RawPost, path: str, token: str | None
) -> None:
    answer = raw_post(path, invoice_body("shop8"), token=token)

    assert answer.status_code == 403
    assert answer.content == b""


def test_client_with_a_wrong_token_gets_unauthorized(bank_url: str) -> None:
    with (
        GolomtClient(base_url=bank_url, bearer_token="wrong", secret=SECRET) as client,
        pytest.raises(Unauthorized),
    ):
        client.inquiry("shop9")


def test_bad_checksum_is_400_validation(bank_url: str) -> None:
    with (
        GolomtClient(
            base_url=bank_url, bearer_token=TOKEN, secret="another-secret", read_retries=0
        ) as client,
        pytest.raises(BankRefused) as refused,
    ):
        client.create_invoice(transaction_id="shop10", amount="1000", callback=CALLBACK)

    assert refused.value.error == "Validation"
    assert refused.value.path == "/api/invoice"


def test_error_body_has_the_bank_shape(raw_post: RawPost) -> None:
    body = invoice_body("shop11")
    body["checksum"] = "0" * 64

    answer = raw_post("/api/invoice", body)

    assert answer.status_code == 400
    error = answer.json()
    assert set(error) == {"timestamp", "status", "error", "message", "path"}
    assert error["status"] == 400
    assert error["error"] == "Validation"
    assert error["path"] == "/api/invoice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", error["timestamp"])


def test_missing_return_type_is_400_validation(raw_post: RawPost) -> None:
    body = invoice_body("shop12")
    del body["returnType"]

    answer = raw_post("/api/invoice", body)

    assert answer.status_code == 400
    assert answer.json()["error"] == "Validation"
    assert answer.json()["message"] == "returnType is missing."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 1000),
        ("amount", "1,000"),
        ("amount", "0"),
        ("returnType", "PUT"),
        ("transactionId", "way-too-long-transaction-id"),
        ("callback", "javascript:alert(1)"),
        ("genToken", "yes"),
    ],
)
def test_malformed_fields_are_400_validation(raw_post: RawPost, field: str, value: object) -> None:
    body: dict[str, object] = dict(invoice_body("shop13"))
    body[field] = value

    answer = raw_post("/api/invoice", body)

    assert answer.status_code == 400
    assert answer.json()["error"] == "Validation"


def test_body_that_is_not_json_is_400_validation(bank_url: str) -> None:
    answer = requests.post(
        bank_url + "/api/inquiry",
        data=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "Validation"


def test_duplicate_transaction_id_is_400_validation(golomt: GolomtClient) -> None:
    golomt.create_invoice(transaction_id="shop14", amount="1000", callback=CALLBACK)

    with pytest.raises(BankRefused) as refused:
        golomt.create_invoice(transaction_id="shop14", amount="1000", callback=CALLBACK)

    assert refused.value.error == "Validation"
    assert not isinstance(refused.value, PaymentNotFound)


@pytest.mark.parametrize("call", ["inquiry", "check", "get_token"])
def test_unknown_id_is_400_not_found(golomt: GolomtClient, call: str) -> None:
    with pytest.raises(PaymentNotFound) as missing:
        getattr(golomt, call)("nosuchpayment")

    assert missing.value.error == "NotFound"
    assert missing.value.message == "Payment not found"


def test_inquiry_does_not_answer_for_a_token_payment(golomt: GolomtClient) -> None:
    paid_invoice(golomt, "shop15", gen_token=True)
    token = golomt.inquiry("shop15").token
    assert token
    golomt.pay(transaction_id="shop15pay", amount="100", token=token)

    with pytest.raises(PaymentNotFound):
        golomt.inquiry("shop15pay")


def test_settlement_needs_its_dates(raw_post: RawPost) -> None:
    body = {
        "merchantId": "1",
        "token": "t",
        "checksum": checksum.settlement_request(SECRET, merchant_id="1", token="t"),
    }
    answer = raw_post("/api/getSettlementDetails", body, params={"page": "0", "size": "5"})

    assert answer.status_code == 400
    assert answer.json()["message"] == "start is missing."


def test_get_is_not_allowed(bank_url: str) -> None:
    answer = requests.get(
        bank_url + "/api/inquiry", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert answer.status_code == 405


# --- the bank's bad days ------------------------------------------------------------------


def test_inquiry_fails_card_answers_500_then_recovers(
    golomt: GolomtClient, configure_sandbox: Configure
) -> None:
    configure_sandbox(FAILING_INQUIRY_COUNT=2)
    paid_invoice(golomt, "shop16", card="9496 2500 0000 0078")

    for _ in range(2):
        with pytest.raises(BankServerError) as failed:
            golomt.inquiry("shop16")
        assert failed.value.status_code == 500

    assert golomt.inquiry("shop16").is_paid


def test_inquiry_slow_card_outlasts_the_read_timeout(
    bank_url: str, golomt: GolomtClient, configure_sandbox: Configure
) -> None:
    configure_sandbox(SLOW_INQUIRY_COUNT=1, SLOW_INQUIRY_SECONDS=1.5)
    paid_invoice(golomt, "shop17", card="9496 2500 0000 0086")

    with (
        GolomtClient(
            base_url=bank_url, bearer_token=TOKEN, secret=SECRET, timeout=(5, 0.3), read_retries=0
        ) as impatient,
        pytest.raises(BankTimeout),
    ):
        impatient.inquiry("shop17")
    time.sleep(1.5)  # let the slow answer finish before the test's database goes away

    assert golomt.inquiry("shop17").is_paid
