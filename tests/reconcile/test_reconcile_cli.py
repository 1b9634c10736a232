"""`payport reconcile` parses its age, runs against the configured database and prints a summary."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from payport.migrate import upgrade
from payport.payments.reconcile_cli import parse_duration, reconcile_app


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", timedelta(seconds=90)), ("10m", timedelta(minutes=10)), ("2h", timedelta(hours=2))],
)
def test_older_than_reads_common_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_older_than_refuses_nonsense() -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration("ten minutes")


def test_reconcile_on_an_empty_database_heals_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'payport.db'}"
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no .env from the repository

    result = CliRunner().invoke(reconcile_app, ["--older-than", "1m"])

    assert result.exit_code == 0, result.output
    assert "healed 0; 0 looked at" in result.output
