"""Typed bank messages, and the one place where their JSON is read and verified.

The client and the Django push view both call the ``parse_*`` functions, so a message is never
trusted without its shape checked and its checksum verified with the right formula. The bank's
camelCase names stay in this module; the dataclasses speak snake_case. ``raw`` keeps the JSON
exactly as received for the message log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from . import checksum
from .amounts import parse_amount
from .errors import BadResponse, ChecksumMismatch

__all__ = [
    "PAID",
    "CreatedInvoice",
    "SettlementPage",
    "SettlementRow",
    "TokenResult",
    "TransactionResult",
    "parse_created_invoice",
    "parse_settlement_page",
    "parse_token_result",
    "parse_transaction_result",
]

PAID = "000"
"""The only errorCode that means the money moved; every other code is "not paid"."""

TransactionKind = Literal["inquiry", "push", "check", "pay"]
InvoiceKind = Literal["invoice", "confirmation"]

_RESULT_SOURCES: dict[str, tuple[str, str | None]] = {
    "inquiry": ("inquiry response", "/api/inquiry"),
    "push": ("push notification", None),
    "check": ("check response", "/api/check"),
    "pay": ("pay response", "/api/pay"),
}
_INVOICE_SOURCES: dict[str, tuple[str, str]] = {
    "invoice": ("invoice response", "/api/invoice"),
    "confirmation": ("confirmation response", "/api/confirmation"),
}


@dataclass(frozen=True, slots=True)
class CreatedInvoice:
    """The bank's invoice id for a new payment page (``/api/invoice``, ``/api/confirmation``)."""

    invoice: str
    transaction_id: str
    social_deeplink: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """A payment's state: inquiry or check response, push notification, or pay response.

    ``amount`` is the text exactly as the bank sent it (it is what the checksum covers);
    compare amounts through :attr:`amount_value`.
    """

    transaction_id: str
    error_code: str | None
    error_desc: str | None
    amount: str
    status: str | None
    bank: str | None
    card_holder: str | None
    card_number: str | None
    token: str | None = field(repr=False)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_paid(self) -> bool:
        """The bank says the money moved (errorCode ``000``)."""
        return self.error_code == PAID

    @property
    def is_unpaid(self) -> bool:
        """No outcome yet: the customer has not finished (errorCode null or empty)."""
        return not self.error_code

    @property
    def amount_value(self) -> Decimal:
        """The amount as a number: "1" and "1.00" are the same payment."""
        return parse_amount(self.amount)


@dataclass(frozen=True, slots=True)
class TokenResult:
    """The card token created by the ``/api/confirmation`` flow (``/api/get/token``)."""

    transaction_id: str
    token: str | None = field(repr=False)
    error_code: str | None
    error_desc: str | None
    bank: str | None
    card_holder: str | None
    card_number: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SettlementRow:
    """One settled card transaction; values kept as text (no checksum, meaning partly unclear)."""

    id: str | None
    merchant_id: str | None
    terminal_id: str | None
    batch_number: str | None
    invoice_number: str | None
    card_number: str | None
    token: str | None = field(repr=False)
    amount: str | None
    merchant_invoice: str | None
    resp_code: str | None
    resp_desc: str | None
    tran_time: str | None
    tran_date: str | None
    sys_reference: str | None
    approval_code: str | None
    request_date: str | None
    reversed_date: str | None
    checked_date: str | None
    transfer_status: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SettlementPage:
    """One page of ``/api/getSettlementDetails``."""

    rows: tuple[SettlementRow, ...]
    first: bool
    last: bool
    total_pages: int
    total_elements: int
    raw: dict[str, Any] = field(repr=False, compare=False)


_SETTLEMENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("merchant_id", "merchantId"),
    ("terminal_id", "terminalId"),
    ("batch_number", "batchNumber"),
    ("invoice_number", "invoiceNumber"),
    ("card_number", "cardNumber"),
    ("token", "token"),
    ("amount", "amount"),
    ("merchant_invoice", "merchantInvoice"),
    ("resp_code", "respCode"),
    ("resp_desc", "respDesc"),
    ("tran_time", "tranTime"),
    ("tran_date", "tranDate"),
    ("sys_reference", "sysReference"),
    ("approval_code", "approvalCode"),
    ("request_date", "requestDate"),
    ("reversed_date", "reversedDate"),
    ("checked_date", "checkedDate"),
    ("transfer_status", "transferStatus"),
)


def parse_transaction_result(
    body: object, secret: str, *, kind: TransactionKind
) -> TransactionResult:
    """Check the shape and checksum of a payment result and return it typed.

    ``kind`` picks the formula: ``pay`` responses hash transactionId + errorCode + amount;
    inquiry, push and check add the token when there is one.
    """
    what, endpoint = _source(_RESULT_SOURCES, kind)
    fields = _Fields(body, what=what, endpoint=endpoint)
    transaction_id = fields.required("transactionId")
    error_code = fields.optional("errorCode")
    amount = fields.amount("amount")
    token = fields.optional("token")
    if kind == "pay":
        expected = checksum.pay_response(
            secret, transaction_id=transaction_id, error_code=error_code, amount=amount
        )
    else:
        expected = checksum.transaction_result(
            secret, transaction_id=transaction_id, error_code=error_code, amount=amount, token=token
        )
    fields.verify(expected)
    return TransactionResult(
        transaction_id=transaction_id,
        error_code=error_code,
        error_desc=fields.optional("errorDesc"),
        amount=amount,
        status=fields.optional("status"),
        bank=fields.optional("bank"),
        card_holder=fields.optional("cardHolder"),
        card_number=fields.optional("cardNumber"),
        token=token or None,
        raw=fields.body,
    )


def parse_created_invoice(body: object, secret: str, *, kind: InvoiceKind) -> CreatedInvoice:
    """Check and type the response of ``/api/invoice`` or ``/api/confirmation``."""
    what, endpoint = _source(_INVOICE_SOURCES, kind)
    fields = _Fields(body, what=what, endpoint=endpoint)
    invoice = fields.required("invoice")
    transaction_id = fields.required("transactionId")
    formula = checksum.invoice_response if kind == "invoice" else checksum.confirmation_response
    fields.verify(formula(secret, invoice=invoice, transaction_id=transaction_id))
    return CreatedInvoice(
        invoice=invoice,
        transaction_id=transaction_id,
        social_deeplink=fields.optional("socialDeeplink") or None,
        raw=fields.body,
    )


def parse_token_result(body: object, secret: str) -> TokenResult:
    """Check and type the response of ``/api/get/token`` (checksum transactionId + token)."""
    fields = _Fields(body, what="get token response", endpoint="/api/get/token")
    transaction_id = fields.required("transactionId")
    token = fields.optional("token")
    fields.verify(checksum.get_token_response(secret, transaction_id=transaction_id, token=token))
    return TokenResult(
        transaction_id=transaction_id,
        token=token or None,
        error_code=fields.optional("errorCode"),
        error_desc=fields.optional("errorDesc"),
        bank=fields.optional("bank"),
        card_holder=fields.optional("cardHolder"),
        card_number=fields.optional("cardNumber"),
        raw=fields.body,
    )


def parse_settlement_page(body: object) -> SettlementPage:
    """Type one settlement page; the bank documents no checksum for it.

    The paging flags are read from the top level or from ``pageable`` (sources disagree).
    """
    fields = _Fields(body, what="settlement response", endpoint="/api/getSettlementDetails")
    content = fields.body.get("content")
    if not isinstance(content, list):
        raise fields.bad("content", "must be a list")
    rows = tuple(_settlement_row(item, index, fields) for index, item in enumerate(content))
    return SettlementPage(
        rows=rows,
        first=fields.flag("first"),
        last=fields.flag("last"),
        total_pages=fields.count("totalPages"),
        total_elements=fields.count("totalElements"),
        raw=fields.body,
    )


def _settlement_row(item: object, index: int, page: _Fields) -> SettlementRow:
    name = f"content[{index}]"
    if not isinstance(item, dict):
        raise page.bad(name, f"must be an object, not {_json_type(item)}")
    values: dict[str, str | None] = {}
    for attribute, wire in _SETTLEMENT_FIELDS:
        value = item.get(wire)
        if value is None or isinstance(value, str):
            values[attribute] = value
        elif isinstance(value, bool):
            values[attribute] = "true" if value else "false"
        elif isinstance(value, int | float):
            values[attribute] = str(value)
        else:
            raise page.bad(
                f"{name}.{wire}", f"must be a string, number or null, not {_json_type(value)}"
            )
    return SettlementRow(**values, raw=item)


def _source(table: Mapping[str, tuple[str, Any]], kind: str) -> tuple[str, Any]:
    try:
        return table[kind]
    except KeyError:
        raise ValueError(
            f"unknown message kind {kind!r}; expected one of {sorted(table)}"
        ) from None


def _json_type(value: object) -> str:
    """Name a decoded JSON value's type the way the JSON spec does, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Fields:
    """Read one decoded JSON object, naming the message and field in every complaint."""

    __slots__ = ("body", "endpoint", "what")

    def __init__(self, body: object, *, what: str, endpoint: str | None) -> None:
        self.what = what
        self.endpoint = endpoint
        if not isinstance(body, dict):
            raise BadResponse(
                f"{what}: expected a JSON object, got {_json_type(body)}", endpoint=endpoint
            )
        self.body: dict[str, Any] = body

    def bad(self, name: str, problem: str) -> BadResponse:
        return BadResponse(
            f"{self.what}: field {name!r} {problem}", endpoint=self.endpoint, field=name
        )

    def optional(self, name: str) -> str | None:
        value = self.body.get(name)
        if value is None or isinstance(value, str):
            return value
        raise self.bad(name, f"must be a string or null, not {_json_type(value)}")

    def required(self, name: str) -> str:
        value = self.optional(name)
        if not value:
            raise self.bad(name, "is missing")
        return value

    def amount(self, name: str) -> str:
        """The amount text to hash; an integer JSON number is taken as its digits."""
        value = self.body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif value is None or value == "":
            raise self.bad(name, "is missing")
        elif not isinstance(value, str):
            # A float's text is not what the bank hashed ("1.50" decodes to 1.5).
            raise self.bad(name, f"must be a string, not {_json_type(value)}")
        try:
            parse_amount(value)
        except ValueError:
            raise self.bad(name, "is not a plain decimal number") from None
        return value

    def flag(self, name: str) -> bool:
        value = self._paging(name)
        if not isinstance(value, bool):
            raise self.bad(name, f"must be a boolean, not {_json_type(value)}")
        return value

    def count(self, name: str) -> int:
        value = self._paging(name)
        # bool is an int subclass: a count must not be true/false.
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.bad(name, f"must be a non-negative integer, not {_json_type(value)}")
        return value

    def _paging(self, name: str) -> object:
        value = self.body.get(name)
        pageable = self.body.get("pageable")
        if value is None and isinstance(pageable, dict):
            value = pageable.get(name)
        if value is None:
            raise self.bad(name, "is missing")
        return value

    def verify(self, expected: str) -> None:
        received = self.body.get("checksum")
        if received is None or received == "":
            raise ChecksumMismatch(
                f"{self.what}: field 'checksum' is missing",
                endpoint=self.endpoint,
                field="checksum",
            )
        if not checksum.matches(received, expected):
            # Never include the expected value: it would sign a forger's message for them.
            raise ChecksumMismatch(
                f"{self.what}: checksum does not verify", endpoint=self.endpoint, field="checksum"
            )
