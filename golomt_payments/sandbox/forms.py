"""The card form of the hosted pages: only the test cards, any future expiry, any CVV."""

from __future__ import annotations

import re
from datetime import date

from django import forms
from django.utils.translation import gettext_lazy as _

from golomt_payments.sandbox.cards import SandboxCard, card_for

_EXPIRY = re.compile(r"(0[1-9]|1[0-2])\s*/?\s*([0-9]{2})")
_CVV = re.compile(r"[0-9]{3,4}")


class CardForm(forms.Form):
    """What a customer types on the bank's page; ``expired`` decides a decline, not an error."""

    number = forms.CharField(
        label=_("Card number"),
        max_length=23,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "cc-number",
                "inputmode": "numeric",
                "placeholder": "9496 2500 0000 0003",
            }
        ),
    )
    expiry = forms.CharField(
        label=_("Expiry date (MM/YY)"),
        max_length=7,
        widget=forms.TextInput(
            attrs={"autocomplete": "cc-exp", "inputmode": "numeric", "placeholder": "MM/YY"}
        ),
    )
    cvv = forms.CharField(
        label=_("CVV"),
        max_length=4,
        widget=forms.PasswordInput(attrs={"autocomplete": "cc-csc", "inputmode": "numeric"}),
    )
    holder = forms.CharField(
        label=_("Card holder name"),
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "cc-name", "placeholder": "BAT ERDENE"}),
    )

    def clean_number(self) -> SandboxCard:
        card = card_for(self.cleaned_data["number"])
        if card is None:
            raise forms.ValidationError(
                _("Unknown card: this sandbox accepts only the test cards listed on this page.")
            )
        return card

    def clean_expiry(self) -> tuple[int, int]:
        match = _EXPIRY.fullmatch(self.cleaned_data["expiry"].strip())
        if match is None:
            raise forms.ValidationError(_("Enter the expiry date as MM/YY."))
        return int(match.group(1)), 2000 + int(match.group(2))

    def clean_cvv(self) -> str:
        value: str = self.cleaned_data["cvv"].strip()
        if not _CVV.fullmatch(value):
            raise forms.ValidationError(_("Enter the 3 digits on the back of the card."))
        return value

    def clean_holder(self) -> str:
        return " ".join(self.cleaned_data["holder"].split()).upper()

    def expired(self, today: date) -> bool:
        """A card whose expiry month is over is declined by the bank (code 300)."""
        month, year = self.cleaned_data["expiry"]
        return (year, month) < (today.year, today.month)
