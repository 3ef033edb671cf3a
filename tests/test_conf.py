"""GOLOMT_PAYMENTS: validated once, every error names its key, override_settings reloads."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from golomt_payments import bank, conf
from tests.settings import GOLOMT_PAYMENTS

BASE = {"BEARER_TOKEN": "t", "SECRET": "s"}


def test_defaults_of_a_minimal_configuration() -> None:
    settings = conf.build(BASE)

    assert settings.account().base_url == "https://ecommerce.golomtbank.com"
    assert settings.return_type == "POST"
    assert settings.confirm_push_with_inquiry is True
    assert settings.default_language == "mn"
    assert (settings.connect_timeout, settings.read_timeout) == (5.0, 20.0)
    assert settings.read_retries == 2
    assert settings.push_allowed_ips == ()
    assert settings.trusted_proxy_count == 0
    assert settings.max_push_bytes == 16 * 1024
    assert settings.reconcile_concurrency == 8
    assert settings.reconcile_grace_minutes == 30


def test_missing_setting_builds_an_unconfigured_default_account() -> None:
    settings = conf.build(None)

    assert list(settings.accounts) == ["default"]
    assert not settings.account().is_configured


def test_test_settings_are_read_lazily_and_cached() -> None:
    first = conf.get()

    assert first is conf.get()
    assert first.account().base_url == "https://bank.test"
    assert first.account().secret == "test-hmac-secret"
    assert first.callback_base_url == "https://shop.test"
    assert first.read_retries == 0


def test_settings_are_frozen() -> None:
    settings = conf.get()

    with pytest.raises(AttributeError):
        settings.read_retries = 5  # type: ignore[misc]


def test_values_are_normalised() -> None:
    settings = conf.build(
        {
            **BASE,
            "BASE_URL": "https://bank.example/",
            "CALLBACK_BASE_URL": "https://shop.example/",
            "CONNECT_TIMEOUT": 2,
            "PUSH_ALLOWED_IPS": ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"],
            "ALLOWED_REDIRECT_HOSTS": ["www.shop.example"],
        }
    )

    assert settings.account().base_url == "https://bank.example"
    assert settings.callback_base_url == "https://shop.example"
    assert settings.connect_timeout == 2.0
    assert settings.push_allowed_ips == (
        ipaddress.ip_network("203.0.113.7/32"),
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert settings.allowed_redirect_hosts == ("www.shop.example",)


def test_override_settings_reloads_the_configuration_and_the_clients() -> None:
    before = conf.get()
    client_before = bank.client()

    with override_settings(
        GOLOMT_PAYMENTS={**GOLOMT_PAYMENTS, "BASE_URL": "https://elsewhere.test"}
    ):
        inside = conf.get()
        assert inside.account().base_url == "https://elsewhere.test"
        assert bank.client().base_url == "https://elsewhere.test"

    after = conf.get()
    assert after.account().base_url == before.account().base_url == "https://bank.test"
    assert bank.client().base_url == "https://bank.test"
    assert bank.client() is not client_before


def test_other_settings_changing_do_not_reload() -> None:
    before = conf.get()

    with override_settings(DEBUG=True):
        assert conf.get() is before


def test_account_lookup_by_name() -> None:
    settings = conf.build(
        {
            "ACCOUNTS": {
                "default": {"BEARER_TOKEN": "a", "SECRET": "b"},
                "wholesale": {
                    "BEARER_TOKEN": "c",
                    "SECRET": "d",
                    "BASE_URL": "https://ecommerce.golomtbank.com:8443",
                },
            }
        }
    )

    assert settings.account().name == "default"
    wholesale = settings.account("wholesale")
    assert (wholesale.name, wholesale.bearer_token, wholesale.secret) == ("wholesale", "c", "d")
    assert wholesale.base_url == "https://ecommerce.golomtbank.com:8443"


def test_unknown_account_name_is_an_error_naming_it_and_the_known_ones() -> None:
    settings = conf.build(BASE)

    with pytest.raises(ImproperlyConfigured) as caught:
        settings.account("retail")

    assert "'retail'" in str(caught.value)
    assert "default" in str(caught.value)


def test_credentials_never_appear_in_the_settings_repr() -> None:
    settings = conf.build({"BEARER_TOKEN": "bearer-XYZ", "SECRET": "secret-XYZ"})

    text = repr(settings) + repr(settings.account()) + str(settings.account())
    assert "bearer-XYZ" not in text
    assert "secret-XYZ" not in text


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({**BASE, "SECERT": "typo"}, "SECERT"),
        ({**BASE, "BEARER_TOKEN": 123}, "BEARER_TOKEN"),
        ({**BASE, "SECRET": None}, "SECRET"),
        ({**BASE, "BASE_URL": "ftp://bank"}, "BASE_URL"),
        ({**BASE, "BASE_URL": 5}, "BASE_URL"),
        ({**BASE, "CALLBACK_BASE_URL": "shop.example"}, "CALLBACK_BASE_URL"),
        ({**BASE, "CALLBACK_BASE_URL": ["https://x"]}, "CALLBACK_BASE_URL"),
        ({**BASE, "RETURN_TYPE": "MOBILE"}, "RETURN_TYPE"),
        ({**BASE, "RETURN_TYPE": "post"}, "RETURN_TYPE"),
        ({**BASE, "CONFIRM_PUSH_WITH_INQUIRY": "yes"}, "CONFIRM_PUSH_WITH_INQUIRY"),
        ({**BASE, "CONFIRM_PUSH_WITH_INQUIRY": 1}, "CONFIRM_PUSH_WITH_INQUIRY"),
        ({**BASE, "SUCCESS_URL": 5}, "SUCCESS_URL"),
        ({**BASE, "FAILURE_URL": b"/x"}, "FAILURE_URL"),
        ({**BASE, "ALLOWED_REDIRECT_HOSTS": "shop.example"}, "ALLOWED_REDIRECT_HOSTS"),
        ({**BASE, "ALLOWED_REDIRECT_HOSTS": [1]}, "ALLOWED_REDIRECT_HOSTS"),
        ({**BASE, "ALLOWED_REDIRECT_HOSTS": 5}, "ALLOWED_REDIRECT_HOSTS"),
        ({**BASE, "ALLOWED_REDIRECT_HOSTS": None}, "ALLOWED_REDIRECT_HOSTS"),
        ({**BASE, "CONNECT_TIMEOUT": 0}, "CONNECT_TIMEOUT"),
        ({**BASE, "CONNECT_TIMEOUT": "5"}, "CONNECT_TIMEOUT"),
        ({**BASE, "READ_TIMEOUT": -1}, "READ_TIMEOUT"),
        ({**BASE, "READ_TIMEOUT": True}, "READ_TIMEOUT"),
        ({**BASE, "READ_RETRIES": -1}, "READ_RETRIES"),
        ({**BASE, "READ_RETRIES": 1.5}, "READ_RETRIES"),
        ({**BASE, "PAGE_TIMEOUT_MINUTES": 0}, "PAGE_TIMEOUT_MINUTES"),
        ({**BASE, "DEFAULT_LANGUAGE": "ru"}, "DEFAULT_LANGUAGE"),
        ({**BASE, "DEFAULT_LANGUAGE": "MN"}, "DEFAULT_LANGUAGE"),
        ({**BASE, "TRANSACTION_ID_PREFIX": "TOOLONG"}, "TRANSACTION_ID_PREFIX"),
        ({**BASE, "TRANSACTION_ID_PREFIX": "AB-1"}, "TRANSACTION_ID_PREFIX"),
        ({**BASE, "TRANSACTION_ID_PREFIX": "МН"}, "TRANSACTION_ID_PREFIX"),  # noqa: RUF001
        ({**BASE, "STATUS_POLL_SECONDS": 0}, "STATUS_POLL_SECONDS"),
        ({**BASE, "STATUS_CHECK_INTERVAL_SECONDS": "5"}, "STATUS_CHECK_INTERVAL_SECONDS"),
        ({**BASE, "MAX_PUSH_BYTES": 100}, "MAX_PUSH_BYTES"),
        ({**BASE, "PUSH_ALLOWED_IPS": "203.0.113.7"}, "PUSH_ALLOWED_IPS"),
        ({**BASE, "PUSH_ALLOWED_IPS": ["bank.example"]}, "PUSH_ALLOWED_IPS"),
        ({**BASE, "PUSH_ALLOWED_IPS": [None]}, "PUSH_ALLOWED_IPS"),
        ({**BASE, "TRUSTED_PROXY_COUNT": -1}, "TRUSTED_PROXY_COUNT"),
        ({**BASE, "CHECKOUT_MAX_AGE_SECONDS": 10}, "CHECKOUT_MAX_AGE_SECONDS"),
        ({**BASE, "RECONCILE_CONCURRENCY": 0}, "RECONCILE_CONCURRENCY"),
        ({**BASE, "RECONCILE_CONCURRENCY": 65}, "RECONCILE_CONCURRENCY"),
        ({**BASE, "RECONCILE_CONCURRENCY": "8"}, "RECONCILE_CONCURRENCY"),
        ({**BASE, "RECONCILE_GRACE_MINUTES": -1}, "RECONCILE_GRACE_MINUTES"),
        ({**BASE, "RECONCILE_GRACE_MINUTES": 1.5}, "RECONCILE_GRACE_MINUTES"),
        ({"ACCOUNTS": {}}, "ACCOUNTS"),
        ({"ACCOUNTS": ["default"]}, "ACCOUNTS"),
        ({"ACCOUNTS": {"default": "token"}}, "ACCOUNTS.default"),
        ({"ACCOUNTS": {"default": {**BASE, "TIMEOUT": 1}}}, "TIMEOUT"),
        ({"ACCOUNTS": {"default": {**BASE, "SECRET": 1}}}, "ACCOUNTS.default.SECRET"),
        ({"ACCOUNTS": {"default": {**BASE, "BASE_URL": "bank"}}}, "ACCOUNTS.default.BASE_URL"),
        ({"ACCOUNTS": {"not an identifier": BASE}}, "ACCOUNTS"),
        ({"ACCOUNTS": {"x" * 33: BASE}}, "ACCOUNTS"),
        ({"ACCOUNTS": {"default": BASE}, "SECRET": "s"}, "ACCOUNTS"),
    ],
)
def test_every_validation_error_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        conf.build(raw)

    assert key in str(caught.value)


@pytest.mark.parametrize("raw", ["token", ["BEARER_TOKEN"], 5])
def test_a_setting_that_is_not_a_dict_is_an_error_naming_the_setting(raw: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="GOLOMT_PAYMENTS"):
        conf.build(raw)


@pytest.mark.parametrize("key", ["SUCCESS_URL", "FAILURE_URL"])
@pytest.mark.parametrize("url", ["/orders/{order}/", "/orders/{0}/", "/orders/{reference/"])
def test_result_url_with_an_unknown_placeholder_is_an_error_naming_the_key(
    key: str, url: str
) -> None:
    """Otherwise the customer would meet a server error right after paying."""
    with pytest.raises(ImproperlyConfigured) as caught:
        conf.build({**BASE, key: url})

    assert key in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["", "/thanks/", "/orders/{reference}/", "https://shop.example/{key}?tx={transaction_id}"],
)
def test_result_url_with_known_placeholders_is_accepted(url: str) -> None:
    assert conf.build({**BASE, "SUCCESS_URL": url, "FAILURE_URL": url}).success_url == url


def test_a_broken_setting_is_reported_on_first_use_not_on_import() -> None:
    with override_settings(GOLOMT_PAYMENTS={"NOT_A_KEY": 1}):
        with pytest.raises(ImproperlyConfigured, match="NOT_A_KEY"):
            conf.get()
    assert conf.get().account().is_configured
