"""The shop, the admin, the payment app and (unless a real bank is configured) the sandbox."""

from django.apps import apps
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("payments/", include("golomt_payments.urls")),
    path("", include("shop.urls")),
]

if apps.is_installed("golomt_payments.sandbox"):
    urlpatterns.insert(0, path("sandbox-bank/", include("golomt_payments.sandbox.urls")))
