"""Signals a shop listens to. All are sent after the transaction commits, once per real change.

Every signal is sent with ``sender=Invoice`` and ``invoice=<Invoice>``; ``invoice_status_changed``
also carries ``old_status``, ``new_status`` and ``source``.
"""

from django.dispatch import Signal

invoice_status_changed = Signal()
payment_succeeded = Signal()
payment_failed = Signal()
payment_expired = Signal()
