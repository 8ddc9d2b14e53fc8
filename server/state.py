"""The ledger a running server serves: the open store, its live views, one query path.

Every read (the JSON API, the Marquez-compatible reads, the web pages) goes
through :meth:`Ledger.queries`: the live views, kept current in the background
(a read never waits for a catch-up), or views replayed as of a past position
or time, parsed exactly as the CLI's ``--as-of``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio

from cli.context import AsOf
from eventstore import EventStore
from projections import Views, views_as_of
from projections.errors import QueryError
from projections.queries import Queries

from .config import ServerConfig

__all__ = ["MAX_REPLAYS", "Ledger", "resolve_as_of"]

#: How many requests may replay views ``as_of`` a past point at once (the others wait).
MAX_REPLAYS = 2


async def resolve_as_of(store: EventStore, as_of: str) -> AsOf:
    """``as_of`` parsed as the CLI's ``--as-of``; a position past the head is refused."""
    point = AsOf.parse(as_of)
    if point.position is not None:
        head = await store.head()
        if point.position > head:
            # The log never stood there: answering as of the head would be a wrong answer.
            raise QueryError(
                f"as_of {point.position}: beyond the log's head (position {head}); "
                "give a position from 0 to the head"
            )
    return point


@dataclass
class Ledger:
    """The store, its live views and the configuration, shared by every request."""

    store: EventStore
    views: Views
    config: ServerConfig
    #: Set when the server starts stopping: endless answers (the SSE stream) end then.
    stopping: anyio.Event = field(default_factory=anyio.Event)
    #: At most this many ``as_of`` replays at once: each builds views in memory.
    replays: anyio.Semaphore = field(default_factory=lambda: anyio.Semaphore(MAX_REPLAYS))

    @contextlib.asynccontextmanager
    async def queries(self, as_of: str | None = None) -> AsyncIterator[Queries]:
        """The queries over the live views, or over views replayed ``as_of`` (position/time)."""
        if as_of is None:
            yield self.views.query
            return
        async with self.views_at(as_of) as past:
            yield past.query

    @contextlib.asynccontextmanager
    async def views_at(self, as_of: str | None) -> AsyncIterator[Views]:
        """The live views (``as_of`` None), or views replayed as of a position or time."""
        if as_of is None:
            yield self.views
            return
        point = await resolve_as_of(self.store, as_of)
        async with (
            self.replays,
            views_as_of(self.store, position=point.position, when=point.when) as past,
        ):
            yield past
