"""The ``GOLOMT_SANDBOX`` setting, validated once into a frozen object.

Read lazily and rebuilt on ``setting_changed`` so tests can switch push modes with
``override_settings``. Every error names the key at fault::

    GOLOMT_SANDBOX = {
        "BEARER_TOKEN": "sandbox-token",        # what the shop sends as Authorization: Bearer
        "SECRET": "sandbox-secret",             # must equal the shop's GOLOMT_PAYMENTS SECRET
        "PUSH_URL": "http://127.0.0.1:8000/payments/push/",
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "GOLOMT_SANDBOX"
PUSH_MODES = ("thread", "sync", "off")

_DEFAULTS: dict[str, Any] = {
    "BEARER_TOKEN": "",
    "SECRET": "",
    "PUSH_URL": "",
    "PUSH_MODE": "thread",
    "PAGE_TIMEOUT_SECONDS": 600,
    "LATENCY_MS": 0,
    "PUSH_DELAY_SECONDS": 0.5,
    "LATE_PUSH_SECONDS": 5.0,
    "REPEAT_PUSH_SECONDS": 1.0,
    "PUSH_RETRIES": 2,
    "PUSH_TIMEOUT_SECONDS": 10.0,
    "FAILING_INQUIRY_COUNT": 3,
    "SLOW_INQUIRY_COUNT": 3,
    "SLOW_INQUIRY_SECONDS": 25.0,
    "MERCHANT_NAME": "Sandbox merchant",
}


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """What the simulated bank needs to know; see the README for each key."""

    bearer_token: str = field(repr=False)
    secret: str = field(repr=False)
    push_url: str
    push_mode: str
    page_timeout_seconds: int
    latency_ms: int
    push_delay_seconds: float
    late_push_seconds: float
    repeat_push_seconds: float
    push_retries: int
    push_timeout_seconds: float
    failing_inquiry_count: int
    slow_inquiry_count: int
    slow_inquiry_seconds: float
    merchant_name: str

    def require_credentials(self) -> None:
        """Refuse to run the API without credentials: an empty secret would sign nothing."""
        for key, value in (("BEARER_TOKEN", self.bearer_token), ("SECRET", self.secret)):
            if not value:
                raise _fail(key, "must be set (the shop's GOLOMT_PAYMENTS uses the same value).")


def _fail(key: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{SETTING_NAME}[{key!r}] {problem}")


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, not {type(value).__name__}.")
    return value


def _int(raw: Mapping[str, Any], key: str, minimum: int) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(key, f"must be an integer >= {minimum}.")
    return value


def _seconds(raw: Mapping[str, Any], key: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _fail(key, "must be a number of seconds >= 0.")
    return float(value)


def build(raw: Any) -> SandboxSettings:
    """Validate a raw ``GOLOMT_SANDBOX`` value; raise ImproperlyConfigured naming the bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{SETTING_NAME} must be a dict.")
    unknown = set(raw) - set(_DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(
            f"{SETTING_NAME} has unknown keys: {', '.join(sorted(unknown))}."
        )
    merged = {**_DEFAULTS, **raw}
    push_url = _str(merged, "PUSH_URL")
    if push_url and not push_url.startswith(("http://", "https://")):
        raise _fail("PUSH_URL", "must be an absolute http(s) URL, or empty for no push.")
    push_mode = merged["PUSH_MODE"]
    if push_mode not in PUSH_MODES:
        raise _fail("PUSH_MODE", f"must be one of {', '.join(PUSH_MODES)}; got {push_mode!r}.")
    return SandboxSettings(
        bearer_token=_str(merged, "BEARER_TOKEN"),
        secret=_str(merged, "SECRET"),
        push_url=push_url,
        push_mode=push_mode,
        page_timeout_seconds=_int(merged, "PAGE_TIMEOUT_SECONDS", 1),
        latency_ms=_int(merged, "LATENCY_MS", 0),
        push_delay_seconds=_seconds(merged, "PUSH_DELAY_SECONDS"),
        late_push_seconds=_seconds(merged, "LATE_PUSH_SECONDS"),
        repeat_push_seconds=_seconds(merged, "REPEAT_PUSH_SECONDS"),
        push_retries=_int(merged, "PUSH_RETRIES", 0),
        push_timeout_seconds=_seconds(merged, "PUSH_TIMEOUT_SECONDS") or 10.0,
        failing_inquiry_count=_int(merged, "FAILING_INQUIRY_COUNT", 0),
        slow_inquiry_count=_int(merged, "SLOW_INQUIRY_COUNT", 0),
        slow_inquiry_seconds=_seconds(merged, "SLOW_INQUIRY_SECONDS"),
        merchant_name=_str(merged, "MERCHANT_NAME"),
    )


_cached: SandboxSettings | None = None


def get() -> SandboxSettings:
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
