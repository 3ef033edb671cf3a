from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GolomtSandboxConfig(AppConfig):
    """The simulated bank: a separate app so a production project simply leaves it out."""

    name = "golomt_payments.sandbox"
    label = "golomt_sandbox"
    verbose_name = _("Golomt sandbox bank")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from golomt_payments.sandbox import checks  # noqa: F401 - registers the system checks
