"""The cart's item count for the header of every page."""

from __future__ import annotations

from django.http import HttpRequest

from shop.cart import Cart


def cart(request: HttpRequest) -> dict[str, int]:
    session = getattr(request, "session", None)
    return {"cart_count": Cart(session).count if session is not None else 0}
