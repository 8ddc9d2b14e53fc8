"""The runs list's filters and its cursor pagination (the read API's keyset ``after``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from projections.queries import Queries, RunView

from .errors import BadPageInput


@dataclass(frozen=True)
class RunFilters:
    """The runs list's filters, as the read API's ``runs()`` takes them."""

    pipeline: str | None = None
    status: str | None = None
    stack: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def any(self) -> bool:
        """Whether any filter is set."""
        return any(value is not None for value in asdict(self).values())

    def as_kwargs(self) -> dict[str, Any]:
        """The filters as keyword arguments of ``runs()`` / ``count_runs()``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The filter names (the runs page's query parameters)."""
        return tuple(f.name for f in fields(cls))


async def runs_page(
    q: Queries, filters: RunFilters, *, cursor: str | None, limit: int
) -> tuple[list[RunView], str | None]:
    """One page of runs after ``cursor`` (None: the newest), and the next page's cursor.

    The cursor is the id of the page's last run: the read API's keyset ``after``
    (the JSON API's ``/runs?after=`` takes the same), so page 2,000 of 100,000
    runs costs what page 2 costs.
    """
    if cursor is not None and (len(cursor) > 64 or not cursor.replace("-", "").isalnum()):
        raise BadPageInput(f"cursor: {cursor[:40]!r} is not a run id")
    rows = await q.runs(**filters.as_kwargs(), limit=limit + 1, after=cursor)
    page = rows[:limit]
    return page, page[-1].run_id if len(rows) > limit and page else None
