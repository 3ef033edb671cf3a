from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from shop.models import Order, OrderLine, Product

if TYPE_CHECKING:  # the admin classes are generic only to the type checker
    _LineInline = admin.TabularInline[OrderLine, Order]
    _ProductAdmin = admin.ModelAdmin[Product]
    _OrderAdmin = admin.ModelAdmin[Order]
else:
    _LineInline = admin.TabularInline
    _ProductAdmin = _OrderAdmin = admin.ModelAdmin


@admin.register(Product)
class ProductAdmin(_ProductAdmin):
    list_display = ("name", "price", "is_active", "position")
    list_editable = ("price", "is_active", "position")
    prepopulated_fields = {"slug": ("name",)}


class OrderLineInline(_LineInline):
    model = OrderLine
    extra = 0
    readonly_fields = ("product", "name", "unit_price", "quantity")
    can_delete = False


@admin.register(Order)
class OrderAdmin(_OrderAdmin):
    list_display = ("number", "customer_name", "total", "status", "created_at", "paid_at")
    list_filter = ("status",)
    search_fields = ("number", "customer_name", "phone")
    readonly_fields = ("number", "total", "created_at", "paid_at", "payment_card", "payment_error")
    inlines = (OrderLineInline,)
