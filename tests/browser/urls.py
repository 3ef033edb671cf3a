"""The browser tests' site: a one-form test shop, the payment app and the sandbox bank."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

PAGE = """{% load golomt_payments %}<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Test shop: order {{ reference }}</title></head>
<body>
  <h1>Order {{ reference }}</h1>
  {% golomt_checkout_form amount=amount reference=reference save_card=save_card %}
</body>
</html>"""


def checkout_page(request: HttpRequest) -> HttpResponse:
    """The shop's checkout page for ``?reference=…&amount=…`` (``&save_card=1``: offer to save
    the card), rendered with the app's tag."""
    template = engines["django"].from_string(PAGE)
    context = {
        "reference": request.GET.get("reference", "ORDER"),
        "amount": request.GET.get("amount", "18000"),
        "save_card": request.GET.get("save_card") == "1",
    }
    return HttpResponse(template.render(context, request))


urlpatterns = [
    path("shop/checkout/", checkout_page, name="browser-shop-checkout"),
    path("payments/", include("golomt_payments.urls")),
    path("sandbox-bank/", include("golomt_payments.sandbox.urls")),
]
