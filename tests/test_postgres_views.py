"""What is PostgreSQL's own about its views store (the rest is the views-store contract,
``tests/views_store_contract.py``, run on PostgreSQL by ``test_postgres_views_store.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eventstore import open_store
from projections.definition import Table
from projections.postgres_views_store import to_dollar_params
from projections.row_ops import layout
from projections.transactions import Execute, OpError, Tx, WriteMany, WriteRows
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


async def test_a_value_of_another_type_is_refused_before_anything_is_sent(
    postgres_uri: str,
) -> None:
    """A coalesced row whose value its column does not take (a digit string or a bool for
    an integer) reaches the transaction as its own error, with nothing written: the
    caller then runs the batch as statements."""
    table = Table("n INTEGER NOT NULL, label TEXT", "n")
    shape = layout(table)

    def write(row: tuple[Any, ...]) -> Callable[[], Tx[str]]:
        def body() -> Tx[str]:
            yield Execute("CREATE TABLE IF NOT EXISTS numbers (n INTEGER NOT NULL, label TEXT)")
            try:
                yield WriteMany((WriteRows("numbers", shape, [row], [], []),))
            except OpError as exc:
                return str(exc)
            return "written"

        return body

    async with open_store(postgres_uri) as store:
        views = live_views_store(store)
        await views.open()
        try:
            assert "written" == await views.transact(write((1, "one")))
            for bad in (("2", "two"), (True, "true"), (3, 3)):
                assert "another type" in await views.transact(write(bad))
            assert [(1, "one")] == await views.fetch("SELECT n, label FROM numbers")
        finally:
            await views.close()
