"""The log API every store handle has: append, read, subscribe, verify.

:class:`Log` is backend-neutral. It owns the group-commit writer, decodes rows
into :class:`~eventstore.envelope.RecordedEvent`, and wakes subscribers: at once
for appends through this handle, by a cheap poll (or a backend notification)
for other processes' appends.

Size: one class, the log API as users see it (writing, reading, following,
checking): its methods are thin over the backend and the writer, and splitting
them would only spread one API over several files.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio
import msgspec

from .backend import Backend, RowTuple
from .chain import ChainChecker, VerifyReport
from .codec import MAX_INT, EventCodec, encode_metadata, find_unencodable
from .envelope import (
    ANY,
    NO_STREAM,
    AppendResult,
    ExpectedVersion,
    LazyRows,
    Metadata,
    NewEvent,
    RecordedEvent,
    StoredEvent,
    _LazyRecordedEvent,
    recorded_event,
    us_from_datetime,
)
from .errors import AppendError, InvalidEventError, StoreClosedError, StoreCorruptError
from .events import Event
from .ids import new_event_id
from .planner import EncodedEvent, PendingAppend
from .uri import StoreLocation
from .writer import GroupCommitWriter
from .writer_process import ProcessWriter

__all__ = ["DEFAULT_CHUNK", "Log", "ProgressCallback"]

#: Rows fetched per query when reading: large enough to amortise the query.
DEFAULT_CHUNK = 2000
# How read_all reads a chunk: whole rows as plain RecordedEvents, whole rows
# watched for a look at the envelope, or lean rows with the envelope on demand.
_WHOLE, _TRACKED, _LEAN = 0, 1, 2
#: Rows per query of ``read_all``, a streaming read: each query is a hop to the
#: reader thread and back, which on a busy machine costs far more than the
#: 10,000 rows it brings (a few MB, dropped as the caller iterates).
READ_ALL_CHUNK = 10_000
#: Rows per query of ``read_all`` once it reads lean (and of the chunk it
#: watches before): a chunk's rows are read back once per event, and 2,000 of
#: them (under 1 MB) stay in the core's cache where 10,000 spill from it; the
#: query's hop to the reader thread and back is still far below their decoding.
READ_ALL_LEAN_CHUNK = 2_000

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` during long work."""


def _default_metadata() -> Metadata:
    try:
        actor = getpass.getuser()
    except Exception:  # no user name in some containers
        actor = None
    return Metadata(actor=actor, host=socket.gethostname(), pid=os.getpid())


def _storable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogate), as every stored stream id is."""
    return text.isascii() or find_unencodable(text, "") is None


class Log:
    """Append, read, subscribe to and verify one store's log. Use through ``open_store``."""

    def __init__(
        self,
        backend: Backend,
        *,
        codec: EventCodec | None = None,
        poll_interval: float = 0.2,
        max_batch_events: int = 2000,
        writer_process: StoreLocation | None = None,
    ) -> None:
        self.backend = backend
        self.codec = codec or EventCodec()
        self.poll_interval = poll_interval
        self._appended = anyio.Event()
        self._known_head = 0
        # A SQLite store's appends may be committed by a process of its own
        # (eventstore.writer_process: a busy server's loop starves a thread).
        self._writer: GroupCommitWriter = (
            ProcessWriter(
                backend,
                writer_process,
                max_batch_events=max_batch_events,
                on_commit=self._committed,
            )
            if writer_process is not None
            else GroupCommitWriter(
                backend, max_batch_events=max_batch_events, on_commit=self._committed
            )
        )
        self._defaults = _default_metadata()
        self._default_metadata_bytes = encode_metadata(self._defaults)
        self._closed = False
        backend.set_append_listener(self._remote_append)

    @property
    def uri(self) -> str:
        """The store's URI (without a password)."""
        return self.backend.uri

    @property
    def read_only(self) -> bool:
        """True when this handle cannot write."""
        return self.backend.read_only

    # -- lifecycle (driven by open_store) ------------------------------------------

    async def _run_writer(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        await self._writer.run(task_status=task_status)

    def _close_writer(self) -> None:
        self._closed = True
        self._writer.close()
        self._appended.set()

    def _committed(self, position: int) -> None:
        self._known_head = max(self._known_head, position)
        event, self._appended = self._appended, anyio.Event()
        event.set()

    def _remote_append(self) -> None:
        event, self._appended = self._appended, anyio.Event()
        event.set()

    # -- writing -------------------------------------------------------------

    def _metadata_bytes(self, metadata: Metadata | dict[str, Any] | None) -> bytes:
        if metadata is None:
            return self._default_metadata_bytes
        if isinstance(metadata, dict):
            try:
                metadata = msgspec.convert(metadata, Metadata)
            except msgspec.ValidationError as exc:
                raise InvalidEventError(f"metadata: {exc}") from exc
        filled = msgspec.structs.replace(
            metadata,
            actor=metadata.actor if metadata.actor is not None else self._defaults.actor,
            host=metadata.host if metadata.host is not None else self._defaults.host,
            pid=metadata.pid if metadata.pid is not None else self._defaults.pid,
        )
        return encode_metadata(filled)

    def encode_events(self, events: Iterable[Event | NewEvent]) -> list[EncodedEvent]:
        """Encode events for an append; raise InvalidEventError for a bad one or repeated id."""
        encoded: list[EncodedEvent] = []
        encode = self.codec.encode
        for item in events:
            if isinstance(item, NewEvent):
                event, event_id = item.event, str(item.event_id)
            else:
                event, event_id = item, new_event_id()
            if not isinstance(event, Event):
                raise InvalidEventError(f"not an event: {event!r}")
            encoded.append(EncodedEvent(event_id, *encode(event)))
        if len(encoded) > 1 and len({e.event_id for e in encoded}) < len(encoded):
            raise InvalidEventError("an event id appears twice in one append")
        return encoded

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event | NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Metadata | dict[str, Any] | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically; return their positions.

        ``expected_version`` is the stream's current version (0 = empty),
        ``"no_stream"`` or ``"any"``; a mismatch raises ConcurrencyError and stores
        nothing. Events given without an id get a random one; a retry with the
        same ids returns the original positions (``duplicate=True``).
        """
        return await self.append_encoded(
            stream_id, self.encode_events(events), expected_version, metadata
        )

    async def append_encoded(
        self,
        stream_id: str,
        events: Sequence[EncodedEvent],
        expected_version: ExpectedVersion = ANY,
        metadata: Metadata | dict[str, Any] | None = None,
    ) -> AppendResult:
        """Append already encoded events (importers use it to validate a whole file first)."""
        if self._closed:
            raise StoreClosedError(f"{self.uri} is closed")
        self._check_append(stream_id, events, expected_version)
        pending = PendingAppend(
            stream_id, list(events), expected_version, self._metadata_bytes(metadata)
        )
        return await self._writer.submit(pending)

    @staticmethod
    def _check_append(
        stream_id: str, events: Sequence[EncodedEvent], expected_version: ExpectedVersion
    ) -> None:
        if not stream_id or not isinstance(stream_id, str) or len(stream_id) > 255:
            raise InvalidEventError(
                "stream_id must be a non-empty string of at most 255 characters"
            )
        if not stream_id.isascii():
            fault = find_unencodable(stream_id, "stream_id")
            if fault is not None:
                raise fault
        if not events:
            raise InvalidEventError("an append needs at least one event")
        if not (
            expected_version in (ANY, NO_STREAM)
            or (
                isinstance(expected_version, int)
                and not isinstance(expected_version, bool)
                and 0 <= expected_version <= MAX_INT
            )
        ):
            raise InvalidEventError(
                f"expected_version must be a version >= 0, 'no_stream' or 'any', "
                f"not {expected_version!r}"
            )

    # -- reading -------------------------------------------------------------

    def decode_row(self, row: RowTuple) -> RecordedEvent:
        """A stored row decoded to a RecordedEvent (upcast, or raw when unknown)."""
        return recorded_event(row, self.codec.decode(row[4], row[5], row[8]))

    async def head(self) -> int:
        """The position of the last event in the log (0 when empty)."""
        head = await self.backend.head()
        self._known_head = max(self._known_head, head)
        return head

    async def read_chunks(
        self,
        from_position: int = 1,
        *,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        to_position: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> AsyncIterator[list[RowTuple]]:
        """Stored rows from ``from_position`` on, a chunk per query (for bulk readers)."""
        position = max(1, from_position)
        remaining = limit
        if position > MAX_INT:  # beyond any position a log can hold: nothing there
            return
        while remaining is None or remaining > 0:
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            rows = await self.backend.read_rows(position, size, types)
            if to_position is not None:
                rows = [row for row in rows if row[0] <= to_position]
            if not rows:
                return
            yield rows
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < size or (to_position is not None and rows[-1][0] >= to_position):
                return
            position = rows[-1][0] + 1

    async def read_readable_chunks(
        self,
        from_position: int = 1,
        *,
        to_position: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> AsyncIterator[list[RowTuple]]:
        """Like :meth:`read_chunks`, for salvage: on a damaged file, every readable row.

        After a chunk that cannot be read it goes on row by row, and raises
        :class:`StoreCorruptError` with ``position`` set to the first row it
        cannot read, once it has yielded every row before it.
        """
        position = max(1, from_position)
        size = chunk_size
        while to_position is None or position <= to_position:
            try:
                rows = await self.backend.read_rows(position, size)
            except StoreCorruptError as exc:
                if size > 1:
                    size = 1
                    continue
                exc.position = position
                raise
            if to_position is not None:
                rows = [row for row in rows if row[0] <= to_position]
            if not rows:
                return
            yield rows
            if len(rows) < size and size > 1:
                return
            position = rows[-1][0] + 1

    async def read_all(
        self,
        from_position: int = 1,
        *,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        to_position: int | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Events from ``from_position`` (inclusive) on, in log order, decoded.

        ``types`` keeps only those event types; ``to_position`` stops there
        (inclusive); ``limit`` caps the count. Fetches in large chunks.

        A long replay reads lean where the backend allows it (SQLite): once a
        whole chunk went by without its reader looking at any event's id,
        stream, version, time, metadata or hash, later chunks fetch only the
        columns decoding needs; the first look at one of those fields fetches
        its chunk's rows (a synchronous query) and whole rows are read again.
        Every event still has every field, with its stored value.
        """
        decode = self.codec.decode
        # The common case inline (a payload at its type's current version): one
        # dict lookup by type (no key tuple built per row), a version compare and
        # the typed decoder, without a Python call per event.
        current = {t: (v, d) for (t, v), d in self.codec.current_decoders().items()}.get
        unknown = (-1, None)
        errors = (msgspec.DecodeError, msgspec.ValidationError)
        backend = self.backend
        lazy = _LazyRecordedEvent
        tracker: LazyRows | None
        # Chunk 1 whole and untracked (a short read never changes); chunk 2 whole and
        # tracked; then lean while the reader does not look at the envelope.
        mode = _WHOLE
        chunks = 0
        position = max(1, from_position)
        remaining = limit
        if position > MAX_INT:  # beyond any position a log can hold: nothing there
            return
        while remaining is None or remaining > 0:
            chunk = READ_ALL_CHUNK if mode == _WHOLE else READ_ALL_LEAN_CHUNK
            size = chunk if remaining is None else min(chunk, remaining)
            if mode == _LEAN and not types:
                # A span of positions: when all of them are there, their rows come
                # without the position column (each column costs about as much as
                # the decode of a small payload's field).
                last = min(position + size - 1, MAX_INT)
                if to_position is not None:
                    last = min(last, to_position)
                if last < position:
                    return
                span = await backend.read_lean_span(position, last)
                if len(span) == last - position + 1:
                    tracker = LazyRows(None, self._whole_rows(position, last, None, len(span)))
                    chunks += 1
                    # The loop below, once more, for rows without their position:
                    # a call per event to share it would cost more than it says.
                    for p, (t, sv, d) in enumerate(span, position):
                        version, decoder = current(t, unknown)
                        if sv != version or decoder is None:
                            event = decode(t, sv, d)
                        else:
                            try:
                                event = decoder.decode(d)
                            except errors:
                                event = decode(t, sv, d)
                        yield lazy(p, "", "", 0, t, sv, 0, b"", event, b"", tracker)
                    if remaining is not None:
                        remaining -= len(span)
                    if len(span) < size or (to_position is not None and last >= to_position):
                        return
                    position = last + 1
                    mode = self._next_mode(mode, chunks, tracker)
                    continue
                # The end of the log (or a gap): read the positions too.
            if mode == _LEAN:
                rows = await backend.read_lean_rows(position, size, types)
            else:
                rows = await backend.read_rows(position, size, types)
            fetched = len(rows)
            if to_position is not None:
                rows = [row for row in rows if row[0] <= to_position]
            if not rows:
                return
            chunks += 1
            if mode == _WHOLE:
                tracker = None
                for p, i, s, v, t, sv, r, m, d, h in rows:
                    version, decoder = current(t, unknown)
                    if sv != version or decoder is None:
                        event = decode(t, sv, d)
                    else:
                        try:
                            event = decoder.decode(d)
                        except errors:
                            event = decode(t, sv, d)  # raises the codec's DecodeError
                    yield RecordedEvent(p, i, s, v, t, sv, r, m, event, h)
            else:
                if mode == _LEAN:
                    loader = self._whole_rows(rows[0][0], rows[-1][0], types, len(rows))
                    tracker, lean = LazyRows(None, loader), rows
                else:
                    tracker = LazyRows(rows)
                    lean = [(row[0], row[4], row[5], row[8]) for row in rows]
                for p, t, sv, d in lean:
                    version, decoder = current(t, unknown)
                    if sv != version or decoder is None:
                        event = decode(t, sv, d)
                    else:
                        try:
                            event = decoder.decode(d)
                        except errors:
                            event = decode(t, sv, d)
                    # Placeholders in the envelope fields: the lazy class's properties
                    # shadow them with the chunk's rows.
                    yield lazy(p, "", "", 0, t, sv, 0, b"", event, b"", tracker)
            if remaining is not None:
                remaining -= len(rows)
            if fetched < size or (to_position is not None and rows[-1][0] >= to_position):
                return
            position = rows[-1][0] + 1
            mode = self._next_mode(mode, chunks, tracker)

    def _next_mode(self, mode: int, chunks: int, tracker: LazyRows | None) -> int:
        """How ``read_all`` reads its next chunk (see its docstring)."""
        if not self.backend.lean_reads:
            return _WHOLE
        if mode == _WHOLE:
            return _TRACKED if chunks == 1 else _WHOLE
        assert tracker is not None
        return _WHOLE if tracker.touched else _LEAN

    def _whole_rows(
        self, first: int, last: int, types: Sequence[str] | None, count: int
    ) -> Callable[[], list[RowTuple]]:
        """The loader of a lean chunk's whole rows (``count`` of them, as the lean read saw)."""
        backend = self.backend
        wanted = list(types) if types else None

        def load() -> list[RowTuple]:
            rows = backend.rows_between_sync(first, last, wanted)
            if len(rows) != count:  # positions never change: a damaged or replaced file
                raise StoreCorruptError(
                    f"{self.uri}: positions {first} to {last} hold {len(rows)} events, "
                    f"not the {count} read a moment ago"
                )
            return rows

        return load

    async def read_stored(
        self,
        from_position: int = 1,
        *,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        to_position: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        """Events exactly as stored (payload bytes, hashes), for export, copy and audits."""
        async for rows in self.read_chunks(
            from_position, limit=limit, types=types, to_position=to_position
        ):
            for row in rows:
                yield StoredEvent._make(row)

    async def read_stored_stream(
        self, stream_id: str, from_version: int = 1, *, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[StoredEvent]:
        """One stream's events exactly as stored, from ``from_version`` on, in version order."""
        version = max(1, from_version)
        if version > MAX_INT or not _storable(stream_id):  # no such stream can be stored
            return
        while True:
            rows = await self.backend.read_stream_rows(stream_id, version, chunk_size)
            for row in rows:
                yield StoredEvent._make(row)
            if len(rows) < chunk_size:
                return
            version = rows[-1][3] + 1

    async def stored_at(self, position: int) -> StoredEvent | None:
        """The event at ``position`` exactly as stored (bytes and hash), or None."""
        if not 1 <= position <= MAX_INT:
            return None
        rows = await self.backend.read_rows(position, 1)
        if rows and rows[0][0] == position:
            return StoredEvent._make(rows[0])
        return None

    async def stored_by_event_id(self, event_id: UUID | str) -> StoredEvent | None:
        """The event stored under ``event_id`` exactly as stored, or None."""
        row = await self.backend.row_by_event_id(str(event_id))
        return None if row is None else StoredEvent._make(row)

    async def stored_by_event_ids(self, event_ids: Iterable[UUID | str]) -> dict[str, StoredEvent]:
        """The stored events of those ids, by id text (absent ids are left out); bulk."""
        wanted = list(dict.fromkeys(str(event_id) for event_id in event_ids))
        rows = await self.backend.rows_by_event_ids(wanted) if wanted else []
        return {row[1]: StoredEvent._make(row) for row in rows}

    async def stream_versions(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """The current version of each of those streams that has events; bulk."""
        wanted = [s for s in dict.fromkeys(stream_ids) if _storable(s)]
        return await self.backend.stream_versions(wanted) if wanted else {}

    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[RecordedEvent]:
        """One stream's events from ``from_version`` (inclusive) on, in version order."""
        async for row in self.read_stored_stream(stream_id, from_version, chunk_size=chunk_size):
            yield self.decode_row(row)

    async def stream_version(self, stream_id: str) -> int:
        """The current version of ``stream_id`` (0 when it has no event)."""
        if not _storable(stream_id):
            return 0
        return await self.backend.stream_version(stream_id)

    async def get_event(self, event_id: UUID | str) -> RecordedEvent | None:
        """The event stored under ``event_id``, or None."""
        row = await self.stored_by_event_id(event_id)
        return None if row is None else self.decode_row(row)

    async def get_position(self, position: int) -> RecordedEvent | None:
        """The event at ``position``, or None."""
        row = await self.stored_at(position)
        return None if row is None else self.decode_row(row)

    async def position_at(self, when: datetime) -> int:
        """The last position recorded at or before ``when`` (0 if the log started later)."""
        return await self.backend.position_at(us_from_datetime(when))

    # -- following -------------------------------------------------------------

    async def wait_for_append(self, after: int, timeout: float | None = None) -> int:
        """Wait until the log's head passes ``after`` (or ``timeout``); return the head."""
        with anyio.move_on_after(timeout):
            while True:
                appended = self._appended
                head = await self.head()
                if head > after or self._closed:
                    return head
                with anyio.move_on_after(self.poll_interval):
                    await appended.wait()
        return await self.head()

    async def follow(
        self, from_position: int = 1, *, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[list[RowTuple]]:
        """Stored rows in chunks from ``from_position``: catch up, then follow new appends.

        Runs until the caller stops iterating or is cancelled, or the store closes.
        """
        position = max(1, from_position)
        while not self._closed:
            appended = self._appended  # taken before reading: no lost wake-up
            rows = await self.backend.read_rows(position, chunk_size)
            if rows:
                yield rows
                position = rows[-1][0] + 1
                continue
            with anyio.move_on_after(self.poll_interval):
                await appended.wait()

    async def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` on, then each new one as it is appended.

        Wakes at once for appends through this handle and polls cheaply (every
        ``poll_interval`` seconds) for other processes'. Ends when cancelled or
        when the store closes.
        """
        async for rows in self.follow(from_position):
            for row in rows:
                yield self.decode_row(row)

    # -- checking ----------------------------------------------------------------

    async def verify(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Walk the whole log: gapless positions, stream versions, times, hash chain.

        Returns a report with the first bad position (None when the log is sound).
        """
        try:
            head: int | None = await self.head()
        except StoreCorruptError:
            head = None  # the damage is where the head is: the walk finds where
        checker = ChainChecker()
        done = 0
        try:
            async for rows in self.read_readable_chunks(1, chunk_size=5000):
                for row in rows:
                    if not checker.check(StoredEvent._make(row)):
                        return checker.report(head or checker.previous_position)
                done += len(rows)
                if progress is not None:
                    progress(done, head or done)
        except StoreCorruptError as exc:
            checker.first_bad_position = exc.position
            cause = exc.__cause__ or exc
            checker.reason = f"the file cannot be read from here on ({cause})"
            return checker.report(head or checker.previous_position)
        return checker.report(max(head or 0, checker.previous_position))

    async def import_stored(self, rows: Iterable[StoredEvent]) -> int:
        """Store rows verbatim (a copy or an import) in one transaction; return the count.

        They must continue this log exactly (the first at head + 1); ``rows`` may be
        lazy, it is consumed inside the transaction. Check their chain first (a
        :class:`~eventstore.chain.ChainChecker`): the store takes them as given.
        """
        if self._closed:
            raise StoreClosedError(f"{self.uri} is closed")
        count = await self.backend.import_rows(rows)
        if count:
            # Committed: subscribers hear of it even if the caller is being cancelled.
            with anyio.CancelScope(shield=True):
                self._committed(await self.head())
        return count

    async def append_each(
        self,
        appends: Sequence[tuple[str, Sequence[EncodedEvent], ExpectedVersion]],
        *,
        metadata: Metadata | dict[str, Any] | None = None,
    ) -> list[AppendResult | AppendError]:
        """Independent appends of encoded events, queued together; an outcome each.

        Each item is ``(stream_id, events, expected_version)`` and is stored or
        refused on its own (all-or-nothing per append, not across them): the
        result is its AppendResult or the AppendError refusing it, in order.
        They share the writer's group commits, with no task per append.
        InvalidEventError (a bad stream id, no events) refuses the whole call.
        """
        if self._closed:
            raise StoreClosedError(f"{self.uri} is closed")
        meta = self._metadata_bytes(metadata)
        pending = []
        for stream_id, events, expected_version in appends:
            self._check_append(stream_id, events, expected_version)
            pending.append(PendingAppend(stream_id, list(events), expected_version, meta))
        if not pending:
            return []
        return await self._writer.submit_each(pending)

    async def append_many(
        self,
        appends: Sequence[tuple[str, Sequence[Event | NewEvent | EncodedEvent], ExpectedVersion]],
        *,
        metadata: Metadata | dict[str, Any] | None = None,
    ) -> list[AppendResult]:
        """Append to several streams all together or not at all (one transaction).

        Each item is ``(stream_id, events, expected_version)``. The first refusal
        (a conflict, an id already stored with another body) is raised and nothing
        is stored; a retry of the same appends returns the original positions.
        """
        if self._closed:
            raise StoreClosedError(f"{self.uri} is closed")
        meta = self._metadata_bytes(metadata)
        pending = []
        for stream_id, events, expected_version in appends:
            encoded = [
                e if isinstance(e, EncodedEvent) else self.encode_events([e])[0] for e in events
            ]
            self._check_append(stream_id, encoded, expected_version)
            pending.append(PendingAppend(stream_id, encoded, expected_version, meta))
        all_ids = [e.event_id for p in pending for e in p.events]
        if len(set(all_ids)) < len(all_ids):
            raise InvalidEventError("an event id appears twice in one append")
        if not pending:
            return []
        if len(pending) == 1:
            # One append is all-or-nothing on its own: it may share a group commit
            # with other callers' appends instead of taking a transaction alone.
            return [await self._writer.submit(pending[0])]
        return await self._writer.submit_atomic(pending)
