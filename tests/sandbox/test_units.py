"""The sandbox's small parts: settings, test cards, amounts, system checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings

from golomt_payments.sandbox import checks, conf
from golomt_payments.sandbox.cards import TEST_CARDS, Behaviour, card_for, mask
from golomt_payments.sandbox.templatetags.golomt_sandbox import money
from golomt_payments.sandbox.wire import echo_amount, error_body

README = Path(__file__).resolve().parents[2] / "golomt_payments" / "sandbox" / "README.md"


def luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def test_every_behaviour_has_exactly_one_luhn_valid_card() -> None:
    assert sorted(card.behaviour for card in TEST_CARDS) == sorted(Behaviour)
    assert len({card.number for card in TEST_CARDS}) == len(TEST_CARDS)
    assert all(luhn_valid(card.number) for card in TEST_CARDS)


def test_the_readme_documents_every_test_card() -> None:
    readme = README.read_text(encoding="utf-8")
    for card in TEST_CARDS:
        assert f"`{card.display}`" in readme


def test_cards_are_found_however_they_are_typed_and_masked_like_the_bank() -> None:
    assert card_for("9496-2500-0000-0003") is TEST_CARDS[0]
    assert card_for("9496250000000003") is TEST_CARDS[0]
    assert card_for("4111111111111111") is None
    assert mask("9496 2500 0000 0003") == "949625******0003"


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("1.00", "1"), ("18000.00", "18000"), ("18000", "18000"), ("1.50", "1.5"), ("0.10", "0.1")],
)
def test_amounts_are_echoed_normalised(sent: str, echoed: str) -> None:
    assert echo_amount(sent) == echoed


def test_money_groups_digits() -> None:
    assert money("18000") == "18,000"
    assert money("1234567.5") == "1,234,567.5"
    assert money("") == ""


def test_error_body_has_the_spring_shape() -> None:
    body = error_body(400, "Validation", "returnType is missing.", "/api/invoice")
    assert list(body) == ["timestamp", "status", "error", "message", "path"]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"PUSH_MODE": "later"}, "PUSH_MODE"),
        ({"PUSH_URL": "127.0.0.1:8000/push/"}, "PUSH_URL"),
        ({"PAGE_TIMEOUT_SECONDS": 0}, "PAGE_TIMEOUT_SECONDS"),
        ({"LATENCY_MS": -1}, "LATENCY_MS"),
        ({"SECRET": 123}, "SECRET"),
        ({"PUSH_DELAY_SECONDS": "1"}, "PUSH_DELAY_SECONDS"),
        ({"TYPO": 1}, "TYPO"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=key):
        conf.build(raw)


def test_defaults() -> None:
    built = conf.build({"BEARER_TOKEN": "t", "SECRET": "s"})
    assert (built.push_mode, built.page_timeout_seconds, built.latency_ms) == ("thread", 600, 0)
    assert built.push_url == ""
    assert "secret=" not in repr(built)  # credentials are kept out of repr
    assert "bearer_token=" not in repr(built)


def test_missing_credentials_fail_the_system_check(settings: Settings) -> None:
    settings.GOLOMT_SANDBOX = {"SECRET": "s"}
    (error,) = checks.check_settings()
    assert error.id == "golomt_sandbox.E001"
    assert "BEARER_TOKEN" in error.msg


def test_configured_sandbox_passes_the_system_check() -> None:
    assert checks.check_settings() == []


def test_deploy_check_warns_that_the_sandbox_is_installed() -> None:
    (warning,) = checks.check_deploy()
    assert warning.id == "golomt_sandbox.W001"
