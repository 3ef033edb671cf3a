"""The bank's E-Commerce protocol in plain Python: amounts, ids, checksums, messages, client.

Nothing here imports Django, so the same code serves the Django app, the sandbox bank and
scripts. The bank's camelCase field names stay inside this package.
"""

from __future__ import annotations

from . import checksum
from .amounts import format_amount, parse_amount
from .client import MAX_RESPONSE_BYTES, MAX_RESPONSE_TEXT, Exchange, GolomtClient
from .errors import (
    RETRYABLE,
    BadResponse,
    BankRefused,
    BankServerError,
    BankTimeout,
    BankUnreachable,
    ChecksumMismatch,
    GolomtError,
    PaymentNotFound,
    Unauthorized,
    is_transient,
)
from .ids import TRANSACTION_ID_LENGTH, is_valid_transaction_id, new_transaction_id
from .messages import (
    PAID,
    CreatedInvoice,
    SettlementPage,
    SettlementRow,
    TokenResult,
    TransactionResult,
    parse_created_invoice,
    parse_settlement_page,
    parse_token_result,
    parse_transaction_result,
)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_TEXT",
    "PAID",
    "RETRYABLE",
    "TRANSACTION_ID_LENGTH",
    "BadResponse",
    "BankRefused",
    "BankServerError",
    "BankTimeout",
    "BankUnreachable",
    "ChecksumMismatch",
    "CreatedInvoice",
    "Exchange",
    "GolomtClient",
    "GolomtError",
    "PaymentNotFound",
    "SettlementPage",
    "SettlementRow",
    "TokenResult",
    "TransactionResult",
    "Unauthorized",
    "checksum",
    "format_amount",
    "is_transient",
    "is_valid_transaction_id",
    "new_transaction_id",
    "parse_amount",
    "parse_created_invoice",
    "parse_settlement_page",
    "parse_token_result",
    "parse_transaction_result",
]
