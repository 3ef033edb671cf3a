"""An HTTP transport for ``requests`` that answers from Django views in this process.

The app's real gateway client keeps talking HTTP (headers, JSON, checksums, status codes), but
nothing leaves the process: calls to the bank's address are answered by the sandbox's views,
calls to the shop's address (the sandbox's push notification) by the shop's own URLconf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import Resolver404, resolve
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

Responder = Callable[[requests.PreparedRequest], HttpResponse]


def sandbox_responder(mount_path: str) -> Responder:
    """Answer from the sandbox's URLconf, whatever the shop's own URLconf contains."""
    factory = RequestFactory()

    def respond(prepared: requests.PreparedRequest) -> HttpResponse:
        parts = urlsplit(prepared.url or "")
        path = parts.path[len(mount_path) :] or "/"
        try:
            match = resolve(path, urlconf="golomt_payments.sandbox.urls")
        except Resolver404:
            return HttpResponse(status=404)
        request = factory.generic(
            prepared.method or "GET",
            f"{path}?{parts.query}" if parts.query else path,
            data=_body(prepared),
            content_type=prepared.headers.get("Content-Type", "application/octet-stream"),
            headers=_headers(prepared.headers),
        )
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response

    return respond


def shop_responder(client: Client | None = None) -> Responder:
    """Answer from the shop's ROOT_URLCONF, middleware and all, as its server would."""
    shop = client or Client()

    def respond(prepared: requests.PreparedRequest) -> HttpResponse:
        parts = urlsplit(prepared.url or "")
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        response = shop.generic(
            prepared.method or "GET",
            path,
            data=_body(prepared),
            content_type=prepared.headers.get("Content-Type", "application/octet-stream"),
            headers=_headers(prepared.headers),
        )
        return cast(HttpResponse, response)

    return respond


class InProcessAdapter(BaseAdapter):
    """A ``requests`` adapter that hands each request to a Django responder."""

    def __init__(self, responder: Responder) -> None:
        super().__init__()
        self._responder = responder

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        answer = self._responder(request)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(dict(answer.items()))
        response.raw = BytesIO(answer.content)
        response._content = answer.content
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        response.reason = answer.reason_phrase
        return response

    def close(self) -> None:
        """Nothing to release: no sockets were opened."""


def route(routes: Mapping[str, InProcessAdapter]) -> Callable[..., BaseAdapter]:
    """A replacement for ``requests.Session.get_adapter`` that serves ``routes`` in-process
    and leaves every other URL to the session's own adapters."""
    original = requests.Session.get_adapter

    def get_adapter(session: requests.Session, url: str) -> BaseAdapter:
        for prefix, adapter in routes.items():
            if url.startswith(prefix):
                return adapter
        return original(session, url)

    return get_adapter


def _body(prepared: requests.PreparedRequest) -> bytes:
    body = prepared.body
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in ("content-type", "content-length", "host")
    }
