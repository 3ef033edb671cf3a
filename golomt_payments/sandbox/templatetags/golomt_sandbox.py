"""Template filters of the sandbox's pages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def money(value: str | Decimal | int | None) -> str:
    """``"18000"`` -> ``"18,000"``: grouped digits, decimals kept as the bank sent them."""
    if value is None or value == "":
        return ""
    try:
        return f"{Decimal(value):,}"
    except (InvalidOperation, ValueError):
        return str(value)
