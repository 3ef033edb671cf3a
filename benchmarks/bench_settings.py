"""Settings for the benchmarks: the test settings, on PostgreSQL, pointed at a local sandbox.

DATABASE_URL  (default postgres://golomt:golomt@127.0.0.1:5432/golomt_bench)
BENCH_BANK_URL  the sandbox's BASE_URL (default http://127.0.0.1:18765)
"""

import os

import dj_database_url

from tests.settings import *  # noqa: F403

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgres://golomt:golomt@127.0.0.1:5432/golomt_bench"
)
# Persistent connections, as a production deployment would use; the floor view gets the same.
DATABASES = {"default": dict(dj_database_url.parse(DATABASE_URL, conn_max_age=600))}
if os.environ.get("BENCH_PG_OPTIONS"):  # e.g. "-c synchronous_commit=off", this session only
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = os.environ["BENCH_PG_OPTIONS"]
ROOT_URLCONF = "benchmarks.bench_urls"
DEBUG = False
BENCH_TOKEN = "bench-bearer-token"  # noqa: S105 - a local simulator's credentials
BENCH_SECRET = "bench-hmac-secret"  # noqa: S105
GOLOMT_PAYMENTS = {
    "BEARER_TOKEN": BENCH_TOKEN,
    "SECRET": BENCH_SECRET,
    "BASE_URL": os.environ.get("BENCH_BANK_URL", "http://127.0.0.1:18765"),
    "CALLBACK_BASE_URL": "http://127.0.0.1:8000",
    "READ_RETRIES": 0,
}
if "RECONCILE_CONCURRENCY" in os.environ:
    GOLOMT_PAYMENTS["RECONCILE_CONCURRENCY"] = int(os.environ["RECONCILE_CONCURRENCY"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
}
