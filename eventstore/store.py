"""Opening a store: ``async with open_store() as store: ...``.

:class:`EventStore` is the whole public handle: the log API of
:class:`~eventstore.log.Log` plus the write API for stacks, components and
runs. Its background work (the group-commit writer) lives in a task group
scoped to the ``async with`` block: leaving the block drains pending appends,
stops the writer and closes every connection, also on error or cancellation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio

from .backend import Backend
from .codec import DEFAULT_MAX_EVENT_BYTES, EventCodec
from .errors import UnsupportedURIError
from .logs import get_logger
from .runs import RunCommands
from .sqlite_backend import SQLiteBackend
from .uri import StoreLocation, resolve_store

__all__ = ["EventStore", "make_backend", "open_store"]

log = get_logger("eventstore")


class EventStore(RunCommands):
    """A handle on one store: the log API plus the write API for orchestrators.

    Obtain it from :func:`open_store`; it is only usable inside that block.
    """

    location: StoreLocation

    async def info(self) -> dict[str, Any]:
        """Facts about the store: backend, URI, schema, size, event count and head."""
        facts = await self.backend.info()
        head = await self.head()
        facts.update(events=head, head_position=head)
        return facts


def make_backend(
    location: StoreLocation,
    *,
    read_only: bool = False,
    durability: Literal["full", "normal"] = "full",
    options: dict[str, Any] | None = None,
) -> Backend:
    """The backend for a resolved location (PostgreSQL needs the ``postgres`` extra)."""
    options = dict(options or {})
    if location.kind == "sqlite":
        assert location.path is not None
        return SQLiteBackend(
            location.path,
            read_only=read_only,
            synchronous=durability.upper(),
            **options,
        )
    if location.kind == "postgresql":
        from .postgres_backend import PostgresBackend

        assert location.dsn is not None
        return PostgresBackend(location.dsn, read_only=read_only, **options)
    raise UnsupportedURIError(f"unsupported store kind {location.kind!r}")


@contextlib.asynccontextmanager
async def open_store(
    uri: str | os.PathLike[str] | None = None,
    *,
    create: bool = True,
    read_only: bool = False,
    durability: Literal["full", "normal"] = "full",
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    poll_interval: float = 0.2,
    backend_options: dict[str, Any] | None = None,
    codec: EventCodec | None = None,
    default_stack: bool = True,
) -> AsyncIterator[EventStore]:
    """Open (by default creating) the store at ``uri`` for the duration of the block.

    The open that creates a store gives it the ``default`` stack (local
    orchestrator, local artifact store, this store as metadata store), made
    active, so runs recorded at once show a stack; this is idempotent across
    processes opening a new store together. ``default_stack=False`` creates
    an empty log (to import or copy a whole log into it); opening an existing
    store never adds the stack (``ensure_default_stack`` or ``metaledger init`` do).

    ``uri``: None for ``$METALEDGER_STORE`` or the default local store; a path,
    ``sqlite:///relative/path`` or ``sqlite:////abs/path``; or ``postgresql://...``
    (``postgresql+asyncpg://`` too; see :func:`~eventstore.uri.resolve_store`).
    ``durability="full"`` (default) makes every acknowledged append survive
    power loss; ``"normal"`` trades that for speed (SQLite
    ``synchronous=NORMAL``: an OS crash may lose the last commits, never
    corrupt the log). ``codec`` lets an application extend
    the event catalogue with its own event classes and upcasters.
    """
    location = resolve_store(uri)
    backend = make_backend(
        location, read_only=read_only, durability=durability, options=backend_options
    )
    await backend.open(create=create)
    store = EventStore(
        backend,
        codec=codec or EventCodec(max_event_bytes=max_event_bytes),
        poll_interval=poll_interval,
    )
    store.location = location
    # The body's own exception is kept out of the task group, so the caller sees
    # it as raised (not wrapped in an ExceptionGroup) after the writer drained.
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:
            await group.start(store._run_writer)
            try:
                # Only the open that created the store: an existing empty log (an
                # import or copy target) is never written to behind its user's back.
                if default_stack and getattr(backend, "created", False) and not store.read_only:
                    from .defaults import ensure_default_stack

                    await ensure_default_stack(store)
                yield store
            except BaseException as exc:
                body_error = exc
            finally:
                store._close_writer()
    finally:
        with anyio.CancelScope(shield=True):
            await backend.close()
    if body_error is not None:
        raise body_error
