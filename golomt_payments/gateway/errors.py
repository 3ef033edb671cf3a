"""What can go wrong talking to the bank, split by what the caller should do next.

Messages carry the endpoint, HTTP status and the bank's own words, never a credential.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RETRYABLE",
    "BadResponse",
    "BankRefused",
    "BankServerError",
    "BankTimeout",
    "BankUnreachable",
    "ChecksumMismatch",
    "GolomtError",
    "PaymentNotFound",
    "Unauthorized",
    "is_transient",
]


def _rebuild(cls: type[GolomtError], args: tuple[Any, ...], state: dict[str, Any]) -> GolomtError:
    """Unpickle without calling ``__init__`` (its keyword-only arguments are not in args)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class GolomtError(Exception):
    """Base of every gateway error; ``endpoint`` is the bank path called (e.g. /api/inquiry)."""

    def __init__(
        self, message: str, *, endpoint: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery and multiprocessing pickle exceptions; keep the context attributes.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class BankRefused(GolomtError):
    """HTTP 400: the bank understood the call and said no (``error`` is e.g. "Validation")."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status_code: int | None = 400,
        error: str | None = None,
        bank_message: str | None = None,
        path: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status_code=status_code)
        self.error = error
        self.message = bank_message
        self.path = path
        self.body: dict[str, Any] = body if body is not None else {}


class PaymentNotFound(BankRefused):
    """HTTP 400 ``NotFound``: the bank has no payment with this transactionId."""


class Unauthorized(GolomtError):
    """HTTP 401/403: the bearer token is wrong, missing or revoked (the body is empty)."""


class BankServerError(GolomtError):
    """HTTP 5xx or another unexpected status: the bank's state after the call is unknown."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status_code: int | None = None,
        body_excerpt: str = "",
    ) -> None:
        super().__init__(message, endpoint=endpoint, status_code=status_code)
        self.body_excerpt = body_excerpt


class BankUnreachable(GolomtError):
    """No HTTP answer (connection failed or was cut): the call may or may not have landed."""


class BankTimeout(BankUnreachable):
    """The bank did not answer in time: the call may still have been carried out."""


class BadResponse(GolomtError):
    """The bank answered 200 with something we cannot trust or use (``field`` names why)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status_code: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status_code=status_code)
        self.field = field


class ChecksumMismatch(BadResponse):
    """The message's checksum did not verify: forged, corrupted, or a different secret."""


RETRYABLE: tuple[type[GolomtError], ...] = (BankUnreachable, BankServerError)
"""Errors after which the bank's state is unknown: a later inquiry must decide."""


def is_transient(exc: BaseException) -> bool:
    """True when the outcome is unknown and retrying a read (or inquiring later) may help."""
    return isinstance(exc, RETRYABLE)
