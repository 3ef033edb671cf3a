"""The API's views: parse the body, call a service, render JSON. No business rules here.

Every view answers JSON only. The customer is ``request.user``; a customer only ever sees and
acts on their own payments and cards (anybody else's is a 404). Authentication and
permissions are the shop's, read from the settings at each request (``override_settings``
works); before them, ``API_THROTTLE_RATE`` requests per client address. A bank that refuses
answers 502, one that does not answer 503; nothing charged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, BasicAuthentication
from rest_framework.exceptions import (
    APIException,
    NotAuthenticated,
    NotFound,
    ParseError,
    Throttled,
)
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from golomt_payments import conf, services
from golomt_payments.api import orders
from golomt_payments.api.serializers import (
    METHODS_BY_NAME,
    CardAddSerializer,
    CardRegistrationSerializer,
    CardRegistrationStartedSerializer,
    CardSerializer,
    ErrorSerializer,
    OrderConflictSerializer,
    OrderSerializer,
    PaymentCreatedSerializer,
    PaymentCreateSerializer,
    PaymentSerializer,
)
from golomt_payments.api.throttling import ClientAddressThrottle, StatusAddressThrottle
from golomt_payments.gateway import BankRefused, GolomtError
from golomt_payments.models import (
    CardRegistration,
    CardToken,
    Invoice,
    Language,
    ReturnType,
    Source,
)
from golomt_payments.views import callback_url, card_callback_url

logger = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])

TAG_PAYMENTS = "payments"
TAG_CARDS = "cards"
NO_STORE = {"Cache-Control": "no-store"}


class BankRefusedError(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = _("The bank refused this request. Nothing was charged.")
    default_code = "bank_refused"


class BankUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _(
        "The bank is not answering right now. Nothing was charged; please try again in a few "
        "minutes."
    )
    default_code = "bank_unavailable"


def described(**kwargs: Any) -> Callable[[_F], _F]:
    """``extend_schema`` built on drf-spectacular's ``AutoSchema``: by itself it builds on the
    shop's ``DEFAULT_SCHEMA_CLASS``, DRF's own unless the shop configured drf-spectacular.

    Every operation of a ``GolomtAPIView`` may be throttled: its 429 is added here.
    """
    kwargs["responses"] = {**kwargs["responses"], **THROTTLED}
    kwargs["parameters"] = [*kwargs.get("parameters", ()), RETRY_AFTER]

    def decorator(method: _F) -> _F:
        method.schema = AutoSchema  # type: ignore[attr-defined]
        return extend_schema(**kwargs)(method)

    return decorator


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


NOT_ALLOWED = {
    401: _error("Not authenticated (with an authentication that asks for credentials)."),
    403: _error("Not authenticated, or the shop's permissions refuse."),
}
NOT_FOUND = {404: _error("No such object of this customer's.")}
BAD_INPUT = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT, description="Invalid input: a list of messages for each field."
    )
}
NO_ORDER = {
    404: _error("No such order, or no such card of this customer's."),
    501: _error("The shop has not enabled payments over the API (API_ORDER_RESOLVER)."),
}
BANK_ERRORS = {
    502: _error("The bank refused; nothing was charged."),
    503: _error(
        "The bank did not answer, or is still opening this order's payment for another "
        "request; nothing was charged. Try again later."
    ),
}
ORDER_CONFLICT = {
    409: OpenApiResponse(
        OrderConflictSerializer,
        description=(
            "One payment per order: the order is already paid, or a payment of it for another "
            "amount (or with a saved card) is under way. Nothing was charged."
        ),
    )
}
THROTTLED = {
    429: _error(
        "Too many requests from this address (API_THROTTLE_RATE), counted before "
        "authentication. Try again after Retry-After seconds."
    )
}
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds until this address may ask again.",
)


# The path's segments are taken as they come (``<str:…>``) and read here, so a malformed one
# is the same JSON 404 as a missing object rather than Django's HTML page; the schema still
# says what they are.
KEY = OpenApiParameter("key", OpenApiTypes.UUID, OpenApiParameter.PATH)
CARD_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_ID = 2**63 - 1  # the largest primary key a database holds


def _path_key(segment: str) -> UUID:
    """A ``<key>`` of the path: a UUID as ``reverse()`` writes it, else 404."""
    if not _UUID.fullmatch(segment):
        raise NotFound
    return UUID(segment)


def _path_id(segment: str) -> int:
    """A card's ``<pk>`` of the path: ASCII digits (``"²".isdigit()`` is true) that fit a
    primary key, else 404."""
    if not (segment.isascii() and segment.isdigit() and len(segment) <= len(str(_MAX_ID))):
        raise NotFound
    number = int(segment)
    if number > _MAX_ID:
        raise NotFound
    return number


class _JSONParser(JSONParser):
    """DRF's JSON parser, with JSON nested too deep for Python a 400 like any other bad JSON."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deep.")) from None


class GolomtAPIView(APIView):
    """JSON in and out, with the shop's authentication and permissions from the settings, and
    ``API_THROTTLE_RATE`` requests per client address counted before any of them."""

    schema = AutoSchema()  # whatever the shop's DEFAULT_SCHEMA_CLASS
    renderer_classes = [JSONRenderer]
    parser_classes = [_JSONParser]
    address_throttle_class: type[ClientAddressThrottle] = ClientAddressThrottle

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """The address's count first: DRF authenticates before its own throttles, and an
        authentication may hash a password (``BasicAuthentication``) for anybody who asks."""
        throttle = self.address_throttle_class()
        if not throttle.allow_request(request, self):
            raise Throttled(throttle.wait())
        super().initial(request, *args, **kwargs)

    def get_authenticators(self) -> list[BaseAuthentication]:
        classes = conf.get().api_authentication_classes
        if classes is None:  # DRF's, read now: the class attribute was fixed at import
            # Imported classes at run time, whatever the stubs say (they type the setting).
            defaults = cast(list[type], api_settings.DEFAULT_AUTHENTICATION_CLASSES)
            # Without Basic: it hashes a password for anybody who sends a header. A shop that
            # wants it names it in API_AUTHENTICATION_CLASSES.
            classes = tuple(cls for cls in defaults if not issubclass(cls, BasicAuthentication))
        return [cls() for cls in classes]

    def get_permissions(self) -> list[BasePermission]:
        return [cls() for cls in conf.get().api_permission_classes]


def _customer(request: Request) -> AbstractBaseUser | None:
    """The authenticated shop user, or ``None`` where the shop's permissions let anyone in."""
    user = request.user
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def _owner(request: Request) -> AbstractBaseUser:
    """Saved cards always belong to somebody: an anonymous caller has none."""
    customer = _customer(request)
    if customer is None:
        raise NotAuthenticated
    return customer


def _language(request: Request, data: dict[str, Any]) -> str:
    """The body's ``language``, else the request's (LocaleMiddleware), else the setting's."""
    language = data.get("language") or (get_language() or "")[:2]
    return language if language in Language.values else conf.get().default_language


class OrderStarting(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _(
        "The bank is still opening this order's payment for another request. Nothing was "
        "charged; please try again in a moment."
    )
    default_code = "order_busy"


def _order_conflict(exc: services.PaymentError) -> Response:
    """The order's rule said no: 409 with the order's payment, or 503 while another request
    is still starting it."""
    if isinstance(exc, services.OrderBusy):
        raise OrderStarting from None
    if isinstance(exc, services.OrderAlreadyPaid):
        code, detail = "already_paid", _("This order is already paid.")
    elif isinstance(exc, services.OrderAmountChanged):
        code = "amount_changed"
        detail = _("A payment of this order for another amount is under way.")
    elif isinstance(exc, services.OrderInProgress):
        code, detail = "in_progress", _("A saved-card payment of this order is under way.")
    else:
        raise Http404 from None  # a removed card
    body = {"detail": detail, "code": code, "payment": PaymentSerializer(exc.invoice).data}
    return Response(body, status=status.HTTP_409_CONFLICT, headers=NO_STORE)


def _bank_error(exc: GolomtError, what: str) -> APIException:
    if isinstance(exc, BankRefused):
        logger.error("Bank refused to %s: %s", what, exc)
        return BankRefusedError()
    logger.error("Could not %s at the bank: %s", what, exc)
    return BankUnavailable()


def _payment_location(invoice: Invoice) -> str:
    return reverse("golomt_payments:api:payment-detail", kwargs={"key": invoice.key})


# --- payments ---------------------------------------------------------------------------------


class PaymentListView(GolomtAPIView):
    @described(
        operation_id="payments_create",
        tags=[TAG_PAYMENTS],
        summary="Start a payment",
        description=(
            "Creates an invoice at the bank for the shop's order. The shop's "
            "API_ORDER_RESOLVER decides the amount; the client never does. Send the customer "
            "to payment_url, or for SocialPay open socialpay_deeplink on the phone. With "
            "return_type MOBILE the bank opens the app's callback deeplink when the customer "
            "is done: a hint only. Ask GET payments/{key}/ for the result. One payment per "
            "order: while the order has a payment of this method open, that payment is the "
            "answer (200, nothing sent to the bank); another method replaces it once the bank "
            "says it is unpaid."
        ),
        request=PaymentCreateSerializer,
        responses={
            201: PaymentCreatedSerializer,
            200: OpenApiResponse(
                PaymentCreatedSerializer,
                description="The order's payment already under way: send the customer there.",
            ),
            **BAD_INPUT,
            **NOT_ALLOWED,
            **NO_ORDER,
            **ORDER_CONFLICT,
            **BANK_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = PaymentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        customer = _customer(request)
        if data["save_card"] and customer is None:
            return Response(
                {"save_card": [_("Log in to save a card.")]}, status=status.HTTP_400_BAD_REQUEST
            )
        order = orders.resolve(request, data)
        mobile = data["return_type"] == ReturnType.MOBILE
        try:
            opened = services.open_payment(
                amount=order.amount,
                reference=order.reference,
                account=order.account,
                metadata=order.metadata,
                method=METHODS_BY_NAME[data["method"]],
                language=_language(request, data),
                return_type=data["return_type"],
                callback_url=data["callback"] if mobile else callback_url(request._request),
                gen_token=data["save_card"],
                owner=customer,
            )
        except services.PaymentError as exc:
            return _order_conflict(exc)
        except GolomtError as exc:
            raise _bank_error(exc, "create an invoice") from None
        invoice = opened.invoice
        output = PaymentCreatedSerializer(
            invoice, context={"payment_url": services.payment_url(invoice)}
        )
        headers = {"Location": _payment_location(invoice), **NO_STORE}
        answer = status.HTTP_201_CREATED if opened.created else status.HTTP_200_OK
        return Response(output.data, status=answer, headers=headers)


def own_invoices(request: Request) -> QuerySet[Invoice]:
    """The caller's invoices; an anonymous caller (if the shop allows one) has only those
    without a customer, which it can address by their unguessable key alone."""
    customer = _customer(request)
    if customer is None:
        return Invoice.objects.filter(owner__isnull=True)
    return Invoice.objects.filter(owner_id=customer.pk)


class PaymentDetailView(GolomtAPIView):
    """A payment's status, throttled apart from the other endpoints (``StatusAddressThrottle``:
    the same rate, its own count): not unthrottled, since it authenticates like the others and
    would otherwise be the way to make the server hash passwords; apart, since an app polls it
    while the customer pays and must not use up what it may spend on starting payments."""

    address_throttle_class = StatusAddressThrottle

    @described(
        operation_id="payments_retrieve",
        tags=[TAG_PAYMENTS],
        summary="A payment's status",
        description=(
            "While the payment is open, asks the bank itself (at most once per "
            "STATUS_CHECK_INTERVAL_SECONDS), so an app polling here learns the result even "
            "when the bank's push and the redirect are both lost. Stop when final is true."
        ),
        parameters=[KEY],
        responses={200: PaymentSerializer, **NOT_ALLOWED, **NOT_FOUND},
    )
    def get(self, request: Request, key: str) -> Response:
        invoice = own_invoices(request).filter(key=_path_key(key)).first()
        if invoice is None:
            raise Http404
        if services.awaits_bank(invoice):
            try:
                invoice = services.refresh_if_due(
                    invoice, source=Source.STATUS, within=services.customer_wait()
                ).invoice
            except GolomtError as exc:  # the app asks again; the reconciler is there too
                logger.info("Status check of %s failed: %s", invoice.transaction_id, exc)
        return Response(PaymentSerializer(invoice).data, headers=NO_STORE)


# --- saved cards ------------------------------------------------------------------------------


def _own_card(request: Request, pk: str) -> CardToken:
    card = services.active_cards(_owner(request)).filter(pk=_path_id(pk)).first()
    if card is None:
        raise Http404
    return card


class CardListView(GolomtAPIView):
    @described(
        operation_id="cards_list",
        tags=[TAG_CARDS],
        summary="The customer's saved cards",
        responses={200: CardSerializer(many=True), **NOT_ALLOWED},
    )
    def get(self, request: Request) -> Response:
        cards = services.active_cards(_owner(request))
        return Response(CardSerializer(cards, many=True).data, headers=NO_STORE)


class CardDetailView(GolomtAPIView):
    @described(
        operation_id="cards_destroy",
        tags=[TAG_CARDS],
        summary="Remove a saved card",
        parameters=[CARD_ID],
        responses={204: OpenApiResponse(description="Removed."), **NOT_ALLOWED, **NOT_FOUND},
    )
    def delete(self, request: Request, pk: str) -> Response:
        services.remove_card(_own_card(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CardPayView(GolomtAPIView):
    @described(
        operation_id="cards_pay",
        tags=[TAG_CARDS],
        summary="Pay for an order with a saved card",
        description=(
            "Charges the card at once: no bank page. The answer is the payment, paid or "
            "failed, or pending when the bank's answer was lost (ask GET payments/{key}/ "
            "later). One payment per order: while a payment of the order is under way (with "
            "any card, or on the bank's page), it is the answer (200) and nothing is charged; "
            "so is this card's payment of the order the bank declined in the last 30 seconds. "
            "A paid order is a 409."
        ),
        request=OrderSerializer,
        parameters=[CARD_ID],
        responses={
            201: PaymentSerializer,
            200: OpenApiResponse(
                PaymentSerializer,
                description=(
                    "The order's payment already under way, or this card's decline of moments "
                    "ago; nothing was charged."
                ),
            ),
            **BAD_INPUT,
            **NOT_ALLOWED,
            **NO_ORDER,
            **ORDER_CONFLICT,
            **BANK_ERRORS,
        },
    )
    def post(self, request: Request, pk: str) -> Response:
        card = _own_card(request, pk)
        body = OrderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = {**body.validated_data, "card": card.pk}
        order = orders.resolve(request, data)
        if order.account != card.account:
            return Response(
                {"detail": _("This card cannot pay for this order.")},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            opened = services.charge_saved_card(
                card,
                amount=order.amount,
                reference=order.reference,
                metadata=order.metadata,
                language=_language(request, data),
            )
        except services.PaymentError as exc:
            return _order_conflict(exc)
        except GolomtError as exc:
            raise _bank_error(exc, "pay with a saved card") from None
        invoice = opened.invoice
        headers = {"Location": _payment_location(invoice), **NO_STORE}
        return Response(
            PaymentSerializer(invoice).data,
            status=status.HTTP_201_CREATED if opened.created else status.HTTP_200_OK,
            headers=headers,
        )


class CardAddView(GolomtAPIView):
    @described(
        operation_id="cards_add",
        tags=[TAG_CARDS],
        summary="Start adding a card",
        description=(
            "Asks the bank for its card-saving page (a small amount is charged and refunded). "
            "Send the customer to confirmation_url, then ask GET cards/add/{key}/ for the "
            "outcome."
        ),
        request=CardAddSerializer,
        responses={
            201: CardRegistrationStartedSerializer,
            **BAD_INPUT,
            **NOT_ALLOWED,
            **BANK_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        owner = _owner(request)
        body = CardAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        callback = data.get("callback")
        try:
            registration = services.start_card_registration(
                owner,
                callback_url=callback or card_callback_url(request._request),
                return_type=ReturnType.MOBILE if callback else None,
                language=_language(request, data),
            )
        except GolomtError as exc:
            raise _bank_error(exc, "start saving a card") from None
        output = CardRegistrationStartedSerializer(
            registration, context={"confirmation_url": services.registration_url(registration)}
        )
        headers = {
            "Location": reverse(
                "golomt_payments:api:card-registration", kwargs={"key": registration.key}
            ),
            **NO_STORE,
        }
        return Response(output.data, status=status.HTTP_201_CREATED, headers=headers)


class CardRegistrationView(GolomtAPIView):
    @described(
        operation_id="cards_add_retrieve",
        tags=[TAG_CARDS],
        summary="The outcome of adding a card",
        description=(
            "While the bank has not answered, asks it (at most once per "
            "STATUS_CHECK_INTERVAL_SECONDS); the card appears once saved."
        ),
        parameters=[KEY],
        responses={200: CardRegistrationSerializer, **NOT_ALLOWED, **NOT_FOUND},
    )
    def get(self, request: Request, key: str) -> Response:
        registrations = CardRegistration.objects.filter(owner_id=_owner(request).pk)
        registration = registrations.filter(key=_path_key(key)).first()
        if registration is None:
            raise Http404
        try:
            services.finish_card_registration_if_due(registration)
        except GolomtError as exc:
            logger.info("Get token for %s failed: %s", registration.transaction_id, exc)
        return Response(CardRegistrationSerializer(registration).data, headers=NO_STORE)


__all__ = [
    "BankRefusedError",
    "BankUnavailable",
    "CardAddView",
    "CardDetailView",
    "CardListView",
    "CardPayView",
    "CardRegistrationView",
    "GolomtAPIView",
    "PaymentDetailView",
    "PaymentListView",
    "own_invoices",
]
