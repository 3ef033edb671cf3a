from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GolomtPaymentsConfig(AppConfig):
    name = "golomt_payments"
    verbose_name = _("Golomt payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from golomt_payments import checks  # noqa: F401 - registers the system checks
