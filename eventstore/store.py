"""Opening a store: ``async with open_store() as store: ...``.

:class:`EventStore` is the whole public handle. It is composed, not inherited:
it holds the :class:`~eventstore.log.Log` (append, read, subscribe, verify)
and the write API's command objects (:class:`~eventstore.workspace.WorkspaceCommands`,
:class:`~eventstore.runs.RunCommands`), and offers their public methods as its own
(``store.append``, ``store.register_stack``, ``store.pipeline_run``...). Its
background work (the group-commit writer) lives in a task group scoped to the
``async with`` block: leaving the block drains pending appends, stops the writer
and closes every connection, also on error or cancellation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload
from uuid import UUID

import anyio

from .backend import Backend
from .codec import DEFAULT_MAX_EVENT_BYTES, EventCodec
from .errors import MetadataStoreUnreachableError, StoreClosedError, UnsupportedURIError
from .fold_states import StackState, WorkspaceState
from .log import Log
from .logs import get_logger
from .metadata_stores import MetadataTarget, resolve_metadata_store, stack_metadata_store
from .routing import MetadataStores
from .runs import RunCommands
from .store_factories import factory_for, resolve_store
from .uri import Durability, StoreLocation
from .workspace import WorkspaceCommands

__all__ = ["EventStore", "open_store"]

log = get_logger("eventstore")

P = ParamSpec("P")
R = TypeVar("R")


class _Delegated(Generic[P, R]):
    """A public method of one of the store's parts, offered as the store's own (typed)."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self._part = part
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, store: None, owner: type[Any]) -> _Delegated[P, R]: ...

    @overload
    def __get__(self, store: EventStore, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(
        self, store: EventStore | None, owner: type[Any]
    ) -> _Delegated[P, R] | Callable[P, R]:
        if store is None:
            return self
        method: Callable[P, R] = getattr(getattr(store, self._part), self._name)
        return method


class EventStore:
    """A handle on one store: the log API plus the write API for orchestrators.

    Obtain it from :func:`open_store`; it is only usable inside that block.
    ``log``, ``workspace_commands`` and ``run_commands`` are its parts.
    """

    def __init__(self, log: Log, location: StoreLocation) -> None:
        self.log = log
        self.location = location
        self.workspace_commands = WorkspaceCommands(log)
        self.run_commands = RunCommands(log, self.workspace_commands, router=self._route)
        #: The other stores this one records runs into, opened on demand (set by open_store).
        self.metadata_stores: MetadataStores | None = None

    def metadata_target(self, workspace: WorkspaceState, stack: StackState) -> MetadataTarget:
        """Where ``stack``'s runs go, seen from this (home) store.

        MetadataStoreUnreachableError when its metadata store is of a flavor or
        URI metaledger cannot record into.
        """
        component = stack_metadata_store(workspace, stack)
        try:
            return resolve_metadata_store(component, self.location)
        except UnsupportedURIError as exc:
            raise MetadataStoreUnreachableError(f"stack {stack.name!r}: {exc}") from exc

    async def runs_store(self, stack: str | UUID | None = None) -> EventStore:
        """The store recording the runs of ``stack`` (default: the active stack).

        This store itself, or the stack's metadata store, opened (and created)
        on first use and closed with this store. A store without an active
        stack records its runs itself. MetadataStoreUnreachableError, naming the
        stack and the metadata store, when that store cannot be opened.
        """
        workspace = await self.workspace()
        if stack is None and workspace.active_stack_id is None:
            return self
        found = workspace.stack(stack if stack is not None else workspace.active_stack_id)  # type: ignore[arg-type]
        return await self._store_for(workspace, found)

    async def _store_for(self, workspace: WorkspaceState, stack: StackState) -> EventStore:
        target = self.metadata_target(workspace, stack)
        if target.is_home:
            return self
        assert target.location is not None
        if self.metadata_stores is None:
            raise StoreClosedError("the store is not open: use it inside `async with open_store()`")
        component = stack_metadata_store(workspace, stack)
        return await self.metadata_stores.open(
            target.location, stack=stack.name, component=component.name if component else ""
        )

    async def _route(self, workspace: WorkspaceState, stack: StackState) -> RunCommands | None:
        """The run commands of the store recording ``stack``'s runs, None for this store."""
        other = await self._store_for(workspace, stack)
        return None if other is self else other.run_commands

    @property
    def backend(self) -> Backend:
        """The log's storage backend."""
        return self.log.backend

    @property
    def codec(self) -> EventCodec:
        """The codec the log encodes and decodes events with."""
        return self.log.codec

    @property
    def uri(self) -> str:
        """The store's URI (without a password)."""
        return self.log.uri

    @property
    def read_only(self) -> bool:
        """True when this handle cannot write."""
        return self.log.read_only

    async def info(self) -> dict[str, Any]:
        """Facts about the store: backend, URI, schema, size, event count and head."""
        facts = await self.log.backend.info()
        head = await self.log.head()
        facts.update(events=head, head_position=head)
        return facts

    # The log API (eventstore.log.Log).
    encode_events = _Delegated("log", Log.encode_events)
    append = _Delegated("log", Log.append)
    append_encoded = _Delegated("log", Log.append_encoded)
    append_many = _Delegated("log", Log.append_many)
    append_each = _Delegated("log", Log.append_each)
    import_stored = _Delegated("log", Log.import_stored)
    decode_row = _Delegated("log", Log.decode_row)
    head = _Delegated("log", Log.head)
    read_chunks = _Delegated("log", Log.read_chunks)
    read_readable_chunks = _Delegated("log", Log.read_readable_chunks)
    read_all = _Delegated("log", Log.read_all)
    read_stored = _Delegated("log", Log.read_stored)
    read_stored_stream = _Delegated("log", Log.read_stored_stream)
    stored_at = _Delegated("log", Log.stored_at)
    stored_by_event_id = _Delegated("log", Log.stored_by_event_id)
    stored_by_event_ids = _Delegated("log", Log.stored_by_event_ids)
    stream_versions = _Delegated("log", Log.stream_versions)
    read_stream = _Delegated("log", Log.read_stream)
    stream_version = _Delegated("log", Log.stream_version)
    get_event = _Delegated("log", Log.get_event)
    get_position = _Delegated("log", Log.get_position)
    position_at = _Delegated("log", Log.position_at)
    wait_for_append = _Delegated("log", Log.wait_for_append)
    follow = _Delegated("log", Log.follow)
    subscribe = _Delegated("log", Log.subscribe)
    verify = _Delegated("log", Log.verify)

    # The workspace commands (eventstore.workspace).
    workspace = _Delegated("workspace_commands", WorkspaceCommands.workspace)
    register_component = _Delegated("workspace_commands", WorkspaceCommands.register_component)
    update_component = _Delegated("workspace_commands", WorkspaceCommands.update_component)
    rename_component = _Delegated("workspace_commands", WorkspaceCommands.rename_component)
    delete_component = _Delegated("workspace_commands", WorkspaceCommands.delete_component)
    register_flavor = _Delegated("workspace_commands", WorkspaceCommands.register_flavor)
    register_stack = _Delegated("workspace_commands", WorkspaceCommands.register_stack)
    update_stack = _Delegated("workspace_commands", WorkspaceCommands.update_stack)
    rename_stack = _Delegated("workspace_commands", WorkspaceCommands.rename_stack)
    delete_stack = _Delegated("workspace_commands", WorkspaceCommands.delete_stack)
    set_active_stack = _Delegated("workspace_commands", WorkspaceCommands.set_active_stack)

    # The run commands (eventstore.runs).
    start_run = _Delegated("run_commands", RunCommands.start_run)
    pipeline_run = _Delegated("run_commands", RunCommands.pipeline_run)
    get_run = _Delegated("run_commands", RunCommands.get_run)
    delete_run = _Delegated("run_commands", RunCommands.delete_run)


@contextlib.asynccontextmanager
async def open_store(
    uri: str | os.PathLike[str] | StoreLocation | None = None,
    *,
    create: bool = True,
    read_only: bool = False,
    durability: Durability | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    poll_interval: float = 0.2,
    backend_options: dict[str, Any] | None = None,
    codec: EventCodec | None = None,
    default_stack: bool = True,
    log_writer: Literal["thread", "process"] = "thread",
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
    (``postgresql+asyncpg://`` too; see :func:`~eventstore.store_factories.resolve_store`), or a
    :class:`~eventstore.uri.StoreLocation` already parsed.
    ``durability="full"`` (the default) makes every acknowledged append survive
    power loss; ``"normal"`` trades that for speed (SQLite ``synchronous=NORMAL``,
    PostgreSQL ``synchronous_commit=off``: an OS or server crash may lose the last
    commits, never corrupt the log). ``backend_options`` tune the backend (see
    :mod:`eventstore.store_factories`); None for either keeps the location's. An
    unknown option or a bad value raises StoreOptionError. ``codec`` lets an
    application extend the event catalogue with its own event classes and upcasters.
    ``log_writer="process"`` commits a SQLite store's appends in a child process
    (:mod:`eventstore.writer_process`: what a busy server wants, whose event
    loop would starve the committing thread); other stores, and read-only
    handles, keep the thread.
    """
    location = resolve_store(uri, durability=durability, options=backend_options)
    backend = factory_for(location).log_backend(location, read_only=read_only)
    await backend.open(create=create)
    store = EventStore(
        Log(
            backend,
            codec=codec or EventCodec(max_event_bytes=max_event_bytes),
            poll_interval=poll_interval,
            writer_process=(
                location
                if log_writer == "process" and location.kind == "sqlite" and not backend.read_only
                else None
            ),
        ),
        location,
    )
    # The body's own exception is kept out of the task group, so the caller sees
    # it as raised (not wrapped in an ExceptionGroup) after the writer drained.
    body_error: BaseException | None = None

    def open_other(where: StoreLocation) -> contextlib.AbstractAsyncContextManager[EventStore]:
        # A metadata store never gets a default stack: its stacks are the home's.
        return open_store(
            where,
            default_stack=False,
            poll_interval=poll_interval,
            max_event_bytes=max_event_bytes,
            codec=codec,
        )

    try:
        async with anyio.create_task_group() as group:
            await group.start(store.log._run_writer)
            others = store.metadata_stores = MetadataStores(group, open_other)
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
                others.close()
                store.log._close_writer()
    finally:
        with anyio.CancelScope(shield=True):
            await backend.close()
    if body_error is not None:
        raise body_error
