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
    mismatch,
    payment_url,
    refresh,
    refresh_if_due,
    start_payment,
    target_status,
)

__all__ = [
    "TRANSITIONS",
    "Change",
    "PushReply",
    "RedirectResult",
    "apply_result",
    "can_transition",
    "expire",
    "flag_for_review",
    "mismatch",
    "payment_url",
    "process_push",
    "receive_push",
    "receive_redirect",
    "refresh",
    "refresh_if_due",
    "start_payment",
    "target_status",
]
