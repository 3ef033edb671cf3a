"""The REST API (Django REST framework) for the shop's own apps: a mobile app starts a payment,
reads its status, and manages the customer's saved cards.

Include it with the app's URLs (``payments/api/``). Authentication and permissions are the
shop's (``API_AUTHENTICATION_CLASSES``, ``API_PERMISSION_CLASSES``); the amount always comes
from the shop's ``API_ORDER_RESOLVER``, never from the client. ``api/schema/`` serves the
OpenAPI 3 schema (drf-spectacular).
"""
