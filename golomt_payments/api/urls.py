"""The REST API's URLs, included by the app's as ``api/`` (names ``golomt_payments:api:…``).

The views do not run inside the shop's ``ATOMIC_REQUESTS`` transaction: no row lock may be
held while the bank is asked.
"""

from django.db import transaction
from django.urls import path

from golomt_payments.api import views
from golomt_payments.api.schema import SchemaView

app_name = "api"

urlpatterns = [
    path(
        "payments/",
        transaction.non_atomic_requests(views.PaymentListView.as_view()),
        name="payment-list",
    ),
    path(
        "payments/<str:key>/",
        transaction.non_atomic_requests(views.PaymentDetailView.as_view()),
        name="payment-detail",
    ),
    path("cards/", views.CardListView.as_view(), name="card-list"),
    path(
        "cards/add/",
        transaction.non_atomic_requests(views.CardAddView.as_view()),
        name="card-add",
    ),
    path(
        "cards/add/<str:key>/",
        transaction.non_atomic_requests(views.CardRegistrationView.as_view()),
        name="card-registration",
    ),
    path("cards/<str:pk>/", views.CardDetailView.as_view(), name="card-detail"),
    path(
        "cards/<str:pk>/pay/",
        transaction.non_atomic_requests(views.CardPayView.as_view()),
        name="card-pay",
    ),
    path("schema/", SchemaView.as_view(), name="schema"),
]
