"""The sandbox's test cards: one per outcome a shop must survive, the bank's bad days included.

The hosted pages list them, the tests use them and the README documents them, all from
:data:`TEST_CARDS`. Any CVV and any expiry date in the future are accepted; an expiry date in
the past is declined like the declined card (code 300, the bank's "card expired").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

__all__ = [
    "BANK_NAME",
    "DECLINED_CODE",
    "DECLINED_DESC",
    "SOCIALPAY_CARD",
    "SUCCESS_CODE",
    "SUCCESS_DESC",
    "TEST_CARDS",
    "Behaviour",
    "SandboxCard",
    "by_behaviour",
    "card_for",
    "mask",
    "normalise_number",
]

SUCCESS_CODE = "000"
SUCCESS_DESC = "Амжилттай"
#: The one failure code the bank documents; the sandbox invents no others.
DECLINED_CODE = "300"
DECLINED_DESC = "Картын хугацаа дууссан"
BANK_NAME = "Голомт банк"


class Behaviour(StrEnum):
    """What happens after the customer presses Pay."""

    SUCCESS = "success"
    DECLINED = "declined"
    PUSH_LOST = "push_lost"
    PUSH_LATE = "push_late"
    PUSH_TWICE = "push_twice"
    REDIRECT_LOST = "redirect_lost"
    BOTH_LOST = "both_lost"
    INQUIRY_FAILS = "inquiry_fails"
    INQUIRY_SLOW = "inquiry_slow"
    SAVED_CARD_DECLINED = "saved_card_declined"

    @property
    def paid(self) -> bool:
        return self is not Behaviour.DECLINED

    @property
    def redirects(self) -> bool:
        return self not in (Behaviour.REDIRECT_LOST, Behaviour.BOTH_LOST)


@dataclass(frozen=True, slots=True)
class SandboxCard:
    """A card number the sandbox knows, and the outcome it produces."""

    number: str
    behaviour: Behaviour
    summary: str | Promise

    @property
    def display(self) -> str:
        """The number in groups of four, as printed on a card."""
        return " ".join(self.number[i : i + 4] for i in range(0, len(self.number), 4))

    @property
    def masked(self) -> str:
        return mask(self.number)

    @property
    def code(self) -> str:
        return SUCCESS_CODE if self.behaviour.paid else DECLINED_CODE


TEST_CARDS: tuple[SandboxCard, ...] = (
    SandboxCard("9496250000000003", Behaviour.SUCCESS, _("Success (000 Амжилттай)")),
    SandboxCard("9496250000000011", Behaviour.DECLINED, _("Declined (300 Картын хугацаа дууссан)")),
    SandboxCard("9496250000000029", Behaviour.PUSH_LOST, _("Success, the push is never sent")),
    SandboxCard(
        "9496250000000037",
        Behaviour.PUSH_LATE,
        _("Success, the push arrives late (LATE_PUSH_SECONDS, default 5 s)"),
    ),
    SandboxCard("9496250000000045", Behaviour.PUSH_TWICE, _("Success, the push is sent twice")),
    SandboxCard(
        "9496250000000052",
        Behaviour.REDIRECT_LOST,
        _("Success, the redirect is lost (the bank page closes)"),
    ),
    SandboxCard(
        "9496250000000060", Behaviour.BOTH_LOST, _("Success, both the push and the redirect lost")
    ),
    SandboxCard(
        "9496250000000078",
        Behaviour.INQUIRY_FAILS,
        _("Success, the next inquiries answer HTTP 500 (FAILING_INQUIRY_COUNT, default 3)"),
    ),
    SandboxCard(
        "9496250000000086",
        Behaviour.INQUIRY_SLOW,
        _("Success, the next inquiries answer slowly (SLOW_INQUIRY_SECONDS, default 25 s)"),
    ),
    SandboxCard(
        "9496250000000094",
        Behaviour.SAVED_CARD_DECLINED,
        _("Success; once saved, every payment with the saved card is declined (300)"),
    ),
)

#: The "card" behind a SocialPay approval (SocialPay pays from a card in the customer's app).
SOCIALPAY_CARD = TEST_CARDS[0]

_BY_NUMBER = {card.number: card for card in TEST_CARDS}


def normalise_number(text: str) -> str:
    """Card number as typed ("9496 2500-0000 0003") to digits only."""
    return "".join(ch for ch in text if ch not in " -")


def card_for(number: str) -> SandboxCard | None:
    """The test card with this number, ignoring spaces and dashes."""
    return _BY_NUMBER.get(normalise_number(number))


def mask(number: str) -> str:
    """``9496250000000003`` -> ``949625******0003``: first six and last four, like the bank."""
    digits = normalise_number(number)
    if len(digits) < 11:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def by_behaviour(behaviour: Behaviour) -> SandboxCard:
    """The test card that produces ``behaviour`` (SocialPay scenarios reuse them)."""
    for card in TEST_CARDS:
        if card.behaviour is behaviour:
            return card
    raise LookupError(behaviour)  # pragma: no cover - every behaviour has a card
