"""The app's URLs, the admin, and the floor: the least work a push could possibly cost."""

import json

from django.contrib import admin
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from golomt_payments import bank


@csrf_exempt
@transaction.non_atomic_requests
def floor(request: HttpRequest) -> HttpResponse:
    """Parse the JSON, ask the bank once (the app's pooled client), one UPDATE. Nothing else."""
    data = json.loads(request.body)
    transaction_id = data["transactionId"]
    result = bank.client().inquiry(transaction_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE golomt_payments_invoice SET status = %s WHERE transaction_id = %s",
            ["paid" if result.error_code == "000" else "pending", transaction_id],
        )
    return JsonResponse({"detail": "processed"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("payments/", include("golomt_payments.urls")),
    path("floor/push/", floor),
]
