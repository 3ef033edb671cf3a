"""Models and migrations agree: no change is waiting for a new migration."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration() -> None:
    out = io.StringIO()

    try:
        call_command("makemigrations", "golomt_payments", "--check", "--dry-run", stdout=out)
    except SystemExit as exit_:  # raised when a migration would be written
        pytest.fail(f"makemigrations found changes (exit {exit_.code}):\n{out.getvalue()}")

    assert "No changes detected" in out.getvalue()
