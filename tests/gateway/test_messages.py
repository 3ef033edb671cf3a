"""Parsing and verifying bank messages: shape first, then the right checksum formula."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from golomt_payments.gateway import (
    BadResponse,
    ChecksumMismatch,
    CreatedInvoice,
    SettlementRow,
    parse_created_invoice,
    parse_settlement_page,
    parse_token_result,
    parse_transaction_result,
)

from .conftest import SECRET, hmac_hex, inquiry_body


def test_push_notification_with_token_is_parsed_into_snake_case_fields() -> None:
    body = inquiry_body("test000001", amount="1", token="card-token-1")
    del body["status"]
    result = parse_transaction_result(body, SECRET, kind="push")
    assert result.transaction_id == "test000001"
    assert result.error_code == "000"
    assert result.error_desc == "Амжилттай"
    assert result.amount == "1"
    assert result.amount_value == Decimal("1.00")
    assert result.status is None
    assert result.bank == "Голомт банк"
    assert result.card_holder == "9496250"
    assert result.card_number == "949625******0003"
    assert result.token == "card-token-1"
    assert result.is_paid and not result.is_unpaid
    assert result.raw is body


def test_transaction_result_repr_hides_raw_and_card_token() -> None:
    result = parse_transaction_result(inquiry_body(token="card-token-1"), SECRET, kind="inquiry")
    assert "card-token-1" not in repr(result)
    assert "checksum" not in repr(result)


def test_unpaid_inquiry_with_null_error_code_verifies_and_is_unpaid() -> None:
    body = inquiry_body(error_code=None, status="PENDING")
    result = parse_transaction_result(body, SECRET, kind="inquiry")
    assert result.error_code is None
    assert result.is_unpaid and not result.is_paid
    assert result.status == "PENDING"


def test_missing_error_code_is_read_as_null() -> None:
    body = inquiry_body(error_code=None)
    del body["errorCode"]
    assert parse_transaction_result(body, SECRET, kind="inquiry").error_code is None


def test_declined_payment_is_neither_paid_nor_unpaid() -> None:
    body = inquiry_body(error_code="300", errorDesc="Картын хугацаа дууссан")
    result = parse_transaction_result(body, SECRET, kind="push")
    assert not result.is_paid and not result.is_unpaid
    assert result.error_desc == "Картын хугацаа дууссан"


def test_empty_token_is_left_out_of_the_hash_and_read_as_none() -> None:
    body = inquiry_body(token=None, error_code="000")
    body["token"] = ""
    assert parse_transaction_result(body, SECRET, kind="inquiry").token is None


def test_integer_json_amount_is_hashed_as_its_digits() -> None:
    body = inquiry_body(amount="18000")
    body["amount"] = 18000
    result = parse_transaction_result(body, SECRET, kind="inquiry")
    assert result.amount == "18000"


def test_amount_is_kept_exactly_as_sent_for_hashing() -> None:
    result = parse_transaction_result(inquiry_body(amount="1.00"), SECRET, kind="inquiry")
    assert result.amount == "1.00"
    assert result.amount_value == Decimal(1)


def test_float_json_amount_is_refused_because_its_text_is_lost() -> None:
    body = inquiry_body(amount="1.5")
    body["amount"] = 1.5
    with pytest.raises(BadResponse, match="'amount'") as caught:
        parse_transaction_result(body, SECRET, kind="inquiry")
    assert caught.value.field == "amount"


def test_non_numeric_amount_is_refused() -> None:
    with pytest.raises(BadResponse, match="'amount'"):
        parse_transaction_result(inquiry_body(amount="1,000"), SECRET, kind="inquiry")


@pytest.mark.parametrize("name", ["transactionId", "amount"])
def test_missing_required_field_is_named(name: str) -> None:
    body = inquiry_body()
    del body[name]
    with pytest.raises(BadResponse, match=repr(name)) as caught:
        parse_transaction_result(body, SECRET, kind="inquiry")
    assert caught.value.field == name
    assert caught.value.endpoint == "/api/inquiry"


@pytest.mark.parametrize(("name", "value"), [("cardHolder", 123), ("errorCode", 0), ("bank", [])])
def test_field_of_the_wrong_type_is_named(name: str, value: Any) -> None:
    body = inquiry_body()
    body[name] = value
    with pytest.raises(BadResponse, match=repr(name)):
        parse_transaction_result(body, SECRET, kind="push")


@pytest.mark.parametrize("body", [[], "text", None, 1])
def test_body_that_is_not_an_object_is_refused(body: object) -> None:
    with pytest.raises(BadResponse, match="JSON object"):
        parse_transaction_result(body, SECRET, kind="push")


def test_wrong_checksum_is_a_mismatch_and_does_not_leak_the_expected_value() -> None:
    body = inquiry_body(amount="1000")
    expected = body["checksum"]
    body["amount"] = "1"  # tampered after signing
    with pytest.raises(ChecksumMismatch) as caught:
        parse_transaction_result(body, SECRET, kind="push")
    assert hmac_hex("test0000010001") not in str(caught.value)
    assert expected not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_missing_checksum_is_a_mismatch() -> None:
    body = inquiry_body()
    del body["checksum"]
    with pytest.raises(ChecksumMismatch, match="'checksum' is missing"):
        parse_transaction_result(body, SECRET, kind="push")


def test_checksum_from_another_secret_is_a_mismatch() -> None:
    with pytest.raises(ChecksumMismatch):
        parse_transaction_result(inquiry_body(), "another-secret", kind="push")


def test_upper_case_checksum_verifies() -> None:
    body = inquiry_body()
    body["checksum"] = body["checksum"].upper()
    assert parse_transaction_result(body, SECRET, kind="push").is_paid


def test_pay_response_is_verified_without_the_token() -> None:
    body = {
        "amount": "500.00",
        "errorCode": "000",
        "errorDesc": "Амжилттай",
        "cardNumber": "949625******0003",
        "transactionId": "pay0001",
        "token": "tok",
        "checksum": hmac_hex("pay0001000500.00"),
    }
    assert parse_transaction_result(body, SECRET, kind="pay").is_paid
    with pytest.raises(ChecksumMismatch):
        parse_transaction_result(body, SECRET, kind="check")


def test_check_response_is_verified_with_the_token() -> None:
    body = inquiry_body("pay0001", token="tok")
    assert parse_transaction_result(body, SECRET, kind="check").token == "tok"
    with pytest.raises(ChecksumMismatch):
        parse_transaction_result(body, SECRET, kind="pay")


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown message kind"):
        parse_transaction_result(inquiry_body(), SECRET, kind="refund")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["invoice", "confirmation"])
def test_created_invoice_is_parsed_and_verified(kind: Any) -> None:
    body = {
        "invoice": "d7fb2858-df36-469e-b40d-2815fe9215cf",
        "transactionId": "test12345",
        "checksum": hmac_hex("d7fb2858-df36-469e-b40d-2815fe9215cftest12345"),
    }
    created = parse_created_invoice(body, SECRET, kind=kind)
    assert created == CreatedInvoice(
        invoice="d7fb2858-df36-469e-b40d-2815fe9215cf",
        transaction_id="test12345",
        social_deeplink=None,
        raw={},
    )
    assert created.raw is body


def test_created_invoice_keeps_the_social_deeplink() -> None:
    body = {
        "invoice": "inv-1",
        "transactionId": "t1",
        "socialDeeplink": "socialpay-payment://key=abc",
        "checksum": hmac_hex("inv-1t1"),
    }
    created = parse_created_invoice(body, SECRET, kind="invoice")
    assert created.social_deeplink == "socialpay-payment://key=abc"


def test_created_invoice_without_invoice_id_is_refused() -> None:
    body = {"transactionId": "t1", "checksum": hmac_hex("t1")}
    with pytest.raises(BadResponse, match="'invoice'"):
        parse_created_invoice(body, SECRET, kind="invoice")


def test_created_invoice_with_wrong_checksum_is_a_mismatch() -> None:
    body = {"invoice": "inv-2", "transactionId": "t1", "checksum": hmac_hex("inv-1t1")}
    with pytest.raises(ChecksumMismatch):
        parse_created_invoice(body, SECRET, kind="confirmation")


def test_token_result_is_parsed_and_verified() -> None:
    body = {
        "bank": "Голомт банк",
        "errorCode": "000",
        "errorDesc": "Амжилттай",
        "cardHolder": "BAT",
        "cardNumber": "949625******0003",
        "transactionId": "test12345",
        "token": "tok-9",
        "checksum": hmac_hex("test12345tok-9"),
    }
    result = parse_token_result(body, SECRET)
    assert result.token == "tok-9"
    assert result.card_holder == "BAT"
    assert result.error_code == "000"
    assert "tok-9" not in repr(result)


def test_token_result_without_token_hashes_the_id_alone() -> None:
    body = {"transactionId": "test12345", "token": None, "checksum": hmac_hex("test12345")}
    assert parse_token_result(body, SECRET).token is None


def test_token_result_with_wrong_checksum_is_a_mismatch() -> None:
    body = {"transactionId": "test12345", "token": "tok", "checksum": hmac_hex("test12345")}
    with pytest.raises(ChecksumMismatch):
        parse_token_result(body, SECRET)


def settlement_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 17,
        "merchantId": "123456789012345",
        "terminalId": "T0001",
        "batchNumber": 12,
        "invoiceNumber": "000123",
        "cardNumber": "949625******0003",
        "token": None,
        "amount": "18000.00",
        "merchantInvoice": "test000001",
        "respCode": "00",
        "respDesc": "Approved",
        "tranTime": "101530",
        "tranDate": "0602",
        "sysReference": "015410123456",
        "approvalCode": "A1B2C3",
        "requestDate": "2024-06-02T10:15:30",
        "reversedDate": None,
        "checkedDate": None,
        "transferStatus": "TRANSFERRED",
    }
    row.update(overrides)
    return row


def test_settlement_page_reads_rows_and_paging_from_pageable() -> None:
    body = {
        "content": [settlement_row()],
        "pageable": {"first": True, "last": False, "totalPages": 3, "totalElements": 101},
    }
    page = parse_settlement_page(body)
    assert (page.first, page.last, page.total_pages, page.total_elements) == (True, False, 3, 101)
    row = page.rows[0]
    assert isinstance(row, SettlementRow)
    assert row.id == "17"
    assert row.batch_number == "12"
    assert row.merchant_invoice == "test000001"
    assert row.resp_code == "00"
    assert row.tran_date == "0602"
    assert row.reversed_date is None
    assert row.transfer_status == "TRANSFERRED"
    assert row.raw["merchantInvoice"] == "test000001"


def test_settlement_page_reads_spring_style_top_level_paging() -> None:
    body = {
        "content": [],
        "pageable": {"pageNumber": 0, "pageSize": 50},
        "first": True,
        "last": True,
        "totalPages": 0,
        "totalElements": 0,
    }
    page = parse_settlement_page(body)
    assert page.rows == ()
    assert page.last


def test_settlement_numbers_become_text() -> None:
    body = {
        "content": [settlement_row(amount=18000, transferStatus=True)],
        "pageable": {"first": True, "last": True, "totalPages": 1, "totalElements": 1},
    }
    row = parse_settlement_page(body).rows[0]
    assert row.amount == "18000"
    assert row.transfer_status == "true"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pageable": {}}, "content"),
        (
            {"content": [1], "first": True, "last": True, "totalPages": 1, "totalElements": 1},
            "content[0]",
        ),
        (
            {
                "content": [settlement_row(amount={"v": 1})],
                "first": True,
                "last": True,
                "totalPages": 1,
                "totalElements": 1,
            },
            "content[0].amount",
        ),
        ({"content": [], "first": True, "last": True, "totalElements": 0}, "totalPages"),
        (
            {"content": [], "first": True, "last": True, "totalPages": True, "totalElements": 0},
            "totalPages",
        ),
        (
            {"content": [], "first": "yes", "last": True, "totalPages": 1, "totalElements": 0},
            "first",
        ),
    ],
)
def test_malformed_settlement_page_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadResponse) as caught:
        parse_settlement_page(body)
    assert caught.value.field == field
