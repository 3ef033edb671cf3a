"""The sandbox as its own server (``python -m golomt_payments.sandbox.standalone``)."""

from __future__ import annotations

import http.client
import json
import sqlite3
import sys
from pathlib import Path

import requests

from golomt_payments.gateway import GolomtClient, checksum
from golomt_payments.sandbox import standalone
from tests.sandbox.helpers import pay_on_page
from tests.sandbox.processes import child_env, free_port, serving


def test_standalone_server_speaks_the_protocol(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "golomt_payments.sandbox.standalone",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "bank.sqlite3"),
        "--push-mode",
        "off",
    ]
    env = child_env({"GOLOMT_SANDBOX_BEARER_TOKEN": "tok", "GOLOMT_SANDBOX_SECRET": "sec"})
    base_url = f"http://127.0.0.1:{port}"

    with (
        serving(command, port, env),
        GolomtClient(base_url=base_url, bearer_token="tok", secret="sec") as client,
    ):
        created = client.create_invoice(
            transaction_id="alone1", amount="1.00", callback="https://shop.test/return/"
        )
        assert client.inquiry("alone1").is_unpaid
        with requests.Session() as browser:
            pay_on_page(browser, client.payment_url(created.invoice))
        result = client.inquiry("alone1")

    assert result.is_paid
    assert result.amount == "1"
    assert (tmp_path / "bank.sqlite3").exists()  # state kept where asked, across restarts


def test_standalone_server_keeps_the_connection_open_between_calls(tmp_path: Path) -> None:
    """A client such as the reconciler sends call after call on one pooled connection: the
    server keeps it open (each answer says how long it is). Its SQLite file is in WAL mode,
    so inquiries never wait for a write to finish."""
    port = free_port()
    db = tmp_path / "bank.sqlite3"
    command = [
        sys.executable,
        "-m",
        "golomt_payments.sandbox.standalone",
        "--port",
        str(port),
        "--db",
        str(db),
        "--push-mode",
        "off",
    ]
    env = child_env({"GOLOMT_SANDBOX_BEARER_TOKEN": "tok", "GOLOMT_SANDBOX_SECRET": "sec"})
    body = json.dumps(
        {
            "transactionId": "kept1",
            "checksum": checksum.inquiry_request("sec", transaction_id="kept1"),
        }
    )
    headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}

    base_url = f"http://127.0.0.1:{port}"

    with serving(command, port, env):
        with GolomtClient(base_url=base_url, bearer_token="tok", secret="sec") as client:
            client.create_invoice(
                transaction_id="kept1", amount="1.00", callback="https://shop.test/return/"
            )
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            answers, sockets = [], []
            for _ in range(3):
                connection.request("POST", "/api/inquiry", body=body, headers=headers)
                sockets.append(connection.sock)
                response = connection.getresponse()
                answers.append((response.status, json.loads(response.read())["status"]))
                assert response.getheader("Content-Length")
                assert not response.will_close
        finally:
            connection.close()
        with sqlite3.connect(db) as bank_db:
            (mode,) = bank_db.execute("PRAGMA journal_mode").fetchone()

    assert answers == [(200, "PENDING")] * 3
    assert sockets[0] is sockets[1] is sockets[2]  # one connection for the three calls
    assert mode == "wal"


def test_standalone_settings_mount_the_sandbox_at_the_root(tmp_path: Path) -> None:
    args = standalone.parse_args(
        ["--push-url", "http://127.0.0.1:8000/payments/push/", "--db", str(tmp_path / "b.db")]
    )
    settings = standalone.build_settings(args)

    assert settings["ROOT_URLCONF"] == "golomt_payments.sandbox.standalone"
    assert settings["INSTALLED_APPS"] == ["golomt_payments.sandbox"]
    assert settings["GOLOMT_SANDBOX"]["PUSH_URL"] == "http://127.0.0.1:8000/payments/push/"
    assert settings["GOLOMT_SANDBOX"]["PUSH_MODE"] == "thread"
    assert settings["DATABASES"]["default"]["NAME"] == str(tmp_path / "b.db")
    # One SQLite connection per server thread, kept between the requests of a client.
    assert settings["DATABASES"]["default"]["CONN_MAX_AGE"] is None
