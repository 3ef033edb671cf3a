"""Golomt Bank E-Commerce payments for Django shops."""

__version__ = "0.1.0"
