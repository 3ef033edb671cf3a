"""``manage.py check --deploy`` on the example shop, configured as in production.

The example project is what shops copy: with DEBUG off, a real bank and an https:// address, its
settings must pass Django's deployment checklist and the app's own checks without a warning.
Each check runs in a child process, since the shop has its own settings module.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MANAGE = str(REPO / "example_project" / "manage.py")

SHOP = "https://shop.example.mn"
#: The whole production environment of the example shop: every variable its settings read.
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "shop.example.mn",
    "SHOP_URL": SHOP,
    "GOLOMT_BEARER_TOKEN": "production-bearer-token",
    "GOLOMT_SECRET": "production-hmac-secret",
    "GOLOMT_BASE_URL": "https://ecommerce.golomtbank.com",
    "GOLOMT_CALLBACK_BASE_URL": SHOP,
    "GOLOMT_RETURN_TYPE": "POST",
}
#: Setting any one of these makes the example talk to a real bank instead of its sandbox.
REAL_BANK = ("GOLOMT_BEARER_TOKEN", "GOLOMT_SECRET", "GOLOMT_BASE_URL")


def deploy_check(tmp_path: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``check --deploy --fail-level WARNING`` with only ``environment`` configuring the shop:
    nothing of this test run's own Django settings, database or shop variables leaks in."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH")
        and not key.startswith(("DJANGO_", "GOLOMT_", "SHOP_"))
    }
    env = {
        **inherited,
        "PYTHONPATH": str(REPO),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "SHOP_DB_PATH": str(tmp_path / "db.sqlite3"),
        **environment,
    }
    return subprocess.run(  # noqa: S603 - a fixed command line built by the test
        [sys.executable, MANAGE, "check", "--deploy", "--fail-level", "WARNING"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_example_shop_passes_check_deploy_with_production_settings(tmp_path: Path) -> None:
    done = deploy_check(tmp_path, PRODUCTION)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_check_deploy_warns_when_the_sandbox_bank_is_installed_in_production(
    tmp_path: Path,
) -> None:
    """The example installs its simulated bank whenever no real bank is configured; the same
    production environment without the real bank's variables must fail the deploy check."""
    sandboxed = {key: value for key, value in PRODUCTION.items() if key not in REAL_BANK}

    done = deploy_check(tmp_path, sandboxed)

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "golomt_sandbox.W001" in output, output


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        ("GOLOMT_CALLBACK_BASE_URL", "http://shop.example.mn", "golomt_payments.W001"),
        ("GOLOMT_BASE_URL", "http://ecommerce.golomtbank.com", "golomt_payments.W002"),
    ],
    ids=["http-callback", "http-bank"],
)
def test_check_deploy_warns_about_plain_http_to_or_from_the_bank(
    tmp_path: Path, variable: str, value: str, check: str
) -> None:
    done = deploy_check(tmp_path, {**PRODUCTION, variable: value})

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert check in output, output
