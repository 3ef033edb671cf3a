"""One gateway client per merchant account, each outbound call written to the message log."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import requests
from django.core.signals import setting_changed
from django.dispatch import receiver
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter

from golomt_payments import conf
from golomt_payments.gateway import Exchange, GolomtClient
from golomt_payments.models import BankMessage, Direction, MessageKind, Outcome


def storable(text: str) -> str:
    """Text every database accepts and UTF-8 can encode: PostgreSQL refuses the NUL character,
    and a lone surrogate (a JSON escape of half an emoji) is no text at all. Both become U+FFFD."""
    text = text.replace("\x00", "\ufffd")
    if text.isascii():
        return text
    return text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")


_KINDS = {
    "/api/invoice": MessageKind.INVOICE,
    "/api/inquiry": MessageKind.INQUIRY,
    "/api/pay": MessageKind.PAY,
    "/api/check": MessageKind.CHECK,
    "/api/confirmation": MessageKind.CONFIRMATION,
    "/api/get/token": MessageKind.GET_TOKEN,
    "/api/getSettlementDetails": MessageKind.SETTLEMENT,
}

_clients: dict[str, GolomtClient] = {}
_sessions: list[requests.Session] = []
_lock = threading.Lock()
_invoice_id: ContextVar[int | None] = ContextVar("golomt_invoice_id", default=None)
_held: ContextVar[HeldLog | None] = ContextVar("golomt_held_log", default=None)


def client(account: str = conf.DEFAULT_ACCOUNT) -> GolomtClient:
    """The shared client of ``account``: one pooled HTTP session per account per process.

    The pool keeps at least ``RECONCILE_CONCURRENCY`` connections, so the reconciler's threads
    reuse them instead of opening and dropping one per call.
    """
    existing = _clients.get(account)
    if existing is not None:
        return existing
    settings = conf.get()
    acct = settings.account(account)
    with _lock:
        existing = _clients.get(account)
        if existing is None:
            session = _pooled_session(max(DEFAULT_POOLSIZE, settings.reconcile_concurrency))
            try:
                existing = GolomtClient(
                    base_url=acct.base_url,
                    bearer_token=acct.bearer_token,
                    secret=acct.secret,
                    timeout=(settings.connect_timeout, settings.read_timeout),
                    read_retries=settings.read_retries,
                    session=session,
                    on_exchange=_record(acct.name, acct.settlement_token),
                )
            except BaseException:
                session.close()
                raise
            _sessions.append(session)
            _clients[account] = existing
    return existing


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    """New settings, new clients (their credentials, address and timeouts are the settings')."""
    if setting == conf.SETTING_NAME:
        reset_clients()


def reset_clients() -> None:
    """Forget cached clients (settings changed)."""
    with _lock:
        for old in _clients.values():
            old.close()
        _clients.clear()
        for session in _sessions:
            session.close()
        _sessions.clear()


def _pooled_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@contextlib.contextmanager
def about(invoice_id: int | None) -> Iterator[None]:
    """Attribute the outbound calls made inside the block to one invoice in the log."""
    token = _invoice_id.set(invoice_id)
    try:
        yield
    finally:
        _invoice_id.reset(token)


class HeldLog:
    """Log rows of outbound calls, kept back to be written with the change they lead to.

    A call's row is normally written at once, in its own commit. Inside :meth:`holding`, the
    rows wait here instead, and the caller writes them (:meth:`write`) in the transaction that
    applies the bank's answer: one commit instead of two. When the call fails, they are written
    at once, as the block is left.
    """

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[BankMessage] = []

    @contextlib.contextmanager
    def holding(self) -> Iterator[HeldLog]:
        token = _held.set(self)
        try:
            yield self
        except BaseException:
            self.write()
            raise
        finally:
            _held.reset(token)

    def write(self) -> None:
        """Write the rows held so far (none twice)."""
        rows, self.rows = self.rows, []
        if len(rows) == 1:
            rows[0].save(force_insert=True)
        elif rows:
            BankMessage.objects.bulk_create(rows)


def scrub_settlement_token(text: str, token: str) -> str:
    """The gateway redacts the settlement ``token`` from the request it reports; a bank that
    echoes it in an answer or an error must not get it into the log either."""
    return text.replace(token, "[redacted]") if token else text


def _record(account: str, settlement_token: str = "") -> Callable[[Exchange], None]:
    def clean(text: str) -> str:
        return storable(scrub_settlement_token(text, settlement_token))

    def record(exchange: Exchange) -> None:
        row = BankMessage(
            direction=Direction.OUTBOUND,
            kind=_KINDS.get(exchange.endpoint, MessageKind.INQUIRY),
            account=account,
            invoice_id=_invoice_id.get(),
            transaction_id=exchange.transaction_id or "",
            endpoint=exchange.endpoint,
            http_status=exchange.status_code,
            body=clean(json.dumps(exchange.request_body, ensure_ascii=False, sort_keys=True)),
            response=clean(exchange.response_text or ""),
            outcome=Outcome.ERROR if exchange.error else Outcome.OK,
            error=clean(exchange.error or ""),
            duration_ms=exchange.duration_ms,
        )
        held = _held.get()
        if held is None:
            row.save(force_insert=True)
        else:
            held.rows.append(row)

    return record
