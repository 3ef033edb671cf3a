"""Invoices, their status history and the raw log of every bank message.

Status changes happen only in :mod:`golomt_payments.services`; nothing here writes a status.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    NEW = "new", _("New")
    PENDING = "pending", _("Waiting for payment")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")


class Method(models.TextChoices):
    CARD = "payment", _("Card")
    SOCIALPAY = "socialpay", _("SocialPay")
    SAVED_CARD = "token", _("Saved card")


#: What a customer may choose on the bank's hosted pages (a saved card pays without a page).
HOSTED_METHODS = (Method.CARD, Method.SOCIALPAY)


class ReturnType(models.TextChoices):
    POST = "POST", "POST"
    GET = "GET", "GET"
    MOBILE = "MOBILE", "MOBILE"


class Language(models.TextChoices):
    MN = "mn", _("Mongolian")
    EN = "en", _("English")


class Source(models.TextChoices):
    """Who brought the bank's word that changed an invoice."""

    API = "api", _("Bank API")
    REDIRECT = "redirect", _("Browser redirect")
    PUSH = "push", _("Push notification")
    ADMIN = "admin", _("Admin")
    RECONCILE = "reconcile", _("Reconcile")
    STATUS = "status", _("Status page")


class Invoice(models.Model):
    """One payment attempt at the bank. A retry is a new invoice with a fresh transaction id."""

    key = models.UUIDField(
        _("public key"),
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text=_("Unguessable id used in customer-facing URLs."),
    )
    account = models.CharField(_("merchant account"), max_length=32, default="default")
    transaction_id = models.CharField(_("transaction id"), max_length=15, unique=True)
    bank_invoice = models.CharField(_("bank invoice"), max_length=64, blank=True, db_index=True)
    amount = models.DecimalField(
        _("amount"),
        max_digits=14,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    amount_sent = models.CharField(
        _("amount as sent"),
        max_length=20,
        blank=True,
        help_text=_("The exact amount text sent to the bank and hashed in the checksum."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.NEW
    )
    method = models.CharField(
        _("payment method"), max_length=10, choices=Method.choices, default=Method.CARD
    )
    return_type = models.CharField(
        _("return type"), max_length=6, choices=ReturnType.choices, default=ReturnType.POST
    )
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, default=Language.MN
    )
    callback_url = models.CharField(_("callback URL"), max_length=500, blank=True)
    gen_token = models.BooleanField(_("save card"), default=False)
    social_deeplink = models.CharField(_("SocialPay deeplink"), max_length=500, blank=True)
    bank_code = models.CharField(_("bank code"), max_length=10, blank=True)
    bank_description = models.CharField(_("bank description"), max_length=255, blank=True)
    card_number = models.CharField(_("card number (masked)"), max_length=32, blank=True)
    card_bank = models.CharField(_("issuing bank"), max_length=100, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("customer"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="golomt_invoices",
    )
    card_token = models.ForeignKey(
        "CardToken",
        verbose_name=_("saved card"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invoices",
        help_text=_("The saved card this invoice was paid with, or that its payment saved."),
    )
    reference = models.CharField(
        _("shop reference"),
        max_length=100,
        blank=True,
        db_index=True,
        help_text=_("The shop's own order number or other reference."),
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    needs_review = models.BooleanField(
        _("needs review"),
        default=False,
        help_text=_("The bank said something that does not match this invoice."),
    )
    review_reason = models.TextField(_("review reason"), blank=True)
    holds_order = models.BooleanField(
        _("holds its order"),
        default=False,
        # In the database too: code of the previous version, still serving during a rolling
        # deploy, inserts invoices without this column.
        db_default=False,
        editable=False,
        help_text=_(
            "The one invoice of its order (merchant account and shop reference) that may be "
            "paid now, or that paid it. The database allows one per order."
        ),
    )
    duplicate_of = models.ForeignKey(
        "self",
        verbose_name=_("paid twice: the order's first payment"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="duplicates",
        help_text=_("This payment came after the order was already paid: refund it."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    reconcile_lease_until = models.DateTimeField(
        _("reconcile lease until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("A reconcile run has claimed this invoice until then; other runs skip it."),
    )

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["status", "-created_at"], name="golomt_inv_status_created"),
            models.Index(fields=["method", "-created_at"], name="golomt_inv_method_created"),
            models.Index(fields=["-created_at"], name="golomt_inv_created"),
            # The admin's account filter and its exact count; the few needing review, newest first.
            models.Index(fields=["account", "-created_at"], name="golomt_inv_account_created"),
            models.Index(
                fields=["-created_at"],
                condition=models.Q(needs_review=True),
                name="golomt_inv_review",
            ),
            # The reconciler walks the open invoices in id order; they are few among many.
            models.Index(
                fields=["id"],
                condition=models.Q(status__in=[Status.NEW, Status.PENDING]),
                name="golomt_inv_open",
            ),
        ]
        constraints = [
            # One order, one payment: at most one invoice per account and reference may be
            # payable (or have paid it) at a time, whichever host or request made it.
            models.UniqueConstraint(
                fields=["account", "reference"],
                condition=models.Q(holds_order=True),
                name="golomt_one_payment_per_order",
            ),
        ]
        permissions = [
            ("check_invoice", _("Can check invoices with the bank")),
            ("record_refund", _("Can record refunds made in the bank's merchant portal")),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in (Status.NEW, Status.PENDING)

    @property
    def is_duplicate(self) -> bool:
        """Paid after its order was already paid by another invoice: the money is to refund."""
        return self.duplicate_of_id is not None


class StatusChange(models.Model):
    """One row per real status transition, in order."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(_("from"), max_length=10, choices=Status.choices)
    to_status = models.CharField(_("to"), max_length=10, choices=Status.choices)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    bank_code = models.CharField(_("bank code"), max_length=10, blank=True)
    message = models.ForeignKey(
        "BankMessage",
        verbose_name=_("bank message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        ordering = ("created_at", "pk")

    def __str__(self) -> str:
        return (
            f"{self.get_from_status_display()} → {self.get_to_status_display()}"
            f" ({self.get_source_display()})"
        )


class Direction(models.TextChoices):
    INBOUND = "in", _("From the bank")
    OUTBOUND = "out", _("To the bank")


class MessageKind(models.TextChoices):
    REDIRECT = "redirect", _("Browser redirect")
    PUSH = "push", _("Push notification")
    INVOICE = "invoice", _("Create invoice")
    INQUIRY = "inquiry", _("Check transaction")
    PAY = "pay", _("Token payment")
    CHECK = "check", _("Check token transaction")
    CONFIRMATION = "confirmation", _("Create token")
    GET_TOKEN = "get_token", _("Get token")
    SETTLEMENT = "settlement", _("Settlement details")


class Outcome(models.TextChoices):
    RECEIVED = "received", _("Received, not processed yet")
    PROCESSED = "processed", _("Processed")
    UNCHANGED = "unchanged", _("Processed, nothing changed")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Processing failed")
    OK = "ok", _("Answered")
    ERROR = "error", _("Error")


class BankMessage(models.Model):
    """A raw record of one message to or from the bank, secrets removed.

    Inbound messages are written in their own transaction before they are processed, so a crash
    mid-way leaves a ``received`` row that a replay or the reconciler can finish.
    """

    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    kind = models.CharField(_("kind"), max_length=12, choices=MessageKind.choices)
    account = models.CharField(_("merchant account"), max_length=32, blank=True)
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    transaction_id = models.CharField(_("transaction id"), max_length=64, blank=True, db_index=True)
    endpoint = models.CharField(_("endpoint"), max_length=200, blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    body = models.TextField(_("body"), blank=True)
    #: An inbound message's body as the sender sent it: its size and SHA-256, also when what is
    #: stored of it was cut (``cut``) or not kept at all.
    body_bytes = models.PositiveIntegerField(_("body size (bytes)"), null=True, blank=True)
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64, blank=True, db_default="")
    cut = models.BooleanField(
        _("cut"),
        default=False,
        db_default=False,
        help_text=_(
            "What is stored of the body or headers was cut to the log's bounds; the size and "
            "SHA-256 are of the whole body."
        ),
    )
    response = models.TextField(_("response"), blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    checksum_valid = models.BooleanField(_("checksum valid"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.RECEIVED
    )
    error = models.TextField(_("error"), blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bank message")
        verbose_name_plural = _("bank messages")
        ordering = ("-created_at", "-pk")
        indexes = [
            models.Index(fields=["kind", "outcome", "-created_at"], name="golomt_msg_kind_outcome"),
            # Counting an invoice's rejected messages of a kind up to their bound (inbound's
            # MAX_REJECTS_KEPT), in id order: a few index entries, however many it has.
            # How many messages of a kind an invoice keeps whole (services.inbound).
            models.Index(
                fields=["invoice", "kind", "id"],
                condition=models.Q(invoice__isnull=False),
                name="golomt_msg_invoice_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.get_kind_display()} {self.transaction_id}"


class CardToken(models.Model):
    """A customer's saved card: the bank's token, which can charge it again without a page.

    The token itself is a credential: it is never shown in full on a page, the admin or the API.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="golomt_cards",
    )
    account = models.CharField(_("merchant account"), max_length=32, default="default")
    token = models.CharField(_("token"), max_length=255)
    card_number = models.CharField(_("card number (masked)"), max_length=32, blank=True)
    card_bank = models.CharField(_("issuing bank"), max_length=100, blank=True)
    card_holder = models.CharField(_("card holder"), max_length=100, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("saved"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("saved card")
        verbose_name_plural = _("saved cards")
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["account", "token"], name="golomt_card_token_unique")
        ]
        indexes = [models.Index(fields=["owner", "is_active"], name="golomt_card_owner_active")]

    def __str__(self) -> str:
        return self.card_number or str(_("saved card"))

    @property
    def token_hint(self) -> str:
        """Enough of the token for a human to tell two apart: its last four characters."""
        return f"…{self.token[-4:]}" if self.token else ""


class RegistrationStatus(models.TextChoices):
    NEW = "new", _("New")
    PENDING = "pending", _("Waiting for the customer")
    SAVED = "saved", _("Card saved")
    FAILED = "failed", _("Failed")


class CardRegistration(models.Model):
    """Adding a card without buying: the bank charges a small amount, refunds it, and gives a
    token (``/api/confirmation``, its page, then ``/api/get/token``)."""

    key = models.UUIDField(_("public key"), default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="golomt_card_registrations",
    )
    account = models.CharField(_("merchant account"), max_length=32, default="default")
    transaction_id = models.CharField(_("transaction id"), max_length=15, unique=True)
    bank_invoice = models.CharField(_("bank invoice"), max_length=64, blank=True)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=RegistrationStatus.choices,
        default=RegistrationStatus.NEW,
    )
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, default=Language.MN
    )
    callback_url = models.CharField(_("callback URL"), max_length=500, blank=True)
    bank_code = models.CharField(_("bank code"), max_length=10, blank=True)
    bank_description = models.CharField(_("bank description"), max_length=255, blank=True)
    card_token = models.ForeignKey(
        CardToken,
        verbose_name=_("saved card"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("card registration")
        verbose_name_plural = _("card registrations")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.transaction_id} ({self.get_status_display()})"


class SettledTransaction(models.Model):
    """One row of the bank's settlement report (``/api/getSettlementDetails``), as fetched."""

    account = models.CharField(_("merchant account"), max_length=32, default="default")
    bank_id = models.CharField(_("bank row id"), max_length=64)
    merchant_invoice = models.CharField(
        _("transaction id"),
        max_length=64,
        blank=True,
        db_index=True,
        help_text=_("The shop's transaction id, as the bank reports it."),
    )
    settled_on = models.DateField(_("transaction date"), db_index=True)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    resp_code = models.CharField(_("response code"), max_length=4, blank=True)
    resp_desc = models.CharField(_("response text"), max_length=255, blank=True)
    card_number = models.CharField(_("card number (masked)"), max_length=32, blank=True)
    sys_reference = models.CharField(_("RRN"), max_length=32, blank=True)
    approval_code = models.CharField(_("approval code"), max_length=16, blank=True)
    raw = models.JSONField(_("row as received"), default=dict)
    fetched_at = models.DateTimeField(_("fetched"), auto_now=True)

    class Meta:
        verbose_name = _("settled transaction")
        verbose_name_plural = _("settled transactions")
        ordering = ("-settled_on", "-pk")
        constraints = [
            models.UniqueConstraint(fields=["account", "bank_id"], name="golomt_settled_unique")
        ]

    def __str__(self) -> str:
        return f"{self.merchant_invoice or self.bank_id} {self.amount} ({self.settled_on})"


class MismatchKind(models.TextChoices):
    NOT_SETTLED = "not_settled", _("Paid here, not settled by the bank")
    NOT_PAID = "not_paid", _("Settled by the bank, not paid here")
    AMOUNT = "amount", _("Amounts differ")


class SettlementMismatch(models.Model):
    """A difference between what the shop believes was paid and what the bank settled."""

    day = models.DateField(_("day"), db_index=True)
    account = models.CharField(_("merchant account"), max_length=32, default="default")
    kind = models.CharField(_("kind"), max_length=12, choices=MismatchKind.choices)
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    settled = models.ForeignKey(
        SettledTransaction,
        verbose_name=_("settled transaction"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    expected_amount = models.DecimalField(
        _("amount here"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    settled_amount = models.DecimalField(
        _("amount settled"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    detected_at = models.DateTimeField(_("detected"), auto_now_add=True)
    resolved = models.BooleanField(_("resolved"), default=False)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("settlement mismatch")
        verbose_name_plural = _("settlement mismatches")
        ordering = ("-day", "kind", "pk")

    def __str__(self) -> str:
        return f"{self.day} {self.get_kind_display()}"


class Refund(models.Model):
    """Money given back to the customer in the bank's merchant portal, as staff recorded it.

    The bank's API has no refund call: this is the shop's record of one, kept on the invoice.
    """

    invoice = models.ForeignKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.PROTECT, related_name="refunds"
    )
    amount = models.DecimalField(
        _("amount"),
        max_digits=14,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    note = models.TextField(_("note"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ("created_at", "pk")

    def __str__(self) -> str:
        return f"{self.amount} ({self.invoice.transaction_id})"


class SignalName(models.TextChoices):
    """The app's signals, as the outbox names them (see :mod:`golomt_payments.signals`)."""

    STATUS_CHANGED = "invoice_status_changed", "invoice_status_changed"
    SUCCEEDED = "payment_succeeded", "payment_succeeded"
    FAILED = "payment_failed", "payment_failed"
    EXPIRED = "payment_expired", "payment_expired"
    DUPLICATED = "payment_duplicated", "payment_duplicated"
    REFUNDED = "payment_refunded", "payment_refunded"
    CARD_SAVED = "card_saved", "card_saved"
    CARD_REMOVED = "card_removed", "card_removed"


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Not delivered yet")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("A receiver failed")


class Notification(models.Model):
    """A signal the shop is owed (the outbox), written in the transaction of the change it
    announces, sent after the commit and marked delivered once every receiver returned.

    One never marked delivered (a worker died after the commit, a receiver raised) is sent
    again by ``golomt_reconcile`` and the Celery task once ``due_at`` has passed, with the
    same ``event_id``, until it is delivered.
    """

    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    signal = models.CharField(_("signal"), max_length=32, choices=SignalName.choices)
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    card = models.ForeignKey(
        CardToken,
        verbose_name=_("saved card"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    data = models.JSONField(_("details"), default=dict, blank=True)
    state = models.CharField(
        _("delivery"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    due_at = models.DateTimeField(
        _("next attempt"),
        help_text=_("When a sweep may send it (again) if it is still not delivered."),
    )
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ("-created_at", "-pk")
        indexes = [
            # The sweep's walk: the few not delivered, the most overdue first.
            models.Index(
                fields=["due_at"],
                condition=models.Q(state__in=["pending", "failed"]),
                name="golomt_notice_undelivered",
            ),
        ]
        permissions = [("deliver_notification", _("Can deliver notifications again"))]

    def __str__(self) -> str:
        return f"{self.signal} {self.event_id}"
