"""System checks of the sandbox, with stable ids so one can be silenced on purpose."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from golomt_payments.sandbox import conf


@register(Tags.security)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A sandbox without credentials would answer every API call with an error."""
    try:
        conf.build(getattr(settings, conf.SETTING_NAME, None)).require_credentials()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="golomt_sandbox.E001")]
    return []


@register(Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy`` must notice a simulated bank left in a production project."""
    return [
        Warning(
            "The simulated Golomt bank (golomt_payments.sandbox) is installed.",
            hint="Anyone can 'pay' on it with a test card: keep it out of production.",
            id="golomt_sandbox.W001",
        )
    ]
