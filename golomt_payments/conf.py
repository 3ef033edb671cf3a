"""The ``GOLOMT_PAYMENTS`` setting, validated once into a frozen, typed object.

Read lazily (so importing the app never touches settings) and rebuilt on ``setting_changed``
so ``override_settings`` works in tests. Every error names the key at fault.

A shop with one merchant contract writes::

    GOLOMT_PAYMENTS = {"BEARER_TOKEN": "...", "SECRET": "..."}

A shop with several contracts names them; each invoice remembers the account that issued it::

    GOLOMT_PAYMENTS = {"ACCOUNTS": {"default": {...}, "wholesale": {...}}}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTING_NAME = "GOLOMT_PAYMENTS"
DEFAULT_BASE_URL = "https://ecommerce.golomtbank.com"
DEFAULT_ACCOUNT = "default"

_ACCOUNT_KEYS = {"BEARER_TOKEN", "SECRET", "BASE_URL", "MERCHANT_ID", "SETTLEMENT_TOKEN"}
_TOP_KEYS = _ACCOUNT_KEYS | {
    "ACCOUNTS",
    "CALLBACK_BASE_URL",
    "RETURN_TYPE",
    "CONFIRM_PUSH_WITH_INQUIRY",
    "SUCCESS_URL",
    "FAILURE_URL",
    "CARDS_URL",
    "ALLOWED_REDIRECT_HOSTS",
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "READ_RETRIES",
    "PAGE_TIMEOUT_MINUTES",
    "DEFAULT_LANGUAGE",
    "TRANSACTION_ID_PREFIX",
    "STATUS_POLL_SECONDS",
    "STATUS_CHECK_INTERVAL_SECONDS",
    "MAX_PUSH_BYTES",
    "PUSH_ALLOWED_IPS",
    "TRUSTED_PROXY_COUNT",
    "CHECKOUT_MAX_AGE_SECONDS",
    "RECONCILE_CONCURRENCY",
    "RECONCILE_GRACE_MINUTES",
    "NOTIFICATION_RETRY_SECONDS",
    "API_PERMISSION_CLASSES",
    "API_AUTHENTICATION_CLASSES",
    "API_ORDER_RESOLVER",
    "API_THROTTLE_RATE",
    "RETURN_REQUESTS_PER_MINUTE",
    "POLL_REQUESTS_PER_MINUTE",
    "CHECKOUT_REQUESTS_PER_MINUTE",
    "PUSH_REQUESTS_PER_MINUTE",
    "CUSTOMER_WAIT_SECONDS",
    "PUSH_CONFIRM_SECONDS",
    "RECONCILE_RECHECK_SECONDS",
    "MESSAGE_RETENTION_DAYS",
}
RETURN_TYPES = ("POST", "GET")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LANGUAGES = ("mn", "en")
#: Each reconcile worker holds a database connection and an HTTP connection while it works.
MAX_RECONCILE_CONCURRENCY = 64
DEFAULT_API_PERMISSION_CLASSES = ("rest_framework.permissions.IsAuthenticated",)
#: DRF's rate format: a number of requests per second, minute, hour or day.
_RATE = re.compile(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$")


@dataclass(frozen=True, slots=True)
class Account:
    """One merchant contract: the two credentials and the bank's address."""

    name: str
    bearer_token: str = field(repr=False)
    secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    #: The bank's 15-digit merchant id; only the settlement report needs it.
    merchant_id: str = ""
    #: The ``token`` of the settlement call (its meaning is unclear: treated as a secret).
    settlement_token: str = field(default="", repr=False)

    @property
    def is_configured(self) -> bool:
        return bool(self.bearer_token and self.secret)

    @property
    def can_fetch_settlements(self) -> bool:
        return self.is_configured and bool(self.merchant_id and self.settlement_token)


@dataclass(frozen=True, slots=True)
class GolomtSettings:
    accounts: Mapping[str, Account]
    callback_base_url: str = ""
    return_type: str = "POST"
    confirm_push_with_inquiry: bool = True
    success_url: str = ""
    failure_url: str = ""
    cards_url: str = ""
    allowed_redirect_hosts: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    read_retries: int = 2
    page_timeout_minutes: int = 10
    default_language: str = "mn"
    transaction_id_prefix: str = ""
    status_poll_seconds: int = 3
    status_check_interval_seconds: int = 5
    max_push_bytes: int = 16 * 1024
    push_allowed_ips: tuple[IPNetwork, ...] = ()
    trusted_proxy_count: int = 0
    checkout_max_age_seconds: int = 3600
    reconcile_concurrency: int = 8
    reconcile_grace_minutes: int = 30
    #: How long a notification not yet delivered waits before a sweep sends it again; doubled
    #: after every failed attempt, up to an hour.
    notification_retry_seconds: int = 60
    #: The REST API's permission classes (imported from ``API_PERMISSION_CLASSES``).
    api_permission_classes: tuple[type, ...] = ()
    #: The REST API's authentication classes; ``None``: DRF's ``DEFAULT_AUTHENTICATION_CLASSES``.
    api_authentication_classes: tuple[type, ...] | None = None
    #: The shop's ``(request, data) -> order`` callable; ``None``: no payments over the API.
    api_order_resolver: Callable[..., Any] | None = None
    #: Requests per client address to the API's payment and card endpoints, in DRF's rate
    #: format (``"60/min"``); counted before authentication. ``None``: no throttle.
    api_throttle_rate: str | None = "60/min"
    #: Returns from the bank's pages (payment and card) per minute from one client address.
    return_requests_per_minute: int = 300
    #: Status polls and result pages (the app's and the API's) per minute from one address.
    poll_requests_per_minute: int = 1200
    #: Checkouts (each may ask the bank for an invoice) per minute from one client address.
    checkout_requests_per_minute: int = 60
    #: Push notifications per minute from one address when ``PUSH_ALLOWED_IPS`` is empty (an
    #: address on the allow-list is never throttled).
    push_requests_per_minute: int = 1200
    #: The longest a customer waits on the bank's inquiry (all tries together), in seconds.
    customer_wait_seconds: float = 3.0
    #: The longest the inquiry that confirms a push may take, all tries together: beyond it
    #: the bank is answered 503 and sends the push again.
    push_confirm_seconds: float = 10.0
    #: An invoice a reconcile run asked about and left open, or whose bank did not answer,
    #: is due again this many seconds later.
    reconcile_recheck_seconds: int = 30
    #: ``golomt_prune_messages`` removes raw messages older than this many days.
    message_retention_days: int = 90

    def account(self, name: str = DEFAULT_ACCOUNT) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise ImproperlyConfigured(
                f"{SETTING_NAME}: no merchant account named {name!r} "
                f"(known: {', '.join(sorted(self.accounts)) or 'none'})."
            ) from None


def _fail(key: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{SETTING_NAME}[{key!r}] {problem}")


def _str(raw: Mapping[str, Any], key: str, default: str, where: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise _fail(where + key, f"must be a string, not {type(value).__name__}.")
    return value


def _int(
    raw: Mapping[str, Any], key: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    value = raw.get(key, default)
    if (
        not isinstance(value, bool)
        and isinstance(value, int)
        and minimum <= value <= (value if maximum is None else maximum)
    ):
        return value
    bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    raise _fail(key, f"must be an integer {bounds}.")


def _float(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(key, "must be a positive number of seconds.")
    return float(value)


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise _fail(key, "must be True or False.")
    return value


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise _fail(key, f"must be one of {', '.join(choices)}; got {value!r}.")
    return str(value)


def _account(name: str, raw: Any) -> Account:
    if not isinstance(raw, Mapping):
        raise _fail(f"ACCOUNTS.{name}", "must be a dict.")
    unknown = set(raw) - _ACCOUNT_KEYS
    if unknown:
        raise _fail(f"ACCOUNTS.{name}", f"has unknown keys: {', '.join(sorted(unknown))}.")
    where = f"ACCOUNTS.{name}."
    base_url = _str(raw, "BASE_URL", DEFAULT_BASE_URL, where).rstrip("/")
    if not base_url.startswith(("https://", "http://")):
        raise _fail(where + "BASE_URL", "must be an http(s) URL.")
    return Account(
        name=name,
        bearer_token=_str(raw, "BEARER_TOKEN", "", where),
        secret=_str(raw, "SECRET", "", where),
        base_url=base_url,
        merchant_id=_merchant_id(raw, where),
        settlement_token=_str(raw, "SETTLEMENT_TOKEN", "", where),
    )


def _merchant_id(raw: Mapping[str, Any], where: str) -> str:
    """The bank's merchant id: 15 digits, or empty when settlements are not fetched."""
    value = _str(raw, "MERCHANT_ID", "", where)
    if value and not (len(value) == 15 and value.isascii() and value.isdigit()):
        raise _fail(
            where + "MERCHANT_ID", f"must be the bank's 15-digit merchant id; got {value!r}."
        )
    return value


def _result_url(raw: Mapping[str, Any], key: str) -> str:
    """SUCCESS_URL / FAILURE_URL: fail now, not with a server error after the customer paid."""
    value = _str(raw, key, "")
    try:
        value.format(reference="", key="", transaction_id="")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise _fail(
            key,
            "may only use the placeholders {reference}, {key} and {transaction_id}; "
            f"got {value!r} ({type(exc).__name__}: {exc}).",
        ) from None
    return value


def _cards_url(raw: Mapping[str, Any]) -> str:
    """CARDS_URL: where the customer lands after adding a card; empty for the app's own page."""
    value = _str(raw, "CARDS_URL", "")
    try:
        value.format(key="", status="")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise _fail(
            "CARDS_URL",
            "may only use the placeholders {key} and {status}; "
            f"got {value!r} ({type(exc).__name__}: {exc}).",
        ) from None
    return value


def _networks(raw: Mapping[str, Any]) -> tuple[IPNetwork, ...]:
    value = raw.get("PUSH_ALLOWED_IPS", ())
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _fail("PUSH_ALLOWED_IPS", "must be a list of addresses or networks.")
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in value)
    except (TypeError, ValueError) as exc:
        raise _fail("PUSH_ALLOWED_IPS", f"holds an invalid address: {exc}") from None


def _imported(key: str, path: Any) -> Any:
    if not isinstance(path, str) or not path:
        raise _fail(key, f"must hold dotted import paths; got {path!r}.")
    try:
        return import_string(path)
    except ImportError as exc:
        raise _fail(key, f"names {path!r}, which cannot be imported: {exc}") from None


def _classes(raw: Mapping[str, Any], key: str, default: Any) -> tuple[type, ...] | None:
    """A list of dotted paths to classes (DRF permission or authentication classes)."""
    paths = raw.get(key, default)
    if paths is None:
        return None
    if isinstance(paths, str) or not isinstance(paths, list | tuple):
        raise _fail(key, "must be a list of dotted paths to classes.")
    classes = []
    for path in paths:
        imported = _imported(key, path)
        if not isinstance(imported, type):
            raise _fail(key, f"names {path!r}, which is not a class.")
        classes.append(imported)
    return tuple(classes)


def _permission_classes(raw: Mapping[str, Any]) -> tuple[type, ...]:
    """API_PERMISSION_CLASSES: never ``None`` (that would read as "no permissions")."""
    classes = _classes(raw, "API_PERMISSION_CLASSES", DEFAULT_API_PERMISSION_CLASSES)
    if classes is None:
        raise _fail("API_PERMISSION_CLASSES", "must be a list of dotted paths to classes.")
    return classes


def _resolver(raw: Mapping[str, Any]) -> Callable[..., Any] | None:
    """API_ORDER_RESOLVER: the shop's callable that turns the client's order into an amount."""
    path = raw.get("API_ORDER_RESOLVER")
    if path is None or path == "":
        return None
    resolver = _imported("API_ORDER_RESOLVER", path)
    if not callable(resolver):
        raise _fail("API_ORDER_RESOLVER", f"names {path!r}, which is not callable.")
    return resolver  # type: ignore[no-any-return]


def _rate(raw: Mapping[str, Any]) -> str | None:
    """API_THROTTLE_RATE: ``"60/min"`` and the like, or ``None`` for no throttle."""
    value = raw.get("API_THROTTLE_RATE", "60/min")
    if value is None:
        return None
    if not isinstance(value, str) or not _RATE.match(value):
        raise _fail(
            "API_THROTTLE_RATE",
            f"must be a rate like '60/min' (per s, min, hour or day) or None; got {value!r}.",
        )
    return value


def build(raw: Any) -> GolomtSettings:
    """Validate a raw ``GOLOMT_PAYMENTS`` value; raise ImproperlyConfigured naming the bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{SETTING_NAME} must be a dict.")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"{SETTING_NAME} has unknown keys: {', '.join(sorted(unknown))}."
        )
    accounts_raw = raw.get("ACCOUNTS")
    if accounts_raw is None:
        accounts_raw = {DEFAULT_ACCOUNT: {k: raw[k] for k in _ACCOUNT_KEYS if k in raw}}
    elif set(raw) & _ACCOUNT_KEYS:
        raise ImproperlyConfigured(
            f"{SETTING_NAME}: give credentials either at the top level or under ACCOUNTS, not both."
        )
    if not isinstance(accounts_raw, Mapping) or not accounts_raw:
        raise _fail("ACCOUNTS", "must be a non-empty dict of account name to credentials.")
    accounts = {}
    for name, account_raw in accounts_raw.items():
        if not isinstance(name, str) or not name.isidentifier() or len(name) > 32:
            raise _fail("ACCOUNTS", f"names must be short identifiers; got {name!r}.")
        accounts[name] = _account(name, account_raw)
    hosts = raw.get("ALLOWED_REDIRECT_HOSTS", ())
    if not isinstance(hosts, list | tuple) or not all(isinstance(h, str) for h in hosts):
        raise _fail("ALLOWED_REDIRECT_HOSTS", "must be a list of host names.")
    prefix = _str(raw, "TRANSACTION_ID_PREFIX", "")
    if len(prefix) > 6 or not (prefix.isascii() and (prefix.isalnum() or prefix == "")):
        raise _fail("TRANSACTION_ID_PREFIX", "must be at most 6 ASCII letters or digits.")
    callback_base_url = _str(raw, "CALLBACK_BASE_URL", "").rstrip("/")
    if callback_base_url and not callback_base_url.startswith(("https://", "http://")):
        raise _fail("CALLBACK_BASE_URL", "must be an absolute http(s) URL.")
    return GolomtSettings(
        accounts=accounts,
        callback_base_url=callback_base_url,
        return_type=_choice(raw, "RETURN_TYPE", "POST", RETURN_TYPES),
        confirm_push_with_inquiry=_bool(raw, "CONFIRM_PUSH_WITH_INQUIRY", True),
        success_url=_result_url(raw, "SUCCESS_URL"),
        failure_url=_result_url(raw, "FAILURE_URL"),
        cards_url=_cards_url(raw),
        allowed_redirect_hosts=tuple(hosts),
        connect_timeout=_float(raw, "CONNECT_TIMEOUT", 5.0),
        read_timeout=_float(raw, "READ_TIMEOUT", 20.0),
        read_retries=_int(raw, "READ_RETRIES", 2, 0),
        page_timeout_minutes=_int(raw, "PAGE_TIMEOUT_MINUTES", 10, 1),
        default_language=_choice(raw, "DEFAULT_LANGUAGE", "mn", LANGUAGES),
        transaction_id_prefix=prefix,
        status_poll_seconds=_int(raw, "STATUS_POLL_SECONDS", 3, 1),
        status_check_interval_seconds=_int(raw, "STATUS_CHECK_INTERVAL_SECONDS", 5, 1),
        max_push_bytes=_int(raw, "MAX_PUSH_BYTES", 16 * 1024, 1024),
        push_allowed_ips=_networks(raw),
        trusted_proxy_count=_int(raw, "TRUSTED_PROXY_COUNT", 0, 0),
        checkout_max_age_seconds=_int(raw, "CHECKOUT_MAX_AGE_SECONDS", 3600, 60),
        reconcile_concurrency=_int(
            raw, "RECONCILE_CONCURRENCY", 8, 1, maximum=MAX_RECONCILE_CONCURRENCY
        ),
        reconcile_grace_minutes=_int(raw, "RECONCILE_GRACE_MINUTES", 30, 0),
        notification_retry_seconds=_int(raw, "NOTIFICATION_RETRY_SECONDS", 60, 1),
        api_permission_classes=_permission_classes(raw),
        api_authentication_classes=_classes(raw, "API_AUTHENTICATION_CLASSES", None),
        api_order_resolver=_resolver(raw),
        api_throttle_rate=_rate(raw),
        return_requests_per_minute=_int(raw, "RETURN_REQUESTS_PER_MINUTE", 300, 1),
        poll_requests_per_minute=_int(raw, "POLL_REQUESTS_PER_MINUTE", 1200, 1),
        checkout_requests_per_minute=_int(raw, "CHECKOUT_REQUESTS_PER_MINUTE", 60, 1),
        push_requests_per_minute=_int(raw, "PUSH_REQUESTS_PER_MINUTE", 1200, 1),
        customer_wait_seconds=_float(raw, "CUSTOMER_WAIT_SECONDS", 3.0),
        push_confirm_seconds=_float(raw, "PUSH_CONFIRM_SECONDS", 10.0),
        reconcile_recheck_seconds=_int(raw, "RECONCILE_RECHECK_SECONDS", 30, 1),
        message_retention_days=_int(raw, "MESSAGE_RETENTION_DAYS", 90, 1),
    )


_cached: GolomtSettings | None = None


def get() -> GolomtSettings:
    """The validated settings, built on first use."""
    global _cached
    if _cached is None:
        _cached = build(getattr(settings, SETTING_NAME, None))
    return _cached


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting == SETTING_NAME:
        _cached = None
