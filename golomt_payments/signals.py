"""Signals a shop listens to. All are sent after the transaction commits, once per real change.

Invoice signals are sent with ``sender=Invoice`` and ``invoice=<Invoice>``;
``invoice_status_changed`` also carries ``old_status``, ``new_status`` and ``source``.

Saved-card signals are sent with ``sender=CardToken`` and ``card=<CardToken>``: ``card_saved``
also carries ``invoice`` (the payment that saved it) or ``registration`` (the add-a-card flow
that saved it), the other being ``None``.
"""

from django.dispatch import Signal

invoice_status_changed = Signal()
payment_succeeded = Signal()
payment_failed = Signal()
payment_expired = Signal()

card_saved = Signal()
card_removed = Signal()
