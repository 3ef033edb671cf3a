"""Staff screens: invoices with their history and bank messages, and the raw message log."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from golomt_payments import services
from golomt_payments.gateway import GolomtError
from golomt_payments.models import BankMessage, Invoice, Source, Status, StatusChange

if TYPE_CHECKING:  # the admin classes are generic only to the type checker
    _HistoryInline = admin.TabularInline[StatusChange, Invoice]
    _MessageInline = admin.TabularInline[BankMessage, Invoice]
    _InvoiceAdmin = admin.ModelAdmin[Invoice]
    _MessageAdmin = admin.ModelAdmin[BankMessage]
else:
    _HistoryInline = _MessageInline = admin.TabularInline
    _InvoiceAdmin = _MessageAdmin = admin.ModelAdmin

_TOKEN_VALUE = re.compile(r'("token"\s*:\s*")([^"]*)(")')


def mask_card_tokens(text: str) -> str:
    """Card tokens can charge the card again: staff see only their last four characters."""
    return _TOKEN_VALUE.sub(lambda m: f"{m[1]}…{m[2][-4:]}{m[3]}" if m[2] else m[0], text)


_BADGE_COLOURS: dict[str, str] = {
    Status.NEW: "#6b7280",
    Status.PENDING: "#b7791f",
    Status.PAID: "#0f8a4c",
    Status.FAILED: "#c0392b",
    Status.EXPIRED: "#52606d",
}

_INVOICE_BANK_FIELDS = (
    "key",
    "account",
    "transaction_id",
    "bank_invoice",
    "amount",
    "amount_sent",
    "status",
    "method",
    "return_type",
    "language",
    "callback_url",
    "gen_token",
    "social_deeplink",
    "bank_code",
    "bank_description",
    "card_number",
    "card_bank",
    "created_at",
    "updated_at",
    "paid_at",
)


class StatusChangeInline(_HistoryInline):
    model = StatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "source", "bank_code", "message")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BankMessageInline(_MessageInline):
    model = BankMessage
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "direction",
        "kind",
        "http_status",
        "checksum_valid",
        "outcome",
        "error",
    )
    readonly_fields = fields
    show_change_link = True
    ordering = ("created_at", "pk")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(_InvoiceAdmin):
    list_display = (
        "transaction_id",
        "reference",
        "amount",
        "status_badge",
        "method",
        "card_number",
        "needs_review",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "method", "needs_review", "account", "created_at")
    search_fields = ("=transaction_id", "=bank_invoice", "reference")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    readonly_fields = _INVOICE_BANK_FIELDS
    fieldsets = (
        (None, {"fields": ("status", "amount", "reference", "metadata")}),
        (
            _("Bank"),
            {
                "fields": (
                    "account",
                    "transaction_id",
                    "bank_invoice",
                    "amount_sent",
                    "bank_code",
                    "bank_description",
                    "card_number",
                    "card_bank",
                    "paid_at",
                )
            },
        ),
        (
            _("Request"),
            {
                "classes": ("collapse",),
                "fields": (
                    "key",
                    "method",
                    "return_type",
                    "language",
                    "callback_url",
                    "gen_token",
                    "social_deeplink",
                    "created_at",
                    "updated_at",
                ),
            },
        ),
        (_("Review"), {"fields": ("needs_review", "review_reason")}),
    )
    inlines = (StatusChangeInline, BankMessageInline)
    actions = ("check_with_bank",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invoices are created through the bank, never by hand

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """Judge "changed" against what staff saw, not the row at save time: a review flag
        raised while the form was open must not read as an edit and be switched off."""
        form = super().get_form(request, obj, change=change, **kwargs)
        for field in form.base_fields.values():
            field.show_hidden_initial = True
        return form

    def save_model(self, request: HttpRequest, obj: Invoice, form: Any, change: bool) -> None:
        """Write only what staff edited: a full save would write back a status read before a
        payment that landed meanwhile."""
        if form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    @transaction.non_atomic_requests
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Outside ATOMIC_REQUESTS: the status action asks the bank, and a row lock taken for
        one invoice must not be held while the next one's inquiry waits for the bank."""
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Invoice) -> str:
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
            'font-size:11px;white-space:nowrap">{}</span>',
            _BADGE_COLOURS.get(obj.status, "#6b7280"),
            obj.get_status_display(),
        )

    @admin.action(description=_("Check status with the bank"), permissions=["check"])
    def check_with_bank(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset.iterator():
            try:
                change = services.refresh(invoice, source=Source.ADMIN)
            except GolomtError as exc:
                self.message_user(
                    request,
                    _("%(tx)s: the bank could not be asked (%(error)s).")
                    % {"tx": invoice.transaction_id, "error": type(exc).__name__},
                    messages.ERROR,
                )
                continue
            said = change.result
            bank_text = (
                f"{said.error_code or '—'} {said.error_desc or ''}".strip()
                if said is not None
                else change.reason
            )
            if change.changed:
                text = _("%(tx)s: the bank says %(bank)s; %(old)s → %(new)s.")
            else:
                text = _("%(tx)s: the bank says %(bank)s; unchanged (%(new)s).")
            self.message_user(
                request,
                text
                % {
                    "tx": invoice.transaction_id,
                    "bank": bank_text,
                    "old": change.old_status,
                    "new": change.new_status,
                },
                messages.SUCCESS if change.changed else messages.INFO,
            )

    def has_check_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("golomt_payments.check_invoice")


@admin.register(BankMessage)
class BankMessageAdmin(_MessageAdmin):
    list_display = (
        "created_at",
        "direction",
        "kind",
        "transaction_id",
        "http_status",
        "checksum_valid",
        "outcome",
        "remote_addr",
    )
    list_filter = ("direction", "kind", "outcome", "checksum_valid", "created_at")
    search_fields = ("=transaction_id",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = False
    raw_id_fields = ("invoice",)

    exclude = ("body", "response")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        shown = [f.name for f in BankMessage._meta.fields if f.name not in self.exclude]
        return [*shown, "body_shown", "response_shown"]

    @admin.display(description=_("body"))
    def body_shown(self, obj: BankMessage) -> str:
        return mask_card_tokens(obj.body)

    @admin.display(description=_("response"))
    def response_shown(self, obj: BankMessage) -> str:
        return mask_card_tokens(obj.response)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
