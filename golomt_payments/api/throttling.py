"""The API's throttle: requests per client address, counted before anybody is authenticated.

Authentication can be dear: DRF's ``BasicAuthentication`` hashes a password for every request
that carries an ``Authorization: Basic`` header, right or wrong. Counted by address before it
runs, a client over ``API_THROTTLE_RATE`` is answered 429 without a password being hashed.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from golomt_payments import conf
from golomt_payments.views import client_ip

#: The count of requests whose address cannot be read (no ``REMOTE_ADDR``, or a proxy's
#: forwarding that is not an address): they share one count rather than escape the limit.
UNKNOWN_ADDRESS = "unknown"


class ClientAddressThrottle(SimpleRateThrottle):
    """``API_THROTTLE_RATE`` requests per client address (``TRUSTED_PROXY_COUNT`` honoured),
    whoever the request claims to be. The rate is read at each request, so
    ``override_settings`` works; ``None`` lets everything through."""

    scope = "golomt_payments_api"

    def get_rate(self) -> str | None:
        return conf.get().api_throttle_rate

    def get_cache_key(self, request: Request, view: Any) -> str:
        address = client_ip(request._request) or UNKNOWN_ADDRESS
        return self.cache_format % {"scope": self.scope, "ident": address}


class StatusAddressThrottle(ClientAddressThrottle):
    """The same rate for reading a payment's status, counted apart from the other endpoints.

    Not left unthrottled: it authenticates like the others, so without a limit it would be the
    way to make the server hash passwords. Counted apart: an app polls it while the customer
    pays (every few seconds, well under the rate), and that polling must not use up what the
    same address may spend on starting payments and managing cards.
    """

    scope = "golomt_payments_api_status"


__all__ = ["UNKNOWN_ADDRESS", "ClientAddressThrottle", "StatusAddressThrottle"]
