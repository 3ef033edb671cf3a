"""Messages the bank sends us: the browser redirects (from a payment page and from the
card-saving page) and the push notification.

Each is written raw to the message log first (its own autocommit INSERT, so it survives
whatever happens next), then processed, and the outcome is written back to the same row: in
the transaction of the status change it led to, with the log row of the inquiry that
confirmed it, so a change and its record commit together (two commits per message in all).
Neither is trusted on its own word: the redirect is only a hint to ask the bank, the push must
carry a valid checksum and is, by default, confirmed by an inquiry too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from golomt_payments import conf, limits
from golomt_payments.bank import storable
from golomt_payments.conf import IPNetwork
from golomt_payments.gateway import (
    PAID,
    BadResponse,
    ChecksumMismatch,
    GolomtError,
    is_valid_transaction_id,
    parse_transaction_result,
)
from golomt_payments.models import (
    BankMessage,
    CardRegistration,
    CardToken,
    Direction,
    Invoice,
    MessageKind,
    Outcome,
    Source,
    Status,
)
from golomt_payments.services.cards import FINISHED, finish_card_registration_if_due
from golomt_payments.services.payments import (
    Change,
    apply_result,
    customer_wait,
    flag_for_review,
    mismatch,
    refresh,
    refresh_if_due,
)

logger = logging.getLogger(__name__)

#: Header names never stored in the log, compared lower-case.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})

# What one inbound message may store, whatever it carried (the README's reliability table).
#: Bytes of a redirect's body or query string (a push keeps up to ``MAX_PUSH_BYTES``).
MAX_REDIRECT_BYTES = 4 * 1024
#: Characters of one header's name and of its value.
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 1024
#: Characters of all header names and values together, as JSON writes them (a character
#: outside ASCII counts as its escape, ``\u00ff``).
MAX_HEADERS = 4 * 1024
#: Characters of the endpoint (the request's path).
MAX_ENDPOINT = 200
#: The largest body size recorded (a declared ``Content-Length`` may say anything).
MAX_RECORDED_SIZE = 2**31 - 1
#: The header that says how much of the request's headers was not kept.
NOT_KEPT = "(not kept)"
#: Rejected inbound messages of one kind kept whole per invoice: enough evidence for a human.
#: Anyone can tie a message to an invoice (a transaction id is no secret) and retention never
#: removes one so tied, so each one past these keeps only its size, SHA-256, sender, endpoint
#: and error (``cut``, no body or headers).
MAX_REJECTS_KEPT = 20
#: Rejected pushes one address may have kept whole per minute; the rest of a flood is kept
#: compact (size, SHA-256, sender, path, error).
MAX_REJECTS_PER_MINUTE = 10


@dataclass(frozen=True, slots=True)
class RedirectResult:
    """What the return view needs to choose a page."""

    invoice: Invoice | None
    change: Change | None = None
    bank_unreachable: bool = False


@dataclass(frozen=True, slots=True)
class CardReturn:
    """What the card-saving return view needs: the registration, and its card once saved."""

    registration: CardRegistration | None
    card: CardToken | None = None
    bank_unreachable: bool = False


@dataclass(frozen=True, slots=True)
class PushReply:
    """The HTTP status to answer the bank with, and a short reason for the body."""

    status: int
    detail: str
    message: BankMessage | None = None


def clean_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers without credentials or cookies, safe to store and show."""
    return {name: value for name, value in headers.items() if name.lower() not in SECRET_HEADERS}


def bounded_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """The headers to store: clean, each name and value cut to its bound, all of them within
    :data:`MAX_HEADERS` (the rest counted under :data:`NOT_KEPT`); and whether anything was
    cut."""
    kept: dict[str, str] = {}
    used, dropped, cut = 0, 0, False
    for name, value in clean_headers(headers).items():
        short_name, short_value = (
            storable(name[:MAX_HEADER_NAME]),
            storable(value[:MAX_HEADER_VALUE]),
        )
        cut = cut or (short_name, short_value) != (name, value)
        cost = len(json.dumps(short_name)) + len(json.dumps(short_value))
        if dropped or used + cost > MAX_HEADERS:
            dropped += 1
            continue
        kept[short_name] = short_value
        used += cost
    if dropped:
        kept[NOT_KEPT] = f"{dropped} more headers"
    return kept, cut or bool(dropped)


def log_inbound(
    kind: str,
    body: str | bytes,
    *,
    headers: Mapping[str, str],
    remote_addr: str | None,
    endpoint: str = "",
    limit: int = MAX_REDIRECT_BYTES,
    size: int | None = None,
    sha256: str = "",
) -> BankMessage:
    """Write an inbound message to the log as it came, within fixed bounds: at most ``limit``
    bytes of ``body`` and :func:`bounded_headers`. ``size`` and ``sha256`` describe the whole
    body when the caller read more of it than it passes (or none of it); by default ``body``
    is the whole."""
    data = body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else body
    if size is None:
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    kept_headers, headers_cut = bounded_headers(headers)
    return BankMessage.objects.create(
        direction=Direction.INBOUND,
        kind=kind,
        body=_stored_text(data, limit),
        body_bytes=min(size, MAX_RECORDED_SIZE),
        body_sha256=sha256,
        cut=headers_cut or size > min(len(data), limit) or len(endpoint) > MAX_ENDPOINT,
        headers=kept_headers,
        remote_addr=_address(remote_addr),
        endpoint=storable(endpoint[:MAX_ENDPOINT]),
    )


def _stored_text(data: bytes, limit: int) -> str:
    """At most ``limit`` bytes of ``data`` as text of at most ``limit`` bytes in UTF-8: what is
    not UTF-8 becomes U+FFFD (three bytes each), so it is cut again once decoded. Valid UTF-8
    within the limit (every push we verify) is kept exactly."""
    text = storable(data[:limit].decode("utf-8", errors="replace"))
    encoded = text.encode("utf-8")
    return encoded[:limit].decode("utf-8", errors="ignore") if len(encoded) > limit else text


def _address(remote_addr: str | None) -> str | None:
    """The sender's address as the log column takes it; ``None`` for none or not an address."""
    try:
        return str(ipaddress.ip_address(remote_addr or ""))
    except ValueError:
        return None


def log_refused(kind: str, *, remote_addr: str | None, endpoint: str, reason: str) -> BankMessage:
    """Log compactly a request refused before anything of it was read (throttled)."""
    return BankMessage.objects.create(
        direction=Direction.INBOUND,
        kind=kind,
        remote_addr=_address(remote_addr),
        endpoint=storable(endpoint[:MAX_ENDPOINT]),
        outcome=Outcome.REJECTED,
        error=reason,
        processed_at=timezone.now(),
    )


def finish(
    message: BankMessage,
    outcome: str,
    *,
    error: str = "",
    invoice: Invoice | None = None,
    checksum_valid: bool | None = None,
    registration: CardRegistration | None = None,
    compact: bool = False,
) -> None:
    """Write a processing outcome back to its log row in one UPDATE; ``compact`` also drops
    its body and headers (their size and SHA-256 stay)."""
    values: dict[str, Any] = {
        "outcome": outcome,
        "error": storable(error[:2000]),
        "processed_at": timezone.now(),
    }
    if compact:
        values.update(body="", headers={}, cut=True)
    if invoice is not None:
        values.update(
            invoice=invoice, account=invoice.account, transaction_id=invoice.transaction_id
        )
    elif registration is not None:
        values.update(account=registration.account, transaction_id=registration.transaction_id)
    if checksum_valid is not None:
        values["checksum_valid"] = checksum_valid
    BankMessage.objects.filter(pk=message.pk).update(**values)
    for name, value in values.items():
        setattr(message, name, value)


def finisher(
    message: BankMessage,
    *,
    invoice: Invoice,
    checksum_valid: bool | None = None,
    bounded: bool = False,
) -> Callable[[Change], None]:
    """Writes the outcome of a status change back to ``message``, in the change's transaction.
    ``bounded``: a message that changed nothing is kept compact once its invoice keeps
    :data:`MAX_REJECTS_KEPT` of its kind (a browser return anyone can repeat)."""

    def record(change: Change) -> None:
        finish(
            message,
            _changed(change),
            error=change.reason,
            invoice=invoice,
            checksum_valid=checksum_valid,
            compact=bounded and not change.changed and _enough_kept(message, invoice),
        )

    return record


def _invoice(transaction_id: str) -> Invoice | None:
    """The invoice with this (unique) transaction id: a plain lookup, no ordering."""
    try:
        return Invoice.objects.get(transaction_id=transaction_id)
    except Invoice.DoesNotExist:
        return None


def _changed(change: Change) -> str:
    return Outcome.PROCESSED if change.changed else Outcome.UNCHANGED


# --- the browser redirect -------------------------------------------------------------------


def _log_redirect(
    raw: str | bytes,
    headers: Mapping[str, str],
    remote_addr: str | None,
    endpoint: str,
    size: int | None,
    sha256: str,
) -> tuple[BankMessage, bool]:
    """Log a redirect; whether it is refused for its size. One larger than
    :data:`MAX_REDIRECT_BYTES` is none of the bank's: logged compactly (its size and SHA-256,
    no body), refused."""
    too_large = (len(raw) if size is None else size) > MAX_REDIRECT_BYTES
    message = log_inbound(
        MessageKind.REDIRECT,
        raw,
        headers=headers,
        remote_addr=remote_addr,
        endpoint=endpoint,
        limit=0 if too_large else MAX_REDIRECT_BYTES,
        size=size,
        sha256=sha256,
    )
    if too_large:
        finish(message, Outcome.REJECTED, error=f"larger than {MAX_REDIRECT_BYTES} bytes")
    return message, too_large


def receive_redirect(
    params: Mapping[str, str],
    *,
    raw: str | bytes,
    headers: Mapping[str, str],
    remote_addr: str | None,
    endpoint: str = "",
    size: int | None = None,
    sha256: str = "",
) -> RedirectResult:
    """Log the redirect as it came (``raw``: query string or form body), find its invoice and
    ask the bank; the redirect's own status code is only a hint. One larger than
    :data:`MAX_REDIRECT_BYTES` is refused (see :func:`_log_redirect`)."""
    message, too_large = _log_redirect(raw, headers, remote_addr, endpoint, size, sha256)
    if too_large:
        return RedirectResult(None)
    transaction_id = params.get("invoice", "")
    if not is_valid_transaction_id(transaction_id):
        finish(message, Outcome.REJECTED, error="missing or malformed invoice parameter")
        return RedirectResult(None)
    invoice = _invoice(transaction_id)
    if invoice is None:
        finish(message, Outcome.REJECTED, error="unknown transaction id")
        return RedirectResult(None)
    message.transaction_id = invoice.transaction_id
    if invoice.status == Status.PAID:  # final: nothing the bank says could change it
        compact = _enough_kept(message, invoice)
        finish(message, Outcome.UNCHANGED, error="already paid", invoice=invoice, compact=compact)
        return RedirectResult(invoice, Change(invoice, invoice.status, invoice.status))
    try:
        change = refresh_if_due(
            invoice,
            source=Source.REDIRECT,
            message=message,
            record=finisher(message, invoice=invoice, bounded=True),
            claims_paid=params.get("status_code") == PAID,
            within=customer_wait(),
        )
    except GolomtError as exc:
        logger.warning("Inquiry for redirect of %s failed: %s", transaction_id, exc)
        finish(message, Outcome.FAILED, error=f"{type(exc).__name__}: {exc}", invoice=invoice)
        return RedirectResult(invoice, bank_unreachable=True)
    return RedirectResult(change.invoice, change)


# --- the browser redirect from the card-saving page -----------------------------------------


def receive_card_return(
    params: Mapping[str, str],
    *,
    raw: str | bytes,
    headers: Mapping[str, str],
    remote_addr: str | None,
    endpoint: str = "",
    size: int | None = None,
    sha256: str = "",
) -> CardReturn:
    """Log the redirect from the card-saving page as it came, find its registration and ask
    the bank for the token (``invoice`` is our transactionId; the rest is only a hint)."""
    message, too_large = _log_redirect(raw, headers, remote_addr, endpoint, size, sha256)
    if too_large:
        return CardReturn(None)
    transaction_id = params.get("invoice", "")
    if not is_valid_transaction_id(transaction_id):
        finish(message, Outcome.REJECTED, error="missing or malformed invoice parameter")
        return CardReturn(None)
    registration = CardRegistration.objects.filter(transaction_id=transaction_id).first()
    if registration is None:
        finish(message, Outcome.REJECTED, error="unknown transaction id")
        return CardReturn(None)
    before = registration.status
    if before in FINISHED:
        finish(message, Outcome.UNCHANGED, error="already finished", registration=registration)
        return CardReturn(registration, registration.card_token)
    try:
        card = finish_card_registration_if_due(registration)
    except GolomtError as exc:
        logger.warning("Get token for card return of %s failed: %s", transaction_id, exc)
        error = f"{type(exc).__name__}: {exc}"
        finish(message, Outcome.FAILED, error=error, registration=registration)
        return CardReturn(registration, bank_unreachable=True)
    outcome = Outcome.PROCESSED if registration.status != before else Outcome.UNCHANGED
    finish(message, outcome, error=registration.bank_description, registration=registration)
    return CardReturn(registration, card)


# --- the push notification ------------------------------------------------------------------


def receive_push(
    raw: bytes,
    *,
    content_type: str,
    headers: Mapping[str, str],
    remote_addr: str | None,
    endpoint: str = "",
    unread: tuple[int, str] | None = None,
    size: int | None = None,
    sha256: str = "",
) -> PushReply:
    """Log a push notification as it came, then process it.

    A push within ``MAX_PUSH_BYTES`` is stored whole, so it can be verified and replayed. One
    refused before it is read (403 outside ``PUSH_ALLOWED_IPS``, 413 too large, 415 not JSON)
    is logged compactly: its size and SHA-256, no body. ``unread`` is the HTTP status and
    reason for which the caller did not read the whole body (``raw`` is then what it read, if
    anything, and ``size`` and ``sha256`` what it knows of the whole).
    """
    settings = conf.get()
    if unread is None and max(len(raw), size or 0) > settings.max_push_bytes:
        unread = (413, f"body larger than {settings.max_push_bytes} bytes")
    refusal = unread
    if settings.push_allowed_ips and not push_from_allowed_address(remote_addr):
        refusal = (403, "sender address is not in PUSH_ALLOWED_IPS")
    elif refusal is None and content_type.split(";")[0].strip().lower() != "application/json":
        refusal = (415, "content type must be application/json")
    message = log_inbound(
        MessageKind.PUSH,
        raw,
        headers=headers,
        remote_addr=remote_addr,
        endpoint=endpoint,
        limit=0 if refusal else settings.max_push_bytes,
        size=size,
        sha256=sha256,
    )
    if refusal:
        return _reject(message, *refusal)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return _reject(message, 400, "body is not valid UTF-8")
    return process_push(message)


def _allowed(address: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    """``address`` is in one of ``networks``; an IPv4 address seen through a dual-stack socket
    (``::ffff:203.0.113.7``) counts as itself. No address, or none we can read, is not."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in network or (mapped is not None and mapped in network) for network in networks)


def push_from_allowed_address(address: str | None) -> bool:
    """The sender is on ``PUSH_ALLOWED_IPS`` (never throttled: a sale sends bursts)."""
    networks = conf.get().push_allowed_ips
    return bool(networks) and _allowed(address, networks)


def process_push(message: BankMessage) -> PushReply:
    """Verify and apply a logged push; safe to run again on the same row (replay)."""
    try:
        data: Any = json.loads(message.body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be the bank's
        return _reject(message, 400, "body is not JSON")
    if not isinstance(data, dict):
        return _reject(message, 400, "body is not a JSON object")
    transaction_id = data.get("transactionId")
    if not is_valid_transaction_id(transaction_id):
        return _reject(message, 400, "missing or malformed transactionId")
    invoice = _invoice(transaction_id)
    if invoice is None:
        return _reject(message, 400, "unknown transactionId")
    settings = conf.get()
    try:
        result = parse_transaction_result(
            data, settings.account(invoice.account).secret, kind="push"
        )
    except ChecksumMismatch:
        return _reject(message, 400, "checksum does not verify", invoice, checksum_valid=False)
    except BadResponse as exc:
        return _reject(message, 400, f"malformed notification: {exc}", invoice)
    problem = mismatch(invoice, result)
    if problem:
        flag_for_review(invoice, problem)
        return _reject(message, 400, problem, invoice, checksum_valid=True)
    if invoice.status == Status.PAID:  # final: a repeated push needs no inquiry
        finish(
            message, Outcome.UNCHANGED, error="already paid", invoice=invoice, checksum_valid=True
        )
        return PushReply(200, "already paid", message)
    record = finisher(message, invoice=invoice, checksum_valid=True)
    try:
        if settings.confirm_push_with_inquiry:
            change = refresh(
                invoice,
                source=Source.PUSH,
                message=message,
                record=record,
                within=settings.push_confirm_seconds,
            )
        else:
            change = apply_result(
                invoice, result, source=Source.PUSH, message=message, record=record
            )
    except GolomtError as exc:
        logger.warning("Could not confirm push for %s: %s", invoice.transaction_id, exc)
        finish(
            message,
            Outcome.FAILED,
            error=f"could not confirm with the bank: {type(exc).__name__}: {exc}",
            invoice=invoice,
            checksum_valid=True,
        )
        return PushReply(503, "bank could not be reached to confirm; retry later", message)
    return PushReply(200, "processed" if change.changed else change.reason, message)


def _reject(
    message: BankMessage,
    status: int,
    reason: str,
    invoice: Invoice | None = None,
    *,
    checksum_valid: bool | None = None,
) -> PushReply:
    logger.warning("Rejected push notification #%s: %s", message.pk, reason)
    finish(
        message,
        Outcome.REJECTED,
        error=reason,
        invoice=invoice,
        checksum_valid=checksum_valid,
        compact=_flooding(message) or (invoice is not None and _enough_kept(message, invoice)),
    )
    return PushReply(status, reason, message)


def _flooding(message: BankMessage) -> bool:
    """Its sender has had :data:`MAX_REJECTS_PER_MINUTE` pushes rejected this minute already:
    the rest of its flood is kept compact (one cache operation)."""
    count = limits.count_request("push-rejects", message.remote_addr, MAX_REJECTS_PER_MINUTE)
    return count.over > 0


def _enough_kept(message: BankMessage, invoice: Invoice) -> bool:
    """``invoice`` already keeps :data:`MAX_REJECTS_KEPT` messages of this one's kind (rejected
    ones for a rejected push; any for a return), itself not counted, should it be replayed.
    One query: a count of at most the bound, read in id order from the index of the messages
    tied to an invoice (the order keeps PostgreSQL from scanning the table for the first few of
    a flooded invoice). Two at the same moment may both be kept whole: the bound is passed by
    at most as many as run at once."""
    earlier = BankMessage.objects.filter(invoice=invoice, kind=message.kind)
    if message.kind == MessageKind.PUSH:
        earlier = earlier.filter(outcome=Outcome.REJECTED)
    earlier = earlier.exclude(pk=message.pk).order_by("pk")
    return earlier[:MAX_REJECTS_KEPT].count() >= MAX_REJECTS_KEPT
