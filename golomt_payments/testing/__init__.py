"""Helpers for shops' own tests: ``golomt_payments.testing.factories`` (needs factory-boy).

Nothing is imported here, so importing the package never requires the test extras.
"""
