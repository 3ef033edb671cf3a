"""The domain: the only code that changes an invoice. Views, admin and commands call these."""

from golomt_payments.services.inbound import (
    PushReply,
    RedirectResult,
    process_push,
    receive_push,
    receive_redirect,
)
from golomt_payments.services.payments import (
    TRANSITIONS,
    Change,
    apply_result,
    can_transition,
    expire,
    flag_for_review,
    inquire,
    mismatch,
    payment_url,
    refresh,
    refresh_if_due,
    start_payment,
    target_status,
)
from golomt_payments.services.reconciliation import (
    DEFAULT_MESSAGE_LIMIT,
    ReconcileSummary,
    count_due,
    reconcile,
)

__all__ = [
    "DEFAULT_MESSAGE_LIMIT",
    "TRANSITIONS",
    "Change",
    "PushReply",
    "ReconcileSummary",
    "RedirectResult",
    "apply_result",
    "can_transition",
    "count_due",
    "expire",
    "flag_for_review",
    "inquire",
    "mismatch",
    "payment_url",
    "process_push",
    "receive_push",
    "receive_redirect",
    "reconcile",
    "refresh",
    "refresh_if_due",
    "start_payment",
    "target_status",
]
