"""Merchant transaction ids: 15 ASCII letters/digits, fresh for every attempt."""

from __future__ import annotations

import string

import pytest

from golomt_payments.gateway import is_valid_transaction_id, new_transaction_id

ASCII_ALNUM = set(string.ascii_letters + string.digits)


def test_new_transaction_id_is_15_ascii_letters_or_digits() -> None:
    value = new_transaction_id()
    assert len(value) == 15
    assert set(value) <= ASCII_ALNUM
    assert is_valid_transaction_id(value)


def test_new_transaction_ids_do_not_repeat_over_many_draws() -> None:
    drawn = {new_transaction_id() for _ in range(20_000)}
    assert len(drawn) == 20_000


def test_new_transaction_ids_use_the_whole_alphabet() -> None:
    seen = set("".join(new_transaction_id() for _ in range(2_000)))
    assert seen == ASCII_ALNUM


@pytest.mark.parametrize("prefix", ["", "a", "INV", "shop01"])
def test_new_transaction_id_keeps_the_prefix_and_pads_to_15(prefix: str) -> None:
    value = new_transaction_id(prefix)
    assert value.startswith(prefix)
    assert len(value) == 15
    assert is_valid_transaction_id(value)


@pytest.mark.parametrize("prefix", ["shop012", "in-v", "a b", "инв", "x_", "é"])
def test_new_transaction_id_rejects_long_or_non_alphanumeric_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_transaction_id(prefix)


@pytest.mark.parametrize("value", ["a", "test000001", "A" * 15, "0123456789abcde"])
def test_is_valid_transaction_id_accepts_1_to_15_ascii_alphanumerics(value: str) -> None:
    assert is_valid_transaction_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "A" * 16,
        "абв123",  # noqa: RUF001 - Cyrillic, on purpose
        "test-0001",
        "test 0001",
        "test_0001",
        "tést",
        "١٢٣",
        "abc\n",
        None,
        12345,
        b"abc",
    ],
)
def test_is_valid_transaction_id_rejects_other_values(value: object) -> None:
    assert not is_valid_transaction_id(value)
