"""``manage.py seed_shop``: demo products, an admin login in DEBUG, and where to click.

Safe to run again: products are updated in place and the admin user is made only once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import translation

from shop.models import Product

#: slug, name, description, price (MNT), picture, card colour
PRODUCTS: tuple[tuple[str, str, str, str, str, str], ...] = (
    (
        "cashmere-scarf",
        "Cashmere scarf",
        "Soft Gobi cashmere, 180 by 30 cm.",
        "89000",
        "🧣",
        "#f6e7d7",
    ),
    (
        "felt-slippers",
        "Felt slippers",
        "Hand-made wool felt for the winter.",
        "45000",
        "🥿",
        "#e6eefc",
    ),
    (
        "khuushuur-box",
        "Khuushuur box",
        "Six fried mutton pastries to share.",
        "18000",
        "🥟",
        "#fdecea",
    ),
    ("suutei-tsai", "Suutei tsai mix", "Salty milk tea mix, 500 g.", "9800", "🍵", "#e7f5ea"),
    (
        "sea-buckthorn",
        "Sea buckthorn juice",
        "One litre from the Selenge valley.",
        "6500",
        "🧃",
        "#fff1cc",
    ),
    (
        "cashmere-sweater",
        "Cashmere sweater",
        "Classic crew neck, natural beige.",
        "289000",
        "🧥",
        "#efe7ff",
    ),
    ("test-item", "Sandbox test item", "Costs 1₮: for trying payments.", "1", "🧪", "#eceff3"),
)

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"  # development only: created only when DEBUG is on


class Command(BaseCommand):
    help = "Create the demo products (and an admin/admin superuser when DEBUG is on)."

    def handle(self, *args: Any, **options: Any) -> None:
        for position, (slug, name, description, price, emoji, colour) in enumerate(PRODUCTS):
            Product.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "description": description,
                    "price": Decimal(price),
                    "emoji": emoji,
                    "colour": colour,
                    "is_active": True,
                    "position": position,
                },
            )
        self.stdout.write(self.style.SUCCESS(f"{len(PRODUCTS)} products ready."))
        self._admin()
        self._print_urls()

    def _admin(self) -> None:
        users = get_user_model()
        if settings.DEBUG and not users.objects.filter(is_superuser=True).exists():
            users.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
            self.stdout.write(self.style.SUCCESS("Superuser admin/admin created (DEBUG only)."))

    def _print_urls(self) -> None:
        shop = getattr(settings, "SHOP_URL", "http://127.0.0.1:8000").rstrip("/")
        admin_user = get_user_model().objects.filter(username=ADMIN_USERNAME).first()
        login = (
            f"  (login {ADMIN_USERNAME} / {ADMIN_PASSWORD})"
            if settings.DEBUG and admin_user and admin_user.check_password(ADMIN_PASSWORD)
            else ""
        )
        lines = ["", f"Shop:   {shop}/", f"Admin:  {shop}/admin/{login}"]
        if apps.is_installed("golomt_payments.sandbox"):
            from golomt_payments.sandbox.cards import TEST_CARDS

            lines += [
                f"Bank:   {shop}/sandbox-bank/  (simulated Golomt bank)",
                "",
                "Test cards (any CVV, any future expiry MM/YY; a past expiry is declined):",
            ]
            with translation.override("en"):
                lines += [f"  {card.display}  {card.summary}" for card in TEST_CARDS]
        else:
            lines.append("Bank:   the real Golomt bank (GOLOMT_* environment variables).")
        self.stdout.write("\n".join([*lines, ""]))
