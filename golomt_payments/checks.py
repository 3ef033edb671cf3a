"""System checks with stable ids, so a shop can silence one on purpose and no other."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from golomt_payments import conf


@register(Tags.security, deploy=False)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        golomt = conf.build(getattr(settings, conf.SETTING_NAME, None))
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="golomt_payments.E001")]
    messages: list[CheckMessage] = []
    for account in golomt.accounts.values():
        missing = [
            key
            for key, value in (("BEARER_TOKEN", account.bearer_token), ("SECRET", account.secret))
            if not value
        ]
        if missing:
            messages.append(
                Error(
                    f"Golomt merchant account {account.name!r} has no {' and no '.join(missing)}.",
                    hint="Set them in GOLOMT_PAYMENTS (read them from the environment).",
                    id="golomt_payments.E002",
                )
            )
        if bool(account.merchant_id) != bool(account.settlement_token):
            present, absent = (
                ("MERCHANT_ID", "SETTLEMENT_TOKEN")
                if account.merchant_id
                else ("SETTLEMENT_TOKEN", "MERCHANT_ID")
            )
            messages.append(
                Warning(
                    f"Golomt account {account.name!r} has a {present} but no {absent}.",
                    hint="The settlement report (golomt_settlements) needs both.",
                    id="golomt_payments.W003",
                )
            )
        if not settings.DEBUG and account.base_url.startswith("http://"):
            messages.append(
                Warning(
                    f"Golomt account {account.name!r} talks to the bank over plain HTTP.",
                    hint="Use the bank's https:// address outside development.",
                    id="golomt_payments.W002",
                )
            )
    if not settings.DEBUG and golomt.callback_base_url.startswith("http://"):
        messages.append(
            Warning(
                "GOLOMT_PAYMENTS['CALLBACK_BASE_URL'] is http:// while DEBUG is off: the bank "
                "would send customers back over an insecure connection.",
                hint="Use an https:// address.",
                id="golomt_payments.W001",
            )
        )
    if "*" in settings.ALLOWED_HOSTS and not golomt.callback_base_url:
        messages.append(
            Error(
                "ALLOWED_HOSTS allows any host and GOLOMT_PAYMENTS['CALLBACK_BASE_URL'] is not "
                "set: the app cannot tell which hosts are this site's, so it sends the bank no "
                "return address and refuses every payment.",
                hint="Set CALLBACK_BASE_URL to the shop's public address (https://…), or list "
                "the shop's hosts in ALLOWED_HOSTS.",
                id="golomt_payments.E003",
            )
        )
    messages.extend(_check_cache())
    return messages


#: Cache backends that count nothing: every limit and "ask the bank at most once per
#: interval" would let everything through.
_NO_CACHE = "django.core.cache.backends.dummy.DummyCache"


def _check_cache() -> list[CheckMessage]:
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend != _NO_CACHE:
        return []
    return [
        Warning(
            "The default cache is DummyCache: golomt_payments' per-address limits and its "
            "once-per-interval bank inquiries count nothing, so they let everything through.",
            hint="Use a real cache, shared by every host (Redis, Memcached, the database).",
            id="golomt_payments.W004",
        )
    ]
