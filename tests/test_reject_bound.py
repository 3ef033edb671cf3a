"""The rejected messages one invoice keeps whole are bounded: a transaction id is no secret, so
anyone can tie a forged push to an invoice, and retention never removes what is so tied."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import pytest
from django.test import Client

from golomt_payments.models import BankMessage, Direction, Invoice, MessageKind, Outcome, Status
from golomt_payments.services import process_push
from golomt_payments.services.inbound import MAX_REJECTS_KEPT
from golomt_payments.services.retention import prune_messages
from tests.factories import InvoiceFactory
from tests.helpers import FakeBank, push_body

pytestmark = pytest.mark.django_db

PUSH = "/payments/push/"
RETURN = "/payments/return/"
FORGED = 50
# Headers a forger may add to every push: 3 of 1 KB each, within the log's header bound.
PADDING_HEADERS = {f"HTTP_X_PAD_{n}": chr(ord("A") + n) * 1000 for n in range(3)}


def forged(invoice: Invoice, n: int = 0) -> bytes:
    """A push naming a real invoice, signed with the wrong secret, about 12 KB."""
    body = push_body(invoice.transaction_id, secret="wrong", pad=f"{n}:" + "x" * 12_000)
    return json.dumps(body).encode()


_senders = itertools.count(1)


def send(body: bytes, address: str = "") -> Any:
    """Each push from an address of its own unless told (the per-address flood bound is
    another rule: tests/test_hostile.py)."""
    n = next(_senders)
    client = Client(REMOTE_ADDR=address or f"10.4.{n // 250 % 250}.{n % 250 + 1}")
    return client.post(PUSH, data=body, content_type="application/json", **PADDING_HEADERS)


def pushes(invoice: Invoice) -> list[BankMessage]:
    return list(
        BankMessage.objects.filter(
            direction=Direction.INBOUND, kind=MessageKind.PUSH, invoice=invoice
        ).order_by("pk")
    )


def stored(messages: list[BankMessage]) -> int:
    """What the rows keep of the body and headers, in characters."""
    return sum(len(m.body) + sum(len(k) + len(v) for k, v in m.headers.items()) for m in messages)


def test_forged_pushes_past_the_bound_are_kept_compactly() -> None:
    invoice = InvoiceFactory()
    bodies = [forged(invoice, n) for n in range(FORGED)]

    codes = [send(body).status_code for body in bodies]

    assert codes == [400] * FORGED
    messages = pushes(invoice)
    assert len(messages) == FORGED
    whole, compact = messages[:MAX_REJECTS_KEPT], messages[MAX_REJECTS_KEPT:]
    for message, body in zip(whole, bodies, strict=False):
        assert message.body.encode() == body
        assert message.headers["X-Pad-0"] == "A" * 1000
        assert message.cut is False
    for message, body in zip(compact, bodies[MAX_REJECTS_KEPT:], strict=True):
        assert (message.body, message.headers, message.cut) == ("", {}, True)
        assert message.body_bytes == len(body)
        assert message.body_sha256 == hashlib.sha256(body).hexdigest()
    for message in messages:
        assert (message.outcome, message.error) == (Outcome.REJECTED, "checksum does not verify")
        assert message.remote_addr and message.endpoint == PUSH
        assert (message.invoice_id, message.transaction_id) == (invoice.pk, invoice.transaction_id)
        assert message.checksum_valid is False
    # Whatever the flood, the invoice keeps at most its bound of whole rows (each ~20 KB here).
    assert stored(compact) == 0
    assert stored(messages) == stored(whole) < MAX_REJECTS_KEPT * 21_000
    invoice.refresh_from_db()
    assert (invoice.status, invoice.needs_review) == (Status.PENDING, False)


def test_the_banks_push_after_a_flood_is_processed_and_kept_whole(fake_bank: FakeBank) -> None:
    invoice = InvoiceFactory()
    for n in range(MAX_REJECTS_KEPT + 5):
        send(forged(invoice, n))
    fake_bank.inquiry(error_code="000")
    body = json.dumps(push_body(invoice.transaction_id)).encode()

    response = send(body, address="10.5.5.5")

    assert response.status_code == 200, response.json()
    message = pushes(invoice)[-1]
    assert (message.outcome, message.checksum_valid) == (Outcome.PROCESSED, True)
    assert (message.body.encode(), message.cut) == (body, False)
    assert message.headers["X-Pad-0"] == "A" * 1000
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


def test_each_invoice_has_its_own_bound() -> None:
    flooded, other = InvoiceFactory(), InvoiceFactory()
    for n in range(MAX_REJECTS_KEPT + 5):
        send(forged(flooded, n))

    for n in range(3):
        send(forged(other, n))

    assert [m.cut for m in pushes(other)] == [False] * 3
    assert pushes(other)[0].body.encode() == forged(other, 0)
    send(forged(flooded, 99))
    assert pushes(flooded)[-1].body == ""


def test_rejects_of_unknown_invoices_are_tied_to_none_and_left_to_retention() -> None:
    for n in range(MAX_REJECTS_KEPT + 5):
        body = push_body("unknown0000001", secret="wrong", pad=f"{n}")
        send(json.dumps(body).encode())

    messages = list(BankMessage.objects.filter(kind=MessageKind.PUSH).order_by("pk"))
    assert {m.error for m in messages} == {"unknown transactionId"}
    assert all(m.invoice_id is None and m.body and not m.cut for m in messages)


def test_a_replayed_reject_does_not_count_itself() -> None:
    invoice = InvoiceFactory()
    for n in range(MAX_REJECTS_KEPT):
        send(forged(invoice, n))
    last = pushes(invoice)[-1]
    assert last.body

    reply = process_push(last)

    assert reply.status == 400
    last.refresh_from_db()
    assert (last.outcome, last.cut) == (Outcome.REJECTED, False)
    assert last.body.encode() == forged(invoice, MAX_REJECTS_KEPT - 1)


def test_a_bad_return_is_never_tied_to_an_invoice() -> None:
    """A return the app rejects names no invoice it found: nothing to bound, retention's."""
    invoice = InvoiceFactory()
    client = Client(REMOTE_ADDR="10.6.6.6")

    client.get(RETURN, {"invoice": invoice.transaction_id + "/", "pad": "x" * 1000})
    client.get(RETURN, {"invoice": "unknown0000001"})

    messages = list(BankMessage.objects.filter(kind=MessageKind.REDIRECT))
    assert len(messages) == 2
    assert all(m.outcome == Outcome.REJECTED and m.invoice_id is None for m in messages)


def test_compact_rejects_stay_with_their_invoice_past_retention() -> None:
    invoice = InvoiceFactory()
    for n in range(MAX_REJECTS_KEPT + 2):
        send(forged(invoice, n))
    BankMessage.objects.update(created_at="2000-01-01T00:00:00Z")

    prune_messages(days=1)

    assert len(pushes(invoice)) == MAX_REJECTS_KEPT + 2


# --- the queries it costs ---------------------------------------------------------------------

# A forged push naming a real invoice: INSERT the raw push, SELECT the invoice, COUNT its
# earlier rejects (up to the bound), UPDATE the push row with its outcome.
REJECT_QUERIES = 4
# A push naming no invoice: nothing to count.
UNKNOWN_QUERIES = 3


@pytest.mark.parametrize("earlier", [0, MAX_REJECTS_KEPT + 1], ids=["first", "past the bound"])
def test_a_tied_reject_costs_one_count(earlier: int, django_assert_num_queries: Any) -> None:
    invoice = InvoiceFactory()
    for n in range(earlier):
        send(forged(invoice, n))

    with django_assert_num_queries(REJECT_QUERIES):
        assert send(forged(invoice, 999)).status_code == 400


def test_an_untied_reject_costs_no_count(django_assert_num_queries: Any) -> None:
    body = json.dumps(push_body("unknown0000001", secret="wrong")).encode()

    with django_assert_num_queries(UNKNOWN_QUERIES):
        assert send(body).status_code == 400


def returns(invoice: Invoice) -> list[BankMessage]:
    return list(
        BankMessage.objects.filter(kind=MessageKind.REDIRECT, invoice=invoice).order_by("pk")
    )


def flood_of_returns(invoice: Invoice, count: int) -> None:
    client = Client(REMOTE_ADDR="10.4.4.5")
    for n in range(count):
        client.post(
            RETURN,
            {"invoice": invoice.transaction_id, "pad": f"{n}:" + "y" * 3000},
            **PADDING_HEADERS,
        )


def test_returns_naming_a_paid_invoice_past_the_bound_are_kept_compactly() -> None:
    invoice = InvoiceFactory(status=Status.PAID)

    flood_of_returns(invoice, 30)

    rows = returns(invoice)
    assert len(rows) == 30
    assert all(row.body and row.headers for row in rows[:MAX_REJECTS_KEPT])
    assert all(
        (row.body, row.headers, row.cut) == ("", {}, True) for row in rows[MAX_REJECTS_KEPT:]
    )
    assert all(row.body_sha256 and row.body_bytes for row in rows)


def test_returns_the_bank_is_not_asked_about_past_the_bound_are_kept_compactly(
    fake_bank: FakeBank,
) -> None:
    invoice = InvoiceFactory()
    fake_bank.inquiry(error_code=None, status="PENDING")

    flood_of_returns(invoice, 25)  # the first asks the bank; the rest, moments later, do not

    rows = returns(invoice)
    assert len(fake_bank.mock.calls) == 1
    assert [row.body == "" for row in rows] == [False] * MAX_REJECTS_KEPT + [True] * 5
