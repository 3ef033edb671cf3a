"""Amounts on the wire: one canonical text format out, tolerant numeric parsing in.

The bank hashes the amount string exactly as sent, so a shop must format it once and use that
same string in the body and the checksum. Public clients broke this with float text ("1e+06"),
thousands separators and rounding; this module refuses every input that could lead there.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

__all__ = ["format_amount", "parse_amount"]

_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_CENT = Decimal("0.01")


def format_amount(value: Decimal | int | str) -> str:
    """Render a positive amount as the one wire format: plain digits and two decimals.

    ``Decimal("18000")`` -> ``"18000.00"``, ``1`` -> ``"1.00"``. Anything that would need
    rounding (more than two significant decimals) is refused rather than rounded.
    """
    amount = _to_decimal(value)
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    if amount <= 0:
        raise ValueError("amount must be greater than zero")
    # Enough precision that quantize() never raises, whatever the magnitude (carry included).
    context = Context(prec=max(amount.adjusted(), 0) + 4)
    cents = amount.quantize(_CENT, context=context)
    if cents != amount:
        raise ValueError(
            f"amount {amount} has more than 2 decimal places; round it explicitly before paying"
        )
    return f"{cents:f}"


def parse_amount(text: str | int | None) -> Decimal:
    """Read an amount the bank sent ("1", "1.00", "18000") as a number for comparison."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"amount must be a string of digits, got {type(text).__name__}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("amount must not be negative")
        return Decimal(text)
    stripped = text.strip()
    if not _PLAIN_NUMBER.fullmatch(stripped):
        raise ValueError(f"amount {_excerpt(text)} is not a plain decimal number")
    return Decimal(stripped)


def _to_decimal(value: object) -> Decimal:
    """Accept only exact number types; floats and bools are programming errors here."""
    if isinstance(value, bool):
        raise ValueError("amount must be a Decimal, int or str, not bool")
    if isinstance(value, float):
        raise ValueError(
            "amount must be a Decimal, int or str, not float: binary floats cannot hold "
            "most decimal amounts exactly"
        )
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        if not _PLAIN_NUMBER.fullmatch(value):
            raise ValueError(
                f"amount {_excerpt(value)} is not plain digits with an optional decimal point "
                "(no signs, exponents, spaces or thousands separators)"
            )
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid text
            raise ValueError(f"amount {_excerpt(value)} is not a number") from exc
    raise ValueError(f"amount must be a Decimal, int or str, not {type(value).__name__}")


def _excerpt(text: str, limit: int = 40) -> str:
    """Quote user text in an error message without letting it grow without bound."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
