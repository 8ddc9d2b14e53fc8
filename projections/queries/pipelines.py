"""Pipeline queries: pipelines as their runs show them."""

from __future__ import annotations

from datetime import datetime

import msgspec

from eventstore import datetime_from_us
from projections.errors import ViewNotFoundError
from projections.transactions import Fetch, Tx

from .common import ViewsReader, _suggest


class PipelineView(msgspec.Struct, frozen=True, kw_only=True):
    """A pipeline, as its runs show it: how many runs, and the latest one."""

    name: str
    runs: int
    last_run_id: str
    last_run_name: str
    last_status: str
    last_started_at: datetime


class PipelineQueries(ViewsReader):
    """Queries of pipelines."""

    async def pipelines(self, name: str | None = None) -> list[PipelineView]:
        """Pipelines (names of live runs), the most recently run first; or the one named.

        A ``name`` no live run has raises ViewNotFoundError with close names.
        """

        def body() -> Tx[list[PipelineView]]:
            where, params = ("WHERE pipeline_name = ?", (name,)) if name is not None else ("", ())
            rows = yield Fetch(
                "SELECT r.pipeline_name, c.n, r.run_id, r.run_name, r.status, r.started_at_us "
                "FROM runs r JOIN (SELECT pipeline_name, COUNT(*) AS n, "
                f"MAX(started_at_us) AS last FROM runs {where} GROUP BY pipeline_name) c "
                "ON c.pipeline_name = r.pipeline_name AND r.started_at_us = c.last "
                "ORDER BY r.started_at_us DESC, r.position DESC",
                params,
            )
            found: dict[str, PipelineView] = {}
            for row in rows:
                if row[0] not in found:
                    found[row[0]] = PipelineView(
                        name=row[0],
                        runs=row[1],
                        last_run_id=row[2],
                        last_run_name=row[3],
                        last_status=row[4],
                        last_started_at=datetime_from_us(row[5]),
                    )
            if name is not None and not found:
                names = yield Fetch("SELECT DISTINCT pipeline_name FROM runs LIMIT 2000")
                raise ViewNotFoundError("pipeline", name, _suggest(name, [n for (n,) in names]))
            return list(found.values())

        result: list[PipelineView] = await self.views.read(body)
        return result
