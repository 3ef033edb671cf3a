"""QR codes of SocialPay deeplinks, as SVG: no image library, no request to anybody else.

The one place :mod:`segno` is used. The SVG holds only the code's geometry (no text taken
from the deeplink), so it is safe to inline in a page.
"""

from __future__ import annotations

import io

import segno

#: Pixels per module: a SocialPay deeplink (33 modules, quiet zone of 4) is about 205 px.
SCALE = 5
BORDER = 4
CSS_CLASS = "golomt-qr"


def make(deeplink: str) -> segno.QRCode:
    """The QR code of ``deeplink``: always a full QR code (phones' cameras do not read Micro
    QR), error correction at least M, raised when the size allows."""
    return segno.make(deeplink, error="m", micro=False, boost_error=True)


def svg_inline(deeplink: str) -> str:
    """An ``<svg>`` element for an HTML page (no XML declaration, no namespace)."""
    return make(deeplink).svg_inline(scale=SCALE, border=BORDER, svgclass=CSS_CLASS)


def svg_document(deeplink: str) -> bytes:
    """A standalone SVG image (``image/svg+xml``), for an ``<img>`` or a download."""
    out = io.BytesIO()
    make(deeplink).save(
        out, kind="svg", scale=SCALE, border=BORDER, svgclass=CSS_CLASS, xmldecl=True
    )
    return out.getvalue()
