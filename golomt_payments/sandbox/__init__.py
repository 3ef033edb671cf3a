"""A simulated Golomt bank: the E-Commerce API and the hosted payment pages, backed by the DB.

Mount it in a development project (``path("sandbox-bank/", include(...urls))``) or run it as
its own server (``python -m golomt_payments.sandbox.standalone``) so a shop can be built and
tested end to end without the real bank, including the bank's bad days (see :mod:`.cards`).
"""
