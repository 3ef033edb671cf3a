"""Staff lists that stay index lookups on tables of millions of rows: search, the account and
created filters, the date hierarchy, the row count, and a fixed number of queries per page."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from golomt_payments import admin as golomt_admin
from golomt_payments.admin import EstimatedCountPaginator, estimated_row_count
from golomt_payments.models import BankMessage, Invoice, Status
from tests.factories import BankMessageFactory, InvoiceFactory

pytestmark = pytest.mark.django_db

INVOICES = reverse("admin:golomt_payments_invoice_changelist")
MESSAGES = reverse("admin:golomt_payments_bankmessage_changelist")
TWO_ACCOUNTS = {
    "ACCOUNTS": {
        "default": {"BEARER_TOKEN": "t", "SECRET": "s", "BASE_URL": "https://bank.test"},
        "wholesale": {"BEARER_TOKEN": "t2", "SECRET": "s2", "BASE_URL": "https://bank.test"},
    },
    "CALLBACK_BASE_URL": "https://shop.test",
}


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def filter_spec(changelist: Any, field_path: str) -> Any:
    """The list filter on ``field_path`` (filters of no one field have no ``field_path``)."""
    return next(
        spec for spec in changelist.filter_specs if getattr(spec, "field_path", None) == field_path
    )


def shown(response: Any) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def created(invoice: Invoice, when: datetime.datetime) -> Invoice:
    Invoice.objects.filter(pk=invoice.pk).update(created_at=when)
    invoice.refresh_from_db()
    return invoice


def local(year: int, month: int, day: int, hour: int = 12) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime(year, month, day, hour))


def hierarchy_titles(response: Any) -> list[str]:
    return [choice["title"] for choice in response.context["cl"].bounded_date_hierarchy["choices"]]


# --- search ---------------------------------------------------------------------------------


def test_transaction_id_search_finds_that_invoice_and_no_other(admin_client: Client) -> None:
    wanted = InvoiceFactory(transaction_id="AbCdE1234567890")
    InvoiceFactory(transaction_id="abcde1234567890")  # the same letters, another id
    InvoiceFactory(transaction_id="AbCdE1234567891")

    response = admin_client.get(INVOICES, {"q": "AbCdE1234567890"})

    assert shown(response) == {wanted.pk}


def test_transaction_id_search_needs_the_whole_id(admin_client: Client) -> None:
    InvoiceFactory(transaction_id="AbCdE1234567890", reference="R-1")

    response = admin_client.get(INVOICES, {"q": "AbCdE12345"})

    assert shown(response) == set()


def test_search_ignores_spaces_around_a_pasted_id(admin_client: Client) -> None:
    wanted = InvoiceFactory()

    response = admin_client.get(INVOICES, {"q": f"  {wanted.transaction_id} "})

    assert shown(response) == {wanted.pk}


def test_bank_invoice_search_finds_that_invoice_and_no_other(admin_client: Client) -> None:
    wanted = InvoiceFactory(bank_invoice="11f0c2d7a1b2")
    InvoiceFactory(bank_invoice="11f0c2d7a1b23")

    response = admin_client.get(INVOICES, {"q": "11f0c2d7a1b2"})

    assert shown(response) == {wanted.pk}


def test_reference_search_finds_references_starting_with_the_text(admin_client: Client) -> None:
    exact = InvoiceFactory(reference="SHOP-100")
    longer = InvoiceFactory(reference="SHOP-1001")
    InvoiceFactory(reference="SHOP-200")
    InvoiceFactory(reference="XSHOP-100")  # contains it, does not start with it

    response = admin_client.get(INVOICES, {"q": "SHOP-100"})

    assert shown(response) == {exact.pk, longer.pk}


@pytest.mark.parametrize("typed", ["shop-7", "SHOP-7", "Shop-7"])
def test_reference_search_finds_a_reference_in_capitals_however_it_is_typed(
    admin_client: Client, typed: str
) -> None:
    wanted = InvoiceFactory(reference="SHOP-7")

    response = admin_client.get(INVOICES, {"q": typed})

    assert shown(response) == {wanted.pk}


def test_reference_search_finds_a_reference_in_small_letters_typed_in_capitals(
    admin_client: Client,
) -> None:
    wanted = InvoiceFactory(reference="shop-7")

    response = admin_client.get(INVOICES, {"q": "SHOP-7"})

    assert shown(response) == {wanted.pk}


def test_search_help_text_says_how_the_search_matches(admin_client: Client) -> None:
    response = admin_client.get(INVOICES)

    page = text(response)
    assert "A whole transaction ID or bank invoice ID" in page
    assert "the beginning of a shop reference" in page


@pytest.mark.parametrize(
    "model",
    ["invoice", "bankmessage", "cardregistration", "settledtransaction", "settlementmismatch"],
)
def test_search_help_text_is_in_mongolian_for_mongolian_staff(
    admin_client: Client, model: str
) -> None:
    url = reverse(f"admin:golomt_payments_{model}_changelist")

    page = text(admin_client.get(url, HTTP_ACCEPT_LANGUAGE="mn"))

    assert "бүтнээр нь, том жижиг үсгийг нь яг байгаагаар" in page
    assert "capital and small letters" not in page


def test_search_compares_the_columns_themselves_so_their_indexes_serve(rf: RequestFactory) -> None:
    model_admin = admin.site._registry[Invoice]
    request = rf.get(INVOICES, {"q": "order-5"})

    queryset, duplicates = model_admin.get_search_results(request, Invoice.objects.all(), "order-5")

    sql = str(queryset.query)
    assert "UPPER(" not in sql.upper().replace('"', "")  # iexact/icontains fold the column
    assert "%order-5%" not in sql  # a leading wildcard reads every row
    assert duplicates is False


def test_message_log_search_finds_the_whole_transaction_id_only(admin_client: Client) -> None:
    wanted = BankMessageFactory(invoice=InvoiceFactory(transaction_id="Mixed0Case00001"))
    BankMessageFactory(invoice=InvoiceFactory(transaction_id="MIXED0CASE00001"))

    exact = admin_client.get(MESSAGES, {"q": "Mixed0Case00001"})
    partial = admin_client.get(MESSAGES, {"q": "Mixed0Case"})

    assert shown(exact) == {wanted.pk}
    assert shown(partial) == set()
    assert "A whole transaction ID" in text(exact)


# --- the account filter ---------------------------------------------------------------------


def test_account_filter_lists_the_configured_accounts_without_reading_the_invoices(
    admin_client: Client, settings: Any
) -> None:
    settings.GOLOMT_PAYMENTS = TWO_ACCOUNTS
    InvoiceFactory(account="retired")  # in the table, no longer configured

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(INVOICES)

    spec = next(
        s
        for s in response.context["cl"].filter_specs
        if getattr(s, "field_path", None) == "account"
    )
    choices = [c["display"] for c in spec.choices(response.context["cl"])]
    assert choices == ["All", "default", "wholesale"]
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_account_filter_shows_the_invoices_of_the_chosen_account(
    admin_client: Client, settings: Any
) -> None:
    settings.GOLOMT_PAYMENTS = TWO_ACCOUNTS
    InvoiceFactory(account="default")
    wholesale = InvoiceFactory(account="wholesale")

    response = admin_client.get(INVOICES, {"account": "wholesale"})

    assert shown(response) == {wholesale.pk}
    assert '<li class="selected"> <a href="?account=wholesale">wholesale</a></li>' in text(response)


def test_account_filter_keeps_a_no_longer_configured_account_reachable(
    admin_client: Client, settings: Any
) -> None:
    settings.GOLOMT_PAYMENTS = TWO_ACCOUNTS
    retired = InvoiceFactory(account="retired")
    InvoiceFactory(account="default")

    response = admin_client.get(INVOICES, {"account": "retired"})

    spec = next(
        s
        for s in response.context["cl"].filter_specs
        if getattr(s, "field_path", None) == "account"
    )
    choices = [c["display"] for c in spec.choices(response.context["cl"])]
    assert shown(response) == {retired.pk}
    assert choices == ["All", "default", "wholesale", "retired"]


def test_account_filter_is_hidden_with_a_single_account(admin_client: Client) -> None:
    InvoiceFactory()

    response = admin_client.get(INVOICES)

    assert "By merchant account" not in text(response)


def test_account_filter_counts_its_choices_when_staff_ask_for_counts(
    admin_client: Client, settings: Any
) -> None:
    settings.GOLOMT_PAYMENTS = TWO_ACCOUNTS
    InvoiceFactory.create_batch(2, account="default")
    InvoiceFactory(account="wholesale")

    response = admin_client.get(INVOICES, {"_facets": "True"})

    page = text(response)
    assert "default (2)" in page and "wholesale (1)" in page


# --- the created filter ---------------------------------------------------------------------


def test_created_filter_offers_today_past_week_this_month_and_this_year(
    admin_client: Client,
) -> None:
    response = admin_client.get(INVOICES)

    spec = next(
        s
        for s in response.context["cl"].filter_specs
        if getattr(s, "field_path", None) == "created_at"
    )
    choices = [str(c["display"]) for c in spec.choices(response.context["cl"])]
    assert choices == ["Any date", "Today", "Past 7 days", "This month", "This year"]


def test_created_filter_past_seven_days_leaves_out_older_invoices(admin_client: Client) -> None:
    now = timezone.now()
    recent = created(InvoiceFactory(), now - datetime.timedelta(days=2))
    created(InvoiceFactory(), now - datetime.timedelta(days=30))
    cl = admin_client.get(INVOICES).context["cl"]
    spec = filter_spec(cl, "created_at")
    link = next(c["query_string"] for c in spec.choices(cl) if c["display"] == "Past 7 days")

    response = admin_client.get(INVOICES + link)

    assert shown(response) == {recent.pk}


# --- the date hierarchy ---------------------------------------------------------------------


def test_date_hierarchy_lists_the_years_from_the_first_invoice_to_the_last(
    admin_client: Client,
) -> None:
    created(InvoiceFactory(), local(2023, 11, 5))
    created(InvoiceFactory(), local(2025, 2, 1))

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(INVOICES)

    assert hierarchy_titles(response) == ["2023", "2024", "2025"]
    assert 'href="?created_at__year=2024">2024</a>' in text(response)
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_date_hierarchy_year_lists_its_months_that_lie_between_first_and_last(
    admin_client: Client,
) -> None:
    first = created(InvoiceFactory(), local(2023, 11, 5))
    created(InvoiceFactory(), local(2025, 2, 1))

    year_2023 = admin_client.get(INVOICES, {"created_at__year": "2023"})
    year_2025 = admin_client.get(INVOICES, {"created_at__year": "2025"})
    year_2030 = admin_client.get(INVOICES, {"created_at__year": "2030"})

    assert hierarchy_titles(year_2023) == ["November 2023", "December 2023"]
    assert hierarchy_titles(year_2025) == ["January 2025", "February 2025"]
    assert hierarchy_titles(year_2030) == []
    assert shown(year_2023) == {first.pk}
    assert year_2023.context["cl"].bounded_date_hierarchy["back"]["title"] == "All dates"


def test_date_hierarchy_month_lists_its_days_and_a_day_links_back_to_its_month(
    admin_client: Client,
) -> None:
    created(InvoiceFactory(), local(2024, 3, 29))
    on_the_day = created(InvoiceFactory(), local(2024, 4, 2))

    month = admin_client.get(INVOICES, {"created_at__year": "2024", "created_at__month": "3"})
    day = admin_client.get(
        INVOICES, {"created_at__year": "2024", "created_at__month": "4", "created_at__day": "2"}
    )

    assert hierarchy_titles(month) == ["March 29", "March 30", "March 31"]
    assert hierarchy_titles(day) == ["April 2"]
    assert day.context["cl"].bounded_date_hierarchy["back"]["title"] == "April 2024"
    assert shown(day) == {on_the_day.pk}


def test_date_hierarchy_drills_into_the_only_month_as_django_does(admin_client: Client) -> None:
    created(InvoiceFactory(), local(2024, 6, 10))
    created(InvoiceFactory(), local(2024, 6, 12))

    response = admin_client.get(INVOICES)

    assert hierarchy_titles(response) == ["June 10", "June 11", "June 12"]


def test_date_hierarchy_of_an_empty_table_shows_no_links(admin_client: Client) -> None:
    response = admin_client.get(INVOICES)

    assert response.status_code == 200
    assert hierarchy_titles(response) == []


def test_date_hierarchy_links_span_the_whole_table_not_the_filtered_rows(
    admin_client: Client,
) -> None:
    created(InvoiceFactory(status=Status.FAILED), local(2023, 1, 5))
    created(InvoiceFactory(paid=True), local(2025, 1, 5))

    response = admin_client.get(INVOICES, {"status__exact": "paid"})

    assert hierarchy_titles(response) == ["2023", "2024", "2025"]


# --- the row count and the number of queries ------------------------------------------------


def test_paginator_counts_exactly_where_it_cannot_estimate() -> None:
    InvoiceFactory.create_batch(3)

    paginator = EstimatedCountPaginator(Invoice.objects.order_by("pk"), 2)

    assert paginator.count == 3
    assert paginator.count_is_estimate is False
    assert paginator.num_pages == 2


def test_the_changelist_does_not_say_the_count_is_an_estimate_when_it_is_exact(
    admin_client: Client,
) -> None:
    InvoiceFactory()

    response = admin_client.get(INVOICES)

    assert response.context["cl"].paginator.count_is_estimate is False
    assert "estimate" not in text(response)


PAGES = [
    pytest.param({}, id="plain"),
    pytest.param({"p": "2"}, id="page-2"),
    pytest.param({"status__exact": "paid"}, id="status"),
    pytest.param({"needs_review__exact": "1"}, id="needs-review"),
    pytest.param({"account": "wholesale"}, id="account"),
    pytest.param({"q": "ORDER-0"}, id="search"),
    pytest.param({"created_at__year": "2024"}, id="hierarchy-year"),
    pytest.param({"created_at__year": "2024", "created_at__month": "6"}, id="hierarchy-month"),
    pytest.param(
        {"created_at__year": "2024", "created_at__month": "6", "created_at__day": "1"},
        id="hierarchy-day",
    ),
]


@pytest.mark.parametrize("query", PAGES)
def test_each_invoice_list_page_takes_a_fixed_few_queries(
    admin_client: Client, settings: Any, django_assert_max_num_queries: Any, query: dict[str, str]
) -> None:
    settings.GOLOMT_PAYMENTS = TWO_ACCOUNTS
    for n, invoice in enumerate(InvoiceFactory.create_batch(60, paid=True)):
        created(invoice, local(2024, 6, 1 + n % 28))
    admin_client.get(INVOICES)  # the session and the user are read on every request: warm

    # session, user, count, the hierarchy's first and last date, the rows; and on PostgreSQL
    # the unfiltered list first asks for the table's estimated size
    unfiltered = set(query) <= {"p"}
    budget = 6 if unfiltered and connection.vendor == "postgresql" else 5
    with django_assert_max_num_queries(budget):
        response = admin_client.get(INVOICES, query)

    assert response.status_code == 200


def test_the_query_count_does_not_grow_with_the_rows(admin_client: Client) -> None:
    InvoiceFactory.create_batch(3)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(INVOICES)
    InvoiceFactory.create_batch(120)

    with CaptureQueriesContext(connection) as many:
        admin_client.get(INVOICES)

    assert len(many) == len(few)


# --- PostgreSQL: the estimated count of the unfiltered list ---------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL")
def test_unfiltered_list_of_a_large_table_shows_the_estimate_and_says_so(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    InvoiceFactory.create_batch(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE golomt_payments_invoice")
    monkeypatch.setattr(golomt_admin, "ESTIMATE_COUNT_ABOVE", 10)

    plain = admin_client.get(INVOICES)
    filtered = admin_client.get(INVOICES, {"status__exact": "pending"})

    assert plain.context["cl"].paginator.count_is_estimate is True
    assert plain.context["cl"].result_count == estimated_row_count(Invoice.objects.all())
    assert "The total is the database's estimate" in text(plain)
    assert filtered.context["cl"].paginator.count_is_estimate is False
    assert filtered.context["cl"].result_count == Invoice.objects.filter(status="pending").count()
    assert "estimate" not in text(filtered)


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL")
def test_the_note_on_the_estimate_is_in_mongolian_for_mongolian_staff(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    InvoiceFactory.create_batch(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE golomt_payments_invoice")
    monkeypatch.setattr(golomt_admin, "ESTIMATE_COUNT_ABOVE", 10)

    page = text(admin_client.get(INVOICES, HTTP_ACCEPT_LANGUAGE="mn"))

    assert "Нийт тоо нь өгөгдлийн сангийн ойролцоо тооцоо" in page
    assert "database's estimate" not in page


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL")
def test_a_small_or_filtered_table_is_counted_exactly_on_postgresql() -> None:
    InvoiceFactory.create_batch(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE golomt_payments_invoice")

    small = EstimatedCountPaginator(Invoice.objects.all(), 10)
    filtered = Invoice.objects.filter(needs_review=True)

    assert small.count == 30 and small.count_is_estimate is False
    assert estimated_row_count(filtered) is None
    assert estimated_row_count(Invoice.objects.all()) is not None


def test_no_estimate_is_made_on_other_databases_or_for_filtered_querysets() -> None:
    InvoiceFactory()

    if connection.vendor != "postgresql":
        assert estimated_row_count(Invoice.objects.all()) is None
    assert estimated_row_count(Invoice.objects.filter(status=Status.PAID)) is None
    assert estimated_row_count(BankMessage.objects.distinct()) is None


# --- bad filter values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "query"),
    [
        (INVOICES, "status__exact=%00"),
        (INVOICES, "account=de%00fault"),
        (MESSAGES, "outcome=%00"),
        (reverse("admin:golomt_payments_settlementmismatch_changelist"), "kind__exact=%00"),
    ],
)
def test_a_filter_value_with_a_nul_character_is_a_bad_lookup_not_a_500(
    admin_client: Client, page: str, query: str
) -> None:
    InvoiceFactory()

    answer = admin_client.get(f"{page}?{query}")

    assert answer.status_code == 302
    assert answer["Location"].endswith("?e=1")
