"""Minimal settings the test suite runs against (SQLite, or PostgreSQL when DATABASE_URL is set)."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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


def _database() -> dict[str, Any]:
    """PostgreSQL (or any database) from DATABASE_URL; else SQLite in a file on a RAM disk.

    Not ``:memory:``: there ``live_server`` shares one connection among all its threads, which
    fails when the sandbox's push races the browser's redirect. On a file each thread has its
    own connection, and IMMEDIATE transactions make writers wait for each other.
    """
    if os.environ.get("DATABASE_URL"):
        return dict(dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0))
    shm = Path("/dev/shm")  # noqa: S108 - a RAM disk where there is one: no fsync cost
    folder = tempfile.mkdtemp(prefix="golomt-tests-", dir=shm if shm.is_dir() else None)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = str(Path(folder) / "test.sqlite3")
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "TEST": {"NAME": path},
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }


DATABASES = {"default": _database()}
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
