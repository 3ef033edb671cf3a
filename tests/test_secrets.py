"""The bearer token and the HMAC secret never leave the process: not in a log line, the message
log, the status history, an admin page, a customer's page or a gateway exception.

Each test runs the same flow — payments that succeed, fail and wait, through checkout, the
redirect, the push, the status view and the admin action — and the bank's worst answers on the
way: a 400 whose body echoes our request headers, a 500 that echoes the Authorization header, a
401 that does too, a 200 that is no JSON, and timeouts. Every logger is at DEBUG, SQL included.
Then one surface is searched for the two credentials.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import responses
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse

from golomt_payments import bank
from golomt_payments.checkout import sign_checkout
from golomt_payments.gateway import GolomtError
from golomt_payments.models import BankMessage, Direction, Invoice, MessageKind, StatusChange
from tests.helpers import Reply, error_body, hmac_hex, push_body, result_body, unpaid_body
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

BEARER_TOKEN = GOLOMT_PAYMENTS["BEARER_TOKEN"]
SECRET = GOLOMT_PAYMENTS["SECRET"]
CREDENTIALS = {"bearer token": BEARER_TOKEN, "HMAC secret": SECRET}
BASE_URL = GOLOMT_PAYMENTS["BASE_URL"]

#: What the push and the redirect's callers send that must not be kept.
CALLER_AUTHORIZATION = "Bearer caller-credential-7f3a"
CALLER_COOKIE = "sessionid=caller-session-9c2e; csrftoken=caller-csrf-41d0"
CALLER_HEADERS = {"HTTP_AUTHORIZATION": CALLER_AUTHORIZATION, "HTTP_COOKIE": CALLER_COOKIE}


def leaks(text: str) -> list[str]:
    """Which credentials ``text`` contains."""
    return [name for name, value in CREDENTIALS.items() if value in text]


# --- the bank's answers -----------------------------------------------------------------------


def echo_headers_400(request: requests.PreparedRequest) -> Reply:
    """A validation error whose message repeats everything we sent, headers first."""
    sent = json.dumps(dict(request.headers))
    return (
        400,
        {},
        json.dumps(error_body("/api/x", "Validation", f"headers {sent} body {request.body!r}")),
    )


def echo_headers_400_not_json(request: requests.PreparedRequest) -> Reply:
    return 400, {}, f"Bad Request. Authorization: {request.headers['Authorization']}"


def echo_authorization_500(request: requests.PreparedRequest) -> Reply:
    return 500, {}, f"java.lang.IllegalStateException at {request.headers['Authorization']}"


def echo_authorization_401(request: requests.PreparedRequest) -> Reply:
    return 401, {}, json.dumps({"error": "Unauthorized", "token": request.headers["Authorization"]})


def echo_authorization_200_not_json(request: requests.PreparedRequest) -> Reply:
    return 200, {}, f"<html>proxy error for {request.headers['Authorization']}</html>"


def timeout(request: requests.PreparedRequest) -> Reply:
    raise requests.exceptions.ReadTimeout(
        "HTTPSConnectionPool(host='bank.test', port=443): Read timed out. (read timeout=20)"
    )


def connection_refused(request: requests.PreparedRequest) -> Reply:
    raise requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='bank.test', port=443): Max retries exceeded "
        "(Caused by NewConnectionError('Connection refused'))"
    )


FAILURES: dict[str, Callable[[requests.PreparedRequest], Reply]] = {
    "400-echoing-headers": echo_headers_400,
    "400-not-json-echoing-authorization": echo_headers_400_not_json,
    "500-echoing-authorization": echo_authorization_500,
    "401-echoing-authorization": echo_authorization_401,
    "200-not-json-echoing-authorization": echo_authorization_200_not_json,
    "timeout": timeout,
    "connection-refused": connection_refused,
}


@dataclass
class ScriptedBank:
    """The bank's /api/invoice and /api/inquiry, answering as ``invoice`` and ``inquiry`` say:
    ``"ok"``/``"paid"``/``"declined"``/``"unpaid"``, or the name of one of :data:`FAILURES`."""

    invoice: str = "ok"
    inquiry: str = "unpaid"
    created: int = field(default=0)

    def reply_invoice(self, request: requests.PreparedRequest) -> Reply:
        if self.invoice != "ok":
            return FAILURES[self.invoice](request)
        sent = json.loads(request.body or b"{}")
        self.created += 1
        bank_invoice = f"bank-invoice-{self.created}"
        body = {
            "invoice": bank_invoice,
            "transactionId": sent["transactionId"],
            "checksum": hmac_hex(bank_invoice, sent["transactionId"]),
        }
        return 200, {}, json.dumps(body)

    def reply_inquiry(self, request: requests.PreparedRequest) -> Reply:
        transaction_id = json.loads(request.body or b"{}")["transactionId"]
        if self.inquiry == "paid":
            return 200, {}, json.dumps(result_body(transaction_id))
        if self.inquiry == "declined":
            return 200, {}, json.dumps(result_body(transaction_id, error_code="300"))
        if self.inquiry == "unpaid":
            return 200, {}, json.dumps(unpaid_body(transaction_id))
        return FAILURES[self.inquiry](request)


@pytest.fixture
def scripted_bank() -> Iterator[ScriptedBank]:
    script = ScriptedBank()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, f"{BASE_URL}/api/invoice", callback=script.reply_invoice)
        mock.add_callback(responses.POST, f"{BASE_URL}/api/inquiry", callback=script.reply_inquiry)
        yield script


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG into caplog, those that do not propagate too, and every SQL
    statement with its parameters (``django.db.backends``)."""
    caplog.set_level(logging.DEBUG)
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        caplog.set_level(logging.DEBUG, logger=logger.name)
    silent = [logger for logger in loggers if not logger.propagate]
    for logger in silent:
        logger.addHandler(caplog.handler)
    forced = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield caplog
    finally:
        connection.force_debug_cursor = forced
        for logger in silent:
            logger.removeHandler(caplog.handler)


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- the flow ---------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the flow showed to customers."""

    pages: dict[str, str] = field(default_factory=dict)

    def page(self, name: str, response: Any) -> None:
        assert response.status_code < 500 or response.status_code in (502, 503), name
        self.pages[f"{name} ({response.status_code})"] = response.content.decode()


def checkout(client: Client, reference: str) -> Any:
    payload = sign_checkout(amount="1000.00", reference=reference)
    return client.post(reverse("golomt_payments:checkout"), {"payload": payload})


def latest_invoice() -> Invoice:
    return Invoice.objects.latest("pk")


def customer_pages(client: Client, seen: Seen, invoice: Invoice, name: str) -> None:
    seen.page(f"{name} result", client.get(reverse("golomt_payments:result", args=[invoice.key])))
    seen.page(f"{name} status", client.get(reverse("golomt_payments:status", args=[invoice.key])))


def run_flow(bank_script: ScriptedBank) -> Seen:
    """Paid by redirect, declined by push, left waiting, then every failure at every door."""
    seen = Seen()
    browser = Client(enforce_csrf_checks=False)
    sender = Client(enforce_csrf_checks=True)

    # Paid: checkout, then the redirect (with a caller's credentials the log must not keep).
    seen.page("checkout", checkout(browser, "PAID-1"))
    paid = latest_invoice()
    bank_script.inquiry = "paid"
    seen.page(
        "redirect",
        sender.get(
            reverse("golomt_payments:return"), {"invoice": paid.transaction_id}, **CALLER_HEADERS
        ),
    )
    customer_pages(browser, seen, paid, "paid")

    # Declined, by push.
    checkout(browser, "DECLINED-1")
    declined = latest_invoice()
    bank_script.inquiry = "declined"
    push = push_body(declined.transaction_id, error_code="300")
    seen.page(
        "push",
        sender.post(
            reverse("golomt_payments:push"),
            json.dumps(push),
            content_type="application/json",
            **CALLER_HEADERS,
        ),
    )
    customer_pages(browser, seen, declined, "declined")

    # Waiting: the bank has no answer yet.
    checkout(browser, "WAITING-1")
    waiting = latest_invoice()
    bank_script.inquiry = "unpaid"
    customer_pages(browser, seen, waiting, "waiting")

    # Every failure, at the checkout, the redirect, the push and the status view.
    for name in FAILURES:
        cache.clear()  # let the status view and the redirect ask the bank again
        bank_script.invoice = name
        bank_script.inquiry = name
        seen.page(f"checkout {name}", checkout(browser, f"F-{name}"[:40]))
        seen.page(
            f"redirect {name}",
            sender.post(
                reverse("golomt_payments:return"),
                f"invoice={waiting.transaction_id}",
                content_type="application/x-www-form-urlencoded",
                **CALLER_HEADERS,
            ),
        )
        seen.page(
            f"push {name}",
            sender.post(
                reverse("golomt_payments:push"),
                json.dumps(push_body(waiting.transaction_id)),
                content_type="application/json",
                **CALLER_HEADERS,
            ),
        )
        customer_pages(browser, seen, waiting, f"waiting {name}")
        customer_pages(browser, seen, latest_invoice(), f"checkout {name}")
    bank_script.invoice, bank_script.inquiry = "ok", "unpaid"
    return seen


_ANY_ID = re.compile(r"[A-Za-z0-9-]{15,}")


def one_message_of_each_sort() -> list[int]:
    """A message log row per direction, kind, HTTP status, outcome and error: every text the
    flow wrote, without rendering the same page a hundred times."""
    chosen: dict[tuple[Any, ...], int] = {}
    for row in BankMessage.objects.order_by("pk").values(
        "pk", "direction", "kind", "http_status", "outcome", "error", "response"
    ):
        texts = (_ANY_ID.sub("<id>", row["error"]), _ANY_ID.sub("<id>", row["response"]))
        sort = (row["direction"], row["kind"], row["http_status"], row["outcome"], *texts)
        chosen.setdefault(sort, row["pk"])
    return list(chosen.values())


def admin_flow(admin_client: Client, bank_script: ScriptedBank) -> dict[str, str]:
    """The check action in every bank mood, then every admin page of the app's models."""
    pages: dict[str, str] = {}
    changelist = reverse("admin:golomt_payments_invoice_changelist")
    everything = list(Invoice.objects.values_list("pk", flat=True))
    for mood in ["unpaid", *FAILURES]:
        bank_script.inquiry = mood
        response = admin_client.post(
            changelist,
            {"action": "check_with_bank", "_selected_action": everything},
            follow=True,
        )
        assert response.status_code == 200, mood
        pages[f"check action {mood}"] = response.content.decode()
    bank_script.inquiry = "unpaid"
    for model in ("invoice", "bankmessage"):
        url = reverse(f"admin:golomt_payments_{model}_changelist")
        pages[url] = admin_client.get(url).content.decode()
    for pk in everything:
        url = reverse("admin:golomt_payments_invoice_change", args=[pk])
        pages[url] = admin_client.get(url).content.decode()
    for pk in one_message_of_each_sort():
        url = reverse("admin:golomt_payments_bankmessage_change", args=[pk])
        pages[url] = admin_client.get(url).content.decode()
    return pages


# --- the surfaces -----------------------------------------------------------------------------


def test_flow_with_bank_failures_reaches_every_surface_it_is_meant_to(
    admin_client: Client, scripted_bank: ScriptedBank
) -> None:
    """The other tests only mean something if the flow really went through every door."""
    seen = run_flow(scripted_bank)
    pages = admin_flow(admin_client, scripted_bank)

    statuses = set(Invoice.objects.values_list("status", flat=True))
    assert {"paid", "failed", "pending"} <= statuses
    kinds = set(BankMessage.objects.values_list("direction", "kind"))
    assert {
        (Direction.INBOUND, MessageKind.REDIRECT),
        (Direction.INBOUND, MessageKind.PUSH),
        (Direction.OUTBOUND, MessageKind.INVOICE),
        (Direction.OUTBOUND, MessageKind.INQUIRY),
    } <= kinds
    errors = BankMessage.objects.filter(direction=Direction.OUTBOUND).exclude(error="")
    assert {error.split(":")[0] for error in errors.values_list("error", flat=True)} >= {
        "BankRefused",
        "BankServerError",
        "Unauthorized",
        "BadResponse",
        "BankTimeout",
        "BankUnreachable",
    }
    assert any(" (502)" in name for name in seen.pages)
    assert any(" (503)" in name for name in seen.pages)
    assert len([url for url in pages if "bankmessage" in url]) > 2 * len(FAILURES)


def test_no_log_record_carries_a_credential(
    admin_client: Client,
    scripted_bank: ScriptedBank,
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    run_flow(scripted_bank)
    admin_flow(admin_client, scripted_bank)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = every_log_record.records
    assert any(record.name == "django.db.backends" for record in records)  # SQL is in there
    found = {
        f"{record.name}: {record.getMessage()[:200]}": leaks(formatter.format(record))
        for record in records
        if leaks(formatter.format(record))
    }
    assert found == {}


def test_no_bank_message_field_carries_a_credential(
    admin_client: Client, scripted_bank: ScriptedBank
) -> None:
    run_flow(scripted_bank)
    admin_flow(admin_client, scripted_bank)

    found = {
        f"#{row['id']} {row['direction']} {row['kind']} {name}": leaks(str(value))
        for row in BankMessage.objects.values()
        for name, value in row.items()
        if leaks(json.dumps(value, default=str, ensure_ascii=False)) or leaks(str(value))
    }
    assert found == {}


def test_no_invoice_or_status_change_carries_a_credential(
    admin_client: Client, scripted_bank: ScriptedBank
) -> None:
    run_flow(scripted_bank)
    admin_flow(admin_client, scripted_bank)

    rows = [("invoice", row) for row in Invoice.objects.values()]
    rows += [("status change", row) for row in StatusChange.objects.values()]
    found = {
        f"{what} #{row['id']} {name}": leaks(str(value))
        for what, row in rows
        for name, value in row.items()
        if leaks(str(value))
    }
    assert found == {}


def test_no_admin_page_shows_a_credential(
    admin_client: Client, scripted_bank: ScriptedBank
) -> None:
    run_flow(scripted_bank)

    pages = admin_flow(admin_client, scripted_bank)

    assert len(pages) > 10
    assert {url: leaks(html) for url, html in pages.items() if leaks(html)} == {}


def test_no_customer_page_shows_a_credential(scripted_bank: ScriptedBank) -> None:
    """The result pages (success, failure, pending), the status JSON and the error pages."""
    seen = run_flow(scripted_bank)

    assert {name: leaks(html) for name, html in seen.pages.items() if leaks(html)} == {}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("call", ["create_invoice", "inquiry"])
def test_gateway_errors_carry_no_credential(
    scripted_bank: ScriptedBank, failure: str, call: str
) -> None:
    """str, repr, every attribute (``body``, ``message``: what an error tracker shows) and the
    chained cause of what the gateway raises."""
    scripted_bank.invoice = scripted_bank.inquiry = failure
    client = bank.client()

    with pytest.raises(GolomtError) as raised:
        if call == "inquiry":
            client.inquiry("SECRETSCHECK01")
        else:
            client.create_invoice(
                transaction_id="SECRETSCHECK01",
                amount="1000.00",
                callback="https://shop.test/payments/return/",
            )

    error = raised.value
    shown = {
        "str": str(error),
        "repr": repr(error),
        "attributes": repr(vars(error)),
        "cause": repr(error.__cause__) if error.__cause__ else "",
    }
    assert {name: leaks(text) for name, text in shown.items() if leaks(text)} == {}


def test_push_and_redirect_keep_no_authorization_or_cookie_header(
    scripted_bank: ScriptedBank,
) -> None:
    run_flow(scripted_bank)

    inbound = list(BankMessage.objects.filter(direction=Direction.INBOUND))
    assert {message.kind for message in inbound} == {MessageKind.REDIRECT, MessageKind.PUSH}
    for message in inbound:
        names = {name.lower() for name in message.headers}
        assert not names & {"authorization", "cookie"}, message.headers
        stored = json.dumps(
            {field.name: str(getattr(message, field.attname)) for field in message._meta.fields}
            | {"headers": message.headers},
            ensure_ascii=False,
        )
        for marker in ("caller-credential-7f3a", "caller-session-9c2e", "caller-csrf-41d0"):
            assert marker not in stored, (message.kind, marker)
