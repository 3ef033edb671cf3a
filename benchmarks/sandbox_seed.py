"""Bulk-insert paid transactions into a standalone sandbox's SQLite file (run as a subprocess:
the sandbox has its own Django settings). Transaction ids are read from stdin, one a line.

    python benchmarks/sandbox_seed.py --db FILE [--state paid|pending] < ids.txt
"""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--state", choices=("paid", "pending"), default="paid")
    parser.add_argument("--amount", default="1000.00")
    args = parser.parse_args()

    import django
    from django.conf import settings
    from django.core.management import call_command

    from golomt_payments.sandbox.standalone import build_settings
    from golomt_payments.sandbox.standalone import parse_args as sandbox_args

    settings.configure(**build_settings(sandbox_args(["--db", args.db])))
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.utils import timezone

    from golomt_payments.sandbox.models import Kind, State, Transaction

    paid = args.state == "paid"
    ids = [line.strip() for line in sys.stdin if line.strip()]
    rows = [
        Transaction(
            transaction_id=tid,
            kind=Kind.PAYMENT,
            amount=args.amount,
            return_type="POST",
            callback="http://127.0.0.1:8000/payments/return/",
            lang="mn",
            state=State.SENT if paid else State.PENDING,
            error_code="000" if paid else "",
            error_desc="Амжилттай" if paid else "",
            card_number="949625******0003" if paid else "",
            card_holder="9496250" if paid else "",
            finished_at=timezone.now() if paid else None,
        )
        for tid in ids
    ]
    Transaction.objects.bulk_create(rows, batch_size=5000)
    print(f"seeded {len(rows)} sandbox transactions ({args.state})")


if __name__ == "__main__":
    main()
