"""Browser-free helpers: pay on the sandbox's hosted page over real HTTP, read HTML forms."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import requests

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


@dataclass(frozen=True)
class ReturnForm:
    """The auto-submitting form that sends the browser back to the shop (returnType POST)."""

    action: str
    fields: dict[str, str]


def csrf_token(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def return_form(page: str) -> ReturnForm:
    match = _FORM_ACTION.search(page)
    assert match is not None, "no return form on the page"
    fields = hidden_fields(page)
    fields.pop("csrfmiddlewaretoken", None)
    return ReturnForm(html.unescape(match.group(1)), fields)


def pay_on_page(
    session: requests.Session,
    url: str,
    card: str = "9496 2500 0000 0003",
    *,
    expiry: str = "12/39",
) -> requests.Response:
    """Fill the card form like a customer: GET for the CSRF cookie and token, then POST."""
    page = session.get(url, timeout=10)
    page.raise_for_status()
    return session.post(
        url,
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "number": card,
            "expiry": expiry,
            "cvv": "123",
            "holder": "Bat Erdene",
        },
        allow_redirects=False,
        timeout=10,
    )
