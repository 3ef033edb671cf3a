"""Include with ``path("payments/", include("golomt_payments.urls"))``.

Register ``push/`` with the bank as the merchant's push notification URL.
"""

from django.urls import path

from golomt_payments import views

app_name = "golomt_payments"

urlpatterns = [
    path("checkout/", views.checkout, name="checkout"),
    path("return/", views.bank_return, name="return"),
    path("push/", views.push, name="push"),
    path("result/<uuid:key>/", views.result, name="result"),
    path("status/<uuid:key>/", views.status, name="status"),
]
