"""The bank's hosted pages: card form, SocialPay approval, card saving, and the way back.

After an attempt the browser goes back to the invoice's ``callback`` with ``invoice`` (the
merchant's transactionId), ``status_code`` and ``desc``, unsigned, as the bank does: a 302 with
a query string for GET, an auto-submitting form for POST, the app deeplink for MOBILE.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from golomt_payments.sandbox import conf, services
from golomt_payments.sandbox.cards import SOCIALPAY_CARD, TEST_CARDS, Behaviour
from golomt_payments.sandbox.forms import CardForm
from golomt_payments.sandbox.models import Kind, PushDelivery, Transaction
from golomt_payments.sandbox.services import AlreadyFinished
from golomt_payments.sandbox.wire import echo_amount, social_deeplink

LANGS = ("mn", "en")
PAGES = {"payment": Kind.PAYMENT, "socialpay": Kind.PAYMENT, "confirmation": Kind.CONFIRMATION}
#: What the SocialPay screen may simulate on Approve (every card outcome that is a payment).
SOCIALPAY_SCENARIOS = tuple(
    card
    for card in TEST_CARDS
    if card.behaviour.paid and card.behaviour is not Behaviour.SAVED_CARD_DECLINED
)
_UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})


class DeeplinkRedirect(HttpResponseRedirect):
    """A redirect that may also open an app (MOBILE), never a script URL."""

    def __init__(self, url: str) -> None:
        scheme = urlsplit(url).scheme.lower()
        self.allowed_schemes = ["http", "https"] + (
            [scheme] if scheme and scheme not in _UNSAFE_SCHEMES else []
        )
        super().__init__(url)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The sandbox's front page: test cards, settings in force, the latest transactions."""
    settings = conf.get()
    transactions = list(Transaction.objects.all()[:25])
    pushes = PushDelivery.objects.filter(transaction__in=transactions).order_by("due_at")
    by_tx: dict[int, list[PushDelivery]] = {}
    for row in pushes:
        by_tx.setdefault(row.transaction_id, []).append(row)
    return render(
        request,
        "golomt_sandbox/index.html",
        {
            "settings": settings,
            "cards": TEST_CARDS,
            "rows": [(tx, by_tx.get(tx.pk, [])) for tx in transactions],
        },
    )


@csrf_protect
@require_http_methods(["GET", "POST"])
def payment(request: HttpRequest, lang: str, invoice: str) -> HttpResponse:
    """``/payment/{lang}/{invoice}``: the card form."""
    return _hosted(request, lang, invoice, "payment")


@csrf_protect
@require_http_methods(["GET", "POST"])
def socialpay(request: HttpRequest, lang: str, invoice: str) -> HttpResponse:
    """``/socialpay/{lang}/{invoice}``: the customer approves or declines in "the app"."""
    return _hosted(request, lang, invoice, "socialpay")


@csrf_protect
@require_http_methods(["GET", "POST"])
def confirmation(request: HttpRequest, lang: str, invoice: str) -> HttpResponse:
    """``/confirmation/{lang}/{invoice}``: save a card by charging (and refunding) a small sum."""
    return _hosted(request, lang, invoice, "confirmation")


def _hosted(request: HttpRequest, lang: str, invoice: str, page: str) -> HttpResponse:
    lang = lang.lower()
    language = lang if lang in LANGS else "mn"
    with translation.override(language):
        tx = _find(invoice, PAGES[page]) if lang in LANGS else None
        if tx is None:
            return _message(
                request,
                language,
                _("Invoice not found"),
                _("This payment page does not exist. Please go back to the shop."),
                status=404,
            )
        if services.expire_if_due(tx):
            return _message(
                request,
                language,
                _("The payment time ran out"),
                _(
                    "This payment was cancelled because the page timer ran out. "
                    "Nothing was charged."
                ),
                tx=tx,
                back_to_site=True,
            )
        if not services.may_try(tx):
            return _finished(request, tx, language)
        form = CardForm()
        if request.method == "POST":
            try:
                if page == "socialpay":
                    return _socialpay_answer(request, tx, language)
                form = CardForm(request.POST)
                if form.is_valid():
                    card = form.cleaned_data["number"]
                    expired = form.expired(timezone.localdate())
                    services.complete(
                        tx,
                        behaviour=Behaviour.DECLINED if expired else card.behaviour,
                        card_number=card.number,
                        card_holder=form.cleaned_data["holder"],
                        via=page,
                    )
                    return to_merchant(request, tx, language)
            except AlreadyFinished:
                return HttpResponseRedirect(request.path)
        return render(
            request,
            f"golomt_sandbox/{'socialpay' if page == 'socialpay' else 'card'}.html",
            _context(tx, language, page, form=form),
        )


def _find(invoice: str, kind: str) -> Transaction | None:
    try:
        key = uuid.UUID(invoice)
    except ValueError:
        return None
    return Transaction.objects.filter(invoice=key, kind=kind).first()


def _context(tx: Transaction, lang: str, page: str, **extra: Any) -> dict[str, Any]:
    settings = conf.get()
    other = "en" if lang == "mn" else "mn"
    remaining = services.remaining_seconds(tx)
    return {
        "tx": tx,
        "lang": lang,
        "page": page,
        "amount": echo_amount(tx.amount),
        "merchant": settings.merchant_name,
        "cards": TEST_CARDS,
        "scenarios": SOCIALPAY_SCENARIOS,
        "deeplink": social_deeplink(tx) if page == "socialpay" else "",
        "remaining": remaining,
        "remaining_text": f"{remaining // 60:02d}:{remaining % 60:02d}",
        "switch_url": reverse(f"golomt_sandbox:{page}", args=[other, str(tx.invoice)]),
        "switch_label": "English" if other == "en" else "Монгол",
        **extra,
    }


def _socialpay_answer(request: HttpRequest, tx: Transaction, lang: str) -> HttpResponse:
    action = request.POST.get("action")
    if action not in ("approve", "decline"):
        return HttpResponseRedirect(request.path)
    behaviour = Behaviour.DECLINED
    if action == "approve":
        wanted = request.POST.get("scenario", Behaviour.SUCCESS.value)
        behaviour = next(
            (c.behaviour for c in SOCIALPAY_SCENARIOS if c.behaviour.value == wanted),
            Behaviour.SUCCESS,
        )
    services.complete(
        tx,
        behaviour=behaviour,
        card_number=SOCIALPAY_CARD.number,
        card_holder="SOCIALPAY",
        via="socialpay",
    )
    return to_merchant(request, tx, lang)


def return_params(tx: Transaction) -> dict[str, str]:
    """What the bank puts on the way back: no checksum, so only a hint for the shop."""
    return {
        "invoice": tx.transaction_id,
        "status_code": tx.error_code or "",
        "desc": tx.error_desc,
    }


def return_url(tx: Transaction) -> str:
    """The callback with the result in its query string (GET and MOBILE)."""
    separator = "&" if "?" in tx.callback else "?"
    return f"{tx.callback}{separator}{urlencode(return_params(tx))}"


def to_merchant(request: HttpRequest, tx: Transaction, lang: str) -> HttpResponse:
    """Send the browser back to the shop, unless the test card loses the redirect."""
    if tx.behaviour and not Behaviour(tx.behaviour).redirects:
        return _message(
            request,
            lang,
            _("The bank page was closed"),
            _(
                "Sandbox: this test card loses the redirect, as when the customer closes the "
                "tab. The shop must learn the result from the push or its own inquiry."
            ),
            tx=tx,
        )
    if tx.return_type == "POST":
        return render(
            request,
            "golomt_sandbox/redirect_post.html",
            {"tx": tx, "lang": lang, "action": tx.callback, "params": return_params(tx)},
        )
    return DeeplinkRedirect(return_url(tx))


def _finished(request: HttpRequest, tx: Transaction, lang: str) -> HttpResponse:
    """The page of a transaction already paid or declined: its result and the way back."""
    paid = tx.is_paid
    lost = bool(tx.behaviour) and not Behaviour(tx.behaviour).redirects
    return render(
        request,
        "golomt_sandbox/finished.html",
        {
            "tx": tx,
            "lang": lang,
            "paid": paid,
            "amount": echo_amount(tx.amount),
            "merchant": conf.get().merchant_name,
            "params": {} if lost else return_params(tx),
            "action": tx.callback,
            "link": "" if lost or tx.return_type == "POST" else return_url(tx),
        },
    )


def _message(
    request: HttpRequest,
    lang: str,
    title: str,
    detail: str,
    *,
    tx: Transaction | None = None,
    status: int = 200,
    back_to_site: bool = False,
) -> HttpResponse:
    site = ""
    if back_to_site and tx is not None:
        parts = urlsplit(tx.callback)
        if parts.scheme in ("http", "https") and parts.netloc:
            site = f"{parts.scheme}://{parts.netloc}/"
    return render(
        request,
        "golomt_sandbox/message.html",
        {"lang": lang, "title": title, "detail": detail, "tx": tx, "site": site},
        status=status,
    )
