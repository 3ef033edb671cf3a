"""Whatever arrives at the inbound views, the answer is never a server error, and every push
notification ends up in the message log.

Hypothesis throws arbitrary query strings, bodies, content types and headers at the bank's
return URL (GET and POST), the push URL, the status view and the result page. The bank stays
reachable throughout (an unpaid inquiry answer, or NotFound for an id it does not know), so
even the push's deliberate 503 ("could not confirm, retry later") must not occur.

Run on PostgreSQL too (DATABASE_URL): it refuses NUL characters that SQLite stores happily.
Each example runs in a savepoint that is rolled back, so examples do not see each other's rows.
"""

from __future__ import annotations

import codecs
import json
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
import requests
from django.core.cache import cache
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.db import transaction
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.test import Client, RequestFactory, override_settings
from django.utils import translation
from django.utils.http import parse_header_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golomt_payments.models import BankMessage, Direction, Invoice, MessageKind, Outcome, Status
from golomt_payments.services.inbound import SECRET_HEADERS
from tests.factories import InvoiceFactory
from tests.helpers import (
    FakeBank,
    Reply,
    error_body,
    hmac_hex,
    push_body,
    result_body,
    unpaid_body,
)
from tests.settings import GOLOMT_PAYMENTS

pytestmark = pytest.mark.django_db

PUSH = "/payments/push/"
RETURN = "/payments/return/"


def fuzz(examples: int) -> Any:
    """Hypothesis settings for one of these tests; the whole file stays well under 20 s."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


#: What each view may answer; anything else (above all a 5xx) fails.
RETURN_ANSWERS = {302, 400}
PUSH_ANSWERS = {200, 400, 403, 413, 415}
PAGE_ANSWERS = {200, 301, 404}

# --- the shop's invoices: fixed ids and keys, so strategies can name them ---------------------

PENDING = ("FUZZPENDING0001", uuid.UUID("00000000-0000-4000-8000-000000000001"), Status.PENDING)
PAID = ("FUZZPAID0000001", uuid.UUID("00000000-0000-4000-8000-000000000002"), Status.PAID)
FAILED = ("FUZZFAILED00001", uuid.UUID("00000000-0000-4000-8000-000000000003"), Status.FAILED)
EXPIRED = ("FUZZEXPIRED0001", uuid.UUID("00000000-0000-4000-8000-000000000004"), Status.EXPIRED)
NEW = ("FUZZNEW00000001", uuid.UUID("00000000-0000-4000-8000-000000000005"), Status.NEW)
INVOICES = (PENDING, PAID, FAILED, EXPIRED, NEW)
KNOWN_IDS = [transaction_id for transaction_id, _, _ in INVOICES]
KNOWN_KEYS = [str(key) for _, key, _ in INVOICES]
#: The bank knows every invoice but the one never created there.
KNOWN_TO_BANK = frozenset(KNOWN_IDS) - {NEW[0]}

#: Settings a shop may run with; each example picks one.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"TRUSTED_PROXY_COUNT": 1},
    {"TRUSTED_PROXY_COUNT": 2, "PUSH_ALLOWED_IPS": ["10.0.0.0/8", "2001:db8::/32"]},
    {"CONFIRM_PUSH_WITH_INQUIRY": False},
    {"SUCCESS_URL": "/orders/{reference}/", "FAILURE_URL": "https://elsewhere.test/{key}"},
]


@pytest.fixture
def shop(fake_bank: FakeBank) -> FakeBank:
    """The five invoices, and a bank that answers every inquiry: unpaid, or NotFound."""
    for transaction_id, key, status in INVOICES:
        InvoiceFactory(
            transaction_id=transaction_id,
            key=key,
            status=status,
            bank_invoice="" if status == Status.NEW else f"bank-{transaction_id}",
        )

    def reply(request: requests.PreparedRequest) -> Reply:
        transaction_id = json.loads(request.body or b"{}")["transactionId"]
        if transaction_id in KNOWN_TO_BANK:
            return 200, {}, json.dumps(unpaid_body(transaction_id))
        return 400, {}, json.dumps(error_body("/api/inquiry", "NotFound", "Payment not found"))

    fake_bank.inquiry_reply(reply)
    return fake_bank


@contextmanager
def one_example(variant: Mapping[str, Any]) -> Iterator[None]:
    """A fresh inquiry throttle, the example's settings, and a savepoint rolled back after;
    the language an Accept-Language header switched to is switched back too."""
    cache.clear()
    with (
        translation.override(translation.get_language()),
        override_settings(GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, **variant}),
        transaction.atomic(),
    ):
        yield
        transaction.set_rollback(True)


def send(
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    content_type: str | None = None,
    meta: Mapping[str, str] | None = None,
) -> HttpResponse:
    """One request exactly as a WSGI server would hand it over (latin-1 strings in META)."""
    extra: dict[str, Any] = {"QUERY_STRING": query, **(meta or {})}
    if content_type is not None:
        extra["CONTENT_TYPE"] = content_type
    client = Client(raise_request_exception=False)
    response: HttpResponse = client.generic(method, path, data=body, **extra)
    return response


def assert_answer(response: HttpResponse, allowed: set[int]) -> None:
    """The status is one the view means to give; a server error shows its traceback."""
    exc_info = getattr(response, "exc_info", None)
    detail = "".join(traceback.format_exception(*exc_info)) if exc_info else ""
    assert response.status_code in allowed, f"{response.status_code}\n{detail}"


def django_refuses_the_body(
    method: str, body: bytes, content_type: str | None, meta: Mapping[str, str]
) -> bool:
    """Django answers 400 itself, before the view can log anything, to a form body it will
    not parse: over DATA_UPLOAD_MAX_MEMORY_SIZE, multipart without a boundary, or a form
    in another charset than UTF-8."""
    if method != "POST":
        return False
    extra = {**meta, "CONTENT_TYPE": content_type or ""}
    request = RequestFactory().generic("POST", RETURN, data=body, **extra)
    try:
        request.body  # noqa: B018 - the view reads the body, then parses it
        request.POST  # noqa: B018
    except (BadRequest, MultiPartParserError, SuspiciousOperation):
        return True
    return False


def inbound(kind: str) -> list[BankMessage]:
    return list(BankMessage.objects.filter(direction=Direction.INBOUND, kind=kind).order_by("pk"))


def assert_finished_log_row(rows_before: int, kind: str) -> BankMessage:
    """Exactly one new row for the attempt, its outcome written back, no credentials kept."""
    rows = inbound(kind)
    assert len(rows) == rows_before + 1
    row = rows[-1]
    assert row.outcome != Outcome.RECEIVED
    assert row.processed_at is not None
    assert not {name.lower() for name in row.headers} & SECRET_HEADERS
    return row


# --- strategies -------------------------------------------------------------------------------

#: What a WSGI server can put in a header or the query string: latin-1, no line breaks.
LATIN1 = st.characters(max_codepoint=255, exclude_characters="\r\n")
header_text = st.text(LATIN1, max_size=40)

#: Text as a JSON string may carry it once decoded: NUL, lone surrogates, a right-to-left
#: override, a full-width zero.
TRICKY = ["\x00", "\ud83d", "\udc00", "\ufffd", "\u202e", "\\", '"', "'", "<", "%", "\n", "\uff10"]
any_text = st.lists(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(TRICKY)), max_size=20
).map("".join)

valid_ids = st.from_regex(r"[A-Za-z0-9]{1,15}", fullmatch=True)
transaction_ids = st.one_of(
    st.sampled_from(KNOWN_IDS),
    valid_ids,
    st.builds(lambda known, tail: known + tail, st.sampled_from(KNOWN_IDS), any_text),
    any_text,
)

forwarded_for = st.one_of(
    header_text,
    st.lists(
        st.one_of(
            st.ip_addresses().map(str),
            st.sampled_from(
                ["fe80::1%eth0", "unknown", "", " ", "10.0.0.1:8080", "[::1]", "1.2.3.4.5"]
            ),
            header_text,
        ),
        max_size=4,
    ).map(", ".join),
)
accept = st.one_of(
    st.sampled_from(
        [
            "text/html",
            "application/xml",
            "*/*",
            "application/json; q=0",
            "text/html;q=abc",
            "",
            "application/vnd.golomt+json; version=99",
            "*/*;q=0, application/x-evil",
        ]
    ),
    header_text,
)
#: Larger than any body Django or the push view will read: never read, never a 500.
huge_length = st.integers(10**8, 10**40).map(str)

headers = st.fixed_dictionaries(
    {},
    optional={
        "REMOTE_ADDR": st.ip_addresses().map(str),
        "HTTP_X_FORWARDED_FOR": forwarded_for,
        "HTTP_ACCEPT": accept,
        "HTTP_ACCEPT_LANGUAGE": st.one_of(st.sampled_from(["mn", "en-US,en;q=0.5"]), header_text),
        "HTTP_AUTHORIZATION": header_text,
        "HTTP_COOKIE": header_text,
        "HTTP_USER_AGENT": header_text,
        "HTTP_REFERER": header_text,
        "HTTP_ORIGIN": header_text,
        "HTTP_X_REQUEST_ID": header_text,
        "HTTP_X_TRACE": header_text,
    },
)


def _not_a_text_codec(content_type: str) -> bool:
    """``charset=rot13`` (or base64, hex, zlib) names a codec that is no text encoding: Django
    itself raises LookupError building the request when there is a query string, before any of
    our code runs. An unknown charset is harmless: Django ignores it."""
    _, params = parse_header_parameters(content_type)
    charset = params.get("charset")
    if not charset:
        return False
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    try:
        b"".decode(charset)
    except LookupError:
        return True
    return False


content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/json;charset=latin-1",
            "application/json; charset=no-such-charset",
            "application/json; charset=utf-16",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-16",
            "multipart/form-data",
            "multipart/form-data; boundary=xyz",
            "text/plain",
            "",
            ";",
            "application/json; boundary",
        ]
    ),
    header_text,
).filter(lambda content_type: not _not_a_text_codec(content_type))

query_pairs = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(["invoice", "status_code", "desc", "transactionId", "format"]),
            any_text,
        ),
        st.one_of(transaction_ids, st.sampled_from(["000", "300", "json", "html"]), any_text),
    ),
    max_size=5,
)


def _encode(pairs: list[tuple[str, str]]) -> str:
    return urlencode(
        [
            (key.encode("utf-8", "surrogatepass"), val.encode("utf-8", "surrogatepass"))
            for key, val in pairs
        ]
    )


query_strings = st.one_of(query_pairs.map(_encode), st.text(LATIN1, max_size=60))
variants = st.sampled_from(VARIANTS)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)

_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "errorCode": st.sampled_from(["000", "300", "", None, "0", "000 ", "\uff10\uff10", "\ud800"]),
    "amount": st.one_of(
        st.sampled_from(
            [
                "1000.00",
                "1000",
                "1000.0",
                "1000.001",
                "0",
                "-1000",
                "1e3",
                " 1000.00",
                "\uff11\uff10\uff10\uff10",
            ]
        ),
        st.integers(-(10**20), 10**20),
        st.just("9" * 400),
    ),
    "errorDesc": any_text,
    "bank": any_text,
    "cardHolder": any_text,
    "cardNumber": any_text,
    "token": st.one_of(st.none(), any_text),
    "status": st.sampled_from(["SENT", "PENDING", "", None]),
}


@st.composite
def near_valid_pushes(draw: st.DrawFn) -> dict[str, Any]:
    """The push's field names with plausible or random values, most often correctly signed."""

    def chance(percent: int) -> bool:
        return draw(st.integers(0, 99)) < percent

    body: dict[str, Any] = {
        "transactionId": draw(
            st.sampled_from(KNOWN_IDS) if chance(70) else st.one_of(transaction_ids, json_values)
        )
    }
    for name, plausible in _PLAUSIBLE.items():
        if chance(70):
            body[name] = draw(plausible)
        elif chance(70):
            body[name] = draw(json_values)
    if chance(70) and (signature := _signature(body)) is not None:
        body["checksum"] = signature
    else:
        body["checksum"] = draw(
            st.one_of(st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True), json_values)
        )
    if chance(20):
        body.update(draw(st.dictionaries(any_text, json_values, max_size=3)))
    return body


def _signature(body: dict[str, Any]) -> str | None:
    """The checksum the bank would give these values, when they are ones it could hash."""
    amount = body.get("amount")
    if isinstance(amount, int) and not isinstance(amount, bool):
        amount = str(amount)
    values = [body.get("transactionId"), body.get("errorCode"), amount, body.get("token")]
    if not all(value is None or isinstance(value, str) for value in values):
        return None
    try:
        return hmac_hex(*values)
    except UnicodeEncodeError:  # a lone surrogate: no bank could have hashed it
        return None


def dumps(value: Any, ascii_only: bool) -> bytes:
    """JSON as a sender would put it on the wire (lone surrogates as \\u escapes)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass" if not ascii_only else "strict")


# --- the browser's return from the bank -------------------------------------------------------


@fuzz(120)
@given(
    method=st.sampled_from(["GET", "POST"]),
    query=query_strings,
    body=st.one_of(query_pairs.map(_encode).map(str.encode), st.binary(max_size=200)),
    content_type=st.one_of(st.none(), content_types),
    meta=headers,
    length=st.one_of(st.none(), huge_length),
    variant=variants,
)
def test_bank_return_never_answers_a_server_error(
    shop: FakeBank,
    method: str,
    query: str,
    body: bytes,
    content_type: str | None,
    meta: dict[str, str],
    length: str | None,
    variant: dict[str, Any],
) -> None:
    """Anything at the return URL is a redirect to a page on this site or a 400 page."""
    if length is not None:
        meta = {**meta, "CONTENT_LENGTH": length}
    with one_example(variant):
        before = len(inbound(MessageKind.REDIRECT))

        response = send(
            method,
            RETURN,
            query=query,
            body=body if method == "POST" else b"",
            content_type=content_type,
            meta=meta,
        )

        assert_answer(response, RETURN_ANSWERS)
        if response.status_code == 302:  # never to another site
            assert urlsplit(response["Location"]).netloc in ("", "testserver")
        if not django_refuses_the_body(method, body, content_type, meta):
            assert_finished_log_row(before, MessageKind.REDIRECT)


# --- the bank's push notification -------------------------------------------------------------


def _push(
    body: bytes,
    *,
    content_type: str,
    query: str,
    meta: Mapping[str, str],
    variant: Mapping[str, Any],
) -> None:
    with one_example(variant):
        before = len(inbound(MessageKind.PUSH))

        response = send("POST", PUSH, query=query, body=body, content_type=content_type, meta=meta)

        assert_answer(response, PUSH_ANSWERS)
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"detail"}
        assert_finished_log_row(before, MessageKind.PUSH)


#: Not a number at all: ``int()`` refuses it (a length it parses would make the test client
#: read past its fake body, which no server does).
def _not_an_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


#: JSON nested deeper than Python's recursion limit, still under MAX_PUSH_BYTES.
deeply_nested = st.builds(
    lambda depth, opener, closer: opener * depth + closer * depth,
    st.integers(1100, 3000),
    st.sampled_from([b"[", b'{"a":', b'{"transactionId":[']),
    st.sampled_from([b"", b"]", b"}"]),
)

push_lengths = st.one_of(
    st.none(),
    huge_length,
    st.just("0"),
    st.just("-1"),
    st.text(LATIN1, max_size=8).filter(_not_an_int),
)


@fuzz(100)
@given(
    body=st.one_of(st.binary(max_size=300), deeply_nested),
    oversized=st.booleans(),
    content_type=content_types,
    query=query_strings,
    meta=headers,
    length=push_lengths,
    variant=variants,
)
def test_push_of_arbitrary_bytes_is_never_a_server_error_and_always_logged(
    shop: FakeBank,
    body: bytes,
    oversized: bool,
    content_type: str,
    query: str,
    meta: dict[str, str],
    length: str | None,
    variant: dict[str, Any],
) -> None:
    if oversized:  # past MAX_PUSH_BYTES (16 KiB), whatever the declared length says
        body += b"\x00\xff{" * 6000
    if length is not None:
        meta = {**meta, "CONTENT_LENGTH": length}
    _push(body, content_type=content_type, query=query, meta=meta, variant=variant)


@fuzz(100)
@given(
    value=json_values,
    ascii_only=st.booleans(),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]),
    meta=headers,
    variant=variants,
)
def test_push_of_arbitrary_json_is_never_a_server_error_and_always_logged(
    shop: FakeBank,
    value: Any,
    ascii_only: bool,
    content_type: str,
    meta: dict[str, str],
    variant: dict[str, Any],
) -> None:
    _push(dumps(value, ascii_only), content_type=content_type, query="", meta=meta, variant=variant)


@pytest.mark.parametrize("confirm", [True, False], ids=["confirmed-by-inquiry", "trusted"])
@fuzz(150)
@given(
    value=near_valid_pushes(),
    ascii_only=st.sampled_from([True, True, True, False]),
    query=st.one_of(st.just(""), query_strings),
    meta=headers,
    variant=variants,
)
def test_push_with_the_right_fields_and_random_values_is_never_a_server_error_and_logged(
    shop: FakeBank,
    confirm: bool,
    value: dict[str, Any],
    ascii_only: bool,
    query: str,
    meta: dict[str, str],
    variant: dict[str, Any],
) -> None:
    _push(
        dumps(value, ascii_only),
        content_type="application/json",
        query=query,
        meta=meta,
        variant={**variant, "CONFIRM_PUSH_WITH_INQUIRY": confirm},
    )


# --- the status view and the result page ------------------------------------------------------

keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.uuids().map(str),
    st.uuids().map(lambda key: str(key).upper()),
    st.sampled_from(KNOWN_KEYS).map(lambda key: key.replace("-", "")),
    any_text.map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")),
    st.text(LATIN1, max_size=40).map(lambda text: quote(text, safe="/;")),
)


def _page(
    prefix: str, key: str, slash: bool, query: str, meta: dict[str, str], variant: dict[str, Any]
) -> None:
    with one_example(variant):
        response = send("GET", f"{prefix}{key}{'/' if slash else ''}", query=query, meta=meta)

        assert_answer(response, PAGE_ANSWERS)


@fuzz(100)
@given(
    key=keys,
    slash=st.booleans(),
    query=query_strings,
    meta=headers,
    variant=variants,
)
def test_status_of_any_key_is_never_a_server_error(
    shop: FakeBank,
    key: str,
    slash: bool,
    query: str,
    meta: dict[str, str],
    variant: dict[str, Any],
) -> None:
    _page("/payments/status/", key, slash, query, meta, variant)


@fuzz(100)
@given(
    key=keys,
    slash=st.booleans(),
    query=query_strings,
    meta=headers,
    variant=variants,
)
def test_result_page_of_any_key_is_never_a_server_error(
    shop: FakeBank,
    key: str,
    slash: bool,
    query: str,
    meta: dict[str, str],
    variant: dict[str, Any],
) -> None:
    _page("/payments/result/", key, slash, query, meta, variant)


# --- what the fuzzing found, pinned as plain examples -----------------------------------------


@pytest.mark.parametrize("length", ["abc", "\xb2", "1e3"], ids=["letters", "superscript", "float"])
def test_push_whose_content_length_is_not_a_number_is_refused_and_logged(
    shop: FakeBank, length: str
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` fails; a server that passes such a header on
    (runserver does) must still get an answer and a log row, not a 500 and nothing."""
    response = send(
        "POST", PUSH, body=b"{}", content_type="application/json", meta={"CONTENT_LENGTH": length}
    )

    assert_answer(response, {400, 413})
    assert assert_finished_log_row(0, MessageKind.PUSH).outcome == Outcome.REJECTED


@pytest.mark.parametrize("field", ["errorCode", "token"])
def test_forged_push_with_a_lone_surrogate_in_a_hashed_field_is_rejected_and_logged(
    shop: FakeBank, field: str
) -> None:
    """``"\\ud800"`` is valid JSON and decodes to a string UTF-8 cannot encode: hashing it
    for the checksum must not be a 500 that leaves the row unfinished."""
    body = push_body(PENDING[0])
    body[field] = "\ud800"

    response = send(
        "POST", PUSH, body=dumps(body, ascii_only=True), content_type="application/json"
    )

    assert_answer(response, {400})
    row = assert_finished_log_row(0, MessageKind.PUSH)
    assert row.outcome == Outcome.REJECTED
    assert Invoice.objects.get(transaction_id=PENDING[0]).status == Status.PENDING


@pytest.mark.parametrize("via", ["trusted-push", "confirmed-push", "redirect", "status"])
def test_bank_text_cut_inside_an_emoji_is_stored_not_a_500(fake_bank: FakeBank, via: str) -> None:
    """A text cut inside a surrogate pair reaches us as a lone ``\\ud83d`` escape. errorDesc,
    bank and cardNumber are outside the checksum; storing them must not fail the request."""
    invoice = InvoiceFactory()
    bank_text = {"error_desc": "Татгалзсан \ud83d", "bank": "\udc00"}

    def reply(request: requests.PreparedRequest) -> Reply:
        answer = result_body(invoice.transaction_id, error_code="300", **bank_text)
        return 200, {}, json.dumps(answer)  # ASCII: the surrogate travels as an escape

    fake_bank.inquiry_reply(reply)
    push = push_body(invoice.transaction_id, error_code="300", **bank_text)
    trusted = {**GOLOMT_PAYMENTS, "CONFIRM_PUSH_WITH_INQUIRY": via != "trusted-push"}

    with override_settings(GOLOMT_PAYMENTS=trusted):
        if via.endswith("push"):
            response = send(
                "POST", PUSH, body=dumps(push, ascii_only=True), content_type="application/json"
            )
        elif via == "redirect":
            response = send("GET", RETURN, query=f"invoice={invoice.transaction_id}")
        else:
            response = send("GET", f"/payments/status/{invoice.key}/")

    assert_answer(response, {200, 302})
    invoice.refresh_from_db()
    assert invoice.status == Status.FAILED
    assert invoice.bank_description.startswith("Татгалзсан ")
    assert not any("\ud800" <= char <= "\udfff" for char in invoice.bank_description)
