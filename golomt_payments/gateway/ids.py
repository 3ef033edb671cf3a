"""Merchant transaction ids: the bank wants under 16 ASCII letters and digits, unique forever."""

from __future__ import annotations

import re
import secrets
import string
from typing import TypeGuard

__all__ = ["TRANSACTION_ID_LENGTH", "is_valid_transaction_id", "new_transaction_id"]

TRANSACTION_ID_LENGTH = 15
_MAX_PREFIX = 6
_ALPHABET = string.ascii_letters + string.digits
# An explicit ASCII class: str.isalnum() and \w also accept Cyrillic and other scripts.
_VALID = re.compile(r"[A-Za-z0-9]{1,15}")
_VALID_PREFIX = re.compile(r"[A-Za-z0-9]{0,6}")


def new_transaction_id(prefix: str = "") -> str:
    """A fresh 15-character id; the bank rejects a reused one, so every attempt needs its own.

    ``prefix`` (up to 6 ASCII letters/digits) helps a human tell ids apart; the remaining
    characters (at least 9, about 53 bits) come from :mod:`secrets`.
    """
    if not isinstance(prefix, str) or not _VALID_PREFIX.fullmatch(prefix):
        raise ValueError(
            f"transaction id prefix must be at most {_MAX_PREFIX} ASCII letters or digits"
        )
    size = TRANSACTION_ID_LENGTH - len(prefix)
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(size))


def is_valid_transaction_id(value: object) -> TypeGuard[str]:
    """True for a string the bank accepts as a transactionId (1-15 ASCII letters/digits)."""
    return isinstance(value, str) and _VALID.fullmatch(value) is not None
