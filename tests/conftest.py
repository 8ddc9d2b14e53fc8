"""Shared fixtures: every test gets its own store directory, never the user's."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
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


def postgres_dsn() -> str:
    """The server the PostgreSQL tests use: $METALEDGER_TEST_POSTGRES or the local one."""
    return os.environ.get("METALEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _server_answers(dsn: str) -> str | None:
    async def probe() -> None:
        import asyncpg

        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        anyio.run(probe)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A reachable PostgreSQL server; skipped when there is none, unless under CI (then fail)."""
    dsn = postgres_dsn()
    problem = _server_answers(dsn)
    if problem is not None:
        message = f"no PostgreSQL server answers at {dsn} ({problem})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(message)
    return dsn


@pytest.fixture
def postgres_uri(postgres_server: str) -> Iterator[str]:
    """A store URI on a fresh schema prefix; its schemas are dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield f"{postgres_server}?schema_prefix={prefix}"
    drop_schemas(postgres_server, prefix)


async def drop_schemas_async(dsn: str, prefix: str) -> None:
    """Drop the log and views schemas of one prefix (from async code)."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for schema in (f"{prefix}_ledger", f"{prefix}_views"):
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def drop_schemas(dsn: str, prefix: str) -> None:
    """Drop the log and views schemas of one prefix (from sync code, e.g. a fixture)."""
    anyio.run(drop_schemas_async, dsn, prefix)
