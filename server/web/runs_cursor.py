"""Cursor pagination of the runs list, built on the read API's ``runs(until=...)``.

Runs are listed newest first, by (start time, log position) descending. A
cursor names where a page ended: the start time of its last run and how many
runs of that same start time it already showed. The next page asks for the
runs started at or before that time and skips those already shown; the cost
of a page is its size plus the ties, never the offset (page 2,000 of 100,000
runs costs what page 2 costs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from eventstore import datetime_from_us, us_from_datetime
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


def encode_cursor(started_at: datetime, shown_at_that_time: int) -> str:
    """The cursor after a page whose last run started at ``started_at``."""
    return f"{us_from_datetime(started_at)}.{shown_at_that_time}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(start time in microseconds, runs of that start time already shown)``."""
    at, _, shown = cursor.partition(".")
    if not (at.lstrip("-").isdigit() and shown.isdigit()) or len(cursor) > 40:
        raise BadPageInput(f"cursor: {cursor[:40]!r} is not a runs-list cursor")
    return int(at), int(shown)


async def runs_page(
    q: Queries, filters: RunFilters, *, cursor: str | None, limit: int
) -> tuple[list[RunView], str | None]:
    """One page of runs after ``cursor`` (None: the newest), and the next page's cursor."""
    kwargs = filters.as_kwargs()
    skip = 0
    if cursor is not None:
        at_us, skip = decode_cursor(cursor)
        at = datetime_from_us(at_us)
        if filters.until is None or at < filters.until:
            kwargs["until"] = at
    rows = await q.runs(**kwargs, limit=skip + limit + 1)
    rows = rows[skip:]
    page, more = rows[:limit], len(rows) > limit
    if not more or not page:
        return page, None
    last = page[-1].started_at
    ties = sum(1 for run in page if run.started_at == last)
    # Ties carried over from the previous page sit before this page's first row.
    if cursor is not None and page[0].started_at == last and kwargs.get("until") == last:
        ties += skip
    return page, encode_cursor(last, ties)
