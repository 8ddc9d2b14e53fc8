"""Fresh, empty views stores for the tests that compare two ways of applying the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from projections.postgres_views_store import PostgresViewsStore
from projections.views_store import SQLiteViewsStore, ViewsStore


@asynccontextmanager
async def sqlite_views() -> AsyncIterator[ViewsStore]:
    """Empty views in memory, closed on exit."""
    views = SQLiteViewsStore(None)
    await views.open()
    try:
        yield views
    finally:
        await views.close()


@asynccontextmanager
async def postgres_views(server: str, schema: str) -> AsyncIterator[ViewsStore]:
    """Empty views in ``schema`` of ``server`` (one connection); the schema is dropped on exit."""
    import asyncpg

    views = PostgresViewsStore(server, schema, pool_size=1)
    await views.open()
    try:
        yield views
    finally:
        await views.close()
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
