"""``{{ price|mnt }}``: tögrög as shops print them, "18,000₮" (cents only when there are any)."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def mnt(value: Decimal | int | str | None) -> str:
    if value is None or value == "":
        return ""
    amount = Decimal(value)
    if amount == amount.to_integral_value():
        return f"{amount:,.0f}₮"
    return f"{amount:,.2f}₮"
