"""Tests of the simulated bank (``golomt_payments.sandbox``) and of the example shop."""
