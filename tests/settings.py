"""Minimal settings the test suite runs against (SQLite, or PostgreSQL when DATABASE_URL is set)."""

import os

import dj_database_url

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "Asia/Ulaanbaatar"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("mn", "Mongolian")]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "golomt_payments",
    "golomt_payments.sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
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
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "sqlite:///:memory:"), conn_max_age=0
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

GOLOMT_PAYMENTS = {
    "BEARER_TOKEN": "test-bearer-token",
    "SECRET": "test-hmac-secret",
    "BASE_URL": "https://bank.test",
    "CALLBACK_BASE_URL": "https://shop.test",
    "READ_RETRIES": 0,
}

# The sandbox bank's own settings; the sandbox tests point both sides at each other.
GOLOMT_SANDBOX = {
    "BEARER_TOKEN": GOLOMT_PAYMENTS["BEARER_TOKEN"],
    "SECRET": GOLOMT_PAYMENTS["SECRET"],
    "PUSH_MODE": "off",
}
