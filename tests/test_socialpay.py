"""SocialPay: our page with the deeplink as a QR code and a link, its SVG image, and the MOBILE
return type (the bank opens the shop's app instead of sending a browser back)."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import segno
from django.test import Client

from golomt_payments import services
from golomt_payments.checkout import sign_checkout
from golomt_payments.models import Invoice, Method, ReturnType, Source, Status
from golomt_payments.sandbox.cards import Behaviour
from golomt_payments.testing.sandbox import SandboxBank
from tests.factories import InvoiceFactory
from tests.helpers import FakeBank, hmac_hex

pytestmark = pytest.mark.django_db

DEEPLINK = "socialpay-payment://key=d7fb2858-df36-469e-b40d-2815fe9215cf"
APP_CALLBACK = "myshop://payment-result"
_PATH_COMMAND = re.compile(r"([MmHh])\s*(-?[\d.]+)(?:\s+(-?[\d.]+))?")


def page_url(invoice: Invoice) -> str:
    return f"/payments/socialpay/{invoice.key}/"


def qr_url(invoice: Invoice) -> str:
    return f"/payments/socialpay/{invoice.key}/qr.svg"


def socialpay_invoice(**kwargs: object) -> Invoice:
    invoice: Invoice = InvoiceFactory(socialpay=True, amount=Decimal("25000"), **kwargs)
    return invoice


def parse_svg(markup: str | bytes) -> ElementTree.Element:
    return ElementTree.fromstring(markup)  # noqa: S314 - the app's own output, in a test


def dark_modules(svg: ElementTree.Element) -> set[tuple[int, int]]:
    """The (row, column) of every dark module an SVG QR code draws, read from its path.

    Decodes nothing: it only redraws segno's horizontal runs (``M``/``m`` moves, ``h`` lines,
    each run on a row's centre line), quiet zone included.
    """
    paths = [el for el in svg.iter() if el.tag.rsplit("}", 1)[-1] == "path"]
    assert len(paths) == 1
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for command, first, second in _PATH_COMMAND.findall(paths[0].attrib["d"]):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        else:
            length = float(first)
            start = x if command == "h" else 0.0
            end = start + length
            dark.update((int(y), col) for col in range(round(start), round(end)))
            x = end
    return dark


def matrix_modules(code: segno.QRCode, border: int) -> set[tuple[int, int]]:
    return {
        (row + border, col + border)
        for row, line in enumerate(code.matrix)
        for col, module in enumerate(line)
        if module
    }


def assert_is_qr_code_of(svg: ElementTree.Element, deeplink: str) -> None:
    """The SVG draws a full QR code (not Micro QR) of ``deeplink`` with error correction M or
    better, with a quiet zone of 4 modules, scaled up to a size a phone camera reads."""
    drawn = dark_modules(svg)
    candidates = {
        level: matrix_modules(segno.make(deeplink, error=level, micro=False, boost_error=False), 4)
        for level in "MQH"
    }
    assert drawn in candidates.values()
    size = int(svg.attrib["width"])
    assert size == int(svg.attrib["height"]) >= 150
    modules = len(segno.make(deeplink, micro=False).matrix) + 8
    assert size % modules == 0  # whole pixels per module


# --- our SocialPay page ---------------------------------------------------------------------


def test_socialpay_page_shows_the_deeplink_as_a_qr_code_and_as_a_link(client: Client) -> None:
    invoice = socialpay_invoice(social_deeplink=DEEPLINK)

    response = client.get(page_url(invoice))

    assert response.status_code == 200
    assert "private" in response["Cache-Control"]
    assert "golomt_payments/socialpay.html" in [t.name for t in response.templates]
    page = response.content.decode()
    figure = re.search(r"<figure[^>]*data-qr[^>]*>(.*?)</figure>", page, re.S)
    assert figure is not None
    assert_is_qr_code_of(parse_svg(figure.group(1)), DEEPLINK)
    assert f'href="{DEEPLINK}" data-deeplink>Open SocialPay</a>' in page
    assert "25,000 ₮" in page


def test_socialpay_page_links_the_banks_hosted_socialpay_page(client: Client) -> None:
    invoice = socialpay_invoice(social_deeplink=DEEPLINK)

    page = client.get(page_url(invoice)).content.decode()

    hosted = f"https://bank.test/socialpay/mn/{invoice.bank_invoice}"
    assert hosted == services.payment_url(invoice)
    assert f'href="{hosted}" data-hosted>' in page


def test_socialpay_page_polls_the_status_json_and_moves_on_when_final(client: Client) -> None:
    invoice = socialpay_invoice()

    page = client.get(page_url(invoice)).content.decode()

    polled = re.search(r'var url = "([^"]+)"', page)
    assert polled is not None
    assert json.loads(f'"{polled.group(1)}"') == f"/payments/status/{invoice.key}/"
    assert "data.final" in page and "window.location.replace(data.next" in page
    assert f'href="/payments/result/{invoice.key}/" data-result>' in page


def test_socialpay_page_makes_the_browser_ask_nobody_else(client: Client) -> None:
    page = client.get(page_url(socialpay_invoice())).content.decode()

    assert " src=" not in page  # no external image, script or font: the QR code is inline
    assert "<svg" in page and "<img" not in page


def test_socialpay_page_without_a_deeplink_just_links_the_hosted_page(client: Client) -> None:
    invoice = socialpay_invoice(social_deeplink="")

    page = client.get(page_url(invoice)).content.decode()

    assert "<svg" not in page and "data-deeplink" not in page
    assert f"https://bank.test/socialpay/mn/{invoice.bank_invoice}" in page


@pytest.mark.parametrize(
    "forged",
    ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "socialpay payment://x"],
)
def test_a_deeplink_that_is_no_app_link_is_neither_linked_nor_drawn(
    client: Client, forged: str
) -> None:
    invoice = socialpay_invoice(social_deeplink=forged)

    page = client.get(page_url(invoice)).content.decode()

    assert "data-deeplink" not in page and "<svg" not in page
    assert client.get(qr_url(invoice)).status_code == 404


def test_socialpay_page_of_a_finished_payment_shows_its_result(client: Client) -> None:
    invoice = socialpay_invoice(paid=True)

    response = client.get(page_url(invoice))

    assert response.status_code == 302
    assert response["Location"] == f"/payments/result/{invoice.key}/"


def test_socialpay_page_is_404_for_an_unknown_key_or_a_card_invoice(client: Client) -> None:
    card = InvoiceFactory(method=Method.CARD, social_deeplink=DEEPLINK)

    assert client.get(f"/payments/socialpay/{uuid.uuid4()}/").status_code == 404
    assert client.get(page_url(card)).status_code == 404


# --- the QR code as an image ----------------------------------------------------------------


def test_qr_svg_is_an_svg_image_of_the_deeplink(client: Client) -> None:
    invoice = socialpay_invoice(social_deeplink=DEEPLINK)

    response = client.get(qr_url(invoice))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"].startswith("private")
    svg = parse_svg(response.content)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert_is_qr_code_of(svg, DEEPLINK)
    assert DEEPLINK.encode() not in response.content  # geometry only, no text of the link


def test_qr_svg_is_404_for_unknown_keys_card_invoices_and_invoices_without_a_deeplink(
    client: Client,
) -> None:
    card = InvoiceFactory(method=Method.CARD, social_deeplink=DEEPLINK)
    without = socialpay_invoice(social_deeplink="")

    assert client.get(f"/payments/socialpay/{uuid.uuid4()}/qr.svg").status_code == 404
    assert client.get(qr_url(card)).status_code == 404
    assert client.get(qr_url(without)).status_code == 404


# --- checkout --------------------------------------------------------------------------------


def test_socialpay_checkout_sends_the_browser_to_our_socialpay_page(
    client: Client, fake_bank: FakeBank
) -> None:
    fake_bank.invoice(social_deeplink=DEEPLINK)

    response = client.post(
        "/payments/checkout/",
        {"payload": sign_checkout(amount=25000, reference="SP-1"), "method": "socialpay"},
    )

    invoice = Invoice.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"/payments/socialpay/{invoice.key}/"
    assert (invoice.method, invoice.social_deeplink) == (Method.SOCIALPAY, DEEPLINK)
    assert fake_bank.sent("/api/invoice")["socialDeeplink"] == "Y"
    page = client.get(response["Location"]).content.decode()
    assert f'href="{DEEPLINK}"' in page


# --- MOBILE: the bank opens the shop's app ---------------------------------------------------


def test_mobile_payment_signs_the_apps_deeplink_as_its_callback(fake_bank: FakeBank) -> None:
    fake_bank.invoice()

    invoice = services.start_payment(
        amount=1000, callback_url=APP_CALLBACK, return_type=ReturnType.MOBILE
    )

    sent = fake_bank.sent("/api/invoice")
    assert (sent["returnType"], sent["callback"]) == ("MOBILE", APP_CALLBACK)
    assert sent["checksum"] == hmac_hex(invoice.transaction_id, "1000.00", "MOBILE", APP_CALLBACK)
    assert (invoice.status, invoice.return_type, invoice.callback_url) == (
        Status.PENDING,
        ReturnType.MOBILE,
        APP_CALLBACK,
    )


def test_mobile_socialpay_payment_asks_for_the_deeplink_too(fake_bank: FakeBank) -> None:
    fake_bank.invoice(social_deeplink=DEEPLINK)

    invoice = services.start_payment(
        amount=1000, callback_url=APP_CALLBACK, return_type="MOBILE", method=Method.SOCIALPAY
    )

    sent = fake_bank.sent("/api/invoice")
    assert (sent["returnType"], sent["socialDeeplink"]) == ("MOBILE", "Y")
    assert invoice.social_deeplink == DEEPLINK


@pytest.mark.parametrize(
    ("callback", "return_type"),
    [
        (APP_CALLBACK, "POST"),
        (APP_CALLBACK, "GET"),
        ("javascript:alert(1)", "MOBILE"),
        ("data:text/html,x", "MOBILE"),
        ("myshop://pay result", "MOBILE"),
        ("no-scheme", "MOBILE"),
        ("://x", "MOBILE"),
    ],
)
def test_start_payment_refuses_a_callback_the_return_type_cannot_use(
    fake_bank: FakeBank, callback: str, return_type: str
) -> None:
    fake_bank.invoice()

    with pytest.raises(ValueError, match="callback_url"):
        services.start_payment(amount=1000, callback_url=callback, return_type=return_type)

    assert not Invoice.objects.exists()
    assert not fake_bank.calls("/api/invoice")


def test_mobile_payment_in_the_sandbox_opens_the_app_and_the_push_pays(
    golomt_sandbox: SandboxBank,
) -> None:
    invoice = services.start_payment(
        amount=1000, callback_url=APP_CALLBACK, return_type="MOBILE", method=Method.SOCIALPAY
    )

    payment = golomt_sandbox.pay(invoice)

    assert payment.redirect is None  # no browser comes back to the shop
    link = urlsplit(payment.app_link)
    assert f"{link.scheme}://{link.netloc}" == APP_CALLBACK
    assert parse_qs(link.query) == {
        "invoice": [invoice.transaction_id],
        "status_code": ["000"],
        "desc": ["Амжилттай"],
    }
    assert payment.invoice.status == Status.PAID
    assert payment.invoice.history.get(to_status=Status.PAID).source == Source.PUSH


def test_mobile_payment_without_a_push_is_paid_when_the_app_asks(
    golomt_sandbox: SandboxBank,
) -> None:
    """The app learns the result from the shop's API, which asks the bank: the deeplink's
    parameters are a hint nobody signed."""
    invoice = services.start_payment(amount=1000, callback_url=APP_CALLBACK, return_type="MOBILE")

    payment = golomt_sandbox.pay(invoice, Behaviour.PUSH_LOST)

    assert payment.app_link.startswith(f"{APP_CALLBACK}?invoice={invoice.transaction_id}")
    assert payment.invoice.status == Status.PENDING
    change = services.refresh(payment.invoice, source=Source.API)
    assert (change.old_status, change.new_status) == (Status.PENDING, Status.PAID)


def test_sandbox_refuses_to_bring_a_browser_back_to_a_mobile_callback(
    golomt_sandbox: SandboxBank,
) -> None:
    invoice = services.start_payment(amount=1000, callback_url=APP_CALLBACK, return_type="MOBILE")

    with pytest.raises(ValueError, match="MOBILE"):
        golomt_sandbox.come_back(invoice)
