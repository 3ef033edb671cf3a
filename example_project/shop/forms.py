from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class CheckoutForm(forms.Form):
    customer_name = forms.CharField(label=_("Your name"), max_length=100)
    phone = forms.CharField(label=_("Phone (optional)"), max_length=20, required=False)


class QuantityForm(forms.Form):
    quantity = forms.IntegerField(min_value=0, max_value=99)
