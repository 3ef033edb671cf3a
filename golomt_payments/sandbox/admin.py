"""Read-mostly admin pages of the sandbox's books, to see what the bank did and sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from golomt_payments.sandbox.models import PushDelivery, Transaction

if TYPE_CHECKING:  # the admin classes are generic only to the type checker
    _PushInline = admin.TabularInline[PushDelivery, Transaction]
    _TransactionAdmin = admin.ModelAdmin[Transaction]
    _PushAdmin = admin.ModelAdmin[PushDelivery]
else:
    _PushInline = admin.TabularInline
    _TransactionAdmin = _PushAdmin = admin.ModelAdmin


class PushDeliveryInline(_PushInline):
    model = PushDelivery
    extra = 0
    can_delete = False
    fields = ("due_at", "state", "attempts", "http_status", "response", "error", "body")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(_TransactionAdmin):
    list_display = (
        "transaction_id",
        "kind",
        "amount",
        "state",
        "error_code",
        "behaviour",
        "card_number",
        "created_at",
    )
    list_filter = ("kind", "state", "error_code", "behaviour")
    search_fields = ("transaction_id", "=invoice")
    readonly_fields = ("invoice", "created_at", "finished_at", "read_count")
    inlines = (PushDeliveryInline,)
    date_hierarchy = "created_at"


@admin.register(PushDelivery)
class PushDeliveryAdmin(_PushAdmin):
    list_display = ("pk", "transaction", "due_at", "state", "attempts", "http_status")
    list_filter = ("state",)
    readonly_fields = ("created_at", "finished_at")
