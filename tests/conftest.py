"""Shared fixtures: every test gets its own store directory, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite runs on asyncio only."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point METALEDGER_STORE and the user data dir at the test's own directory."""
    monkeypatch.setenv("METALEDGER_STORE", str(tmp_path / "default-store"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
