"""System checks: stable ids that fire exactly when they should."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from golomt_payments.checks import check_settings
from tests.settings import GOLOMT_PAYMENTS

GOOD = {"BEARER_TOKEN": "t", "SECRET": "s", "CALLBACK_BASE_URL": "https://shop.example"}


def ids(golomt: Any, *, debug: bool = False) -> list[str]:
    with override_settings(GOLOMT_PAYMENTS=golomt, DEBUG=debug):
        return [message.id for message in check_settings()]


def test_the_test_settings_pass_every_check() -> None:
    assert ids(GOLOMT_PAYMENTS) == []


def test_the_checks_are_registered_with_django() -> None:
    with override_settings(GOLOMT_PAYMENTS={"NOPE": 1}):
        found = [m.id for m in checks.run_checks(tags=[checks.Tags.security])]

    assert "golomt_payments.E001" in found


@pytest.mark.parametrize(
    "golomt",
    [
        {"NOPE": 1},
        {**GOOD, "RETURN_TYPE": "MOBILE"},
        {**GOOD, "SUCCESS_URL": "/orders/{order}/"},
        "not a dict",
    ],
)
def test_invalid_setting_is_e001_with_the_validation_message(golomt: Any) -> None:
    with override_settings(GOLOMT_PAYMENTS=golomt):
        messages = check_settings()

    assert [m.id for m in messages] == ["golomt_payments.E001"]
    assert messages[0].level == checks.ERROR
    assert "GOLOMT_PAYMENTS" in messages[0].msg


@pytest.mark.parametrize(
    ("golomt", "missing"),
    [
        ({"SECRET": "s"}, "BEARER_TOKEN"),
        ({"BEARER_TOKEN": "t"}, "SECRET"),
        ({"BEARER_TOKEN": "", "SECRET": ""}, "BEARER_TOKEN and no SECRET"),
        (None, "BEARER_TOKEN and no SECRET"),
    ],
)
def test_missing_credentials_are_e002_naming_what_is_missing(
    golomt: dict[str, str] | None, missing: str
) -> None:
    with override_settings(GOLOMT_PAYMENTS=golomt):
        messages = check_settings()

    assert [m.id for m in messages] == ["golomt_payments.E002"]
    assert missing in messages[0].msg
    assert "'default'" in messages[0].msg


def test_e002_names_each_account_missing_credentials() -> None:
    golomt = {
        "ACCOUNTS": {
            "default": {"BEARER_TOKEN": "t", "SECRET": "s"},
            "wholesale": {"BEARER_TOKEN": "t"},
        }
    }
    with override_settings(GOLOMT_PAYMENTS=golomt):
        messages = check_settings()

    assert [m.id for m in messages] == ["golomt_payments.E002"]
    assert "'wholesale'" in messages[0].msg


def test_credentials_are_never_quoted_in_check_messages() -> None:
    golomt = {"BEARER_TOKEN": "bearer-XYZ", "SECRET": "", "BASE_URL": "http://bank.example"}
    with override_settings(GOLOMT_PAYMENTS=golomt, DEBUG=False):
        text = " ".join(f"{m.msg} {m.hint}" for m in check_settings())

    assert "bearer-XYZ" not in text


def test_http_callback_without_debug_is_w001() -> None:
    assert ids({**GOOD, "CALLBACK_BASE_URL": "http://shop.example"}) == ["golomt_payments.W001"]


def test_http_callback_with_debug_is_fine() -> None:
    assert ids({**GOOD, "CALLBACK_BASE_URL": "http://localhost:8000"}, debug=True) == []


def test_https_callback_is_fine_and_an_unset_one_is_not_w001() -> None:
    assert ids(GOOD) == []
    assert ids({"BEARER_TOKEN": "t", "SECRET": "s"}) == []


def test_http_bank_url_without_debug_is_w002() -> None:
    assert ids({**GOOD, "BASE_URL": "http://bank.example"}) == ["golomt_payments.W002"]


def test_http_bank_url_with_debug_is_fine() -> None:
    assert ids({**GOOD, "BASE_URL": "http://127.0.0.1:9000"}, debug=True) == []


def test_w002_is_reported_per_account() -> None:
    golomt = {
        "ACCOUNTS": {
            "default": {"BEARER_TOKEN": "t", "SECRET": "s"},
            "sandbox": {"BEARER_TOKEN": "t", "SECRET": "s", "BASE_URL": "http://sandbox"},
        }
    }
    with override_settings(GOLOMT_PAYMENTS=golomt):
        messages = check_settings()

    assert [m.id for m in messages] == ["golomt_payments.W002"]
    assert "'sandbox'" in messages[0].msg


def test_errors_stop_manage_py_check_and_can_be_silenced_one_by_one() -> None:
    def unsilenced() -> list[str]:
        return [
            m.id or ""
            for m in checks.run_checks(tags=[checks.Tags.security])
            if not m.is_silenced() and (m.id or "").startswith("golomt_payments.")
        ]

    with override_settings(GOLOMT_PAYMENTS={"SECRET": "s"}):
        with pytest.raises(SystemCheckError, match=r"golomt_payments\.E002"):
            call_command("check", tag=[checks.Tags.security])  # the model checks need a DB
        assert unsilenced() == ["golomt_payments.E002"]
        with override_settings(SILENCED_SYSTEM_CHECKS=["golomt_payments.E002"]):
            assert unsilenced() == []


def test_a_cache_that_counts_nothing_is_w004() -> None:
    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=dummy):
        assert ids(GOLOMT_PAYMENTS) == ["golomt_payments.W004"]
    assert ids(GOLOMT_PAYMENTS) == []  # the tests' local-memory cache counts


def test_any_host_without_a_callback_base_url_is_e003() -> None:
    without_base = {k: v for k, v in GOLOMT_PAYMENTS.items() if k != "CALLBACK_BASE_URL"}
    with override_settings(ALLOWED_HOSTS=["*"]):
        assert ids(without_base) == ["golomt_payments.E003"]
        assert ids(without_base, debug=True) == ["golomt_payments.E003"]
        assert ids(GOLOMT_PAYMENTS) == []  # CALLBACK_BASE_URL names this site
    assert ids(without_base) == []  # the hosts are listed
