"""What the API reads and writes. Output is built from the models; input is validated here and
handed to the services. A card's token never appears in any of them."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from golomt_payments import services
from golomt_payments.checkout import REFERENCE_MAX_LENGTH
from golomt_payments.models import (
    CardRegistration,
    CardToken,
    Invoice,
    Language,
    Method,
    RegistrationStatus,
    ReturnType,
    Status,
)

#: The API's names for the payment methods (the model keeps the bank's words).
METHOD_NAMES: dict[str, str] = {
    Method.CARD: "card",
    Method.SOCIALPAY: "socialpay",
    Method.SAVED_CARD: "saved_card",
}
PAYMENT_METHOD_CHOICES = list(METHOD_NAMES.values())
HOSTED_METHOD_CHOICES = [("card", _("Card")), ("socialpay", _("SocialPay"))]
METHODS_BY_NAME = {"card": Method.CARD, "socialpay": Method.SOCIALPAY}

CALLBACK_MAX_LENGTH = 500  # Invoice.callback_url


@extend_schema_field(OpenApiTypes.URI)
class CallbackField(serializers.CharField):
    """Where the bank sends the customer after its page: a page of the shop's, or the app's
    deeplink (``returnType`` ``MOBILE``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", CALLBACK_MAX_LENGTH)
        kwargs.setdefault(
            "help_text",
            _(
                "The app's link the bank opens when the payer is done (return_type MOBILE, "
                "the default with a callback): a URI with the app's own scheme, e.g. "
                "myshop://payments/done, or an https app link on this site or on a host in "
                "the shop's ALLOWED_REDIRECT_HOSTS. Without it the payer comes back to the "
                "shop's return page."
            ),
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data))
        if not services.is_app_link(value):
            raise serializers.ValidationError(
                _("Enter a URI with a scheme, such as myshop://payments/done.")
            )
        try:  # an http(s) link must lead to this site or an allowed host
            services.check_callback(value, ReturnType.MOBILE)
        except services.CallbackRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class PaymentCreateSerializer(serializers.Serializer[Any]):
    order = serializers.CharField(
        max_length=REFERENCE_MAX_LENGTH,
        help_text=_("The shop's order reference; the shop decides the amount."),
    )
    method = serializers.ChoiceField(choices=HOSTED_METHOD_CHOICES, default="card")
    language = serializers.ChoiceField(
        choices=Language.choices,
        required=False,
        help_text=_("The bank page's language; default: the request's, else the shop's."),
    )
    return_type = serializers.ChoiceField(
        choices=ReturnType.choices,
        required=False,
        help_text=_(
            "How the bank hands the customer back: POST or GET to the shop's return URL (a "
            "browser), MOBILE to the app's callback deeplink. Default: MOBILE with a callback, "
            "else the shop's RETURN_TYPE."
        ),
    )
    callback = CallbackField(required=False)
    save_card = serializers.BooleanField(
        default=False, help_text=_("Keep the card for later payments (logged-in customers).")
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        callback = attrs.get("callback")
        return_type = attrs.get("return_type") or (ReturnType.MOBILE if callback else None)
        if return_type == ReturnType.MOBILE and not callback:
            raise serializers.ValidationError(
                {"callback": _("A MOBILE payment needs the app's callback deeplink.")}
            )
        if return_type not in (None, ReturnType.MOBILE) and callback:
            raise serializers.ValidationError(
                {
                    "callback": _(
                        "Only a MOBILE payment has a callback; a browser returns to the shop."
                    )
                }
            )
        attrs["return_type"] = return_type
        return attrs


class OrderSerializer(serializers.Serializer[Any]):
    """Pay for an order with a saved card."""

    order = serializers.CharField(
        max_length=REFERENCE_MAX_LENGTH,
        help_text=_("The shop's order reference; the shop decides the amount."),
    )
    language = serializers.ChoiceField(choices=Language.choices, required=False)


class CardAddSerializer(serializers.Serializer[Any]):
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    callback = CallbackField(
        required=False,
        help_text=_(
            "The app's link the bank opens when the card is saved (return type MOBILE): a URI "
            "with the app's own scheme, e.g. myshop://cards/added, or an https app link on "
            "this site or on a host in the shop's ALLOWED_REDIRECT_HOSTS. Without it the "
            "browser returns to the shop's card return page."
        ),
    )


class PaymentSerializer(serializers.ModelSerializer[Invoice]):
    """A payment as the customer's app sees it."""

    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    method = serializers.SerializerMethodField()
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, coerce_to_string=True, read_only=True
    )
    paid = serializers.SerializerMethodField()
    final = serializers.SerializerMethodField()
    description = serializers.CharField(
        source="bank_description",
        read_only=True,
        help_text=_("The bank's words about the outcome, if any."),
    )

    class Meta:
        model = Invoice
        fields = [
            "key",
            "transaction_id",
            "reference",
            "status",
            "paid",
            "final",
            "method",
            "amount",
            "description",
            "card_number",
            "created_at",
            "paid_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=PAYMENT_METHOD_CHOICES))
    def get_method(self, invoice: Invoice) -> str:
        return METHOD_NAMES.get(invoice.method, invoice.method)

    def get_paid(self, invoice: Invoice) -> bool:
        return invoice.status == Status.PAID

    def get_final(self, invoice: Invoice) -> bool:
        """Paid, failed or expired: the app may stop asking."""
        return not invoice.is_open


class PaymentCreatedSerializer(PaymentSerializer):
    """A payment just created: where to send the customer to pay it."""

    payment_url = serializers.SerializerMethodField(
        help_text=_("The bank's hosted page for this payment (card form or SocialPay).")
    )
    socialpay_deeplink = serializers.SerializerMethodField(
        help_text=_("For SocialPay: the link that opens the SocialPay app on the phone.")
    )

    class Meta(PaymentSerializer.Meta):
        fields = [*PaymentSerializer.Meta.fields, "payment_url", "socialpay_deeplink"]
        read_only_fields = fields

    def get_payment_url(self, invoice: Invoice) -> str:
        return str(self.context["payment_url"])

    def get_socialpay_deeplink(self, invoice: Invoice) -> str | None:
        """The bank's deeplink, unless it could run a script where it is opened (the bank's
        checksum does not cover it)."""
        return services.socialpay_deeplink(invoice) or None


class CardSerializer(serializers.ModelSerializer[CardToken]):
    """A saved card, as the customer may see it: never its token."""

    bank = serializers.CharField(source="card_bank", read_only=True)
    holder = serializers.CharField(source="card_holder", read_only=True)

    class Meta:
        model = CardToken
        fields = ["id", "card_number", "bank", "holder", "created_at", "last_used_at"]
        read_only_fields = fields


class CardRegistrationSerializer(serializers.ModelSerializer[CardRegistration]):
    """Adding a card without buying: its state and, once saved, the card."""

    status = serializers.ChoiceField(choices=RegistrationStatus.choices, read_only=True)
    card = CardSerializer(source="card_token", read_only=True, allow_null=True)
    description = serializers.CharField(
        source="bank_description",
        read_only=True,
        help_text=_("The bank's words about the outcome, if any."),
    )

    class Meta:
        model = CardRegistration
        fields = ["key", "status", "card", "description", "created_at"]
        read_only_fields = fields


class CardRegistrationStartedSerializer(CardRegistrationSerializer):
    confirmation_url = serializers.SerializerMethodField(
        help_text=_("The bank's card-saving page to send the customer to.")
    )

    class Meta(CardRegistrationSerializer.Meta):
        fields = [*CardRegistrationSerializer.Meta.fields, "confirmation_url"]
        read_only_fields = fields

    def get_confirmation_url(self, registration: CardRegistration) -> str:
        return str(self.context["confirmation_url"])


class ErrorSerializer(serializers.Serializer[Any]):
    """DRF's error body: what went wrong, for a human."""

    detail = serializers.CharField()


class OrderConflictSerializer(serializers.Serializer[Any]):
    """Why no payment was started for the order: nothing was sent to the bank."""

    detail = serializers.CharField()
    code = serializers.ChoiceField(
        choices=[
            ("already_paid", _("The order is paid.")),
            ("amount_changed", _("A payment of the order for another amount is under way.")),
            ("in_progress", _("A saved-card payment of the order is under way.")),
        ]
    )
    payment = PaymentSerializer(
        help_text=_("The order's payment: the one that paid it, or the one under way.")
    )
