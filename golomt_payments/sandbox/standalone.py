"""Run the sandbox bank as its own server, outside any shop project::

    python -m golomt_payments.sandbox.standalone --port 8765 \\
        --push-url http://127.0.0.1:8000/payments/push/

The bank sits at the root, so the shop's ``GOLOMT_PAYMENTS["BASE_URL"]`` is
``http://127.0.0.1:8765``. State lives in a SQLite file (in a new temporary directory unless
``--db`` names one). Credentials come from ``--token``/``--secret`` or, better (argv is visible
to other users), ``GOLOMT_SANDBOX_BEARER_TOKEN``/``GOLOMT_SANDBOX_SECRET``.

This module is also the server's URLconf (``urlpatterns``); importing it configures nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import socketserver
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.db import connections
from django.urls import include, path

__all__ = [
    "SandboxRequestHandler",
    "SandboxServer",
    "build_settings",
    "main",
    "parse_args",
]

# Public defaults of a local simulator, not credentials of anything real.
DEFAULT_TOKEN = "sandbox-bearer-token"  # noqa: S105
DEFAULT_SECRET = "sandbox-secret"  # noqa: S105


def __getattr__(name: str) -> Any:
    """``urlpatterns``, built on first use: ``include()`` imports models, so not at import time."""
    if name == "urlpatterns":
        return [path("", include("golomt_payments.sandbox.urls"))]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m golomt_payments.sandbox.standalone",
        description="A simulated Golomt Bank E-Commerce gateway for development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--push-url", default="", help="the shop's push URL; empty: no push")
    parser.add_argument("--push-mode", choices=("thread", "sync", "off"), default="thread")
    parser.add_argument(
        "--token",
        default=os.environ.get("GOLOMT_SANDBOX_BEARER_TOKEN", DEFAULT_TOKEN),
        help="bearer token the shop sends (env GOLOMT_SANDBOX_BEARER_TOKEN)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get("GOLOMT_SANDBOX_SECRET", DEFAULT_SECRET),
        help="HMAC secret shared with the shop (env GOLOMT_SANDBOX_SECRET)",
    )
    parser.add_argument("--db", default="", help="SQLite file (default: a new temp directory)")
    parser.add_argument("--page-timeout", type=int, default=600, help="page timer in seconds")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay added to API calls")
    parser.add_argument("--merchant-name", default="Sandbox merchant")
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Django settings for a server that is nothing but the sandbox bank."""
    db_path = args.db or str(Path(tempfile.mkdtemp(prefix="golomt-sandbox-")) / "bank.sqlite3")
    return {
        "DEBUG": False,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": ["*"],
        "ROOT_URLCONF": "golomt_payments.sandbox.standalone",
        "INSTALLED_APPS": ["golomt_payments.sandbox"],
        # CommonMiddleware says how long each answer is, so a client may send its next request
        # on the same connection (without it every answer closes the connection, and a client
        # such as the reconciler opens a new one per call). Nothing here needs a slash added.
        "MIDDLEWARE": ["django.middleware.common.CommonMiddleware"],
        "APPEND_SLASH": False,
        "TEMPLATES": [
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": db_path,
                # The push thread and the request threads write at the same time. In WAL mode
                # reads never wait for a write, and a commit is not flushed to disk (a
                # simulator may lose its last transactions in a power cut, never the file).
                "OPTIONS": {
                    "timeout": 20,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                },
                # One connection per server thread, kept from one request to the next on a
                # kept-alive HTTP connection; SandboxServer closes it when the thread ends.
                "CONN_MAX_AGE": None,
            }
        },
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "TIME_ZONE": "Asia/Ulaanbaatar",
        "USE_I18N": True,
        "LANGUAGE_CODE": "mn",
        "LANGUAGES": [("mn", "Монгол"), ("en", "English")],
        "GOLOMT_SANDBOX": {
            "BEARER_TOKEN": args.token,
            "SECRET": args.secret,
            "PUSH_URL": args.push_url,
            "PUSH_MODE": args.push_mode,
            "PAGE_TIMEOUT_SECONDS": args.page_timeout,
            "LATENCY_MS": args.latency_ms,
            "MERCHANT_NAME": args.merchant_name,
        },
    }


class SandboxRequestHandler(WSGIRequestHandler):
    """Django's request handler, sending each write at once: on a kept-alive connection,
    Nagle's algorithm would hold the body back until the client acknowledged the headers,
    which a client delays by up to 40 ms."""

    disable_nagle_algorithm = True


class SandboxServer(socketserver.ThreadingMixIn, WSGIServer):
    """Django's development server, a thread per client connection (kept alive between
    requests), each thread closing its database connection when its client goes."""

    daemon_threads = True

    def process_request_thread(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            connections.close_all()


def main(argv: Sequence[str] | None = None) -> None:
    """Configure Django, create the tables, and serve until interrupted (threaded WSGI)."""
    args = parse_args(argv)
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    settings.configure(**build_settings(args))
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    server = SandboxServer((args.host, args.port), SandboxRequestHandler)
    try:
        push = args.push_url or "off"
        print(
            f"Golomt sandbox bank: BASE_URL http://{args.host}:{server.server_port}  "
            f"push: {push} ({args.push_mode})  db: {settings.DATABASES['default']['NAME']}",
            flush=True,
        )
        server.set_app(get_wsgi_application())
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
