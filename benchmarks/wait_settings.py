"""Settings for ``customer_wait.py``: the benchmark settings, with what that benchmark needs.

- ``READ_RETRIES`` back at the app's default (2), as deployed: a background inquiry may take
  ``READ_TIMEOUT`` (20 s) three times, and before ``CUSTOMER_WAIT_SECONDS`` so did a customer's;
- the bank sends the browser back to ``BENCH_SHOP_URL`` (the gunicorn under test);
- ``CUSTOMER_WAIT_SECONDS`` from ``BENCH_CUSTOMER_WAIT`` when given, else the app's default;
- one cache for every gunicorn worker and the script (files in ``BENCH_CACHE_DIR``), standing in
  for a deployment's shared cache: the status check's once-per-interval rule and the per-address
  limit are then counted across workers, as in production.
"""

import os

from benchmarks.bench_settings import *  # noqa: F403
from benchmarks.bench_settings import GOLOMT_PAYMENTS as _BENCH_PAYMENTS

GOLOMT_PAYMENTS = {key: value for key, value in _BENCH_PAYMENTS.items() if key != "READ_RETRIES"}
GOLOMT_PAYMENTS["CALLBACK_BASE_URL"] = os.environ.get("BENCH_SHOP_URL", "http://127.0.0.1:18111")
if os.environ.get("BENCH_CUSTOMER_WAIT"):
    GOLOMT_PAYMENTS["CUSTOMER_WAIT_SECONDS"] = float(os.environ["BENCH_CUSTOMER_WAIT"])
if os.environ.get("BENCH_CACHE_DIR"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ["BENCH_CACHE_DIR"],
        }
    }
