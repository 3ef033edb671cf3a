"""The API's throttle: requests per client address, counted before anybody is authenticated.

Authentication can be dear: DRF's ``BasicAuthentication`` hashes a password for every request
that carries an ``Authorization: Basic`` header, right or wrong (which is why the API leaves it
out unless the shop names it). Counted by address before it runs, with the app's own counter
(one atomic cache operation, so requests racing each other are all counted), a client over
``API_THROTTLE_RATE`` is answered 429 without a password being hashed.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from golomt_payments import conf, limits
from golomt_payments.views import client_ip

#: DRF's rate periods by their first letter.
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ClientAddressThrottle(BaseThrottle):
    """``API_THROTTLE_RATE`` requests per client address (``TRUSTED_PROXY_COUNT`` honoured; an
    IPv6 client by its /64), whoever the request claims to be. The rate is read at each
    request, so ``override_settings`` works; ``None`` lets everything through."""

    scope = "api"

    def __init__(self) -> None:
        self.retry_after = 0

    def limit(self) -> tuple[int, int] | None:
        """Requests and the seconds they are counted over; ``None``: no limit."""
        rate = conf.get().api_throttle_rate
        if rate is None:
            return None
        requests, period = rate.split("/")  # validated by the settings: "60/min"
        return int(requests), _SECONDS[period[0]]

    def allow_request(self, request: Request, view: Any) -> bool:
        rate = self.limit()
        if rate is None:
            return True
        count = limits.count_request(self.scope, client_ip(request._request), *rate)
        self.retry_after = count.retry_after
        return not count.over

    def wait(self) -> float:
        return float(self.retry_after)


class StatusAddressThrottle(ClientAddressThrottle):
    """Reading a payment's status: ``POLL_REQUESTS_PER_MINUTE`` per address, like the app's own
    status page, counted apart from the other endpoints.

    Not left unthrottled: it authenticates like the others. Counted apart and higher: an app
    polls it while the customer pays (every few seconds), many customers may share one
    carrier's address, and that polling must not use up what the address may spend on
    starting payments and managing cards.
    """

    scope = "api-status"

    def limit(self) -> tuple[int, int] | None:
        return conf.get().poll_requests_per_minute, 60


__all__ = ["ClientAddressThrottle", "StatusAddressThrottle"]
