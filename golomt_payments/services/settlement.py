"""Settlement: fetch what the bank settled for a date range, and match it with what was paid here.

Three kinds of difference are recorded as :class:`~golomt_payments.models.SettlementMismatch`
rows for an accountant: an invoice paid here that the bank did not settle, a settled
transaction no invoice here was paid for, and a pair whose amounts differ.

The rules at the edges of a range:

- An invoice belongs to the day it was paid, in the shop's ``TIME_ZONE``; a settled row to its
  ``tranDate`` (the bank sends no year: the year that puts it inside the requested range is
  taken, else the one nearest to the range, so ``0101`` fetched for 2024-12-31..2025-01-01 is
  2025-01-01).
- A run looks at the invoices paid in the range and the settled rows dated in the range, and
  pairs each by transaction id with *every* stored row or invoice, whatever its date. So a
  payment at 23:59 settled the next day is a clean match when the range covers both days, and
  also when the next day's run sees its row. A run for the payment's day alone, before the
  next day's rows are fetched, reports it "not settled"; the next day's run, which looks at
  that transaction again, replaces the report.
- Only rows with ``respCode`` ``00`` count as settled. The settled amount of a transaction is
  the sum of its successful rows, so a transaction the bank settled twice shows as an amount
  difference.
- A run replaces the unresolved mismatches it is responsible for (those dated in its range and
  those about the transactions it looked at); resolved ones are kept and never reported again.

The bank is asked before anything is written, and nothing is stored unless every page came:
a half-fetched range would report settled payments as missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from golomt_payments import bank, conf
from golomt_payments.gateway import (
    BadResponse,
    SettlementPage,
    SettlementRow,
    format_amount,
    parse_amount,
)
from golomt_payments.models import (
    Invoice,
    MismatchKind,
    SettledTransaction,
    SettlementMismatch,
    Status,
)

__all__ = [
    "SETTLED",
    "FetchSummary",
    "MatchSummary",
    "SettlementRun",
    "fetch_settlements",
    "match_settlements",
    "reconcile_settlements",
    "settlement_day",
]

logger = logging.getLogger(__name__)

#: The settlement ``respCode`` of a successful transaction.
SETTLED = "00"

#: Rows asked for per page.
PAGE_SIZE = 50

# Rows and ids per query: below SQLite's limit of bound parameters.
_CHUNK = 500

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class FetchSummary:
    """What one fetch brought: ``rows`` read over ``pages`` pages, of which ``created`` were new
    and ``updated`` already stored; ``skipped`` rows could not be read (see the log)."""

    start: date
    end: date
    account: str
    rows: int = 0
    pages: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class MatchSummary:
    """How the range compared: ``matched`` transactions agree; the rest are new or still
    unresolved mismatches. ``already_resolved`` differences were resolved by a person before
    and are not reported again."""

    start: date
    end: date
    account: str
    matched: int = 0
    not_settled: int = 0
    not_paid: int = 0
    amount_differs: int = 0
    already_resolved: int = 0

    @property
    def mismatches(self) -> int:
        return self.not_settled + self.not_paid + self.amount_differs


class SettlementRun(NamedTuple):
    fetch: FetchSummary
    match: MatchSummary


# --- fetch -----------------------------------------------------------------------------------


def fetch_settlements(
    start: date, end: date, *, account: str = conf.DEFAULT_ACCOUNT, page_size: int = PAGE_SIZE
) -> FetchSummary:
    """Fetch every page of the bank's settlement report for ``start``..``end`` (inclusive) and
    store its rows, once each: fetching the same range again updates them in place.

    Raises ImproperlyConfigured when the account lacks ``MERCHANT_ID`` or
    ``SETTLEMENT_TOKEN``, ValueError for a reversed range, and the gateway's errors when the
    bank cannot be asked; in every such case nothing is stored.
    """
    _check_range(start, end)
    acct = settlement_account(account)
    pages: list[SettlementPage] = []
    # All pages first, no transaction open: the bank is never asked while rows are locked.
    rows = list(
        bank.client(account).iter_settlements(
            merchant_id=acct.merchant_id,
            token=acct.settlement_token,
            start=start,
            end=end,
            size=page_size,
            on_page=pages.append,
        )
    )
    if pages and len(rows) < pages[-1].total_elements:
        # Half a report would list every missing row's payment as "not settled".
        raise BadResponse(
            f"/api/getSettlementDetails: the bank announced {pages[-1].total_elements} rows "
            f"for {start}..{end} and sent {len(rows)}; nothing was stored",
            endpoint="/api/getSettlementDetails",
        )
    readable: dict[str, dict[str, Any]] = {}
    skipped = 0
    for row in rows:
        try:
            bank_id, values = _stored(row, start, end)
        except ValueError as exc:
            skipped += 1
            logger.warning("Golomt settlement row skipped (%s): %s", account, exc)
            continue
        readable[bank_id] = values  # a row repeated on two pages is stored once
    stored = SettledTransaction.objects.filter(account=account)
    updated = 0
    with transaction.atomic():
        for chunk in _chunks(list(readable)):
            updated += stored.filter(bank_id__in=chunk).count()
            # One upsert per chunk: a fetch racing another for the same range cannot collide.
            SettledTransaction.objects.bulk_create(
                [
                    SettledTransaction(account=account, bank_id=bank_id, **readable[bank_id])
                    for bank_id in chunk
                ],
                update_conflicts=True,
                unique_fields=["account", "bank_id"],
                update_fields=[*_COLUMNS, "fetched_at"],
            )
    created = len(readable) - updated
    return FetchSummary(
        start=start,
        end=end,
        account=account,
        rows=len(rows),
        pages=len(pages),
        created=created,
        updated=updated,
        skipped=skipped,
    )


def settlement_account(account: str = conf.DEFAULT_ACCOUNT) -> conf.Account:
    """The account, if it has everything the settlement report needs."""
    acct = conf.get().account(account)
    missing = [
        key
        for key, value in (
            ("BEARER_TOKEN", acct.bearer_token),
            ("SECRET", acct.secret),
            ("MERCHANT_ID", acct.merchant_id),
            ("SETTLEMENT_TOKEN", acct.settlement_token),
        )
        if not value
    ]
    if missing:
        raise ImproperlyConfigured(
            f"{conf.SETTING_NAME}: account {account!r} has no {' and no '.join(missing)}; "
            "the settlement report needs them."
        )
    return acct


def settlement_day(tran_date: str, start: date, end: date) -> date:
    """The date of a ``tranDate`` (``MMdd``, no year) fetched for ``start``..``end``.

    The year that puts the date inside the range wins; failing that, the date nearest to the
    range (the bank may date a row a day outside what was asked).
    """
    text = tran_date.strip()
    if len(text) == 3 and text.isdigit():
        text = "0" + text  # sent as a JSON number: 105 is January 5
    if len(text) != 4 or not text.isascii() or not text.isdigit():
        raise ValueError(f"tranDate {tran_date!r} is not MMdd")
    month, day = int(text[:2]), int(text[2:])
    candidates = []
    for year in range(start.year - 1, end.year + 2):
        try:
            candidates.append(date(year, month, day))
        except ValueError:
            continue  # 29 February of a common year, or no such date at all
    if not candidates:
        raise ValueError(f"tranDate {tran_date!r} is no date")
    return min(candidates, key=lambda candidate: _distance(candidate, start, end))


def _distance(day: date, start: date, end: date) -> int:
    if day < start:
        return (start - day).days
    if day > end:
        return (day - end).days
    return 0


_COLUMNS = (
    "merchant_invoice",
    "settled_on",
    "amount",
    "resp_code",
    "resp_desc",
    "card_number",
    "sys_reference",
    "approval_code",
    "raw",
)


def _max_length(name: str) -> int:
    column = SettledTransaction._meta.get_field(name)
    assert isinstance(column, models.CharField) and column.max_length is not None
    return column.max_length


_MAX_LENGTHS = {
    name: _max_length(name)
    for name in (
        "bank_id",
        "merchant_invoice",
        "resp_code",
        "resp_desc",
        "card_number",
        "sys_reference",
        "approval_code",
    )
}


def _stored(row: SettlementRow, start: date, end: date) -> tuple[str, dict[str, Any]]:
    """The row's key and its columns; ValueError when it cannot be read."""
    label = f"id {row.id!r}, merchantInvoice {row.merchant_invoice!r}"
    try:
        amount = parse_amount(row.amount)
        format_amount(amount)  # refuses more than two decimals rather than rounding them
    except ValueError as exc:
        raise ValueError(f"{label}: amount {row.amount!r} is unreadable ({exc})") from None
    try:
        settled_on = _row_day(row, start, end)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
    values = {
        "merchant_invoice": _text(row.merchant_invoice, "merchant_invoice"),
        "settled_on": settled_on,
        "amount": amount,
        "resp_code": _text(row.resp_code, "resp_code"),
        "resp_desc": _text(row.resp_desc, "resp_desc"),
        "card_number": _text(row.card_number, "card_number"),
        "sys_reference": _text(row.sys_reference, "sys_reference"),
        "approval_code": _text(row.approval_code, "approval_code"),
        # The row's token may be a card token or the settlement token: neither is kept.
        "raw": _json_safe({key: value for key, value in row.raw.items() if key != "token"}),
    }
    return _bank_id(row), values


def _row_day(row: SettlementRow, start: date, end: date) -> date:
    if row.tran_date:
        return settlement_day(row.tran_date, start, end)
    # No tranDate: the request time carries a full date (2024-01-31 10:00:00), if it is there.
    try:
        return date.fromisoformat((row.request_date or "")[:10])
    except ValueError:
        raise ValueError(f"tranDate {row.tran_date!r} is missing") from None


def _bank_id(row: SettlementRow) -> str:
    """The bank's row id; a row without one is keyed by what identifies the transaction."""
    if row.id and len(row.id) <= _MAX_LENGTHS["bank_id"]:
        return row.id
    parts = (
        row.id,
        row.terminal_id,
        row.batch_number,
        row.invoice_number,
        row.merchant_invoice,
        row.sys_reference,
        row.approval_code,
        row.tran_date,
        row.tran_time,
        row.amount,
    )
    digest = hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:48]}"


def _text(value: str | None, name: str) -> str:
    return bank.storable((value or "").strip())[: _MAX_LENGTHS[name]]


def _json_safe(value: Any) -> Any:
    """PostgreSQL's jsonb takes no NUL character and no lone surrogate."""
    if isinstance(value, str):
        return bank.storable(value)
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {bank.storable(str(key)): _json_safe(item) for key, item in value.items()}
    return value


# --- match -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    """One mismatch before it is written."""

    kind: str
    day: date
    invoice: Invoice | None = None
    settled: SettledTransaction | None = None
    expected_amount: Decimal | None = None
    settled_amount: Decimal | None = None
    note: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        if self.invoice is not None:
            return (self.kind, "invoice", self.invoice.pk)
        assert self.settled is not None
        return (self.kind, "settled", self.settled.pk)


@dataclass(slots=True)
class _Pair:
    invoice: Invoice | None = None
    rows: list[SettledTransaction] = field(default_factory=list)
    failed_rows: list[SettledTransaction] = field(default_factory=list)


def match_settlements(
    start: date, end: date, *, account: str = conf.DEFAULT_ACCOUNT
) -> MatchSummary:
    """Compare the invoices paid here in ``start``..``end`` with the rows the bank settled then,
    and replace the unresolved mismatches of the range with what is found now.

    Works on stored rows only: call :func:`fetch_settlements` first (or use
    :func:`reconcile_settlements`).
    """
    _check_range(start, end)
    conf.get().account(account)  # an unknown account is a configuration error
    zone = timezone.get_default_timezone()
    since = datetime.combine(start, time.min, tzinfo=zone)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone)

    pairs: dict[str, _Pair] = {}
    paid_in_range = Invoice.objects.filter(
        account=account, status=Status.PAID, paid_at__gte=since, paid_at__lt=until
    )
    for invoice in paid_in_range.iterator(chunk_size=_CHUNK):
        pairs[invoice.transaction_id] = _Pair(invoice=invoice)
    settled = SettledTransaction.objects.filter(account=account)
    orphans: list[SettledTransaction] = []
    for row in settled.filter(resp_code=SETTLED, settled_on__range=(start, end)).iterator(
        chunk_size=_CHUNK
    ):
        if row.merchant_invoice:
            pairs.setdefault(row.merchant_invoice, _Pair())
        else:
            orphans.append(row)
    # Every stored row and invoice of the transactions in view, whatever their date.
    for chunk in _chunks(list(pairs)):
        for row in settled.filter(merchant_invoice__in=chunk).order_by("settled_on", "pk"):
            pair = pairs[row.merchant_invoice]
            (pair.rows if row.resp_code == SETTLED else pair.failed_rows).append(row)
        unseen = [tx for tx in chunk if pairs[tx].invoice is None]
        for invoice in Invoice.objects.filter(transaction_id__in=unseen):
            pairs[invoice.transaction_id].invoice = invoice

    found: list[_Found] = []
    for pair in pairs.values():
        difference = _compare(pair, account, zone)
        if difference is not None:
            found.append(difference)
    found.extend(
        _Found(
            kind=MismatchKind.NOT_PAID,
            day=row.settled_on,
            settled=row,
            settled_amount=row.amount,
            note="The bank's row names no transaction id.",
        )
        for row in orphans
    )
    matched = len(pairs) - (len(found) - len(orphans))

    invoice_ids = [pair.invoice.pk for pair in pairs.values() if pair.invoice is not None]
    row_ids = [row.pk for pair in pairs.values() for row in pair.rows] + [r.pk for r in orphans]
    mismatches = SettlementMismatch.objects.filter(account=account)
    # Responsible for: the mismatches dated in the range, and those about what it looked at.
    scopes = [
        Q(day__range=(start, end)),
        *(Q(invoice_id__in=chunk) for chunk in _chunks(invoice_ids)),
        *(Q(settled_id__in=chunk) for chunk in _chunks(row_ids)),
    ]
    with transaction.atomic():
        resolved: set[tuple[str, str, int | None]] = set()
        for scope in scopes:
            mismatches.filter(scope, resolved=False).delete()
            resolved.update(_existing_key(m) for m in mismatches.filter(scope, resolved=True))
        new = [item for item in found if item.key not in resolved]
        SettlementMismatch.objects.bulk_create(
            SettlementMismatch(
                day=item.day,
                account=account,
                kind=item.kind,
                invoice=item.invoice,
                settled=item.settled,
                expected_amount=item.expected_amount,
                settled_amount=item.settled_amount,
                note=item.note,
            )
            for item in sorted(new, key=lambda item: (item.day, item.kind, item.key))
        )
    counts = Counter(item.kind for item in new)
    return MatchSummary(
        start=start,
        end=end,
        account=account,
        matched=matched,
        not_settled=counts[MismatchKind.NOT_SETTLED],
        not_paid=counts[MismatchKind.NOT_PAID],
        amount_differs=counts[MismatchKind.AMOUNT],
        already_resolved=len(found) - len(new),
    )


def _compare(pair: _Pair, account: str, zone: tzinfo) -> _Found | None:
    """The difference between what was paid here and settled for one transaction, if any.

    A pair comes from an invoice paid in the range or from a successful row dated in it, so
    it has at least one of the two.
    """
    invoice = pair.invoice
    paid_here = (
        invoice is not None
        and invoice.status == Status.PAID
        and invoice.account == account
        and invoice.paid_at is not None
    )
    if not pair.rows:
        assert invoice is not None and invoice.paid_at is not None
        note = "No successful settlement row."
        if pair.failed_rows:
            last = pair.failed_rows[-1]
            note = (
                f"The bank reported code {last.resp_code or '—'}"
                f"{f' ({last.resp_desc})' if last.resp_desc else ''} on {last.settled_on}, "
                "not 00."
            )
        return _Found(
            kind=MismatchKind.NOT_SETTLED,
            day=timezone.localtime(invoice.paid_at, zone).date(),
            invoice=invoice,
            expected_amount=invoice.amount,
            note=note,
        )
    settled_amount = sum((row.amount for row in pair.rows), Decimal(0))
    first = pair.rows[0]
    if not paid_here:
        if invoice is None:
            note = "No invoice here has this transaction id."
        elif invoice.account != account:
            note = f"The invoice belongs to the merchant account {invoice.account!r}."
        else:
            note = f"The invoice here is {invoice.get_status_display().lower()}."
        return _Found(
            kind=MismatchKind.NOT_PAID,
            day=first.settled_on,
            invoice=invoice,
            settled=first,
            settled_amount=settled_amount,
            note=note,
        )
    assert invoice is not None and invoice.paid_at is not None
    if settled_amount == invoice.amount:
        return None
    note = (
        f"Settled in {len(pair.rows)} rows ({', '.join(f'{r.amount}' for r in pair.rows)})."
        if len(pair.rows) > 1
        else ""
    )
    return _Found(
        kind=MismatchKind.AMOUNT,
        day=timezone.localtime(invoice.paid_at, zone).date(),
        invoice=invoice,
        settled=first,
        expected_amount=invoice.amount,
        settled_amount=settled_amount,
        note=note,
    )


def _existing_key(mismatch: SettlementMismatch) -> tuple[str, str, int | None]:
    if mismatch.invoice_id is not None:
        return (mismatch.kind, "invoice", mismatch.invoice_id)
    return (mismatch.kind, "settled", mismatch.settled_id)


# --- both ------------------------------------------------------------------------------------


def reconcile_settlements(
    start: date, end: date, account: str = conf.DEFAULT_ACCOUNT
) -> SettlementRun:
    """Fetch the bank's settlement report for the range, then match it: both summaries."""
    fetched = fetch_settlements(start, end, account=account)
    return SettlementRun(fetched, match_settlements(start, end, account=account))


def _check_range(start: date, end: date) -> None:
    if not isinstance(start, date) or not isinstance(end, date):
        raise ValueError("start and end must be dates")
    if isinstance(start, datetime) or isinstance(end, datetime):
        raise ValueError("start and end must be dates, not datetimes")
    if start > end:
        raise ValueError(f"the range starts ({start}) after it ends ({end})")


def _chunks(items: Iterable[_T]) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
