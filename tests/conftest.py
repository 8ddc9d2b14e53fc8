"""Shared fixtures: every test gets its own store directory, never the user's."""

from __future__ import annotations

from pathlib import Path

import hypothesis.internal.conjecture.optimiser  # noqa: F401
import pytest

# Hypothesis imports its optimiser lazily, deep inside a running test; pytest
# then rewrites it, and CPython 3.11's compiler fails at that stack depth
# ("AST constructor recursion depth mismatch"). Importing it here, at the top,
# sidesteps the interpreter bug.


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite runs on asyncio only."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point METALEDGER_STORE and the user data dir at the test's own directory."""
    monkeypatch.setenv("METALEDGER_STORE", str(tmp_path / "default-store"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
