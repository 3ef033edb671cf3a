"""Include with ``path("payments/", include("golomt_payments.urls"))``.

Register ``push/`` with the bank as the merchant's push notification URL. The ``cards/`` views
need the shop's login (``LOGIN_URL``); ``cards/return/`` is where the bank's card-saving page
sends the browser back.
"""

from django.urls import include, path

from golomt_payments import views

app_name = "golomt_payments"

urlpatterns = [
    path("checkout/", views.checkout, name="checkout"),
    path("return/", views.bank_return, name="return"),
    path("push/", views.push, name="push"),
    path("result/<uuid:key>/", views.result, name="result"),
    path("status/<uuid:key>/", views.status, name="status"),
    path("resume/<uuid:key>/", views.resume, name="resume"),
    path("cards/", views.cards, name="cards"),
    path("cards/add/", views.card_add, name="card_add"),
    path("cards/<int:pk>/delete/", views.card_delete, name="card_delete"),
    path("cards/return/", views.card_return, name="card_return"),
    path("api/", include("golomt_payments.api.urls")),
    path("socialpay/<uuid:key>/", views.socialpay, name="socialpay"),
    path("socialpay/<uuid:key>/qr.svg", views.socialpay_qr, name="socialpay_qr"),
]
