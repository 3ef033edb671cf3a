"""Signals a shop listens to, and the contract they are delivered under.

Each signal the shop is owed is written to the outbox (:class:`~golomt_payments.models.
Notification`) in the same transaction as the change it announces, sent after the commit, and
marked delivered once every receiver returned. One that was not (the worker died, a receiver
raised) is sent again by ``golomt_reconcile`` and the Celery task until it is: **at least
once, each with an event id; written in the same transaction as the payment.** Every signal
carries ``event_id`` (a string, the same on every delivery of one notification), so a
receiver can tell a redelivery and make its effect happen once.

Invoice signals are sent with ``sender=Invoice`` and ``invoice=<Invoice>``:

- ``invoice_status_changed``: every status change, with ``old_status``, ``new_status`` and
  ``source``;
- ``payment_succeeded`` (``source``): the order is paid; once per order (shop reference);
- ``payment_failed``, ``payment_expired`` (``source``);
- ``payment_duplicated`` (``first_invoice``, ``source``): money arrived for an order that
  another invoice had already paid; the invoice is flagged for review: refund it;
- ``payment_refunded`` (``refund``): staff recorded a refund made in the bank's portal.

Saved-card signals are sent with ``sender=CardToken`` and ``card=<CardToken>``: ``card_saved``
also carries ``invoice`` (the payment that saved it) or ``registration`` (the add-a-card flow
that saved it), the other being ``None``; ``card_removed`` carries the card alone.
"""

from django.dispatch import Signal

invoice_status_changed = Signal()
payment_succeeded = Signal()
payment_failed = Signal()
payment_expired = Signal()
payment_duplicated = Signal()
payment_refunded = Signal()

card_saved = Signal()
card_removed = Signal()
