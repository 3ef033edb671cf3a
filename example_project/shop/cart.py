"""The shopping cart, kept in the session as ``{product slug: quantity}``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.sessions.backends.base import SessionBase

from shop.models import Product

SESSION_KEY = "cart"
MAX_QUANTITY = 99


@dataclass(frozen=True, slots=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def subtotal(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    """Quantities live in the session; prices are always read fresh from the products."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session
        stored = session.get(SESSION_KEY)
        self.items: dict[str, int] = dict(stored) if isinstance(stored, dict) else {}

    def add(self, product: Product, quantity: int = 1) -> None:
        self.set(product, self.items.get(product.slug, 0) + quantity)

    def set(self, product: Product, quantity: int) -> None:
        if quantity <= 0:
            self.items.pop(product.slug, None)
        else:
            self.items[product.slug] = min(quantity, MAX_QUANTITY)
        self._save()

    def clear(self) -> None:
        self.items = {}
        self._save()

    def lines(self) -> list[CartLine]:
        products = Product.objects.filter(slug__in=self.items, is_active=True)
        return [CartLine(product, self.items[product.slug]) for product in products]

    @property
    def count(self) -> int:
        return sum(self.items.values())

    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines()), Decimal("0"))

    def _save(self) -> None:
        self.session[SESSION_KEY] = self.items
        self.session.modified = True
