"""Thin adapters between HTTP and the services: parse, call, render. No business rules here."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied, SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from golomt_payments import conf, limits, qr, services
from golomt_payments.checkout import CheckoutRequest, read_checkout
from golomt_payments.gateway import BankRefused, GolomtError
from golomt_payments.models import (
    HOSTED_METHODS,
    CardRegistration,
    CardToken,
    Invoice,
    Language,
    MessageKind,
    Method,
    Source,
    Status,
)
from golomt_payments.services.inbound import MAX_REDIRECT_BYTES

logger = logging.getLogger(__name__)
_View = TypeVar("_View", bound=Callable[..., HttpResponse])


def client_ip(request: HttpRequest) -> str | None:
    """The sender's address, honouring ``X-Forwarded-For`` only from the trusted proxies."""
    remote = request.META.get("REMOTE_ADDR") or None
    hops = conf.get().trusted_proxy_count
    if hops:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            remote = forwarded[-hops]
    return _address(remote)


def _address(text: str | None) -> str | None:
    """An address as a proxy may write it (``203.0.113.7``, ``203.0.113.7:5678``,
    ``[2001:db8::1]:443``), without its port; ``None`` when it is none."""
    if not text:
        return None
    host = text
    if text.startswith("["):
        host = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        host = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def callback_url(request: HttpRequest) -> str:
    """The absolute URL of the return view, as the bank must call it."""
    return _absolute(request, reverse("golomt_payments:return"))


def card_callback_url(request: HttpRequest) -> str:
    """The absolute URL of the card-saving page's return view, as the bank must call it."""
    return _absolute(request, reverse("golomt_payments:card_return"))


def _absolute(request: HttpRequest, path: str) -> str:
    base = conf.get().callback_base_url
    return f"{base}{path}" if base else request.build_absolute_uri(path)


def _customer(request: HttpRequest) -> AbstractBaseUser | None:
    """The logged-in shop user, or ``None`` for an anonymous visitor."""
    user = request.user
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def _owner(request: HttpRequest) -> AbstractBaseUser:
    """The logged-in shop user of a ``login_required`` view."""
    customer = _customer(request)
    if customer is None:
        raise PermissionDenied
    return customer


def _language(request: HttpRequest) -> str:
    """The page language: the form's ``lang``, else the request's (LocaleMiddleware), else
    ``LANGUAGE_CODE``; the setting's default when the bank has no page in it."""
    language = request.POST.get("lang") or (get_language() or "")[:2]
    return language if language in Language.values else conf.get().default_language


def _error_page(request: HttpRequest, status: int, title: str, detail: str) -> HttpResponse:
    return render(
        request,
        "golomt_payments/error.html",
        {"title": title, "detail": detail},
        status=status,
    )


def _bank_error_page(request: HttpRequest, exc: GolomtError, refused: str) -> HttpResponse:
    """Nothing was charged: 502 when the bank refused (``refused`` says what), 503 when it
    did not answer."""
    logger.error("%s: %s", request.path, exc)
    if isinstance(exc, BankRefused):
        return _error_page(request, 502, refused, _("Nothing was charged. Please try again later."))
    return _error_page(
        request,
        503,
        _("The bank is not answering right now."),
        _("Nothing was charged. Please try again in a few minutes."),
    )


#: Each scope's requests per minute from one client address.
_LIMITS: dict[str, Callable[[conf.GolomtSettings], int]] = {
    "return": lambda golomt: golomt.return_requests_per_minute,
    "poll": lambda golomt: golomt.poll_requests_per_minute,
    "checkout": lambda golomt: golomt.checkout_requests_per_minute,
}


def _throttled(scope: str, json: bool = False, kind: str = "") -> Callable[[_View], _View]:
    """At most ``RETURN_REQUESTS_PER_MINUTE`` (scope ``"return"``), ``POLL_REQUESTS_PER_MINUTE``
    (``"poll"``) or ``CHECKOUT_REQUESTS_PER_MINUTE`` (``"checkout"``) requests a minute from
    one client address, else 429. The first refused request of a minute from a bank message
    endpoint (``kind``) is logged compactly (no body, no headers), the rest only counted."""
    limit_of = _LIMITS[scope]

    def decorate(view: _View) -> _View:
        @wraps(view)
        def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit = limit_of(conf.get())
            address = client_ip(request)
            count = limits.count_request(scope, address, limit)
            if not count.over:
                return view(request, *args, **kwargs)
            reason = f"throttled: over {limit} requests a minute from this address"
            _note_throttled(count, request.path, address, reason, kind)
            headers = {"Retry-After": str(count.retry_after), "Cache-Control": "no-store"}
            if json:
                return JsonResponse({"detail": reason}, status=429, headers=headers)
            response = _error_page(
                request,
                429,
                _("Too many requests from your address."),
                _("Please wait a minute and reload this page."),
            )
            for name, value in headers.items():
                response[name] = value
            return response

        return limited  # type: ignore[return-value]

    return decorate


def _note_throttled(
    count: limits.Count, path: str, address: str | None, reason: str, kind: str
) -> None:
    """Log the first refused request of a window: a warning, and for a bank message endpoint
    (``kind``) a compact row in the message log."""
    if count.over != 1:
        return
    logger.warning("%s from %s: %s", path, address, reason)
    if kind:
        services.log_refused(kind, remote_addr=address, endpoint=path, reason=reason)


@require_POST
@transaction.non_atomic_requests
@_throttled("checkout")
def checkout(request: HttpRequest) -> HttpResponse:
    """Pay for the shop's order from its signed checkout form: to the bank's page of the
    order's payment, started here unless one is open already (a second tab, a replayed form),
    or to the page that says the order is paid."""
    try:
        order = read_checkout(request.POST.get("payload", ""))
    except signing.BadSignature:
        return _error_page(
            request,
            400,
            _("This checkout form is invalid or has expired."),
            _("Please go back to the shop and try again."),
        )
    method = request.POST.get("method", Method.CARD)
    language = _language(request)
    customer = _customer(request)
    if method == Method.SAVED_CARD:
        return _pay_with_saved_card(request, order, customer, language)
    if method not in HOSTED_METHODS:
        return _error_page(request, 400, _("Unknown payment method."), "")
    # A card is saved only when the shop offered it (signed), for a logged-in customer who
    # ticked the box: an anonymous visitor's card would belong to nobody.
    save_card = order.gen_token and customer is not None and bool(request.POST.get("save_card"))
    try:
        invoice = services.start_payment(
            amount=order.amount,
            reference=order.reference,
            account=order.account,
            gen_token=save_card,
            metadata=order.metadata,
            method=method,
            language=language,
            callback_url=callback_url(request),
            owner=customer,
        )
    except services.PaymentError as exc:
        return _refused_payment(request, exc)
    except GolomtError as exc:
        return _bank_error_page(request, exc, _("The bank could not start this payment."))
    return _continue(request, invoice)


def _refused_payment(request: HttpRequest, exc: services.PaymentError) -> HttpResponse:
    """What the services refused, as a page: nothing was charged."""
    if isinstance(exc, services.OrderAlreadyPaid | services.OrderInProgress):
        return HttpResponseRedirect(outcome_url(request, exc.invoice), status=303)
    if isinstance(exc, services.OrderAmountChanged):
        return _error_page(
            request,
            409,
            _("This order already has a payment under way for another amount."),
            _(
                "Nothing was charged. Finish or close that payment first, or ask the shop "
                "to check your order."
            ),
        )
    if isinstance(exc, services.OrderBusy):
        return _error_page(
            request,
            503,
            _("The bank is still opening this order's payment page."),
            _("Nothing was charged. Please try again in a moment."),
        )
    return _error_page(  # CardRemoved
        request,
        404,
        _("This saved card is not available."),
        _("Nothing was charged. Please choose another card or payment method."),
    )


def _form_reference(payload: str) -> str:
    return "form:" + hashlib.sha256(payload.encode()).hexdigest()[:40]


def _pay_with_saved_card(
    request: HttpRequest,
    order: CheckoutRequest,
    customer: AbstractBaseUser | None,
    language: str,
) -> HttpResponse:
    """Charge one of the customer's own saved cards, then show the outcome (no bank page)."""
    if customer is None:
        return _error_page(
            request,
            403,
            _("Please log in to pay with a saved card."),
            _("Nothing was charged."),
        )
    pk = request.POST.get("card", "")
    card = (
        services.active_cards(customer, account=order.account).filter(pk=int(pk)).first()
        if pk.isascii() and pk.isdigit() and len(pk) < 19
        else None
    )
    try:
        if card is None:
            raise services.CardRemoved("no such card")
        invoice = services.pay_with_saved_card(
            card,
            amount=order.amount,
            # Without the shop's reference, the signed form itself (unique per rendering)
            # keeps a double-click from charging twice.
            reference=order.reference or _form_reference(request.POST.get("payload", "")),
            metadata=order.metadata,
            language=language,
        )
    except services.PaymentError as exc:
        return _refused_payment(request, exc)
    except GolomtError as exc:
        return _bank_error_page(request, exc, _("The bank could not start this payment."))
    return _continue(request, invoice)  # its outcome, or the order's bank page still open


def _returned(request: HttpRequest) -> dict[str, Any]:
    """What the bank's browser redirect carried (GET query or POST form), to be logged as it
    came: at most :data:`~golomt_payments.services.inbound.MAX_REDIRECT_BYTES` of it, with the
    size and SHA-256 of the whole. A larger one is none of the bank's: its fields are not read."""
    params: Mapping[str, str] = {}
    if request.method == "POST":
        body = limits.read_body(request, MAX_REDIRECT_BYTES)
        raw, size, sha256 = body.data, body.size, body.sha256
        if body.problem is None:
            params = _fields(request, raw)
    else:
        raw = request.META.get("QUERY_STRING", "").encode("iso-8859-1", errors="replace")
        size, sha256 = len(raw), hashlib.sha256(raw).hexdigest()
        if size <= MAX_REDIRECT_BYTES:
            params = _fields(request, None)
    return {
        "params": params,
        "raw": raw[:MAX_REDIRECT_BYTES],
        "size": size,
        "sha256": sha256,
        "headers": dict(request.headers),
        "remote_addr": client_ip(request),
        "endpoint": request.path,
    }


def _fields(request: HttpRequest, form: bytes | None) -> dict[str, str]:
    """The fields of a return (its query string, or its ``form`` body); none when they cannot
    be read (an unknown charset, too many fields, a broken multipart body): the message is
    still logged, and refused for want of an invoice."""
    try:
        if form is None:
            fields: Mapping[str, str] = request.GET
        elif request.content_type in ("", "application/x-www-form-urlencoded"):
            fields = QueryDict(form, encoding=request.encoding)
        else:
            fields = request.POST
        return {key: fields.get(key, "") for key in fields}
    except (LookupError, UnicodeError, ValueError, SuspiciousOperation, MultiPartParserError):
        return {}


@csrf_exempt
@require_http_methods(["GET", "POST"])
@transaction.non_atomic_requests
@_throttled("return", kind=MessageKind.REDIRECT)
def bank_return(request: HttpRequest) -> HttpResponse:
    """Where the bank sends the browser back. Confirms with the bank, then shows the result.

    CSRF-exempt and sessionless: the bank's POST arrives cross-site without the shop's cookies.
    """
    result = services.receive_redirect(**_returned(request))
    if result.invoice is None:
        return _error_page(
            request,
            400,
            _("We could not find this payment."),
            _("If you were charged, the shop will see it; please contact the shop."),
        )
    return redirect(outcome_url(request, result.invoice), permanent=False)


def outcome_url(request: HttpRequest, invoice: Invoice) -> str:
    """The shop's configured success/failure URL when safe, else the app's own result page."""
    golomt = conf.get()
    templates: dict[str, str] = {
        Status.PAID: golomt.success_url,
        Status.FAILED: golomt.failure_url,
        Status.EXPIRED: golomt.failure_url,
    }
    template = templates.get(invoice.status, "")
    own: str = reverse("golomt_payments:result", kwargs={"key": invoice.key})
    if not template:
        return own
    url = template.format(
        reference=quote(invoice.reference, safe=""),
        key=invoice.key,
        transaction_id=invoice.transaction_id,
    )
    return url if _may_redirect(request, url) else own


def _may_redirect(request: HttpRequest, url: str) -> bool:
    """A configured URL leads to this site or to one of ``ALLOWED_REDIRECT_HOSTS``."""
    allowed = {request.get_host(), *conf.get().allowed_redirect_hosts}
    secure = request.is_secure()
    if url_has_allowed_host_and_scheme(url, allowed_hosts=allowed, require_https=secure):
        return True
    logger.error("Refusing to redirect to %r: host not in ALLOWED_REDIRECT_HOSTS", url)
    return False


@require_GET
@_throttled("poll")
def result(request: HttpRequest, key: str) -> HttpResponse:
    """Success, failure or "confirming your payment" for one invoice, addressed by its key."""
    invoice = get_object_or_404(Invoice, key=key)
    golomt = conf.get()
    context: dict[str, Any] = {
        "invoice": invoice,
        "status_url": reverse("golomt_payments:status", kwargs={"key": invoice.key}),
        "poll_seconds": golomt.status_poll_seconds,
    }
    if invoice.status == Status.PAID:
        template = "golomt_payments/success.html"
    elif invoice.status in (Status.FAILED, Status.EXPIRED):
        template = "golomt_payments/failure.html"
        # A declined card may try again on the same bank page while its timer runs.
        if services.is_payable(invoice):
            context["resume_url"] = reverse("golomt_payments:resume", kwargs={"key": invoice.key})
    else:
        template = "golomt_payments/pending.html"
    return render(request, template, context)


@require_GET
@transaction.non_atomic_requests
@_throttled("poll", json=True)
def status(request: HttpRequest, key: str) -> HttpResponse:
    """A small JSON status for the confirming page's polling.

    While the invoice is open, or declined with its bank page still taking another card, asks
    the bank itself (at most once per ``STATUS_CHECK_INTERVAL_SECONDS`` per invoice), so a lost
    push and a lost redirect together still end in the right state.
    """
    invoice = get_object_or_404(Invoice, key=key)
    if services.awaits_bank(invoice):
        try:
            invoice = services.refresh_if_due(
                invoice, source=Source.STATUS, within=services.customer_wait()
            ).invoice
        except GolomtError as exc:
            logger.info("Status check of %s failed: %s", invoice.transaction_id, exc)
    done = not invoice.is_open
    return JsonResponse(
        {
            "status": invoice.status,
            "paid": invoice.status == Status.PAID,
            "final": done,
            "description": invoice.bank_description,
            "next": outcome_url(request, invoice) if done else None,
        },
        headers={"Cache-Control": "no-store"},
    )


class _AlwaysJSON(BaseContentNegotiation):
    """The bank's reply is JSON whatever its ``Accept`` header or a ``?format=`` says: the
    message must reach the log before anything could refuse it."""

    def select_parser(self, request: Request, parsers: Any) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class PushNotificationView(APIView):
    """The bank's push notification: JSON POST, logged raw before anything else.

    200 when recorded (processed or a duplicate), 400/413/415 when malformed or forged, 403 from
    an address outside ``PUSH_ALLOWED_IPS``, 503 when the bank could not confirm it (retry).
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    parser_classes: list[Any] = []
    throttle_classes: list[Any] = []
    content_negotiation_class = _AlwaysJSON

    def post(self, request: Request) -> Response:
        django_request: HttpRequest = request._request
        golomt = conf.get()
        ip = client_ip(django_request)
        throttled = _push_throttled(ip, django_request.path)
        if throttled is not None:
            return throttled
        body = limits.read_body(django_request, golomt.max_push_bytes)
        reply = services.receive_push(
            body.data,
            content_type=django_request.content_type or "",
            headers=dict(django_request.headers),
            remote_addr=ip,
            endpoint=django_request.path,
            unread=body.problem,
            size=body.size,
            sha256=body.sha256,
        )
        return Response({"detail": reply.detail}, status=reply.status)


def _push_throttled(ip: str | None, path: str) -> Response | None:
    """429 for an address over ``PUSH_REQUESTS_PER_MINUTE``; never for one on the allow-list."""
    if services.push_from_allowed_address(ip):
        return None
    limit = conf.get().push_requests_per_minute
    count = limits.count_request("push", ip, limit)
    if not count.over:
        return None
    reason = f"throttled: over {limit} push notifications a minute from this address"
    _note_throttled(count, path, ip, reason, MessageKind.PUSH)
    return Response({"detail": reason}, status=429, headers={"Retry-After": str(count.retry_after)})


push = transaction.non_atomic_requests(PushNotificationView.as_view())


# --- saved cards ------------------------------------------------------------------------------


@login_required
@require_GET
@transaction.non_atomic_requests
def cards(request: HttpRequest) -> HttpResponse:
    """The customer's saved cards, each with a Delete button, and an "Add a card" button.

    ``?added=<key>`` names a registration of theirs that just came back from the bank: its
    outcome is shown, and while the bank has not answered it is asked (once per interval).
    """
    owner = _owner(request)
    registration = _own_registration(owner, request.GET.get("added", ""))
    if registration is not None:
        try:
            services.finish_card_registration_if_due(registration)
        except GolomtError as exc:
            logger.info("Get token for %s failed: %s", registration.transaction_id, exc)
    return render(
        request,
        "golomt_payments/cards.html",
        {"cards": services.active_cards(owner), "registration": registration},
    )


def _own_registration(owner: AbstractBaseUser, key: str) -> CardRegistration | None:
    try:
        return CardRegistration.objects.filter(owner_id=owner.pk, key=key).first()
    except ValidationError:  # not a UUID
        return None


@login_required
@require_POST
@transaction.non_atomic_requests
def card_add(request: HttpRequest) -> HttpResponse:
    """Start adding a card without buying and send the browser to the bank's page."""
    owner = _owner(request)
    account = request.POST.get("account") or conf.DEFAULT_ACCOUNT
    if account not in conf.get().accounts:
        return _error_page(request, 400, _("Unknown merchant account."), "")
    try:
        registration = services.start_card_registration(
            owner,
            callback_url=card_callback_url(request),
            language=_language(request),
            account=account,
        )
    except GolomtError as exc:
        return _bank_error_page(request, exc, _("The bank could not start saving your card."))
    return HttpResponseRedirect(services.registration_url(registration), status=303)


@login_required
@require_POST
def card_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Remove one of the customer's own cards; anybody else's is a 404."""
    card = get_object_or_404(CardToken, pk=pk, owner_id=_owner(request).pk)
    services.remove_card(card)
    return HttpResponseRedirect(reverse("golomt_payments:cards"), status=303)


@csrf_exempt
@require_http_methods(["GET", "POST"])
@transaction.non_atomic_requests
@_throttled("return", kind=MessageKind.REDIRECT)
def card_return(request: HttpRequest) -> HttpResponse:
    """Where the bank's card-saving page sends the browser back: ask the bank for the token,
    then go to ``CARDS_URL`` (by default the customer's cards).

    CSRF-exempt and sessionless, like :func:`bank_return`: the bank's POST arrives cross-site.
    """
    result = services.receive_card_return(**_returned(request))
    if result.registration is None:
        return _error_page(
            request,
            400,
            _("We could not find this card."),
            _("Please go back to the shop and try again."),
        )
    return redirect(cards_url(request, result.registration), permanent=False)


def cards_url(request: HttpRequest, registration: CardRegistration) -> str:
    """``CARDS_URL`` when set and safe, else the app's own cards page, naming the registration."""
    own = f"{reverse('golomt_payments:cards')}?{urlencode({'added': registration.key})}"
    template = conf.get().cards_url
    if not template:
        return own
    url = template.format(key=registration.key, status=registration.status)
    return url if _may_redirect(request, url) else own


# --- SocialPay ------------------------------------------------------------------------------


def _continue(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """Where the browser goes on with an order's payment: SocialPay to our page with the QR
    code and both ways to pay, a card to the bank's hosted page, a saved-card charge (no page)
    to its outcome."""
    if invoice.method == Method.SAVED_CARD:
        return HttpResponseRedirect(outcome_url(request, invoice), status=303)
    if invoice.method == Method.SOCIALPAY:
        return HttpResponseRedirect(
            reverse("golomt_payments:socialpay", kwargs={"key": invoice.key}), status=303
        )
    return HttpResponseRedirect(services.payment_url(invoice), status=303)


@require_GET
def resume(request: HttpRequest, key: str) -> HttpResponse:
    """Back to the bank's page of a payment the customer may still make (a shop's "continue
    paying" link), else to its outcome: never to a page that could take the money twice."""
    invoice = get_object_or_404(Invoice, key=key)
    if services.is_payable(invoice):
        return _continue(request, invoice)
    return redirect(outcome_url(request, invoice), permanent=False)


@require_GET
def socialpay(request: HttpRequest, key: str) -> HttpResponse:
    """A SocialPay invoice's own page: the deeplink as a QR code (for a customer at a desktop)
    and as a link (on the phone), the bank's hosted SocialPay page, and polling that moves on
    once the payment is final."""
    invoice = get_object_or_404(Invoice, key=key, method=Method.SOCIALPAY)
    if not services.is_payable(invoice):  # paid, closed, or its order moved on
        return redirect(outcome_url(request, invoice), permanent=False)
    deeplink = services.socialpay_deeplink(invoice)
    # segno's SVG holds only the code's geometry, no text of the deeplink: safe to inline.
    qr_svg = mark_safe(qr.svg_inline(deeplink)) if deeplink else ""  # noqa: S308
    context: dict[str, Any] = {
        "invoice": invoice,
        "deeplink": deeplink,
        "qr_svg": qr_svg,
        "hosted_url": services.payment_url(invoice) if invoice.bank_invoice else "",
        "result_url": reverse("golomt_payments:result", kwargs={"key": invoice.key}),
        "status_url": reverse("golomt_payments:status", kwargs={"key": invoice.key}),
        "poll_seconds": conf.get().status_poll_seconds,
    }
    response = render(request, "golomt_payments/socialpay.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def socialpay_qr(request: HttpRequest, key: str) -> HttpResponse:
    """The QR code of a SocialPay invoice's deeplink as an SVG image."""
    invoice = get_object_or_404(Invoice, key=key, method=Method.SOCIALPAY)
    deeplink = services.socialpay_deeplink(invoice)
    if not deeplink:
        raise Http404("no SocialPay deeplink")
    return HttpResponse(
        qr.svg_document(deeplink),
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=600"},
    )
