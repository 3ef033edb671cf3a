"""The shop's own data: what it sells and what customers ordered.

An order knows nothing of the bank: its number is the ``reference`` of the payment, and the
payment signals (see :mod:`shop.receivers`) mark it paid.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

_ORDER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


def new_order_number() -> str:
    """An unguessable order number: it is the only key to the order page."""
    return "NG" + "".join(secrets.choice(_ORDER_ALPHABET) for _ in range(8))


class Product(models.Model):
    slug = models.SlugField(_("slug"), unique=True)
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(
        _("price (MNT)"),
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("1"))],
    )
    emoji = models.CharField(_("picture"), max_length=8, blank=True)
    colour = models.CharField(_("card colour"), max_length=7, default="#e8eefc")
    is_active = models.BooleanField(_("on sale"), default=True)
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ("position", "name")
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting", _("Awaiting payment")
        PAID = "paid", _("Paid")

    number = models.CharField(_("number"), max_length=20, unique=True, default=new_order_number)
    customer_name = models.CharField(_("name"), max_length=100)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    total = models.DecimalField(_("total (MNT)"), max_digits=12, decimal_places=2)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.AWAITING_PAYMENT
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    payment_card = models.CharField(_("card"), max_length=32, blank=True)
    payment_error = models.CharField(
        _("last payment problem"),
        max_length=255,
        blank=True,
        help_text=_("The bank's own words for the last failed attempt."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("order")
        verbose_name_plural = _("orders")

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("shop:order", args=[self.number])

    @property
    def is_paid(self) -> bool:
        return self.status == self.Status.PAID


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.SET_NULL, null=True, blank=True)
    name = models.CharField(_("name"), max_length=100)
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField(_("quantity"))

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity
