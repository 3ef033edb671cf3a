"""Settings of the example shop, from environment variables with safe development defaults.

By default the shop pays at the sandbox bank mounted in the same process at /sandbox-bank/.
Give ``GOLOMT_BEARER_TOKEN``, ``GOLOMT_SECRET`` (and ``GOLOMT_BASE_URL`` for a test host) to
talk to a real bank instead; the sandbox is then not installed at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")
    SECRET_KEY = "example-shop-development-only-not-secret"

#: Where this shop is reached; the bank's callback, the push URL and the sandbox derive from it.
SHOP_URL = os.environ.get("SHOP_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = [SHOP_URL]

# In production the shop is served over HTTPS only (a card payment page must be).
HTTPS = SHOP_URL.startswith("https://")
SECURE_SSL_REDIRECT = HTTPS and env_bool("DJANGO_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS and env_bool("DJANGO_HSTS_ALL", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
if env_bool("DJANGO_BEHIND_HTTPS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REAL_BANK = any(
    os.environ.get(name) for name in ("GOLOMT_BEARER_TOKEN", "GOLOMT_SECRET", "GOLOMT_BASE_URL")
)
SANDBOX_BEARER_TOKEN = "sandbox-bearer-token"
SANDBOX_SECRET = "sandbox-secret"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "golomt_payments",
    "shop",
]
if not REAL_BANK:
    INSTALLED_APPS.append("golomt_payments.sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop_site.urls"
WSGI_APPLICATION = "shop_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB_PATH", str(BASE_DIR / "db.sqlite3")),
        # The bank's push, the browser's return and the status polling write at the same time.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("mn", "Монгол")]
TIME_ZONE = "Asia/Ulaanbaatar"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

GOLOMT_PAYMENTS = {
    "BEARER_TOKEN": os.environ.get(
        "GOLOMT_BEARER_TOKEN", "" if REAL_BANK else SANDBOX_BEARER_TOKEN
    ),
    "SECRET": os.environ.get("GOLOMT_SECRET", "" if REAL_BANK else SANDBOX_SECRET),
    "BASE_URL": os.environ.get(
        "GOLOMT_BASE_URL",
        "https://ecommerce.golomtbank.com" if REAL_BANK else f"{SHOP_URL}/sandbox-bank",
    ),
    "CALLBACK_BASE_URL": os.environ.get("GOLOMT_CALLBACK_BASE_URL", SHOP_URL),
    "RETURN_TYPE": os.environ.get("GOLOMT_RETURN_TYPE", "POST"),
    "SUCCESS_URL": "/orders/{reference}/",
    "FAILURE_URL": "/orders/{reference}/",
}

GOLOMT_SANDBOX = {
    "BEARER_TOKEN": SANDBOX_BEARER_TOKEN,
    "SECRET": SANDBOX_SECRET,
    "PUSH_URL": os.environ.get("GOLOMT_SANDBOX_PUSH_URL", f"{SHOP_URL}/payments/push/"),
    "PUSH_MODE": os.environ.get("GOLOMT_SANDBOX_PUSH_MODE", "thread"),
    "PAGE_TIMEOUT_SECONDS": int(os.environ.get("GOLOMT_SANDBOX_PAGE_TIMEOUT", "600")),
    "MERCHANT_NAME": "Nomad Goods (demo)",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "golomt_payments": {"handlers": ["console"], "level": "INFO"},
        "shop": {"handlers": ["console"], "level": "INFO"},
    },
}
