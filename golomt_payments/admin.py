"""Staff screens: invoices with their history and bank messages, and the raw message log."""

from __future__ import annotations

import csv
import datetime
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import lookup_spawns_duplicates
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections, models, transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from golomt_payments import conf, services
from golomt_payments.gateway import GolomtError
from golomt_payments.models import (
    BankMessage,
    CardRegistration,
    CardToken,
    Invoice,
    Notification,
    Refund,
    SettledTransaction,
    SettlementMismatch,
    Source,
    Status,
    StatusChange,
)
from golomt_payments.templatetags.golomt_payments import golomt_amount

if TYPE_CHECKING:  # the admin classes are generic only to the type checker
    from django.contrib.admin.filters import _ListFilterChoices

    _LogInlineBase = admin.TabularInline[Any, Invoice]
    _InvoiceAdmin = admin.ModelAdmin[Invoice]
    _MessageAdmin = admin.ModelAdmin[BankMessage]
    _LargeListBase = admin.ModelAdmin[Any]
    _Paginator = Paginator[Any]
else:
    _LogInlineBase = admin.TabularInline
    _InvoiceAdmin = _MessageAdmin = admin.ModelAdmin
    _LargeListBase = object
    _Paginator = Paginator

_TOKEN_VALUE = re.compile(r'("token"\s*:\s*")([^"]*)(")')


def mask_card_tokens(text: str) -> str:
    """Card tokens can charge the card again: staff see only their last four characters."""
    return _TOKEN_VALUE.sub(lambda m: f"{m[1]}…{m[2][-4:]}{m[3]}" if m[2] else m[0], text)


#: What every page of the app's admin shows for a value that is not there.
EMPTY_VALUE = "—"

_PRE_STYLE = "margin:0;white-space:pre-wrap;overflow-wrap:anywhere"
_QUIET_STYLE = "font-size:11px;font-weight:normal;color:var(--body-quiet-color)"


def amount_text(value: Decimal | None) -> str:
    """An amount of tögrög as staff read it: ``1,250,000 ₮``, ``9,800.50 ₮``."""
    if value is None:
        return EMPTY_VALUE
    return f"{golomt_amount(value)}\u00a0₮"


def with_account_column(
    columns: tuple[Any, ...], account: str, after: str | None = None
) -> tuple[Any, ...]:
    """A list's columns, with ``account`` after the column ``after`` (else last), where
    ``GOLOMT_PAYMENTS`` configures more than one merchant account to tell apart."""
    if len(conf.get().accounts) < 2:
        return columns
    at = len(columns) if after is None else columns.index(after) + 1
    return (*columns[:at], account, *columns[at:])


def message_text_shown(text: str) -> str:
    """A bank message's body or response: JSON indented, anything else as it came, in both
    cases with the card tokens masked (:func:`mask_card_tokens`)."""
    if not text:
        return EMPTY_VALUE
    try:
        shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        shown = text
    return format_html('<pre style="{}">{}</pre>', _PRE_STYLE, mask_card_tokens(shown))


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
    "owner",
    "card_token",
    "created_at",
    "updated_at",
    "paid_at",
)


# --- lists of many rows ----------------------------------------------------------------------
#
# The invoice and message tables grow by the million. Django's defaults read every row on each
# list page: the date hierarchy groups them (SELECT DISTINCT DATE_TRUNC …), a plain list filter
# collects its values (SELECT DISTINCT account), a "=field" search compares UPPER(field), which
# no index serves, and the paginator counts them all. What follows keeps each page to index
# lookups, whatever the table's size.

#: An unfiltered list of a PostgreSQL table holding more rows than this shows the planner's
#: estimate of its size rather than counting every row.
ESTIMATE_COUNT_ABOVE = 100_000

# The planner's own estimate: rows per page at the last VACUUM/ANALYZE times the pages now.
_ESTIMATE_SQL = """
SELECT CASE WHEN c.reltuples < 0 OR c.relpages = 0 THEN NULL
            ELSE c.reltuples / c.relpages
                 * (pg_relation_size(c.oid) / current_setting('block_size')::int) END
FROM pg_class c WHERE c.oid = to_regclass(%s)
"""


def estimated_row_count(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of the rows of an unfiltered queryset, None where there is none:
    another database, a filtered, distinct, grouped or sliced queryset, a never analyzed table."""
    connection = connections[queryset.db]
    query = queryset.query
    if (
        connection.vendor != "postgresql"
        or query.where
        or query.distinct
        or query.combinator
        or query.group_by is not None
        or query.is_sliced
    ):
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(_ESTIMATE_SQL, [table])
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class EstimatedCountPaginator(_Paginator):
    """Exact counts, except for the unfiltered list of a large PostgreSQL table.

    There COUNT(*) reads the whole table (tens of milliseconds a million rows) for a number that
    only sizes the page links; the planner's estimate does. Any filter or search, and every other
    database, gets the exact count. ``count_is_estimate`` tells the template to say so.
    """

    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            estimate = estimated_row_count(self.object_list)
            if estimate is not None and estimate > ESTIMATE_COUNT_ABOVE:
                self.count_is_estimate = True
                return estimate
        return super().count


def _local_date(value: datetime.date | datetime.datetime) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return value


def _int_param(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def bounded_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """The date hierarchy's links, from the first and last date of the whole table.

    Django's hierarchy lists the years, months or days that hold a row of the current result:
    a DISTINCT over every row, or a MIN/MAX over the filtered rows that reads the whole index when
    few match. Here one MIN/MAX over the unfiltered table (two index lookups) bounds the links:
    every year, month or day between the first and the last row, drilling in as Django does
    when they all fall in one year or month. A period in between may hold no row of the result.
    The returned dict is the context of ``admin/date_hierarchy.html``.
    """
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (
        f"{field_name}__{part}" for part in ("year", "month", "day")
    )
    field_generic = f"{field_name}__"
    year = _int_param(cl.params.get(year_field))
    month = _int_param(cl.params.get(month_field))
    day = _int_param(cl.params.get(day_field))
    opts = cl.model._meta
    shown: dict[str, Any] = {
        "show": True,
        "back": None,
        "choices": [],
        "templates": [
            f"admin/{opts.app_label}/{opts.model_name}/date_hierarchy.html",
            f"admin/{opts.app_label}/date_hierarchy.html",
            "admin/date_hierarchy.html",
        ],
    }

    def link(filters: dict[str, int]) -> str:
        return cl.get_query_string(filters, [field_generic])

    if year and month and day:
        try:
            shown_day = datetime.date(year, month, day)
        except ValueError:
            return shown
        shown["back"] = {
            "link": link({year_field: year, month_field: month}),
            "title": capfirst(formats.date_format(shown_day, "YEAR_MONTH_FORMAT")),
        }
        shown["choices"] = [{"title": capfirst(formats.date_format(shown_day, "MONTH_DAY_FORMAT"))}]
        return shown

    span = cl.root_queryset.aggregate(first=Min(field_name), last=Max(field_name))
    if span["first"] is None or span["last"] is None:
        return shown
    first, last = _local_date(span["first"]), _local_date(span["last"])
    if not (year or month or day) and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month

    if year and month:
        try:
            start = datetime.date(year, month, 1)
        except ValueError:
            return shown
        end = (start + datetime.timedelta(days=32)).replace(day=1) - datetime.timedelta(days=1)
        shown["back"] = {"link": link({year_field: year}), "title": str(year)}
        shown["choices"] = [
            {
                "link": link({year_field: year, month_field: month, day_field: d.day}),
                "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
            }
            for d in (
                max(start, first) + datetime.timedelta(days=n)
                for n in range((min(end, last) - max(start, first)).days + 1)
            )
        ]
    elif year:
        low = first.month if year == first.year else 1
        high = last.month if year == last.year else 12
        months = range(low, high + 1) if first.year <= year <= last.year else range(0)
        shown["back"] = {"link": link({}), "title": gettext("All dates")}
        shown["choices"] = [
            {
                "link": link({year_field: year, month_field: m}),
                "title": capfirst(
                    formats.date_format(datetime.date(year, m, 1), "YEAR_MONTH_FORMAT")
                ),
            }
            for m in months
        ]
    else:
        shown["choices"] = [
            {"link": link({year_field: y}), "title": str(y)}
            for y in range(first.year, last.year + 1)
        ]
    return shown


class LargeTableChangeList(ChangeList):
    """The changelist of :class:`LargeListAdmin`; its template draws the bounded hierarchy.

    A filter value with a NUL character is refused like any other bad lookup (Django's admin
    answers with the list and ``?e=1``): no stored text holds one, and PostgreSQL rejects it
    in a query with an error, which would be a 500.
    """

    def get_filters_params(self, params: Any = None) -> dict[str, Any]:
        lookup_params: dict[str, Any] = super().get_filters_params(params)
        for value in lookup_params.values():
            if any("\x00" in item for item in (value if isinstance(value, list) else [value])):
                raise IncorrectLookupParameters("a filter value holds a NUL character")
        return lookup_params

    @cached_property
    def bounded_date_hierarchy(self) -> dict[str, Any] | None:
        return bounded_date_hierarchy(self) if self.date_hierarchy else None


class AccountListFilter(admin.FieldListFilter):
    """The merchant accounts of ``GOLOMT_PAYMENTS``, rather than a SELECT DISTINCT of every row.

    An account no longer configured still filters by its link (``?account=old``) and is then
    listed too. With a single account and none chosen there is nothing to choose: hidden.
    """

    def __init__(
        self,
        field: Any,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[models.Model],
        model_admin: Any,
        field_path: str,
    ) -> None:
        self.lookup_kwarg = field_path
        self.lookup_val: list[str] | None = params.get(field_path)
        super().__init__(field, request, params, model, model_admin, field_path)
        configured = list(conf.get().accounts)
        chosen = [value for value in self.lookup_val or () if value not in configured]
        self.lookup_choices = configured + list(dict.fromkeys(chosen))

    def expected_parameters(self) -> list[str | None]:
        return [self.lookup_kwarg]

    def has_output(self) -> bool:
        return len(self.lookup_choices) > 1 or bool(self.lookup_val)

    def get_facet_counts(self, pk_attname: str, filtered_qs: QuerySet[Any]) -> dict[str, Count]:
        return {
            f"{i}__c": Count(pk_attname, filter=Q((self.lookup_kwarg, value)))
            for i, value in enumerate(self.lookup_choices)
        }

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        counts = self.get_facet_queryset(changelist) if changelist.add_facets else None
        yield {
            "selected": not self.lookup_val,
            "query_string": changelist.get_query_string(remove=[self.lookup_kwarg]),
            "display": _("All"),
        }
        for i, value in enumerate(self.lookup_choices):
            yield {
                "selected": bool(self.lookup_val) and value in (self.lookup_val or ()),
                "query_string": changelist.get_query_string({self.lookup_kwarg: value}),
                "display": f"{value} ({counts[f'{i}__c']})" if counts is not None else value,
            }


class LargeListAdmin(_LargeListBase):
    """List pages that stay index lookups on tables of millions of rows.

    - The date hierarchy's links come from the table's first and last date
      (:func:`bounded_date_hierarchy`), not from grouping every row.
    - The unfiltered list on PostgreSQL shows the estimated row count
      (:class:`EstimatedCountPaginator`); filtered lists count exactly.
    - With every search field written ``=field`` or ``^field``, the search term (trimmed, taken
      whole) matches ``=`` fields exactly, capital and small letters as written, with the
      field's own index; and ``^`` fields from their beginning, as typed, all in capitals or all
      in small letters, with the ``varchar_pattern_ops`` index Django gives an indexed
      CharField on PostgreSQL. Any other search field gets Django's search.
    """

    paginator = EstimatedCountPaginator

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LargeTableChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        fields = self.get_search_fields(request)
        term = search_term.strip()
        if not term or not fields or any(field[:1] not in ("=", "^") for field in fields):
            return super().get_search_results(request, queryset, search_term)
        condition = Q()
        duplicates = False
        for field in fields:
            lookup = field[1:]
            if field[0] == "=":
                condition |= Q((lookup, term))
            else:
                for variant in dict.fromkeys((term, term.upper(), term.lower())):
                    condition |= Q((f"{lookup}__startswith", variant))
            duplicates = duplicates or lookup_spawns_duplicates(self.opts, lookup)
        return queryset.filter(condition), duplicates


class RecordAdmin(LargeListAdmin):
    """The app's records: written from the bank's answers by the services, never added or
    deleted by hand (a payment's record is kept, whatever became of the payment; a removed
    card stays for the invoices paid with it). Large lists, one mark for an empty value."""

    show_full_result_count = False
    empty_value_display = EMPTY_VALUE

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyRecordAdmin(RecordAdmin):
    """A record staff may look at and never change."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LogInline(_LogInlineBase):
    """Rows of an invoice's history and message log, shown in its page: read, never changed."""

    template = "admin/golomt_payments/edit_inline/tabular_log.html"
    extra = 0
    can_delete = False
    empty_value_display = EMPTY_VALUE

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatusChangeInline(LogInline):
    model = StatusChange
    fields = ("created_at", "from_status", "to_status", "source", "bank_code", "message")
    readonly_fields = fields
    show_change_link = False


class BankMessageInline(LogInline):
    """Each message links to its own page, to be read: the log is never changed."""

    model = BankMessage
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


class RefundInline(LogInline):
    """Refunds staff recorded (made in the bank's merchant portal): who, when, how much."""

    model = Refund
    fields = ("created_at", "amount", "note", "recorded_by")
    readonly_fields = fields
    show_change_link = False


class NotificationInline(LogInline):
    """The signals the shop was owed for this invoice, and whether they reached it."""

    model = Notification
    fields = ("created_at", "signal", "state", "attempts", "delivered_at", "last_error")
    readonly_fields = fields
    show_change_link = True
    ordering = ("created_at", "pk")


class PaidTwiceFilter(admin.SimpleListFilter):
    """Invoices that paid an order another invoice had already paid: money to give back."""

    title = _("paid twice")
    parameter_name = "paid_twice"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes: refund")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(duplicate_of__isnull=False)
        if self.value() == "no":
            return queryset.filter(duplicate_of__isnull=True)
        return queryset


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount refunded"), max_digits=14, decimal_places=2, min_value=Decimal("0.01")
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("For example the bank portal's reference for the refund."),
    )


@admin.register(Invoice)
class InvoiceAdmin(RecordAdmin, _InvoiceAdmin):
    list_display = ("invoice_shown", "status_badge", "amount_and_method", "created_shown")
    list_filter = (
        "status",
        "method",
        "needs_review",
        PaidTwiceFilter,
        ("account", AccountListFilter),
        "created_at",
    )
    search_fields = ("=transaction_id", "=bank_invoice", "^reference")
    search_help_text = _(
        "A whole transaction ID or bank invoice ID, capital and small letters as written; "
        "or the beginning of a shop reference, as typed, in capitals or in small letters."
    )
    date_hierarchy = "created_at"
    list_per_page = 50
    # The reference names the order: one payment per order is kept by the database on it.
    readonly_fields = (
        *_INVOICE_BANK_FIELDS,
        "amount_shown",
        "reference",
        "holds_order",
        "duplicate_of",
        "refunded_shown",
    )
    fieldsets = (
        (None, {"fields": ("status", "amount_shown", "reference", "metadata")}),
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
        (_("Customer"), {"fields": ("owner", "card_token")}),
        (
            _("Review"),
            {
                "fields": (
                    "needs_review",
                    "review_reason",
                    "holds_order",
                    "duplicate_of",
                    "refunded_shown",
                )
            },
        ),
    )
    inlines = (StatusChangeInline, RefundInline, NotificationInline, BankMessageInline)
    actions = ("check_with_bank", "record_refund")

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        """The merchant account too, where there is more than one to tell apart."""
        return with_account_column(
            tuple(self.list_display), "account_shown", after="amount_and_method"
        )

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
        """The status as a coloured badge, and beside it a marker on an invoice to review."""
        badge = format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
            'font-size:11px;white-space:nowrap">{}</span>',
            _BADGE_COLOURS.get(obj.status, "#6b7280"),
            obj.get_status_display(),
        )
        if obj.is_duplicate:
            badge = format_html(
                '{} <span class="golomt-paid-twice" style="background:#c0392b;color:#fff;'
                "padding:1px 7px;border-radius:10px;font-size:11px;font-weight:bold;"
                'white-space:nowrap">{}</span>',
                badge,
                _("Paid twice"),
            )
        if not obj.needs_review:
            return badge
        return format_html(
            '{} <span class="golomt-needs-review" title="{}" style="border:1px solid #c0392b;'
            "color:#c0392b;padding:1px 7px;border-radius:10px;font-size:11px;font-weight:bold;"
            'white-space:nowrap">⚑ {}</span>',
            badge,
            obj.review_reason,
            _("Needs review"),
        )

    @admin.display(description=_("amount"), ordering="amount")
    def amount_shown(self, obj: Invoice) -> str:
        return amount_text(obj.amount)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_and_method(self, obj: Invoice) -> str:
        """The amount, and under it how it is paid."""
        return format_html(
            '{}<br><span class="golomt-method" style="{}">{}</span>',
            amount_text(obj.amount),
            _QUIET_STYLE,
            obj.get_method_display(),
        )

    @admin.display(description=_("account"), ordering="account")
    def account_shown(self, obj: Invoice) -> str:
        return obj.account

    @admin.display(description=_("created"), ordering="created_at")
    def created_shown(self, obj: Invoice) -> str:
        """Date and time in the short form, two lines at most in a narrow column."""
        created = obj.created_at
        local = timezone.localtime(created) if timezone.is_aware(created) else created
        return formats.date_format(local, "SHORT_DATETIME_FORMAT")

    @admin.display(description=_("invoice"), ordering="reference")
    def invoice_shown(self, obj: Invoice) -> str:
        """The shop's reference, and under it the transaction id the bank knows it by."""
        return format_html(
            '{}<br><span class="golomt-transaction-id" style="{}">{}</span>',
            obj.reference or EMPTY_VALUE,
            _QUIET_STYLE,
            obj.transaction_id,
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

    @admin.display(description=_("refunded"))
    def refunded_shown(self, obj: Invoice) -> str:
        return amount_text(services.refunded_amount(obj)) if obj.pk else EMPTY_VALUE

    @admin.action(
        description=_("Record a refund made in the bank's portal"), permissions=["refund"]
    )
    def record_refund(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> TemplateResponse | None:
        """The bank's API cannot refund: staff refund in its merchant portal, then record it
        here (amount, note; who and when are kept), on one paid invoice at a time."""
        invoices = list(queryset[:2])
        if len(invoices) != 1 or invoices[0].status != Status.PAID:
            self.message_user(
                request,
                _("Select one paid invoice to record a refund for."),
                messages.WARNING,
            )
            return None
        invoice = invoices[0]
        form = RefundForm(request.POST if "amount" in request.POST else None)
        if form.is_valid():
            try:
                refund = services.record_refund(
                    invoice,
                    amount=form.cleaned_data["amount"],
                    note=form.cleaned_data["note"],
                    by=request.user if request.user.is_authenticated else None,
                )
            except services.RefundRefused as exc:
                form.add_error("amount", str(exc))
            else:
                self.message_user(
                    request,
                    _("%(tx)s: a refund of %(amount)s is recorded.")
                    % {"tx": invoice.transaction_id, "amount": amount_text(refund.amount)},
                    messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record a refund"),
            "opts": self.opts,
            "invoice": invoice,
            "form": form,
            "left": amount_text(invoice.amount - services.refunded_amount(invoice)),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/golomt_payments/invoice/record_refund.html", context
        )

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("golomt_payments.record_refund")


@admin.register(BankMessage)
class BankMessageAdmin(ReadOnlyRecordAdmin, _MessageAdmin):
    # The kind says the direction too: a redirect or a push comes from the bank, the rest go to it.
    list_display = (
        "created_at",
        "kind",
        "transaction_id",
        "http_status",
        "checksum_valid",
        "outcome",
    )
    list_filter = ("direction", "kind", "outcome", "checksum_valid", "created_at")
    search_fields = ("=transaction_id",)
    search_help_text = _("A whole transaction ID, capital and small letters as written.")
    date_hierarchy = "created_at"
    list_select_related = False
    raw_id_fields = ("invoice",)

    exclude = ("body", "response")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        shown = [f.name for f in BankMessage._meta.fields if f.name not in self.exclude]
        return [*shown, "body_shown", "response_shown"]

    @admin.display(description=_("body"))
    def body_shown(self, obj: BankMessage) -> str:
        return message_text_shown(obj.body)

    @admin.display(description=_("response"))
    def response_shown(self, obj: BankMessage) -> str:
        return message_text_shown(obj.response)


# --- notifications (the outbox) ---------------------------------------------------------------

if TYPE_CHECKING:
    _NotificationAdmin = admin.ModelAdmin[Notification]
else:
    _NotificationAdmin = admin.ModelAdmin


@admin.register(Notification)
class NotificationAdmin(ReadOnlyRecordAdmin, _NotificationAdmin):
    """The signals the shop is owed: which reached its receivers, which are still owed and
    why. "Deliver again" sends the selected ones now (receivers see the same event id)."""

    list_display = ("created_at", "signal", "invoice", "state", "attempts", "due_at")
    list_filter = ("state", "signal", "created_at")
    list_select_related = ("invoice",)
    search_fields = ("=event_id", "=invoice__transaction_id")
    search_help_text = _("A whole event ID, or a whole transaction ID.")
    date_hierarchy = "created_at"
    actions = ("deliver_again",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Notification._meta.fields]

    @admin.action(description=_("Deliver again now"), permissions=["deliver"])
    def deliver_again(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        summary = services.deliver_again(queryset.select_related("invoice", "card"))
        if summary.delivered:
            self.message_user(
                request,
                _("%(count)d notification(s) delivered.") % {"count": summary.delivered},
                messages.SUCCESS,
            )
        if summary.failed:
            self.message_user(
                request,
                _("%(count)d notification(s) failed again: see their last error.")
                % {"count": summary.failed},
                messages.ERROR,
            )

    def has_deliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("golomt_payments.deliver_notification")


# --- saved cards -----------------------------------------------------------------------------

if TYPE_CHECKING:
    _CardAdmin = admin.ModelAdmin[CardToken]
    _RegistrationAdmin = admin.ModelAdmin[CardRegistration]
else:
    _CardAdmin = _RegistrationAdmin = admin.ModelAdmin


@admin.register(CardToken)
class CardTokenAdmin(RecordAdmin, _CardAdmin):
    """Customers' saved cards, read only: the token can charge the card, so staff see only its
    last four characters. Removing goes through the service, which signals ``card_removed``."""

    list_display = ("card_number", "owner", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active", ("account", AccountListFilter), "created_at")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    exclude = ("token",)
    readonly_fields = (
        "owner",
        "account",
        "card_number",
        "card_bank",
        "card_holder",
        "token_hint",
        "is_active",
        "created_at",
        "last_used_at",
    )
    actions = ("remove_cards",)

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        username = get_user_model().USERNAME_FIELD
        return ("card_number", f"owner__{username}")

    @admin.display(description=_("token"))
    def token_hint(self, obj: CardToken) -> str:
        return obj.token_hint or EMPTY_VALUE

    @admin.action(description=_("Remove the selected cards"), permissions=["change"])
    def remove_cards(self, request: HttpRequest, queryset: QuerySet[CardToken]) -> None:
        removed = sum(services.remove_card(card) for card in queryset.filter(is_active=True))
        self.message_user(
            request, _("%(count)d card(s) removed.") % {"count": removed}, messages.SUCCESS
        )


@admin.register(CardRegistration)
class CardRegistrationAdmin(ReadOnlyRecordAdmin, _RegistrationAdmin):
    """Adding a card without buying, as the bank answered: read only."""

    list_display = ("transaction_id", "owner", "status", "card_token", "created_at")
    list_filter = ("status", ("account", AccountListFilter), "created_at")
    list_select_related = ("owner", "card_token")
    search_fields = ("=transaction_id", "=bank_invoice")
    search_help_text = _(
        "A whole transaction ID or bank invoice ID, capital and small letters as written."
    )
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in CardRegistration._meta.fields]


# --- settlement ------------------------------------------------------------------------------

if TYPE_CHECKING:
    _SettledAdmin = admin.ModelAdmin[SettledTransaction]
    _MismatchAdmin = admin.ModelAdmin[SettlementMismatch]
else:
    _SettledAdmin = _MismatchAdmin = admin.ModelAdmin


@admin.register(SettledTransaction)
class SettledTransactionAdmin(ReadOnlyRecordAdmin, _SettledAdmin):
    """The bank's settlement report as fetched: read only."""

    list_display = ("settled_on", "merchant_invoice", "amount_shown", "sys_reference")
    list_filter = ("settled_on", "resp_code", ("account", AccountListFilter))
    search_fields = ("=merchant_invoice", "=sys_reference")
    search_help_text = _(
        "A whole merchant invoice (transaction ID) or RRN, capital and small letters as written."
    )
    date_hierarchy = "settled_on"
    list_per_page = 100
    exclude = ("raw",)

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        """The merchant account too, where there is more than one to tell apart."""
        return with_account_column(tuple(self.list_display), "account")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        shown = [f.name for f in SettledTransaction._meta.fields if f.name not in self.exclude]
        return [*("amount_shown" if name == "amount" else name for name in shown), "raw_shown"]

    @admin.display(description=_("amount"), ordering="amount")
    def amount_shown(self, obj: SettledTransaction) -> str:
        return amount_text(obj.amount)

    @admin.display(description=_("row as received"))
    def raw_shown(self, obj: SettledTransaction) -> str:
        return format_html(
            '<pre style="{}">{}</pre>',
            _PRE_STYLE,
            json.dumps(obj.raw, indent=2, ensure_ascii=False, sort_keys=True),
        )


MISMATCH_CSV_COLUMNS = (
    _("day"),
    _("kind"),
    _("transaction id"),
    _("reference"),
    _("amount here"),
    _("amount settled"),
    _("card"),
    _("RRN"),
    _("note"),
    _("resolved"),
)


def _cell(value: object) -> str:
    """Text a spreadsheet shows as text: a leading = + - @ would make it a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def mismatch_transaction_id(mismatch: SettlementMismatch) -> str:
    if mismatch.invoice is not None:
        return mismatch.invoice.transaction_id
    return mismatch.settled.merchant_invoice if mismatch.settled is not None else ""


def mismatches_csv(queryset: QuerySet[SettlementMismatch]) -> HttpResponse:
    """The mismatches as a CSV file an accountant opens in a spreadsheet (UTF-8 with BOM)."""
    rows = list(queryset.select_related("invoice", "settled").order_by("day", "kind", "pk"))
    days = sorted({row.day for row in rows})
    span = f"-{days[0]}-{days[-1]}" if days else ""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="golomt-settlement-mismatches{span}.csv"'
    )
    response.write("\ufeff")  # lets spreadsheet programs read the Mongolian text as UTF-8
    writer = csv.writer(response)
    writer.writerow([str(title) for title in MISMATCH_CSV_COLUMNS])
    for row in rows:
        invoice, settled = row.invoice, row.settled
        writer.writerow(
            [
                row.day.isoformat(),
                _cell(row.get_kind_display()),
                _cell(mismatch_transaction_id(row)),
                _cell(invoice.reference if invoice is not None else ""),
                "" if row.expected_amount is None else f"{row.expected_amount:f}",
                "" if row.settled_amount is None else f"{row.settled_amount:f}",
                _cell(
                    (settled.card_number if settled is not None else "")
                    or (invoice.card_number if invoice is not None else "")
                ),
                _cell(settled.sys_reference if settled is not None else ""),
                _cell(row.note),
                _("yes") if row.resolved else _("no"),
            ]
        )
    return response


@admin.register(SettlementMismatch)
class SettlementMismatchAdmin(RecordAdmin, _MismatchAdmin):
    """Differences between the invoices paid here and the bank's settlement report.

    Staff who may view them may export them; staff who may change them may mark them resolved
    and write a note. They are never added or deleted by hand: a run of ``golomt_settlements``
    writes them, and a resolved one is kept as the record of what was done.
    """

    list_display = (
        "day",
        "kind",
        "transaction_link",
        "expected_amount_shown",
        "settled_amount_shown",
        "resolved",
    )
    list_filter = ("kind", "resolved", "day", ("account", AccountListFilter))
    search_fields = (
        "=invoice__transaction_id",
        "=settled__merchant_invoice",
        "=settled__sys_reference",
        "^invoice__reference",
    )
    search_help_text = _(
        "A whole transaction ID or RRN, capital and small letters as written; or the beginning "
        "of a shop reference, as typed, in capitals or in small letters."
    )
    date_hierarchy = "day"
    list_select_related = ("invoice", "settled")
    list_per_page = 100
    actions = ("mark_resolved", "export_csv")
    fields = (
        "day",
        "account",
        "kind",
        "invoice_link",
        "transaction_id",
        "reference",
        "expected_amount_shown",
        "settled_amount_shown",
        "card",
        "rrn",
        "settled_link",
        "detected_at",
        "resolved",
        "note",
    )
    readonly_fields = tuple(name for name in fields if name not in ("resolved", "note"))

    @admin.display(description=_("invoice"), ordering="invoice__transaction_id")
    def invoice_link(self, obj: SettlementMismatch) -> str:
        if obj.invoice is None:
            return EMPTY_VALUE
        url = reverse("admin:golomt_payments_invoice_change", args=[obj.invoice.pk])
        return format_html('<a href="{}">{}</a>', url, obj.invoice)

    @admin.display(description=_("settled transaction"))
    def settled_link(self, obj: SettlementMismatch) -> str:
        if obj.settled is None:
            return EMPTY_VALUE
        url = reverse("admin:golomt_payments_settledtransaction_change", args=[obj.settled.pk])
        return format_html('<a href="{}">{}</a>', url, obj.settled)

    @admin.display(description=_("transaction id"))
    def transaction_id(self, obj: SettlementMismatch) -> str:
        return mismatch_transaction_id(obj) or EMPTY_VALUE

    @admin.display(description=_("transaction id"), ordering="invoice__transaction_id")
    def transaction_link(self, obj: SettlementMismatch) -> str:
        """The transaction id, a link to its invoice where there is one."""
        if obj.invoice is None:
            return self.transaction_id(obj)
        url = reverse("admin:golomt_payments_invoice_change", args=[obj.invoice.pk])
        return format_html('<a href="{}">{}</a>', url, obj.invoice.transaction_id)

    @admin.display(description=_("amount here"), ordering="expected_amount")
    def expected_amount_shown(self, obj: SettlementMismatch) -> str:
        return amount_text(obj.expected_amount)

    @admin.display(description=_("amount settled"), ordering="settled_amount")
    def settled_amount_shown(self, obj: SettlementMismatch) -> str:
        return amount_text(obj.settled_amount)

    @admin.display(description=_("shop reference"))
    def reference(self, obj: SettlementMismatch) -> str:
        return (obj.invoice.reference if obj.invoice is not None else "") or EMPTY_VALUE

    @admin.display(description=_("card"))
    def card(self, obj: SettlementMismatch) -> str:
        if obj.settled is not None and obj.settled.card_number:
            return obj.settled.card_number
        return (obj.invoice.card_number if obj.invoice is not None else "") or EMPTY_VALUE

    @admin.display(description=_("RRN"))
    def rrn(self, obj: SettlementMismatch) -> str:
        return (obj.settled.sys_reference if obj.settled is not None else "") or EMPTY_VALUE

    @admin.action(description=_("Mark resolved"), permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[SettlementMismatch]) -> None:
        marked = 0
        for mismatch in queryset.filter(resolved=False):
            mismatch.resolved = True
            mismatch.save(update_fields=["resolved"])
            self.log_change(request, mismatch, [{"changed": {"fields": ["resolved"]}}])
            marked += 1
        self.message_user(
            request,
            _("%(count)d mismatch(es) marked resolved.") % {"count": marked},
            messages.SUCCESS,
        )

    @admin.action(description=_("Export as CSV"), permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[SettlementMismatch]
    ) -> HttpResponse:
        return mismatches_csv(queryset)

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="golomt_payments_settlementmismatch_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist's "Export as CSV" button: every row its filters and search show."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(
                reverse("admin:golomt_payments_settlementmismatch_changelist")
            )
        return mismatches_csv(changelist.queryset)
