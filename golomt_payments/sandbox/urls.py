"""Mount with ``path("sandbox-bank/", include("golomt_payments.sandbox.urls"))``.

The shop's ``GOLOMT_PAYMENTS["BASE_URL"]`` is then ``http://<host>/sandbox-bank``: the paths
below are the bank's own, without trailing slashes.
"""

from django.urls import path

from golomt_payments.sandbox import api, pages

app_name = "golomt_sandbox"

urlpatterns = [
    path("", pages.index, name="index"),
    path("api/invoice", api.invoice, name="api-invoice"),
    path("api/inquiry", api.inquiry, name="api-inquiry"),
    path("api/pay", api.pay, name="api-pay"),
    path("api/check", api.check, name="api-check"),
    path("api/confirmation", api.confirmation, name="api-confirmation"),
    path("api/get/token", api.get_token, name="api-get-token"),
    path("api/getSettlementDetails", api.settlement_details, name="api-settlement"),
    path("payment/<str:lang>/<str:invoice>", pages.payment, name="payment"),
    path("socialpay/<str:lang>/<str:invoice>", pages.socialpay, name="socialpay"),
    path("confirmation/<str:lang>/<str:invoice>", pages.confirmation, name="confirmation"),
]
