"""WSGI entry point for gunicorn: ``gunicorn benchmarks.bench_wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
application = get_wsgi_application()
