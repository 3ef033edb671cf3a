"""The status decision, on its own: what a verified bank result asks of an invoice, from its
status and its facts, with no database and no clock. The status door
(:func:`~golomt_payments.services.payments.apply_result`) and the reconciler's dry run ask it;
the row lock then makes the decision count (see ``payments.transition``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from golomt_payments.gateway import PAID, TokenResult, TransactionResult
from golomt_payments.models import RegistrationStatus, Status

__all__ = [
    "REGISTRATION_TRANSITIONS",
    "TRANSITIONS",
    "Decision",
    "can_transition",
    "decide",
    "decide_token",
    "mismatch",
    "registration_sources",
    "target_status",
]

#: Which status may follow which. Paid is final; a declined or expired invoice may still turn
#: out paid (its page took another card, or the bank's answer came late).
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.PENDING, Status.PAID, Status.FAILED, Status.EXPIRED}),
    Status.PENDING: frozenset({Status.PAID, Status.FAILED, Status.EXPIRED}),
    Status.FAILED: frozenset({Status.PAID}),
    Status.EXPIRED: frozenset({Status.PAID}),
    Status.PAID: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Decision:
    """Move to ``target``; or, with ``target`` ``None``, stay, for ``reason``. ``review``: the
    bank said something that does not fit the invoice, for a human to look at."""

    target: str | None
    reason: str = ""
    review: bool = False

    @property
    def moves(self) -> bool:
        return self.target is not None


def can_transition(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def mismatch(result: TransactionResult, *, transaction_id: str, amount: Decimal) -> str | None:
    """Why ``result`` does not fit the invoice with this transaction id and amount, or
    ``None``. Amounts are compared as numbers: the bank may answer "1" for "1.00"."""
    if result.transaction_id != transaction_id:
        return f"bank answered for {result.transaction_id!r}"
    if result.is_paid and result.amount_value != amount:
        return f"bank reports {result.amount!r} paid, invoice is for {amount}"
    return None


def target_status(result: TransactionResult) -> str | None:
    """The status a bank result asks for; ``None`` while the bank has no answer yet."""
    if result.is_paid:
        return Status.PAID
    if result.is_unpaid:
        return None
    return Status.FAILED


def decide(
    status: str, result: TransactionResult, *, transaction_id: str, amount: Decimal
) -> Decision:
    """What ``result`` asks of an invoice in ``status`` with this transaction id and amount."""
    problem = mismatch(result, transaction_id=transaction_id, amount=amount)
    if problem:
        return Decision(None, problem, review=True)
    target = target_status(result)
    if target is None:
        return Decision(None, "bank has no result yet")
    if not can_transition(status, target):
        return Decision(None, "no change")
    return Decision(target)


# --- card registrations (adding a card without buying) ---------------------------------------

#: Which status of a card registration may follow which. Saved and failed are final.
REGISTRATION_TRANSITIONS: dict[str, frozenset[str]] = {
    RegistrationStatus.NEW: frozenset(
        {RegistrationStatus.PENDING, RegistrationStatus.SAVED, RegistrationStatus.FAILED}
    ),
    RegistrationStatus.PENDING: frozenset({RegistrationStatus.SAVED, RegistrationStatus.FAILED}),
    RegistrationStatus.SAVED: frozenset(),
    RegistrationStatus.FAILED: frozenset(),
}


def registration_sources(target: str) -> tuple[str, ...]:
    """The statuses a registration may move to ``target`` from (for a conditional UPDATE)."""
    return tuple(old for old, news in REGISTRATION_TRANSITIONS.items() if target in news)


def decide_token(status: str, result: TokenResult) -> Decision:
    """What the bank's ``/api/get/token`` answer asks of a registration in ``status``: saved
    (when it carries a token: the caller still keeps the card, and fails the registration when
    the token is another customer's), failed (an error code other than ``000``), or stay while
    the customer has not finished the page."""
    if not REGISTRATION_TRANSITIONS.get(status):
        return Decision(None, "already finished")
    if result.error_code and result.error_code != PAID:
        return Decision(RegistrationStatus.FAILED)
    if not result.token:
        return Decision(None, "the customer has not finished the page yet")
    return Decision(RegistrationStatus.SAVED)
