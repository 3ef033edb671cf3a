"""The API's OpenAPI 3 schema (drf-spectacular), limited to the API's own endpoints.

The shop's URLconf is walked as it is (so the paths carry the shop's prefix), but only this
API's views are described: the shop's own DRF views, if any, are the shop's to document. Works
whatever the shop's ``DEFAULT_SCHEMA_CLASS`` and ``SPECTACULAR_SETTINGS``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import get_language
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.settings import patched_settings
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

import golomt_payments
from golomt_payments.api.views import GolomtAPIView

SETTINGS: dict[str, Any] = {
    "TITLE": "Golomt payments API",
    "DESCRIPTION": (
        "Start card and SocialPay payments, read their status, and manage the customer's "
        "saved cards. The amount is always the shop's; a customer sees only their own."
    ),
    "VERSION": golomt_payments.__version__,
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "golomt_payments.models.Status",
        "CardRegistrationStatusEnum": "golomt_payments.models.RegistrationStatus",
        "LanguageEnum": "golomt_payments.models.Language",
        "ReturnTypeEnum": "golomt_payments.models.ReturnType",
        "PaymentMethodEnum": "golomt_payments.api.serializers.PAYMENT_METHOD_CHOICES",
        "HostedMethodEnum": "golomt_payments.api.serializers.HOSTED_METHOD_CHOICES",
    },
    "COMPONENT_SPLIT_REQUEST": True,
}


def _ours(callback: Any) -> bool:
    cls = getattr(callback, "cls", None)
    return isinstance(cls, type) and issubclass(cls, GolomtAPIView)


class ApiSchemaGenerator(SchemaGenerator):
    """A ``SchemaGenerator`` for this API's endpoints only, with the API's own settings."""

    def _initialise_endpoints(self) -> None:
        super()._initialise_endpoints()  # type: ignore[no-untyped-call]
        # (path, path_regex, method, callback), whatever DRF's stubs say.
        endpoints: list[Any] = list(self.endpoints or ())
        self.endpoints = [endpoint for endpoint in endpoints if _ours(endpoint[3])]

    def get_schema(self, request: Request | None = None, public: bool = False) -> Any:
        with patched_settings(SETTINGS):
            return super().get_schema(request=request, public=public)  # type: ignore[no-untyped-call]


class SchemaView(SpectacularAPIView):
    """``GET api/schema/``: the OpenAPI 3 schema, JSON (or ``?format=yaml``).

    Public: it documents the API, it holds nobody's data.
    """

    generator_class = ApiSchemaGenerator
    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    serve_public = True
    urlconf = None
    custom_settings = None

    def _get_schema_response(self, request: Request) -> Response:
        """The schema of the request's language, made once per process (it is dear: ~20 ms,
        and anybody may ask for it) and under a lock (drf-spectacular's first generation is
        not safe to run twice at once)."""
        language = get_language() or ""
        with _lock:
            if language not in _generated:
                _generated[language] = super()._get_schema_response(request)  # type: ignore[no-untyped-call]
            cached = _generated[language]
        return Response(data=cached.data, headers=dict(cached.headers.items()))


_lock = threading.Lock()
_generated: dict[str, Response] = {}


@receiver(setting_changed)
def _forget(**kwargs: Any) -> None:
    """Any setting may change the schema (URLs, texts, the app's own): make it again."""
    with _lock:
        _generated.clear()
