"""Settlement: the bank's report fetched page by page, stored once, matched with the invoices
paid here; the command, the admin an accountant reads, and the settlement token kept secret.

The bank's pages are built here by hand from the bank's documented field names, never through
the gateway or the sandbox, so a mistake there cannot hide itself.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from django.contrib.auth.models import Permission
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from responses import matchers

from golomt_payments import conf, services
from golomt_payments.gateway import BadResponse, BankServerError
from golomt_payments.models import (
    BankMessage,
    Invoice,
    MessageKind,
    MismatchKind,
    SettledTransaction,
    SettlementMismatch,
    Status,
)
from golomt_payments.services.settlement import settlement_day
from golomt_payments.testing import sandbox as in_process
from golomt_payments.testing.sandbox import SandboxBank
from tests.factories import InvoiceFactory
from tests.helpers import BASE_URL, hmac_hex
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

SHOP_ZONE = ZoneInfo("Asia/Ulaanbaatar")
MERCHANT_ID = "123456789012345"
SETTLEMENT_TOKEN = "settle-token-7d1e93"
SETTLING = {**GOLOMT_PAYMENTS, "MERCHANT_ID": MERCHANT_ID, "SETTLEMENT_TOKEN": SETTLEMENT_TOKEN}
ENDPOINT = BASE_URL + "/api/getSettlementDetails"
DAY = date(2024, 12, 5)

MISMATCHES = reverse("admin:golomt_payments_settlementmismatch_changelist")
SETTLED = reverse("admin:golomt_payments_settledtransaction_changelist")
EXPORT = reverse("admin:golomt_payments_settlementmismatch_export")


@pytest.fixture(autouse=True)
def settling(settings: Any) -> None:
    settings.GOLOMT_PAYMENTS = SETTLING
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def bank() -> Any:
    """The bank's settlement endpoint; any call not registered fails as a connection error."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


# --- the bank's pages, by hand ------------------------------------------------------------

_row_ids = iter(range(70_000, 80_000))


def row(
    transaction_id: str | None,
    amount: str = "1000",
    *,
    day: date = DAY,
    resp_code: str = "00",
    **overrides: Any,
) -> dict[str, Any]:
    """One settled row as the bank's page documents it (amount normalised as the bank does)."""
    number = next(_row_ids)
    body = {
        "id": number,
        "merchantId": MERCHANT_ID,
        "terminalId": "13100151",
        "batchNumber": "000112",
        "invoiceNumber": f"{number:06d}",
        "cardNumber": "949625******0003",
        "token": None,
        "amount": amount,
        "merchantInvoice": transaction_id,
        "respCode": resp_code,
        "respDesc": "Амжилттай" if resp_code == "00" else "Гүйлгээ амжилтгүй",
        "tranTime": "101530",
        "tranDate": f"{day:%m%d}",
        "sysReference": f"4{number:011d}",
        "approvalCode": f"{number % 1_000_000:06d}",
        "requestDate": f"{day:%Y-%m-%d} 10:15:30",
        "reversedDate": None,
        "checkedDate": f"{day:%Y-%m-%d} 10:20:00",
        "transferStatus": "SETTLED",
    }
    body.update(overrides)
    return body


def page(
    rows: list[dict[str, Any]], number: int = 0, *, total_pages: int = 1, total: int | None = None
) -> dict[str, Any]:
    return {
        "content": rows,
        "pageable": {
            "pageNumber": number,
            "pageSize": 50,
            "first": number == 0,
            "last": number >= total_pages - 1,
            "totalPages": total_pages,
            "totalElements": len(rows) if total is None else total,
        },
    }


def serve(
    bank: responses.RequestsMock,
    rows: list[dict[str, Any]],
    start: date = DAY,
    end: date | None = None,
    *,
    size: int = 50,
) -> None:
    """Answer the range with ``rows``, ``size`` to a page, checking what is asked for."""
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)] or [[]]
    for number, chunk in enumerate(chunks):
        bank.add(
            responses.POST,
            ENDPOINT,
            json=page(chunk, number, total_pages=len(chunks), total=len(rows)),
            match=[
                matchers.query_param_matcher(
                    {
                        "page": str(number),
                        "size": str(size),
                        "start": f"{start:%Y-%m-%d}",
                        "end": f"{end or start:%Y-%m-%d}",
                    }
                ),
                matchers.json_params_matcher(
                    {
                        "merchantId": MERCHANT_ID,
                        "token": SETTLEMENT_TOKEN,
                        "checksum": hmac_hex(MERCHANT_ID, SETTLEMENT_TOKEN),
                    }
                ),
            ],
        )


def paid(amount: str = "1000.00", at: datetime | None = None, **kwargs: Any) -> Invoice:
    """An invoice paid here, by default at noon of DAY in the shop's time zone."""
    when = at or datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=SHOP_ZONE)
    invoice: Invoice = InvoiceFactory(paid=True, amount=Decimal(amount), paid_at=when, **kwargs)
    return invoice


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHOP_ZONE)


def mismatches() -> list[tuple[str, date, str, Decimal | None, Decimal | None, bool]]:
    """Each mismatch as (kind, day, transaction id, amount here, amount settled, resolved)."""
    return sorted(
        (
            m.kind,
            m.day,
            m.invoice.transaction_id if m.invoice else (m.settled.merchant_invoice or ""),
            m.expected_amount,
            m.settled_amount,
            m.resolved,
        )
        for m in SettlementMismatch.objects.select_related("invoice", "settled")
        if m.invoice or m.settled
    )


# --- one day, every kind ------------------------------------------------------------------


def test_a_day_with_every_kind_of_mismatch_is_reported_each_once(
    bank: responses.RequestsMock,
) -> None:
    clean = paid("1000.00")
    unsettled = paid("2500.00")
    short = paid("1000.00")
    serve(
        bank,
        [
            row(clean.transaction_id, "1000"),  # the bank echoes 1000.00 as 1000
            row("ZZnotOurs00001", "3000"),
            row(short.transaction_id, "900.5"),
        ],
    )

    run = services.reconcile_settlements(DAY, DAY)

    assert run.fetch.rows == 3 and run.fetch.pages == 1 and run.fetch.created == 3
    assert (run.match.matched, run.match.not_settled, run.match.not_paid) == (1, 1, 1)
    assert run.match.amount_differs == 1
    here, settled = Decimal("1000.00"), Decimal("900.50")
    assert mismatches() == sorted(
        [
            (MismatchKind.AMOUNT, DAY, short.transaction_id, here, settled, False),
            (MismatchKind.NOT_PAID, DAY, "ZZnotOurs00001", None, Decimal("3000.00"), False),
            (MismatchKind.NOT_SETTLED, DAY, unsettled.transaction_id, Decimal("2500"), None, False),
        ]
    )
    amount = SettlementMismatch.objects.get(kind=MismatchKind.AMOUNT)
    assert amount.invoice == short and amount.settled is not None
    assert amount.settled.sys_reference.startswith("4")
    not_paid = SettlementMismatch.objects.get(kind=MismatchKind.NOT_PAID)
    assert not_paid.invoice is None
    assert not_paid.note == "No invoice here has this transaction id."


def test_a_settled_payment_whose_invoice_is_not_paid_here_links_the_invoice(
    bank: responses.RequestsMock,
) -> None:
    expired = InvoiceFactory(expired=True)
    serve(bank, [row(expired.transaction_id, "1000")])

    run = services.reconcile_settlements(DAY, DAY)

    assert run.match.not_paid == 1
    mismatch = SettlementMismatch.objects.get()
    assert (mismatch.kind, mismatch.invoice) == (MismatchKind.NOT_PAID, expired)
    assert mismatch.note == "The invoice here is expired."


def test_only_response_code_00_counts_as_settled(bank: responses.RequestsMock) -> None:
    invoice = paid()
    serve(bank, [row(invoice.transaction_id, "1000", resp_code="05")])

    run = services.reconcile_settlements(DAY, DAY)

    assert (run.match.matched, run.match.not_settled) == (0, 1)
    mismatch = SettlementMismatch.objects.get()
    assert mismatch.kind == MismatchKind.NOT_SETTLED
    assert "code 05" in mismatch.note
    assert SettledTransaction.objects.get().resp_code == "05"  # stored all the same


def test_a_payment_settled_twice_shows_as_an_amount_difference(
    bank: responses.RequestsMock,
) -> None:
    invoice = paid("1000.00")
    serve(bank, [row(invoice.transaction_id, "1000"), row(invoice.transaction_id, "1000")])

    run = services.reconcile_settlements(DAY, DAY)

    assert run.match.amount_differs == 1
    mismatch = SettlementMismatch.objects.get()
    assert (mismatch.expected_amount, mismatch.settled_amount) == (
        Decimal("1000.00"),
        Decimal("2000.00"),
    )
    assert mismatch.note.startswith("Settled in 2 rows")


def test_invoices_of_other_days_accounts_and_statuses_are_not_expected_to_settle(
    bank: responses.RequestsMock,
) -> None:
    paid(at=local(DAY - timedelta(days=1), 23, 59))  # the day before, in the shop's zone
    paid(at=local(DAY + timedelta(days=1), 0, 0))  # the day after
    paid(account="wholesale")
    InvoiceFactory()  # pending
    serve(bank, [])

    run = services.reconcile_settlements(DAY, DAY)

    assert run.fetch.rows == 0 and run.fetch.pages == 1
    assert run.match == services.MatchSummary(start=DAY, end=DAY, account="default")
    assert not SettlementMismatch.objects.exists()


def test_the_day_of_a_payment_is_taken_in_the_shops_time_zone(
    bank: responses.RequestsMock,
) -> None:
    # 16:30 UTC on 4 December is 00:30 on 5 December in Ulaanbaatar (UTC+8).
    invoice = paid(at=datetime(2024, 12, 4, 16, 30, tzinfo=ZoneInfo("UTC")))
    serve(bank, [])

    services.reconcile_settlements(DAY, DAY)

    assert mismatches() == [
        (MismatchKind.NOT_SETTLED, DAY, invoice.transaction_id, Decimal("1000.00"), None, False)
    ]


# --- paging -------------------------------------------------------------------------------


def test_every_page_is_fetched_until_the_bank_says_last(bank: responses.RequestsMock) -> None:
    rows = [row(f"TX{n:013d}", "1000") for n in range(5)]
    serve(bank, rows, size=2)

    summary = services.fetch_settlements(DAY, DAY, page_size=2)

    assert (summary.rows, summary.pages, summary.created, summary.updated) == (5, 3, 5, 0)
    assert len(bank.calls) == 3
    assert sorted(SettledTransaction.objects.values_list("merchant_invoice", flat=True)) == [
        f"TX{n:013d}" for n in range(5)
    ]


def test_paging_stops_on_last_even_when_the_bank_announces_more_pages(
    bank: responses.RequestsMock,
) -> None:
    for number, chunk in enumerate([["A1", "A2"], ["B1", "B2"], ["C1"]]):
        body = page([row(tx) for tx in chunk], number, total_pages=9, total=5)
        body["pageable"]["last"] = number == 2
        bank.add(
            responses.POST,
            ENDPOINT,
            json=body,
            match=[matchers.query_param_matcher({"page": str(number)}, strict_match=False)],
        )

    summary = services.fetch_settlements(DAY, DAY, page_size=2)

    assert (summary.rows, summary.pages) == (5, 3)
    assert len(bank.calls) == 3  # a fourth page would be a connection error


def test_a_failing_page_stores_nothing(bank: responses.RequestsMock) -> None:
    invoice = paid()
    bank.add(
        responses.POST,
        ENDPOINT,
        json=page([row(invoice.transaction_id)], 0, total_pages=2, total=2),
        match=[matchers.query_param_matcher({"page": "0"}, strict_match=False)],
    )
    bank.add(responses.POST, ENDPOINT, status=500, body="java.lang.NullPointerException")

    with pytest.raises(BankServerError):
        services.reconcile_settlements(DAY, DAY)

    assert not SettledTransaction.objects.exists()
    assert not SettlementMismatch.objects.exists()


def test_a_report_with_fewer_rows_than_announced_stores_nothing(
    bank: responses.RequestsMock,
) -> None:
    invoice = paid()
    body = page([row(invoice.transaction_id)], 0, total_pages=1, total=2)
    body["pageable"]["last"] = True
    bank.add(responses.POST, ENDPOINT, json=body)

    with pytest.raises(BadResponse, match="announced 2 rows"):
        services.reconcile_settlements(DAY, DAY)

    assert not SettledTransaction.objects.exists()
    assert not SettlementMismatch.objects.exists()


def test_unreadable_rows_are_skipped_and_counted(bank: responses.RequestsMock) -> None:
    serve(
        bank,
        [
            row("GOOD1", "1000"),
            row("BADAMOUNT", "1,000"),
            row("BADDATE", "1000", tranDate="1340", requestDate=None),
            row("NODATE", "1000", tranDate=None),  # falls back to requestDate
        ],
    )

    summary = services.fetch_settlements(DAY, DAY)

    assert (summary.rows, summary.created, summary.skipped) == (4, 2, 2)
    assert SettledTransaction.objects.get(merchant_invoice="NODATE").settled_on == DAY


def test_the_number_of_queries_does_not_grow_with_the_rows(
    bank: responses.RequestsMock, django_assert_max_num_queries: Any
) -> None:
    invoices = [paid() for _ in range(60)]
    serve(bank, [row(invoice.transaction_id) for invoice in invoices])

    with django_assert_max_num_queries(20):
        run = services.reconcile_settlements(DAY, DAY)

    assert run.match.matched == 60


# --- fetching and matching again ------------------------------------------------------------


def test_fetching_the_same_range_again_updates_rows_in_place(
    bank: responses.RequestsMock,
) -> None:
    first = row("AGAIN1", "1000")
    serve(bank, [first, row("AGAIN2", "2000")])
    serve(bank, [{**first, "amount": "1500"}, row("AGAIN3", "3000")])

    services.fetch_settlements(DAY, DAY)
    again = services.fetch_settlements(DAY, DAY)

    assert (again.created, again.updated) == (1, 1)
    assert SettledTransaction.objects.count() == 3
    assert SettledTransaction.objects.get(bank_id=str(first["id"])).amount == Decimal("1500")


def test_matching_again_neither_duplicates_nor_forgets_and_keeps_resolved_ones(
    bank: responses.RequestsMock,
) -> None:
    unsettled, short = paid(), paid()
    serve(bank, [row(short.transaction_id, "10"), row("STRANGER", "5")])
    services.reconcile_settlements(DAY, DAY)
    before = mismatches()
    done = SettlementMismatch.objects.get(kind=MismatchKind.NOT_PAID)
    done.resolved, done.note = True, "Refunded by phone, ticket 4411."
    done.save()

    again = services.match_settlements(DAY, DAY)
    third = services.match_settlements(DAY, DAY)

    assert len(before) == 3
    assert (again.not_settled, again.amount_differs, again.not_paid) == (1, 1, 0)
    assert again.already_resolved == 1
    assert third == again
    assert SettlementMismatch.objects.count() == 3
    done.refresh_from_db()
    assert done.resolved and done.note == "Refunded by phone, ticket 4411."
    assert {m.invoice for m in SettlementMismatch.objects.filter(resolved=False)} == {
        unsettled,
        short,
    }


def test_a_mismatch_that_went_away_is_dropped_on_the_next_run(
    bank: responses.RequestsMock,
) -> None:
    invoice = paid()
    serve(bank, [])
    serve(bank, [row(invoice.transaction_id, "1000")])

    services.reconcile_settlements(DAY, DAY)
    assert SettlementMismatch.objects.count() == 1
    services.reconcile_settlements(DAY, DAY)

    assert not SettlementMismatch.objects.exists()


def test_other_days_and_accounts_keep_their_mismatches(bank: responses.RequestsMock) -> None:
    other_day = SettlementMismatch.objects.create(
        day=DAY - timedelta(days=3), kind=MismatchKind.NOT_PAID
    )
    other_account = SettlementMismatch.objects.create(
        day=DAY, account="wholesale", kind=MismatchKind.NOT_PAID
    )
    serve(bank, [])

    services.reconcile_settlements(DAY, DAY)

    assert set(SettlementMismatch.objects.all()) == {other_day, other_account}


# --- the edges of a range -------------------------------------------------------------------


def test_a_payment_settled_the_next_day_matches_when_the_range_covers_both(
    bank: responses.RequestsMock,
) -> None:
    late = paid(at=local(DAY, 23, 59))
    serve(bank, [row(late.transaction_id, day=DAY + timedelta(days=1))], DAY, DAY + timedelta(1))

    run = services.reconcile_settlements(DAY, DAY + timedelta(days=1))

    assert (run.match.matched, run.match.mismatches) == (1, 0)


def test_daily_runs_clear_a_late_payment_once_the_next_day_brings_its_row(
    bank: responses.RequestsMock,
) -> None:
    late = paid(at=local(DAY, 23, 59))
    next_day = DAY + timedelta(days=1)
    serve(bank, [])
    serve(bank, [row(late.transaction_id, day=next_day)], next_day)
    serve(bank, [])

    first = services.reconcile_settlements(DAY, DAY)
    second = services.reconcile_settlements(next_day, next_day)
    after_second = SettlementMismatch.objects.count()
    first_again = services.reconcile_settlements(DAY, DAY)  # the row is stored by now

    assert first.match.not_settled == 1
    assert (second.match.matched, second.match.mismatches) == (1, 0)
    assert after_second == 0  # the next day's run replaced the first day's report
    assert (first_again.match.matched, first_again.match.mismatches) == (1, 0)
    assert not SettlementMismatch.objects.exists()


def test_a_range_over_new_year_dates_each_row_in_its_own_year(
    bank: responses.RequestsMock,
) -> None:
    eve, new_year = date(2024, 12, 31), date(2025, 1, 1)
    late = paid(at=local(eve, 23, 50))
    early = paid(at=local(new_year, 0, 10))
    serve(
        bank,
        [
            row(late.transaction_id, day=new_year),
            row(early.transaction_id, day=new_year),
            row("EVE1", day=eve),
        ],
        eve,
        new_year,
    )

    run = services.reconcile_settlements(eve, new_year)

    assert dict(SettledTransaction.objects.values_list("merchant_invoice", "settled_on")) == {
        late.transaction_id: new_year,
        early.transaction_id: new_year,
        "EVE1": eve,
    }
    assert (run.match.matched, run.match.not_paid, run.match.not_settled) == (2, 1, 0)
    assert SettlementMismatch.objects.get().day == eve


@pytest.mark.parametrize(
    ("tran_date", "start", "end", "expected"),
    [
        ("1231", date(2024, 12, 31), date(2025, 1, 1), date(2024, 12, 31)),
        ("0101", date(2024, 12, 31), date(2025, 1, 1), date(2025, 1, 1)),
        ("0101", date(2024, 12, 1), date(2025, 1, 31), date(2025, 1, 1)),
        ("1205", date(2024, 12, 5), date(2024, 12, 5), date(2024, 12, 5)),
        # Outside the range: the nearest date, not the same year blindly.
        ("0102", date(2024, 12, 31), date(2025, 1, 1), date(2025, 1, 2)),
        ("1230", date(2024, 12, 31), date(2025, 1, 1), date(2024, 12, 30)),
        ("0101", date(2024, 12, 31), date(2024, 12, 31), date(2025, 1, 1)),
        ("1231", date(2025, 1, 1), date(2025, 1, 1), date(2024, 12, 31)),
        ("0229", date(2024, 2, 28), date(2024, 3, 1), date(2024, 2, 29)),
        ("105", date(2025, 1, 5), date(2025, 1, 5), date(2025, 1, 5)),  # a JSON number
    ],
)
def test_a_date_without_a_year_takes_the_year_of_the_range(
    tran_date: str, start: date, end: date, expected: date
) -> None:
    assert settlement_day(tran_date, start, end) == expected


@pytest.mark.parametrize("tran_date", ["", "1301", "0230", "12-5", "١٢٠٥", "12050"])
def test_a_date_that_is_no_date_is_refused(tran_date: str) -> None:
    with pytest.raises(ValueError, match="tranDate"):
        settlement_day(tran_date, DAY, DAY)


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(ValueError, match="after it ends"):
        services.fetch_settlements(DAY, DAY - timedelta(days=1))
    with pytest.raises(ValueError, match="after it ends"):
        services.match_settlements(DAY, DAY - timedelta(days=1))


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["MERCHANT_ID", "SETTLEMENT_TOKEN"])
def test_fetching_without_merchant_id_or_token_is_a_configuration_error(
    settings: Any, missing: str
) -> None:
    settings.GOLOMT_PAYMENTS = {k: v for k, v in SETTLING.items() if k != missing}

    with pytest.raises(ImproperlyConfigured, match=missing):
        services.fetch_settlements(DAY, DAY)


@pytest.mark.parametrize("merchant_id", ["12345", "1234567890123456", "12345678901234x", 1])
def test_merchant_id_must_be_fifteen_digits(merchant_id: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="MERCHANT_ID"):
        conf.build({**SETTLING, "MERCHANT_ID": merchant_id})


def test_settlement_settings_per_account_and_the_token_stays_out_of_repr() -> None:
    settings = conf.build(
        {
            "ACCOUNTS": {
                "default": {"BEARER_TOKEN": "t", "SECRET": "s"},
                "wholesale": {
                    "BEARER_TOKEN": "t2",
                    "SECRET": "s2",
                    "MERCHANT_ID": MERCHANT_ID,
                    "SETTLEMENT_TOKEN": SETTLEMENT_TOKEN,
                },
            }
        }
    )

    assert settings.account().merchant_id == "" and not settings.account().can_fetch_settlements
    wholesale = settings.account("wholesale")
    assert (wholesale.merchant_id, wholesale.settlement_token) == (MERCHANT_ID, SETTLEMENT_TOKEN)
    assert wholesale.can_fetch_settlements
    assert SETTLEMENT_TOKEN not in repr(wholesale) and SETTLEMENT_TOKEN not in repr(settings)
    with pytest.raises(ImproperlyConfigured, match="SETTLEMENT_TOKEN"):
        conf.build({**SETTLING, "SETTLEMENT_TOKEN": 42})


@pytest.mark.parametrize("only", ["MERCHANT_ID", "SETTLEMENT_TOKEN"])
def test_a_half_configured_settlement_is_a_warning(settings: Any, only: str) -> None:
    settings.GOLOMT_PAYMENTS = {**GOLOMT_PAYMENTS, only: SETTLING[only]}

    found = [m for m in run_checks() if m.id == "golomt_payments.W003"]

    assert len(found) == 1 and only in found[0].msg
    assert SETTLEMENT_TOKEN not in found[0].msg


def test_a_fully_configured_settlement_raises_no_warning() -> None:
    assert not [m for m in run_checks() if m.id == "golomt_payments.W003"]


# --- the command ----------------------------------------------------------------------------


def run_command(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("golomt_settlements", *args, stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue()


def test_the_command_prints_one_summary_line(bank: responses.RequestsMock) -> None:
    clean, short = paid(), paid()
    paid()  # not settled
    rows = [row(clean.transaction_id), row(short.transaction_id, "1"), row("STRANGER")]
    serve(bank, rows, DAY, DAY + timedelta(days=1))

    out = run_command("--start", "2024-12-05", "--end", "2024-12-06")

    assert out == (
        "fetched 3 rows (1 page) · matched 1 · paid here not settled 1 · "
        "settled not paid here 1 · amounts differ 1\n"
    )


def test_the_command_reads_yesterday_by_default(bank: responses.RequestsMock) -> None:
    yesterday = timezone.localdate() - timedelta(days=1)
    serve(bank, [row(f"TX{n}", day=yesterday) for n in range(120)], yesterday)

    out = run_command()

    assert out == (
        "fetched 120 rows (3 pages) · matched 0 · paid here not settled 0 · "
        "settled not paid here 120 · amounts differ 0\n"
    )


def test_the_command_with_only_a_start_reads_that_one_day(bank: responses.RequestsMock) -> None:
    serve(bank, [], DAY)

    assert run_command("--start", "2024-12-05").startswith("fetched 0 rows (1 page) · ")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--start", "2024-13-01"], "must be a date like 2024-01-31"),
        (["--start", "yesterday"], "must be a date like 2024-01-31"),
        (["--start", "2024-12-06", "--end", "2024-12-05"], "is after --end"),
        (["--account", "nope"], "no merchant account named 'nope'"),
    ],
)
def test_the_command_refuses_bad_arguments(args: list[str], problem: str) -> None:
    with pytest.raises(CommandError, match=problem) as caught:
        run_command(*args)

    assert caught.value.returncode == 1


@pytest.mark.parametrize("missing", ["MERCHANT_ID", "SETTLEMENT_TOKEN"])
def test_the_command_fails_clearly_when_settlement_is_not_configured(
    settings: Any, missing: str
) -> None:
    settings.GOLOMT_PAYMENTS = {k: v for k, v in SETTLING.items() if k != missing}

    with pytest.raises(CommandError, match=f"no {missing}") as caught:
        run_command("--start", "2024-12-05")

    assert caught.value.returncode == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": "Internal error"},
        {"status": 403, "body": ""},
        {"body": requests.exceptions.ConnectTimeout("timed out")},
        {"status": 200, "body": "<html>maintenance</html>"},
    ],
)
def test_the_command_reports_a_bank_failure_without_a_traceback(
    bank: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    bank.add(responses.POST, ENDPOINT, **answer)

    with pytest.raises(CommandError, match="could not be fetched; nothing was stored") as caught:
        run_command("--start", "2024-12-05")

    assert caught.value.returncode == 1
    assert not SettledTransaction.objects.exists()


def test_the_command_as_a_process_exits_1_with_a_message(
    settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core.management import ManagementUtility

    settings.GOLOMT_PAYMENTS = GOLOMT_PAYMENTS  # no MERCHANT_ID
    utility = ManagementUtility(["manage.py", "golomt_settlements", "--start", "2024-12-05"])

    with pytest.raises(SystemExit) as exited:
        utility.execute()

    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "CommandError: GOLOMT_PAYMENTS: account 'default' has no MERCHANT_ID" in err
    assert "Traceback" not in err


# --- the settlement token stays secret ------------------------------------------------------


def test_the_settlement_token_is_kept_neither_in_rows_nor_in_the_message_log(
    bank: responses.RequestsMock,
) -> None:
    # The rows' own ``token`` may be a card token or, for all the docs say, the same token.
    serve(
        bank,
        [
            row("CARD1", token="card-token-5f0a91"),
            row("ECHO1", token=SETTLEMENT_TOKEN),
        ],
    )
    services.fetch_settlements(DAY, DAY)

    def echo(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body or b"{}")
        message = f"merchant {sent['merchantId']} token {sent['token']} unknown"
        return 400, {}, json.dumps({"status": 400, "error": "Validation", "message": message})

    bank.add_callback(responses.POST, ENDPOINT, callback=echo)
    with pytest.raises(CommandError) as caught:
        run_command("--start", "2024-12-05")

    for settled in SettledTransaction.objects.all():
        assert "token" not in settled.raw
        assert SETTLEMENT_TOKEN not in json.dumps(settled.raw)
        assert "card-token-5f0a91" not in json.dumps(settled.raw)
    logged = BankMessage.objects.filter(kind=MessageKind.SETTLEMENT)
    assert logged.count() == 2
    for message in logged:
        for text in (message.body, message.response, message.error, json.dumps(message.headers)):
            assert SETTLEMENT_TOKEN not in text
    assert '"token": "[redacted]"' in logged.first().body  # type: ignore[union-attr]
    assert "unknown" in str(caught.value) and SETTLEMENT_TOKEN not in str(caught.value)


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def day_of_mismatches(bank: responses.RequestsMock) -> dict[str, Invoice]:
    clean = paid(reference="ORD-CLEAN")
    unsettled = paid("2500.00", reference="ORD-UNSETTLED")
    short = paid(reference="=HYPERLINK(1)")
    serve(
        bank,
        [row(clean.transaction_id), row(short.transaction_id, "900"), row("STRANGER", "3000")],
    )
    services.reconcile_settlements(DAY, DAY)
    return {"clean": clean, "unsettled": unsettled, "short": short}


def staff(django_user_model: Any, *codenames: str) -> Client:
    user = django_user_model.objects.create_user("accountant", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="golomt_payments", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def test_the_mismatch_changelist_shows_what_an_accountant_needs(
    admin_client: Client, day_of_mismatches: dict[str, Invoice]
) -> None:
    response = admin_client.get(MISMATCHES)

    assert response.status_code == 200
    page_text = response.content.decode()
    unsettled = day_of_mismatches["unsettled"]
    for text in (
        "Paid here, not settled by the bank",
        "Settled by the bank, not paid here",
        "Amounts differ",
        unsettled.transaction_id,
        "STRANGER",
        "2,500",
        reverse("admin:golomt_payments_invoice_change", args=[unsettled.pk]),
        EXPORT,
    ):
        assert text in page_text
    assert day_of_mismatches["clean"].transaction_id not in page_text


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ({"kind__exact": "amount"}, {"amount"}),
        ({"kind__exact": "not_paid"}, {"not_paid"}),
        ({"resolved__exact": "1"}, set()),
        (
            {"day__year": "2024", "day__month": "12", "day__day": "5"},
            {"amount", "not_paid", "not_settled"},
        ),
        ({"day__year": "2023"}, set()),
        ({"q": "STRANGER"}, {"not_paid"}),
    ],
)
def test_the_mismatch_changelist_filters(
    admin_client: Client,
    day_of_mismatches: dict[str, Invoice],
    query: dict[str, str],
    kinds: set[str],
) -> None:
    response = admin_client.get(MISMATCHES, query)

    assert response.status_code == 200
    assert {m.kind for m in response.context["cl"].result_list} == kinds


def test_mark_resolved_resolves_the_selected_and_logs_who_did_it(
    admin_client: Client, day_of_mismatches: dict[str, Invoice]
) -> None:
    chosen = SettlementMismatch.objects.get(kind=MismatchKind.NOT_PAID)

    response = admin_client.post(
        MISMATCHES, {"action": "mark_resolved", "_selected_action": [chosen.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "1 mismatch(es) marked resolved." in response.content.decode()
    assert list(SettlementMismatch.objects.filter(resolved=True)) == [chosen]
    history = reverse("admin:golomt_payments_settlementmismatch_history", args=[chosen.pk])
    assert "Changed resolved." in admin_client.get(history).content.decode()
    services.match_settlements(DAY, DAY)  # a later run keeps it, once
    assert SettlementMismatch.objects.filter(kind=MismatchKind.NOT_PAID).count() == 1


def test_csv_export_has_the_columns_and_a_proper_filename(
    admin_client: Client, day_of_mismatches: dict[str, Invoice]
) -> None:
    selected = list(SettlementMismatch.objects.values_list("pk", flat=True))

    response = admin_client.post(MISMATCHES, {"action": "export_csv", "_selected_action": selected})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="golomt-settlement-mismatches-2024-12-05-2024-12-05.csv"'
    )
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert lines[0] == [
        "day",
        "kind",
        "transaction id",
        "reference",
        "amount here",
        "amount settled",
        "card",
        "RRN",
        "note",
        "resolved",
    ]
    by_kind = {line[1]: line for line in lines[1:]}
    short = day_of_mismatches["short"]
    amount = by_kind["Amounts differ"]
    assert amount[:6] == [
        "2024-12-05",
        "Amounts differ",
        short.transaction_id,
        "'=HYPERLINK(1)",  # a spreadsheet must not run it
        "1000.00",
        "900.00",
    ]
    assert amount[6] == "949625******0003" and amount[7].startswith("4") and amount[9] == "no"
    unsettled = by_kind["Paid here, not settled by the bank"]
    assert unsettled[2:6] == [
        day_of_mismatches["unsettled"].transaction_id,
        "ORD-UNSETTLED",
        "2500.00",
        "",
    ]
    assert unsettled[7] == ""
    not_paid = by_kind["Settled by the bank, not paid here"]
    assert not_paid[2:6] == ["STRANGER", "", "", "3000.00"]
    assert len(lines) == 4


def test_the_export_button_exports_what_the_filters_show(
    admin_client: Client, day_of_mismatches: dict[str, Invoice]
) -> None:
    response = admin_client.get(EXPORT, {"kind__exact": "not_settled"})

    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(response.content.decode().lstrip("\ufeff"))))
    assert [line[2] for line in lines[1:]] == [day_of_mismatches["unsettled"].transaction_id]
    assert admin_client.get(EXPORT, {"no_such_field": "1"}).status_code == 302


def test_an_accountant_with_view_permission_exports_but_cannot_resolve(
    django_user_model: Any, day_of_mismatches: dict[str, Invoice]
) -> None:
    reader = staff(django_user_model, "view_settlementmismatch")

    listing = reader.get(MISMATCHES)
    export = reader.get(EXPORT)
    resolve = reader.post(
        MISMATCHES,
        {
            "action": "mark_resolved",
            "_selected_action": list(SettlementMismatch.objects.values_list("pk", flat=True)),
        },
    )

    assert listing.status_code == 200
    choices = [name for name, _ in listing.context["action_form"].fields["action"].choices]
    assert "export_csv" in choices and "mark_resolved" not in choices
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    assert resolve.status_code in (200, 302)
    assert not SettlementMismatch.objects.filter(resolved=True).exists()


def test_staff_without_view_permission_cannot_export(
    django_user_model: Any, day_of_mismatches: dict[str, Invoice]
) -> None:
    nobody = staff(django_user_model, "view_invoice")

    assert nobody.get(EXPORT).status_code == 403
    assert nobody.get(MISMATCHES).status_code == 403


def test_mismatches_are_never_added_or_deleted_by_hand(
    admin_client: Client, day_of_mismatches: dict[str, Invoice]
) -> None:
    mismatch = SettlementMismatch.objects.first()
    assert mismatch is not None

    add = admin_client.get(reverse("admin:golomt_payments_settlementmismatch_add"))
    delete = admin_client.post(
        reverse("admin:golomt_payments_settlementmismatch_delete", args=[mismatch.pk]),
        {"post": "yes"},
    )
    change = admin_client.get(
        reverse("admin:golomt_payments_settlementmismatch_change", args=[mismatch.pk])
    )

    assert add.status_code == 403 and delete.status_code == 403
    assert change.status_code == 200
    assert 'name="note"' in change.content.decode()
    assert 'name="kind"' not in change.content.decode()


def test_the_settled_transactions_are_listed_read_only(
    admin_client: Client, day_of_mismatches: dict[str, Invoice]
) -> None:
    settled = SettledTransaction.objects.get(merchant_invoice="STRANGER")

    listing = admin_client.get(SETTLED)
    by_rrn = admin_client.get(SETTLED, {"q": settled.sys_reference})
    by_code = admin_client.get(SETTLED, {"resp_code__exact": "00"})
    by_day = admin_client.get(SETTLED, {"settled_on__year": "2024", "settled_on__month": "12"})
    detail = admin_client.get(
        reverse("admin:golomt_payments_settledtransaction_change", args=[settled.pk])
    )

    assert listing.status_code == 200 and "STRANGER" in listing.content.decode()
    assert list(by_rrn.context["cl"].result_list) == [settled]
    assert by_code.status_code == 200 and len(by_code.context["cl"].result_list) == 3
    assert by_day.status_code == 200 and len(by_day.context["cl"].result_list) == 3
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert "sysReference" in detail.content.decode()


# --- end to end, against the sandbox bank -------------------------------------------------------


def test_two_invoices_paid_at_the_sandbox_come_back_settled_and_matched(
    golomt_sandbox: SandboxBank,
) -> None:
    first = golomt_sandbox.start_payment(Decimal("18000"), reference="A-1")
    second = golomt_sandbox.start_payment("2500.50", reference="A-2")
    assert golomt_sandbox.pay(first).invoice.status == Status.PAID
    assert golomt_sandbox.pay(second).invoice.status == Status.PAID
    today = timezone.localdate()

    out = run_command("--start", today.isoformat())

    assert out == (
        "fetched 2 rows (1 page) · matched 2 · paid here not settled 0 · "
        "settled not paid here 0 · amounts differ 0\n"
    )
    rows = {r.merchant_invoice: r for r in SettledTransaction.objects.all()}
    assert set(rows) == {first.transaction_id, second.transaction_id}
    assert rows[first.transaction_id].amount == Decimal("18000.00")
    assert rows[second.transaction_id].amount == Decimal("2500.50")
    for settled in rows.values():
        assert settled.settled_on == today
        assert settled.resp_code == "00"
        assert settled.card_number == "949625******0003"
        assert len(settled.sys_reference) == 12 and settled.approval_code
        assert settled.raw["merchantId"] == in_process.MERCHANT_ID
        assert "token" not in settled.raw
    assert not SettlementMismatch.objects.exists()
    logged = BankMessage.objects.get(kind=MessageKind.SETTLEMENT)
    assert in_process.SETTLEMENT_TOKEN not in logged.body + logged.response


def test_the_sandbox_pages_its_settlement_and_a_declined_card_is_not_settled(
    golomt_sandbox: SandboxBank,
) -> None:
    paid_here = [golomt_sandbox.start_payment(1000 + n) for n in range(3)]
    for invoice in paid_here:
        golomt_sandbox.pay(invoice)
    declined = golomt_sandbox.start_payment(5000)
    golomt_sandbox.pay(declined, "9496 2500 0000 0011")
    # The shop loses track of one payment the bank did settle.
    Invoice.objects.filter(pk=paid_here[0].pk).update(status=Status.PENDING, paid_at=None)
    today = timezone.localdate()

    fetched = services.fetch_settlements(today, today, page_size=2)
    matched = services.match_settlements(today, today)

    assert (fetched.rows, fetched.pages) == (3, 2)
    assert (matched.matched, matched.not_paid, matched.mismatches) == (2, 1, 1)
    mismatch = SettlementMismatch.objects.get()
    assert mismatch.invoice_id == paid_here[0].pk
    assert mismatch.settled_amount == Decimal("1000.00")


def test_the_summary_line_counts_one_page_in_the_singular() -> None:
    from golomt_payments.management.commands.golomt_settlements import summary_line

    run = services.SettlementRun(
        services.FetchSummary(DAY, DAY, "default", rows=1, pages=1, skipped=2),
        services.MatchSummary(DAY, DAY, "default", matched=1, already_resolved=3),
    )

    assert summary_line(run) == (
        "fetched 1 rows (1 page) · matched 1 · paid here not settled 0 · "
        "settled not paid here 0 · amounts differ 0 · unreadable rows skipped 2 "
        "· already resolved 3"
    )
