"""The simulated bank's books: every transaction it was asked about, and every push it sent.

Kept in the database so the sandbox answers the same after a restart, as the real bank would.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    PAYMENT = "payment", _("Payment (hosted page)")
    TOKEN_PAYMENT = "token_payment", _("Token payment")
    CONFIRMATION = "confirmation", _("Card token (confirmation)")


class State(models.TextChoices):
    PENDING = "pending", _("Waiting for the customer")
    SENT = "sent", _("Result sent")
    CANCELLED = "cancelled", _("Cancelled by the page timer")


class Transaction(models.Model):
    """One transactionId the merchant sent, with the outcome the bank will report for it."""

    invoice = models.UUIDField(_("bank invoice"), default=uuid.uuid4, unique=True, editable=False)
    transaction_id = models.CharField(_("transaction id"), max_length=15, unique=True)
    kind = models.CharField(_("kind"), max_length=13, choices=Kind.choices)
    amount = models.CharField(
        _("amount"),
        max_length=32,
        blank=True,
        help_text=_("As the merchant sent it; echoed back normalised (1.00 becomes 1)."),
    )
    return_type = models.CharField(_("return type"), max_length=6, blank=True)
    callback = models.TextField(_("callback"), blank=True)
    gen_token = models.BooleanField(_("create a card token"), default=False)
    social_deeplink = models.BooleanField(_("SocialPay deeplink asked"), default=False)
    lang = models.CharField(_("language"), max_length=2, blank=True)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.PENDING
    )
    error_code = models.CharField(
        _("error code"), max_length=3, blank=True, help_text=_("Empty until paid or declined.")
    )
    error_desc = models.CharField(_("error description"), max_length=255, blank=True)
    card_number = models.CharField(_("card number (masked)"), max_length=32, blank=True)
    card_holder = models.CharField(_("card holder"), max_length=64, blank=True)
    token = models.CharField(_("card token"), max_length=64, blank=True, db_index=True)
    behaviour = models.CharField(_("test behaviour"), max_length=20, blank=True)
    paid_via = models.CharField(_("paid via"), max_length=12, blank=True)
    approval_code = models.CharField(_("approval code"), max_length=6, blank=True)
    sys_reference = models.CharField(_("RRN"), max_length=12, blank=True)
    failing_reads_left = models.PositiveIntegerField(_("inquiries still answering 500"), default=0)
    slow_reads_left = models.PositiveIntegerField(_("inquiries still answering slowly"), default=0)
    read_count = models.PositiveIntegerField(_("inquiries answered"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("sandbox transaction")
        verbose_name_plural = _("sandbox transactions")
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"{self.transaction_id} ({self.get_kind_display()}, {self.get_state_display()})"

    def deadline(self, timeout_seconds: int) -> datetime:
        """When the hosted page's timer runs out."""
        return self.created_at + timedelta(seconds=timeout_seconds)

    @property
    def is_paid(self) -> bool:
        return self.error_code == "000"


class PushState(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENDING = "sending", _("Being sent")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class PushDelivery(models.Model):
    """One push notification the bank sends (or will send) to the merchant, and its outcome."""

    transaction = models.ForeignKey(
        Transaction,
        verbose_name=_("transaction"),
        on_delete=models.CASCADE,
        related_name="pushes",
    )
    url = models.TextField(_("URL"))
    body = models.TextField(_("body"), help_text=_("The JSON exactly as sent."))
    due_at = models.DateTimeField(_("due"))
    state = models.CharField(
        _("state"), max_length=10, choices=PushState.choices, default=PushState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    response = models.TextField(_("response"), blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("sandbox push notification")
        verbose_name_plural = _("sandbox push notifications")
        ordering = ("due_at", "pk")

    def __str__(self) -> str:
        return f"push #{self.pk} ({self.get_state_display()})"
