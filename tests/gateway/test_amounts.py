"""The one wire format for amounts, and tolerant reading of what the bank sends back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golomt_payments.gateway import format_amount, parse_amount


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("18000"), "18000.00"),
        (Decimal("1000.5"), "1000.50"),
        (Decimal("0.01"), "0.01"),
        (Decimal("1E+3"), "1000.00"),
        (1, "1.00"),
        (18000, "18000.00"),
        ("18000", "18000.00"),
        ("1000.5", "1000.50"),
        ("1000.00", "1000.00"),
        ("0012", "12.00"),
        (Decimal("12345678901234567890123456789012"), "12345678901234567890123456789012.00"),
    ],
)
def test_format_amount_writes_plain_digits_with_two_decimals(
    value: Decimal | int | str, expected: str
) -> None:
    assert format_amount(value) == expected


def test_format_amount_accepts_trailing_zeros_beyond_cents_because_nothing_is_rounded() -> None:
    assert format_amount(Decimal("1.000")) == "1.00"
    assert format_amount("2.500") == "2.50"


@pytest.mark.parametrize("value", [Decimal("1.005"), "1.005", Decimal("0.001"), "999.999"])
def test_format_amount_refuses_to_round_more_than_two_decimals(value: Decimal | str) -> None:
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        format_amount(value)


@pytest.mark.parametrize("value", [1.0, 1000.5, 0.1])
def test_format_amount_rejects_floats(value: float) -> None:
    with pytest.raises(ValueError, match="not float"):
        format_amount(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_format_amount_rejects_bools(value: bool) -> None:
    with pytest.raises(ValueError, match="not bool"):
        format_amount(value)


@pytest.mark.parametrize("value", [0, "0", "0.00", Decimal("0"), Decimal("-0"), -1, Decimal("-5")])
def test_format_amount_rejects_zero_and_negative(value: Decimal | int | str) -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        format_amount(value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")])
def test_format_amount_rejects_non_finite(value: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_amount(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "abc",
        "1e3",
        "1E3",
        "1,000",
        "1 000",
        " 1",
        "1 ",
        "+1",
        "-1",
        "1.",
        ".5",
        "NaN",
        "Infinity",
        "١٢",
        "１",  # noqa: RUF001 - a full-width digit, on purpose
    ],
)
def test_format_amount_rejects_text_that_is_not_plain_digits(value: str) -> None:
    with pytest.raises(ValueError, match="plain digits"):
        format_amount(value)


def test_format_amount_rejects_other_types() -> None:
    with pytest.raises(ValueError, match="list"):
        format_amount([1])  # type: ignore[arg-type]


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e12"), places=2))
def test_format_amount_round_trips_through_parse_amount(value: Decimal) -> None:
    text = format_amount(value)
    assert parse_amount(text) == value
    assert text == format_amount(text)
    assert "e" not in text.lower() and "," not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("1.00", Decimal(1)),
        ("18000", Decimal(18000)),
        (" 5.5 ", Decimal("5.5")),
        (42, Decimal(42)),
    ],
)
def test_parse_amount_reads_bank_amounts_as_numbers(text: str | int, expected: Decimal) -> None:
    assert parse_amount(text) == expected


def test_parse_amount_compares_integer_and_two_decimal_forms_equal() -> None:
    assert parse_amount("1") == parse_amount("1.00")
    assert parse_amount("18000") == parse_amount("18000.00")


@pytest.mark.parametrize("text", [None, "", "abc", "1e3", "1,000", "-1", -1, True, 1.5, "NaN"])
def test_parse_amount_rejects_garbage(text: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)  # type: ignore[arg-type]
