"""Every formula of the bank's checksum table, against HMACs computed independently."""

from __future__ import annotations

import pytest

from golomt_payments.gateway import checksum

from .conftest import SECRET, hmac_hex


def test_sign_matches_a_vector_computed_with_openssl() -> None:
    # printf 'test0000010001card-token' | openssl dgst -sha256 -hmac merchant-secret
    assert (
        checksum.sign("merchant-secret", "test000001", "000", "1", "card-token")
        == "d0ef831e831471da208da7c53f1d6b4f3d7fad3f3343d67c42fab71532a57a36"
    )


def test_sign_hashes_null_as_empty_string_not_the_word_null() -> None:
    # printf 'test0000011' | openssl dgst -sha256 -hmac merchant-secret
    expected = "4cc7c37aed47efe4cb7ae6b115eff8eb377e35620525f55ff87fa211b1b3d5aa"
    assert checksum.sign("merchant-secret", "test000001", None, "1") == expected
    assert checksum.sign("merchant-secret", "test000001", "", "1") == expected


def test_sign_hashes_cyrillic_values_as_utf8() -> None:
    # The same three values piped through `openssl dgst -sha256 -hmac merchant-secret`.
    assert (
        checksum.sign("merchant-secret", "test000001", "300", "Картын хугацаа")
        == "1a6bf869e374b0fbf32c23cd1288cfa223a193f66ef571e13112e01e63132b9b"
    )


def test_sign_uses_the_secret_as_utf8_key() -> None:
    assert checksum.sign("нууц", "abc") == hmac_hex("abc", key="нууц")


def test_sign_output_is_64_lowercase_hex() -> None:
    value = checksum.sign(SECRET, "x")
    assert len(value) == 64
    assert value == value.lower()
    int(value, 16)


@pytest.mark.parametrize("value", [1, 1.0, True, b"abc"])
def test_sign_refuses_values_that_are_not_text(value: object) -> None:
    with pytest.raises(TypeError, match="must be str or None"):
        checksum.sign(SECRET, "a", value)  # type: ignore[arg-type]


def test_sign_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        checksum.sign("", "a")


def test_invoice_request_is_id_amount_return_type_callback() -> None:
    assert checksum.invoice_request(
        SECRET,
        transaction_id="test000001",
        amount="18000.00",
        return_type="POST",
        callback="https://shop.mn/pay/return?x=1",
    ) == hmac_hex("test00000118000.00POSThttps://shop.mn/pay/return?x=1")


def test_invoice_response_is_invoice_then_id() -> None:
    assert checksum.invoice_response(
        SECRET, invoice="d7fb2858-df36-469e-b40d-2815fe9215cf", transaction_id="test000001"
    ) == hmac_hex("d7fb2858-df36-469e-b40d-2815fe9215cftest000001")


def test_inquiry_request_is_the_id_twice() -> None:
    assert checksum.inquiry_request(SECRET, transaction_id="test000001") == hmac_hex(
        "test000001test000001"
    )


def test_transaction_result_is_id_code_amount_and_token() -> None:
    assert checksum.transaction_result(
        SECRET, transaction_id="test000001", error_code="000", amount="1", token="tok123"
    ) == hmac_hex("test0000010001tok123")


@pytest.mark.parametrize("token", [None, ""])
def test_transaction_result_leaves_out_a_missing_or_empty_token(token: str | None) -> None:
    assert checksum.transaction_result(
        SECRET, transaction_id="test000001", error_code="300", amount="1000.00", token=token
    ) == hmac_hex("test0000013001000.00")


def test_transaction_result_hashes_a_null_error_code_as_empty() -> None:
    assert checksum.transaction_result(
        SECRET, transaction_id="test000001", error_code=None, amount="1"
    ) == hmac_hex("test0000011")


def test_pay_request_is_amount_id_token() -> None:
    assert checksum.pay_request(
        SECRET, amount="500.00", transaction_id="pay0001", token="cardtok"
    ) == hmac_hex("500.00pay0001cardtok")


def test_pay_response_is_id_code_amount_without_token() -> None:
    assert checksum.pay_response(
        SECRET, transaction_id="pay0001", error_code="000", amount="500.00"
    ) == hmac_hex("pay0001000500.00")


def test_check_request_is_the_id_twice() -> None:
    assert checksum.check_request(SECRET, transaction_id="pay0001") == hmac_hex("pay0001pay0001")


def test_confirmation_request_is_id_return_type_callback_without_amount() -> None:
    assert checksum.confirmation_request(
        SECRET, transaction_id="test12345", return_type="GET", callback="https://shop.mn/card"
    ) == hmac_hex("test12345GEThttps://shop.mn/card")


def test_confirmation_response_is_invoice_then_id() -> None:
    assert checksum.confirmation_response(
        SECRET, invoice="inv-1", transaction_id="test12345"
    ) == hmac_hex("inv-1test12345")


def test_get_token_request_is_the_id_twice() -> None:
    assert checksum.get_token_request(SECRET, transaction_id="test12345") == hmac_hex(
        "test12345test12345"
    )


def test_get_token_response_is_id_then_token() -> None:
    assert checksum.get_token_response(SECRET, transaction_id="test12345", token="tok") == hmac_hex(
        "test12345tok"
    )
    assert checksum.get_token_response(SECRET, transaction_id="test12345", token=None) == hmac_hex(
        "test12345"
    )


def test_settlement_request_is_merchant_id_then_token() -> None:
    assert checksum.settlement_request(
        SECRET, merchant_id="123456789012345", token="stl-token"
    ) == hmac_hex("123456789012345stl-token")


def test_matches_accepts_the_same_checksum() -> None:
    expected = hmac_hex("abc")
    assert checksum.matches(expected, expected)


def test_matches_accepts_upper_case_hex_from_the_sender() -> None:
    expected = hmac_hex("abc")
    assert checksum.matches(expected.upper(), expected)


@pytest.mark.parametrize(
    "received",
    [
        None,
        "",
        123,
        b"00" * 32,
        "0" * 64,
        hmac_hex("abc")[:-1],
        hmac_hex("abc") + "0",
        hmac_hex("abd"),
        "ж" * 64,
    ],
)
def test_matches_refuses_anything_else(received: object) -> None:
    assert not checksum.matches(received, hmac_hex("abc"))


def test_a_lone_surrogate_hashes_to_a_mismatch_instead_of_failing() -> None:
    received = checksum.transaction_result(
        "secret", transaction_id="test000001", error_code="000", amount="1"
    )
    forged = checksum.transaction_result(
        "secret", transaction_id="test000001\ud800", error_code="000", amount="1"
    )

    assert not checksum.matches(received, forged)


def test_matches_uses_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes | str, bytes | str]] = []

    def compare_digest(a: bytes | str, b: bytes | str) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(checksum.hmac, "compare_digest", compare_digest)
    expected = checksum.sign("secret", "test000001", "000", "1")

    assert checksum.matches(expected.upper(), expected)
    assert len(compared) == 1
