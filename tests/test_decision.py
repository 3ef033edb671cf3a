"""The status decision on its own: a bank result and an invoice's status and facts in, the move
or the reason not to out. No database, no clock."""

from __future__ import annotations

from decimal import Decimal

import pytest

from golomt_payments.gateway import TokenResult, TransactionResult
from golomt_payments.models import RegistrationStatus, Status
from golomt_payments.services.decision import (
    TRANSITIONS,
    Decision,
    decide,
    decide_token,
    registration_sources,
)

TID = "T0000000001"
AMOUNT = Decimal("1000.00")


def result(code: str | None, *, amount: str = "1000.00", tid: str = TID) -> TransactionResult:
    return TransactionResult(
        transaction_id=tid,
        error_code=code,
        error_desc=None,
        amount=amount,
        status=None,
        bank=None,
        card_holder=None,
        card_number=None,
        token=None,
        raw={},
    )


def decided(status: str, code: str | None, **kwargs: str) -> Decision:
    return decide(status, result(code, **kwargs), transaction_id=TID, amount=AMOUNT)


@pytest.mark.parametrize("status", [Status.NEW, Status.PENDING, Status.FAILED, Status.EXPIRED])
def test_paid_moves_every_status_but_paid_to_paid(status: str) -> None:
    assert decided(status, "000") == Decision(Status.PAID)


def test_paid_is_final() -> None:
    for code in ("000", "300", None):
        assert not decided(Status.PAID, code).moves


@pytest.mark.parametrize("status", [Status.NEW, Status.PENDING])
def test_a_decline_fails_an_open_invoice(status: str) -> None:
    assert decided(status, "300") == Decision(Status.FAILED)


@pytest.mark.parametrize("status", [Status.FAILED, Status.EXPIRED])
def test_a_decline_leaves_a_closed_invoice_as_it_is(status: str) -> None:
    assert decided(status, "300") == Decision(None, "no change")


@pytest.mark.parametrize("code", [None, ""])
def test_no_code_is_no_result_yet(code: str | None) -> None:
    assert decided(Status.PENDING, code) == Decision(None, "bank has no result yet")


@pytest.mark.parametrize("code", ["00", "0000", " 000"])
def test_near_misses_of_paid_are_declines_never_paid(code: str) -> None:
    assert decided(Status.PENDING, code) == Decision(Status.FAILED)


def test_another_transaction_is_for_review() -> None:
    assert decided(Status.PENDING, "000", tid="T0000000002") == Decision(
        None, "bank answered for 'T0000000002'", review=True
    )


def test_another_amount_paid_is_for_review_and_numbers_compare_as_numbers() -> None:
    wrong = decided(Status.PENDING, "000", amount="999.00")
    assert (wrong.moves, wrong.review) == (False, True)
    assert decided(Status.PENDING, "000", amount="1000") == Decision(Status.PAID)


def test_another_amount_declined_is_just_a_decline() -> None:
    assert decided(Status.PENDING, "300", amount="1.00") == Decision(Status.FAILED)


def test_the_table_never_leaves_paid_and_never_returns_to_new() -> None:
    assert TRANSITIONS[Status.PAID] == frozenset()
    assert all(Status.NEW not in targets for targets in TRANSITIONS.values())


# --- card registrations ---------------------------------------------------------------------


def token(code: str | None, value: str | None) -> TokenResult:
    return TokenResult(
        transaction_id=TID,
        token=value,
        error_code=code,
        error_desc=None,
        bank=None,
        card_holder=None,
        card_number=None,
        raw={},
    )


@pytest.mark.parametrize("status", [RegistrationStatus.NEW, RegistrationStatus.PENDING])
def test_a_token_saves_an_open_registration(status: str) -> None:
    assert decide_token(status, token("000", "tok")) == Decision(RegistrationStatus.SAVED)
    assert decide_token(status, token(None, "tok")) == Decision(RegistrationStatus.SAVED)


@pytest.mark.parametrize("status", [RegistrationStatus.NEW, RegistrationStatus.PENDING])
def test_an_error_code_fails_an_open_registration(status: str) -> None:
    assert decide_token(status, token("300", None)) == Decision(RegistrationStatus.FAILED)


@pytest.mark.parametrize("code", [None, "", "000"])
def test_no_token_and_no_error_is_not_finished_yet(code: str | None) -> None:
    assert not decide_token(RegistrationStatus.PENDING, token(code, None)).moves


@pytest.mark.parametrize("status", [RegistrationStatus.SAVED, RegistrationStatus.FAILED])
def test_a_finished_registration_stays_as_it_is(status: str) -> None:
    assert not decide_token(status, token("000", "tok")).moves
    assert not decide_token(status, token("300", None)).moves


def test_only_open_registrations_may_close() -> None:
    assert set(registration_sources(RegistrationStatus.FAILED)) == {
        RegistrationStatus.NEW,
        RegistrationStatus.PENDING,
    }
    assert registration_sources(RegistrationStatus.PENDING) == (RegistrationStatus.NEW,)
