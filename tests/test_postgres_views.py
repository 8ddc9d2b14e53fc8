"""What is PostgreSQL's own about its views store (the rest is the views-store contract,
``tests/views_store_contract.py``, run on PostgreSQL by ``test_postgres_views_store.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from eventstore import open_store
from projections.postgres_views_store import to_dollar_params
from projections.views import live_views_store

pytestmark = pytest.mark.postgres


def test_placeholders_become_dollar_params() -> None:
    """? marks become $n, except inside string literals."""
    assert "SELECT $1, '?', 'it''s ?', $2 LIKE $3 ESCAPE '\\'" == to_dollar_params(
        "SELECT ?, '?', 'it''s ?', ? LIKE ? ESCAPE '\\'"
    )


async def test_views_live_in_the_prefixed_schema_without_synchronous_commit(
    postgres_uri: str,
) -> None:
    """The factory puts the views in ``<prefix>_views``, committed without waiting for the
    WAL flush (they are rebuilt from the log), while the log keeps ``synchronous_commit=on``."""
    async with open_store(postgres_uri) as store:
        views = live_views_store(store)
        await views.open()
        try:
            rows = await views.fetch(
                "SELECT current_schema(), current_setting('synchronous_commit')"
            )
        finally:
            await views.close()
        backend: Any = store.backend
        async with backend._pool.acquire() as conn:
            log_setting = await conn.fetchval("SHOW synchronous_commit")
    assert [(store.location.views_schema, "off")] == rows
    assert store.location.views_schema.endswith("_views")
    assert "on" == log_setting
