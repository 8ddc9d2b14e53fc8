"""Routing runs to the active stack's metadata store: other stores, opened on demand.

A home store (see :mod:`eventstore.metadata_stores`) records a run in the
metadata store of the stack the run starts on. When that is another store,
:class:`MetadataStores` opens it the first time it is needed and keeps it open
until the home store closes: each opened store lives in a task of the home
store's own task group (structured concurrency), so closing the home store, or
cancelling its block, drains and closes every store it opened.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .errors import LedgerError, MetadataStoreUnreachableError
from .logs import get_logger
from .uri import StoreLocation

if TYPE_CHECKING:
    from .store import EventStore

#: Opens a store for the duration of a block (``open_store`` without a default stack).
Opener = Callable[[StoreLocation], AbstractAsyncContextManager["EventStore"]]

__all__ = ["MetadataStores"]

log = get_logger("eventstore.routing")


def _key(location: StoreLocation) -> tuple[str, str, str]:
    return (location.kind, str(location.path or location.dsn), location.schema_prefix)


class MetadataStores:
    """The stores a home store records runs into besides itself, opened on first use."""

    def __init__(self, group: TaskGroup, opener: Opener) -> None:
        self._group = group
        self._opener = opener
        self._open: dict[tuple[str, str, str], EventStore] = {}
        self._lock = anyio.Lock()
        self._closing = anyio.Event()

    async def open(self, location: StoreLocation, *, stack: str, component: str) -> EventStore:
        """The store at ``location``, opened (and created) if need be.

        MetadataStoreUnreachableError, naming the stack and the metadata store,
        when it cannot be opened.
        """
        key = _key(location)
        async with self._lock:
            found = self._open.get(key)
            if found is not None:
                return found
            if self._closing.is_set():
                raise MetadataStoreUnreachableError("the home store is closing")
            try:
                store: EventStore = await self._group.start(self._hold, location)
            except (LedgerError, OSError) as exc:
                raise MetadataStoreUnreachableError(
                    f"stack {stack!r}: its metadata store {component!r} at "
                    f"{location.display} cannot be opened: {exc}"
                ) from exc
            log.info("metadata store opened", stack=stack, store=location.display)
            self._open[key] = store
            return store

    async def _hold(self, location: StoreLocation, *, task_status: TaskStatus[EventStore]) -> None:
        async with self._opener(location) as store:
            task_status.started(store)
            await self._closing.wait()

    def close(self) -> None:
        """Let every opened store close (the home store's task group waits for them)."""
        self._closing.set()
