"""The test project's URLs plus the sandbox bank, mounted as a shop would mount it."""

from django.urls import include, path

from tests.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("sandbox-bank/", include("golomt_payments.sandbox.urls")),
]
