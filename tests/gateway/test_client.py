"""The HTTP client against a fake bank: wire format, error mapping, retries, audit records."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers
from urllib3.util import Timeout

from golomt_payments.gateway import (
    MAX_RESPONSE_TEXT,
    BadResponse,
    BankRefused,
    BankServerError,
    BankTimeout,
    BankUnreachable,
    ChecksumMismatch,
    CreatedInvoice,
    Exchange,
    GolomtClient,
    PaymentNotFound,
    TokenResult,
    TransactionResult,
    Unauthorized,
)

from .conftest import BASE, BEARER, SECRET, hmac_hex, inquiry_body

INVOICE_URL = BASE + "/api/invoice"
INQUIRY_URL = BASE + "/api/inquiry"
PAY_URL = BASE + "/api/pay"
CHECK_URL = BASE + "/api/check"
CONFIRMATION_URL = BASE + "/api/confirmation"
GET_TOKEN_URL = BASE + "/api/get/token"
SETTLEMENT_URL = BASE + "/api/getSettlementDetails"
UUID = "d7fb2858-df36-469e-b40d-2815fe9215cf"
CALLBACK = "https://shop.mn/golomt/return/"


def sent_json(call: Any) -> dict[str, Any]:
    body = call.request.body
    return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)  # type: ignore[no-any-return]


def assert_standard_request(call: Any, url: str) -> None:
    """Every call: POST, bearer token, JSON, explicit timeouts, TLS verification on."""
    assert call.request.method == "POST"
    assert call.request.url == url
    assert call.request.headers["Authorization"] == f"Bearer {BEARER}"
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.req_kwargs["timeout"] == (3.0, 11.0)
    assert_tls_verified(call)


def assert_tls_verified(call: Any) -> None:
    """True, or the CA bundle path requests substitutes for True (REQUESTS_CA_BUNDLE)."""
    verify = call.request.req_kwargs["verify"]
    assert verify is True or (isinstance(verify, str) and verify)


def created_body(transaction_id: str = "test000001", invoice: str = UUID, **extra: Any) -> Any:
    return {
        "invoice": invoice,
        "transactionId": transaction_id,
        "checksum": hmac_hex(invoice + transaction_id),
        **extra,
    }


# -- create_invoice -----------------------------------------------------------------------------


def test_create_invoice_posts_the_signed_body_the_bank_expects(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, json=created_body())
    created = client.create_invoice(
        transaction_id="test000001", amount=Decimal("18000"), callback=CALLBACK
    )
    assert len(bank.calls) == 1
    assert_standard_request(bank.calls[0], INVOICE_URL)
    assert sent_json(bank.calls[0]) == {
        "amount": "18000.00",
        "callback": CALLBACK,
        "checksum": hmac_hex("test00000118000.00POST" + CALLBACK),
        "genToken": "N",
        "returnType": "POST",
        "transactionId": "test000001",
        "socialDeeplink": "N",
    }
    assert created == CreatedInvoice(
        invoice=UUID, transaction_id="test000001", social_deeplink=None, raw={}
    )


def test_create_invoice_asks_for_token_and_deeplink_and_returns_the_deeplink(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, json=created_body(socialDeeplink="socialpay-payment://key=1"))
    created = client.create_invoice(
        transaction_id="test000001",
        amount="1000.5",
        callback="myapp://paid",
        return_type="mobile",
        gen_token=True,
        social_deeplink=True,
    )
    sent = sent_json(bank.calls[0])
    assert (sent["genToken"], sent["socialDeeplink"], sent["returnType"]) == ("Y", "Y", "MOBILE")
    assert sent["amount"] == "1000.50"
    assert sent["checksum"] == hmac_hex("test0000011000.50MOBILEmyapp://paid")
    assert created.social_deeplink == "socialpay-payment://key=1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transaction_id": "test-000001"},
        {"transaction_id": "а" * 5},  # noqa: RUF001 - Cyrillic, on purpose
        {"transaction_id": "x" * 16},
        {"amount": 1000.0},
        {"amount": "1000.005"},
        {"amount": 0},
        {"return_type": "PUT"},
        {"callback": ""},
        {"gen_token": "N"},
        {"social_deeplink": 1},
    ],
)
def test_create_invoice_rejects_bad_arguments_before_calling_the_bank(
    client: GolomtClient, bank: responses.RequestsMock, kwargs: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {
        "transaction_id": "test000001",
        "amount": "1000",
        "callback": CALLBACK,
        **kwargs,
    }
    with pytest.raises(ValueError):
        client.create_invoice(**arguments)
    assert len(bank.calls) == 0


def test_create_invoice_refuses_a_response_about_another_transaction(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, json=created_body("other0000001"))
    with pytest.raises(BadResponse, match="other0000001") as caught:
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)
    assert caught.value.field == "transactionId"


def test_create_invoice_verifies_the_response_checksum(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, json={**created_body(), "invoice": "forged-invoice"})
    with pytest.raises(ChecksumMismatch):
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)


def test_create_invoice_is_never_retried_after_server_error(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(INVOICE_URL, status=500, json={"status": 500, "error": "Internal"})
    with pytest.raises(BankServerError):
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)
    assert len(bank.calls) == 1
    assert sleeps == []


def test_create_invoice_is_never_retried_after_timeout(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(INVOICE_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(BankTimeout):
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)
    assert len(bank.calls) == 1
    assert sleeps == []


# -- inquiry ------------------------------------------------------------------------------------


def test_inquiry_posts_the_id_with_its_checksum_and_returns_the_result(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INQUIRY_URL, json=inquiry_body("test000001", amount="1", token="tok"))
    result = client.inquiry("test000001")
    assert_standard_request(bank.calls[0], INQUIRY_URL)
    assert sent_json(bank.calls[0]) == {
        "transactionId": "test000001",
        "checksum": hmac_hex("test000001test000001"),
    }
    assert isinstance(result, TransactionResult)
    assert result.is_paid
    assert result.amount == "1"
    assert result.token == "tok"
    assert result.status == "SENT"


def test_inquiry_of_an_unpaid_invoice_returns_null_error_code(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INQUIRY_URL, json=inquiry_body(error_code=None, status="PENDING"))
    result = client.inquiry("test000001")
    assert result.is_unpaid
    assert result.status == "PENDING"


def test_inquiry_of_an_unknown_id_raises_payment_not_found(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(
        INQUIRY_URL,
        status=400,
        json={
            "timestamp": "2020-06-02T10:51:56.359+0000",
            "status": 400,
            "error": "NotFound",
            "message": "Payment not found",
            "path": "/api/inquiry",
        },
    )
    with pytest.raises(PaymentNotFound) as caught:
        client.inquiry("unknown1")
    assert isinstance(caught.value, BankRefused)
    assert caught.value.error == "NotFound"
    assert caught.value.message == "Payment not found"
    assert caught.value.endpoint == "/api/inquiry"
    assert len(bank.calls) == 1


def test_inquiry_refuses_a_verified_answer_about_another_transaction(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INQUIRY_URL, json=inquiry_body("other0000001"))
    with pytest.raises(BadResponse, match="other0000001"):
        client.inquiry("test000001")
    assert len(bank.calls) == 1


def test_inquiry_is_retried_after_a_server_error_and_then_succeeds(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(INQUIRY_URL, status=500, json={"status": 500, "error": "Internal"})
    bank.post(INQUIRY_URL, json=inquiry_body())
    assert client.inquiry("test000001").is_paid
    assert len(bank.calls) == 2
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectionError("refused"), requests.ConnectTimeout("slow"), requests.ReadTimeout()],
)
def test_inquiry_is_retried_after_the_bank_did_not_answer(
    client: GolomtClient, bank: responses.RequestsMock, failure: Exception
) -> None:
    bank.post(INQUIRY_URL, body=failure)
    bank.post(INQUIRY_URL, json=inquiry_body())
    assert client.inquiry("test000001").is_paid
    assert len(bank.calls) == 2


def test_inquiry_gives_up_after_read_retries_plus_one_attempts_with_backoff(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(INQUIRY_URL, status=503, body="busy")
    with pytest.raises(BankServerError) as caught:
        client.inquiry("test000001")
    assert caught.value.status_code == 503
    assert len(bank.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_zero_read_retries_means_a_single_attempt(bank: responses.RequestsMock) -> None:
    gateway = GolomtClient(base_url=BASE, bearer_token=BEARER, secret=SECRET, read_retries=0)
    bank.post(INQUIRY_URL, body=requests.ConnectionError("down"))
    with pytest.raises(BankUnreachable):
        gateway.inquiry("test000001")
    assert len(bank.calls) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            {"status": 400, "json": {"error": "Validation", "message": "checksum invalid"}},
            BankRefused,
        ),
        ({"status": 403, "body": ""}, Unauthorized),
        ({"json": [1, 2]}, BadResponse),
        ({"json": {**inquiry_body(), "checksum": "0" * 64}}, ChecksumMismatch),
    ],
)
def test_inquiry_is_not_retried_after_a_definite_answer(
    client: GolomtClient,
    bank: responses.RequestsMock,
    sleeps: list[float],
    answer: dict[str, Any],
    error: type[Exception],
) -> None:
    bank.post(INQUIRY_URL, **answer)
    with pytest.raises(error):
        client.inquiry("test000001")
    assert len(bank.calls) == 1
    assert sleeps == []


def test_inquiry_rejects_an_invalid_transaction_id(client: GolomtClient) -> None:
    with pytest.raises(ValueError, match="transaction_id"):
        client.inquiry("not valid!")


# -- pay / check --------------------------------------------------------------------------------


def pay_body(transaction_id: str = "pay0001", code: str = "000", amount: str = "500.00") -> Any:
    return {
        "amount": amount,
        "errorCode": code,
        "errorDesc": "Амжилттай" if code == "000" else "Картын хугацаа дууссан",
        "cardNumber": "949625******0003",
        "transactionId": transaction_id,
        "checksum": hmac_hex(transaction_id + code + amount),
    }


def test_pay_posts_amount_id_lang_token_and_checksum(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(PAY_URL, json=pay_body())
    result = client.pay(transaction_id="pay0001", amount=500, token="card-tok", lang="en")
    assert_standard_request(bank.calls[0], PAY_URL)
    assert sent_json(bank.calls[0]) == {
        "amount": "500.00",
        "transactionId": "pay0001",
        "lang": "EN",
        "token": "card-tok",
        "checksum": hmac_hex("500.00pay0001card-tok"),
    }
    assert result.is_paid
    assert result.card_number == "949625******0003"


def test_pay_returns_a_declined_result_on_http_200(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(PAY_URL, json=pay_body(code="300"))
    result = client.pay(transaction_id="pay0001", amount="500", token="card-tok")
    assert sent_json(bank.calls[0])["lang"] == "MN"
    assert not result.is_paid
    assert result.error_code == "300"


@pytest.mark.parametrize(
    "kwargs", [{"lang": "RU"}, {"lang": ""}, {"token": ""}, {"amount": 1.5}, {"transaction_id": ""}]
)
def test_pay_rejects_bad_arguments_before_calling_the_bank(
    client: GolomtClient, bank: responses.RequestsMock, kwargs: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {
        "transaction_id": "pay0001",
        "amount": "500",
        "token": "card-tok",
        **kwargs,
    }
    with pytest.raises(ValueError):
        client.pay(**arguments)
    assert len(bank.calls) == 0


def test_pay_is_never_retried_after_server_error(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(PAY_URL, status=500, body="oops")
    with pytest.raises(BankServerError):
        client.pay(transaction_id="pay0001", amount=500, token="card-tok")
    assert len(bank.calls) == 1
    assert sleeps == []


def test_pay_is_never_retried_after_timeout(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(PAY_URL, body=requests.Timeout())
    with pytest.raises(BankTimeout):
        client.pay(transaction_id="pay0001", amount=500, token="card-tok")
    assert len(bank.calls) == 1
    assert sleeps == []


def test_check_posts_to_api_check_not_api_pay(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(CHECK_URL, json=inquiry_body("pay0001", amount="500.00", token="card-tok"))
    result = client.check("pay0001")
    assert_standard_request(bank.calls[0], CHECK_URL)
    assert sent_json(bank.calls[0]) == {
        "transactionId": "pay0001",
        "checksum": hmac_hex("pay0001pay0001"),
    }
    assert result.is_paid
    assert result.token == "card-tok"


def test_check_is_retried_after_a_server_error(
    client: GolomtClient, bank: responses.RequestsMock, sleeps: list[float]
) -> None:
    bank.post(CHECK_URL, status=502, body="bad gateway")
    bank.post(CHECK_URL, json=inquiry_body("pay0001"))
    assert client.check("pay0001").is_paid
    assert len(bank.calls) == 2


# -- create_token / get_token -----------------------------------------------------------------


def test_create_token_posts_the_confirmation_request(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(CONFIRMATION_URL, json=created_body("test12345"))
    created = client.create_token(transaction_id="test12345", callback=CALLBACK, return_type="GET")
    assert_standard_request(bank.calls[0], CONFIRMATION_URL)
    assert sent_json(bank.calls[0]) == {
        "callback": CALLBACK,
        "returnType": "GET",
        "transactionId": "test12345",
        "checksum": hmac_hex("test12345GET" + CALLBACK),
    }
    assert created.invoice == UUID
    assert created.transaction_id == "test12345"


def test_create_token_is_never_retried_after_server_error(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(CONFIRMATION_URL, status=500, body="")
    with pytest.raises(BankServerError):
        client.create_token(transaction_id="test12345", callback=CALLBACK)
    assert len(bank.calls) == 1


def test_get_token_posts_the_id_and_returns_the_token(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(
        GET_TOKEN_URL,
        json={
            "bank": "Голомт банк",
            "errorCode": "000",
            "errorDesc": "Амжилттай",
            "cardHolder": "BAT",
            "cardNumber": "949625******0003",
            "transactionId": "test12345",
            "token": "new-card-token",
            "checksum": hmac_hex("test12345new-card-token"),
        },
    )
    result = client.get_token("test12345")
    assert_standard_request(bank.calls[0], GET_TOKEN_URL)
    assert sent_json(bank.calls[0]) == {
        "transactionId": "test12345",
        "checksum": hmac_hex("test12345test12345"),
    }
    assert isinstance(result, TokenResult)
    assert result.token == "new-card-token"
    assert result.card_number == "949625******0003"


def test_get_token_is_retried_after_the_bank_did_not_answer(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(GET_TOKEN_URL, body=requests.ConnectionError("reset"))
    bank.post(
        GET_TOKEN_URL,
        json={"transactionId": "test12345", "token": "t", "checksum": hmac_hex("test12345t")},
    )
    assert client.get_token("test12345").token == "t"
    assert len(bank.calls) == 2


# -- settlement -----------------------------------------------------------------------------


def settlement_page(rows: list[str], *, first: bool, last: bool, pages: int = 3) -> Any:
    return {
        "content": [
            {"id": index, "merchantInvoice": invoice} for index, invoice in enumerate(rows)
        ],
        "pageable": {"first": first, "last": last, "totalPages": pages, "totalElements": 5},
    }


def query(page: int, size: int = 50) -> Any:
    return matchers.query_param_matcher(
        {"page": str(page), "size": str(size), "start": "2024-06-01", "end": "2024-06-30"}
    )


def test_settlement_details_sends_query_and_signed_body(
    client: GolomtClient,
    bank: responses.RequestsMock,
    exchanges: list[Exchange],
) -> None:
    bank.post(
        SETTLEMENT_URL,
        json=settlement_page(["a1", "a2"], first=True, last=True, pages=1),
        match=[query(0)],
    )
    page = client.settlement_details(
        merchant_id="123456789012345",
        token="stl-token",
        start=date(2024, 6, 1),
        end=date(2024, 6, 30),
    )
    call: Any = bank.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {BEARER}"
    assert call.request.req_kwargs["timeout"] == (3.0, 11.0)
    assert call.request.url.startswith(SETTLEMENT_URL + "?")
    assert sent_json(call) == {
        "merchantId": "123456789012345",
        "token": "stl-token",
        "checksum": hmac_hex("123456789012345stl-token"),
    }
    assert [row.merchant_invoice for row in page.rows] == ["a1", "a2"]
    assert page.last
    # The settlement token's meaning is unclear; it stays out of the audit record.
    assert exchanges[0].endpoint == "/api/getSettlementDetails"
    assert exchanges[0].request_body["token"] == "[redacted]"
    assert "stl-token" not in repr(exchanges[0])


def test_iter_settlements_follows_pages_until_last(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(
        SETTLEMENT_URL,
        json=settlement_page(["a", "b"], first=True, last=False),
        match=[query(0, 2)],
    )
    bank.post(
        SETTLEMENT_URL,
        json=settlement_page(["c", "d"], first=False, last=False),
        match=[query(1, 2)],
    )
    bank.post(
        SETTLEMENT_URL, json=settlement_page(["e"], first=False, last=True), match=[query(2, 2)]
    )
    rows = client.iter_settlements(
        merchant_id="123456789012345",
        token="stl-token",
        start=date(2024, 6, 1),
        end=date(2024, 6, 30),
        size=2,
    )
    assert [row.merchant_invoice for row in rows] == ["a", "b", "c", "d", "e"]
    assert len(bank.calls) == 3


def test_iter_settlements_stops_on_an_empty_page_even_without_last(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(
        SETTLEMENT_URL, json=settlement_page([], first=True, last=False, pages=9), match=[query(0)]
    )
    rows = list(
        client.iter_settlements(
            merchant_id="1", token="t", start=date(2024, 6, 1), end=date(2024, 6, 30)
        )
    )
    assert rows == []
    assert len(bank.calls) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": date(2024, 7, 1)},
        {"page": -1},
        {"size": 0},
        {"merchant_id": ""},
        {"token": ""},
        {"end": "2024-06-30"},
    ],
)
def test_settlement_details_rejects_bad_arguments(
    client: GolomtClient, bank: responses.RequestsMock, kwargs: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {
        "merchant_id": "1",
        "token": "t",
        "start": date(2024, 6, 1),
        "end": date(2024, 6, 30),
        **kwargs,
    }
    with pytest.raises(ValueError):
        client.settlement_details(**arguments)
    assert len(bank.calls) == 0


# -- HTTP error mapping -------------------------------------------------------------------------


def test_400_validation_body_becomes_bank_refused_with_the_bank_words(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    error_body = {
        "timestamp": "2020-06-02T10:51:56.359+0000",
        "status": 400,
        "error": "Validation",
        "message": "returnType is missing.",
        "path": "/api/invoice",
    }
    bank.post(INVOICE_URL, status=400, json=error_body)
    with pytest.raises(BankRefused) as caught:
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)
    error = caught.value
    assert type(error) is BankRefused
    assert error.error == "Validation"
    assert error.message == "returnType is missing."
    assert error.path == "/api/invoice"
    assert error.status_code == 400
    assert error.body == error_body
    assert error.endpoint == "/api/invoice"
    assert "returnType is missing." in str(error)


def test_400_without_json_is_still_bank_refused_with_the_text(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INQUIRY_URL, status=400, body="Bad Request")
    with pytest.raises(BankRefused) as caught:
        client.inquiry("test000001")
    assert caught.value.error is None
    assert caught.value.message == "Bad Request"
    assert caught.value.body == {}


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_bearer_token_raises_unauthorized(
    client: GolomtClient, bank: responses.RequestsMock, status: int
) -> None:
    bank.post(INQUIRY_URL, status=status, body="")
    with pytest.raises(Unauthorized) as caught:
        client.inquiry("test000001")
    assert caught.value.status_code == status
    assert BEARER not in str(caught.value)
    assert len(bank.calls) == 1


def test_500_raises_bank_server_error_with_a_truncated_excerpt(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(PAY_URL, status=500, body="x" * 10_000)
    with pytest.raises(BankServerError) as caught:
        client.pay(transaction_id="pay0001", amount=1, token="t")
    assert caught.value.status_code == 500
    assert 0 < len(caught.value.body_excerpt) <= 500
    assert len(str(caught.value)) < 1_000


@pytest.mark.parametrize("status", [302, 404, 405, 429])
def test_other_unexpected_statuses_raise_bank_server_error_and_redirects_are_not_followed(
    client: GolomtClient, bank: responses.RequestsMock, status: int
) -> None:
    bank.post(PAY_URL, status=status, body="", headers={"Location": "https://evil.example/x"})
    with pytest.raises(BankServerError) as caught:
        client.pay(transaction_id="pay0001", amount=1, token="t")
    assert caught.value.status_code == status
    assert len(bank.calls) == 1


def test_connection_error_raises_bank_unreachable_not_timeout(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, body=requests.ConnectionError("Name or service not known"))
    with pytest.raises(BankUnreachable) as caught:
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)
    assert not isinstance(caught.value, BankTimeout)
    assert caught.value.endpoint == "/api/invoice"
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_timeout_raises_bank_timeout_naming_the_limits(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, body=requests.Timeout())
    with pytest.raises(BankTimeout, match="connect 3s, read 11s"):
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)


def test_html_page_with_200_is_a_bad_response(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INVOICE_URL, body="<html><body>Maintenance</body></html>", content_type="text/html")
    with pytest.raises(BadResponse, match="not JSON") as caught:
        client.create_invoice(transaction_id="test000001", amount=1, callback=CALLBACK)
    assert caught.value.status_code == 200


def test_json_list_with_200_is_a_bad_response(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INQUIRY_URL, json=[inquiry_body()])
    with pytest.raises(BadResponse, match="not an object"):
        client.inquiry("test000001")


def test_missing_field_in_response_is_a_bad_response_naming_it(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    body = inquiry_body()
    del body["amount"]
    bank.post(INQUIRY_URL, json=body)
    with pytest.raises(BadResponse, match="'amount'") as caught:
        client.inquiry("test000001")
    assert caught.value.field == "amount"


def test_wrong_response_checksum_raises_checksum_mismatch(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(PAY_URL, json={**pay_body(), "amount": "5000.00"})
    with pytest.raises(ChecksumMismatch):
        client.pay(transaction_id="pay0001", amount="500", token="t")


def test_response_for_another_transaction_is_a_bad_response(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(PAY_URL, json=pay_body("pay0002"))
    with pytest.raises(BadResponse, match="pay0002"):
        client.pay(transaction_id="pay0001", amount="500", token="t")


# -- audit records ------------------------------------------------------------------------------


def test_every_attempt_is_reported_as_an_exchange(
    client: GolomtClient, bank: responses.RequestsMock, exchanges: list[Exchange]
) -> None:
    bank.post(INQUIRY_URL, status=500, body="down")
    bank.post(INQUIRY_URL, json=inquiry_body())
    client.inquiry("test000001")
    assert len(exchanges) == 2
    failed, succeeded = exchanges
    assert failed.endpoint == succeeded.endpoint == "/api/inquiry"
    assert failed.status_code == 500
    assert failed.response_text == "down"
    assert failed.error is not None and failed.error.startswith("BankServerError: ")
    assert failed.attempt == 1
    assert succeeded.status_code == 200
    assert succeeded.error is None
    assert succeeded.attempt == 2
    assert json.loads(succeeded.response_text or "") == inquiry_body()
    assert succeeded.transaction_id == "test000001"
    assert succeeded.request_body == {
        "transactionId": "test000001",
        "checksum": hmac_hex("test000001test000001"),
    }
    assert succeeded.duration_ms >= 0


def test_exchange_of_a_timeout_has_no_status_and_names_the_error(
    client: GolomtClient, bank: responses.RequestsMock, exchanges: list[Exchange]
) -> None:
    bank.post(PAY_URL, body=requests.ReadTimeout())
    with pytest.raises(BankTimeout):
        client.pay(transaction_id="pay0001", amount=1, token="t")
    (exchange,) = exchanges
    assert exchange.status_code is None
    assert exchange.response_text is None
    assert exchange.error is not None and exchange.error.startswith("BankTimeout: ")
    assert exchange.request_body["amount"] == "1.00"


def test_exchange_records_a_checksum_mismatch_too(
    client: GolomtClient, bank: responses.RequestsMock, exchanges: list[Exchange]
) -> None:
    bank.post(INQUIRY_URL, json={**inquiry_body(), "checksum": "f" * 64})
    with pytest.raises(ChecksumMismatch):
        client.inquiry("test000001")
    assert exchanges[0].status_code == 200
    assert exchanges[0].error is not None and exchanges[0].error.startswith("ChecksumMismatch")


def test_exchange_response_text_is_truncated(
    client: GolomtClient, bank: responses.RequestsMock, exchanges: list[Exchange]
) -> None:
    bank.post(PAY_URL, status=500, body="y" * (MAX_RESPONSE_TEXT + 10))
    with pytest.raises(BankServerError):
        client.pay(transaction_id="pay0001", amount=1, token="t")
    assert len(exchanges[0].response_text or "") == MAX_RESPONSE_TEXT


def test_credentials_never_appear_in_exchanges_or_errors(
    client: GolomtClient, bank: responses.RequestsMock, exchanges: list[Exchange]
) -> None:
    # A misbehaving network layer or bank that echoes the credentials back.
    bank.post(INQUIRY_URL, body=requests.ConnectionError(f"proxy said Bearer {BEARER} {SECRET}"))
    bank.post(INQUIRY_URL, status=500, body=f"echo {BEARER} {SECRET}")
    bank.post(INQUIRY_URL, status=400, body=f"echo {BEARER} {SECRET}")
    with pytest.raises(BankRefused) as refused:
        client.inquiry("test000001")
    assert len(exchanges) == 3
    texts = [repr(exchange) for exchange in exchanges] + [str(refused.value)]
    texts += [str(vars(refused.value)), repr(client)]
    for text in texts:
        assert BEARER not in text
        assert SECRET not in text


@pytest.mark.parametrize(
    "answer",
    [
        {"body": requests.ConnectionError(f"{BEARER}/{SECRET}")},
        {"status": 500, "body": f"{BEARER}/{SECRET}"},
        {"status": 200, "body": f"<p>{BEARER}/{SECRET}</p>"},
    ],
)
def test_error_messages_never_contain_credentials(
    bank: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    gateway = GolomtClient(base_url=BASE, bearer_token=BEARER, secret=SECRET, read_retries=0)
    bank.post(INQUIRY_URL, **answer)
    with pytest.raises(Exception) as caught:
        gateway.inquiry("test000001")
    assert BEARER not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_failing_exchange_hook_does_not_break_the_call(
    bank: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(exchange: Exchange) -> None:
        raise RuntimeError("audit database is down")

    gateway = GolomtClient(
        base_url=BASE, bearer_token=BEARER, secret=SECRET, on_exchange=broken_hook
    )
    bank.post(INQUIRY_URL, json=inquiry_body())
    with caplog.at_level(logging.ERROR, logger="golomt_payments.gateway"):
        assert gateway.inquiry("test000001").is_paid
    assert "on_exchange hook failed" in caplog.text
    assert BEARER not in caplog.text and SECRET not in caplog.text


# -- construction ---------------------------------------------------------------------------


def test_repr_hides_credentials() -> None:
    gateway = GolomtClient(base_url=BASE, bearer_token=BEARER, secret=SECRET)
    assert repr(gateway) == f"GolomtClient(base_url='{BASE}')"


def test_base_url_trailing_slash_is_tolerated(
    client: GolomtClient, bank: responses.RequestsMock
) -> None:
    bank.post(INQUIRY_URL, json=inquiry_body())
    client.inquiry("test000001")
    assert bank.calls[0].request.url == INQUIRY_URL
    assert client.base_url == BASE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "bank.example"},
        {"base_url": "ftp://bank.example"},
        {"base_url": "https://user:pw@bank.example"},
        {"bearer_token": ""},
        {"bearer_token": "abc def"},
        {"bearer_token": "abc\n"},
        {"bearer_token": "токен"},
        {"secret": ""},
        {"timeout": 5.0},
        {"timeout": (5.0, 0)},
        {"timeout": (5.0, float("inf"))},
        {"read_retries": -1},
        {"read_retries": True},
        {"backoff": -0.1},
    ],
)
def test_invalid_configuration_is_rejected_without_echoing_it(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"base_url": BASE, "bearer_token": BEARER, "secret": SECRET}
    arguments.update(kwargs)
    with pytest.raises(ValueError) as caught:
        GolomtClient(**arguments)
    for value in kwargs.values():
        if isinstance(value, str) and value:
            assert value not in str(caught.value)


def test_a_given_session_is_used_with_verification_forced_on_and_left_open(
    bank: responses.RequestsMock,
) -> None:
    session = requests.Session()
    session.verify = False
    closed: list[bool] = []
    session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    bank.post(INQUIRY_URL, json=inquiry_body())
    with GolomtClient(
        base_url=BASE, bearer_token=BEARER, secret=SECRET, session=session
    ) as gateway:
        gateway.inquiry("test000001")
    assert_tls_verified(bank.calls[0])
    assert closed == []


def test_close_closes_the_session_the_client_created() -> None:
    gateway = GolomtClient(base_url=BASE, bearer_token=BEARER, secret=SECRET)
    closed: list[bool] = []
    gateway._session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with gateway:
        pass
    assert closed == [True]


def test_a_call_with_a_deadline_streams_within_one_budget_and_reports_the_same(
    client: GolomtClient, bank: responses.RequestsMock, exchanges: list[Exchange]
) -> None:
    """Under a deadline the body is streamed, and connecting and reading share the time left
    (urllib3's Timeout has a total; requests' pair does not). The record is the same."""
    bank.post(INQUIRY_URL, json=inquiry_body())
    bank.post(INQUIRY_URL, json=inquiry_body())
    assert client.inquiry("test000001", within=2.0) == client.inquiry("test000001")
    calls: Any = bank.calls
    with_deadline, without = calls
    assert with_deadline.request.req_kwargs["stream"] is True
    budget = with_deadline.request.req_kwargs["timeout"]
    assert isinstance(budget, Timeout)
    assert budget.total is not None and 0 < budget.total <= 2.0
    assert budget.connect_timeout is not None and budget.connect_timeout <= 2.0
    assert without.request.req_kwargs["timeout"] == (3.0, 11.0)
    first, second = exchanges
    assert replace(first, duration_ms=0) == replace(second, duration_ms=0)


def test_default_timeouts_are_explicit(bank: responses.RequestsMock) -> None:
    gateway = GolomtClient(base_url=BASE, bearer_token=BEARER, secret=SECRET)
    bank.post(INQUIRY_URL, json=inquiry_body())
    gateway.inquiry("test000001")
    call: Any = bank.calls[0]
    assert call.request.req_kwargs["timeout"] == (5.0, 20.0)


# -- browser page URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "lang", "expected"),
    [
        ("payment", "mn", f"{BASE}/payment/mn/{UUID}"),
        ("payment", "en", f"{BASE}/payment/en/{UUID}"),
        ("socialpay", "mn", f"{BASE}/socialpay/mn/{UUID}"),
        ("socialpay", "EN", f"{BASE}/socialpay/en/{UUID}"),
        ("payment", "Mn", f"{BASE}/payment/mn/{UUID}"),
    ],
)
def test_payment_url_points_at_the_hosted_page_in_lower_case_language(
    client: GolomtClient, method: Any, lang: str, expected: str
) -> None:
    assert client.payment_url(UUID, method=method, lang=lang) == expected


def test_payment_url_defaults_to_the_card_page_in_mongolian(client: GolomtClient) -> None:
    assert client.payment_url(UUID) == f"{BASE}/payment/mn/{UUID}"


def test_confirmation_url_points_at_the_save_card_page(client: GolomtClient) -> None:
    assert client.confirmation_url(UUID) == f"{BASE}/confirmation/mn/{UUID}"
    assert client.confirmation_url(UUID, lang="EN") == f"{BASE}/confirmation/en/{UUID}"


def test_page_urls_quote_the_invoice_segment(client: GolomtClient) -> None:
    assert client.payment_url("a/../b c?x") == f"{BASE}/payment/mn/a%2F..%2Fb%20c%3Fx"


@pytest.mark.parametrize(
    "kwargs", [{"lang": "ru"}, {"lang": ""}, {"method": "card"}, {"method": "PAYMENT"}]
)
def test_payment_url_rejects_unknown_language_or_method(
    client: GolomtClient, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        client.payment_url(UUID, **kwargs)


def test_page_urls_reject_an_empty_invoice(client: GolomtClient) -> None:
    with pytest.raises(ValueError):
        client.payment_url("")
    with pytest.raises(ValueError):
        client.confirmation_url("", lang="xx")
