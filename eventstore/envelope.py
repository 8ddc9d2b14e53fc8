"""The envelope around an event: what the store adds (position, stream, time, hash).

- :class:`NewEvent` is what a writer hands to ``append``: the event and its id.
- :class:`StoredEvent` is a row of the log exactly as stored, payloads still encoded.
- :class:`RecordedEvent` is a stored row decoded for readers
  (:func:`recorded_event` makes one from a row).
- :class:`RawEvent` stands in for an event this release cannot decode (an unknown
  type, or a newer schema version): kept whole, never an exception.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple
from uuid import UUID

import msgspec

from .events import Event, Scalar
from .ids import uuid7

__all__ = [
    "ANY",
    "NO_STREAM",
    "ROW_COLUMNS",
    "AppendResult",
    "ExpectedVersion",
    "Metadata",
    "NewEvent",
    "RawEvent",
    "RecordedEvent",
    "RowTuple",
    "StoredEvent",
    "datetime_from_us",
    "decode_metadata",
    "recorded_event",
    "us_from_datetime",
]

#: ``expected_version`` accepting any current version of the stream.
ANY: Literal["any"] = "any"
#: ``expected_version`` requiring that the stream has no event yet.
NO_STREAM: Literal["no_stream"] = "no_stream"

ExpectedVersion = int | Literal["any", "no_stream"]
"""An exact stream version (0 = empty), ``"no_stream"`` or ``"any"``."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us_from_datetime(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: metaledger records times in UTC, pass an aware one")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


#: Until 2100-01-01 a float holds seconds since the epoch to well under half a
#: microsecond, so ``fromtimestamp`` rounds back to the exact microsecond.
_FLOAT_EXACT_US = 4_102_444_800_000_000


def datetime_from_us(value: int) -> datetime:
    """The UTC datetime of ``value`` microseconds since the Unix epoch."""
    if 0 <= value < _FLOAT_EXACT_US:
        # A third of the exact path's cost; views and reads build many of these.
        return datetime.fromtimestamp(value / 1_000_000, UTC)
    return _EPOCH + timedelta(microseconds=value)


class Metadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who and what caused an event: correlation/causation ids and the emitting process.

    ``actor``, ``host`` and ``pid`` are filled in by the store when left empty.
    """

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    host: str | None = None
    pid: int | None = None
    orchestrator: str | None = None
    extra: dict[str, Scalar] = {}


_metadata_decoder = msgspec.msgpack.Decoder(Metadata)


def decode_metadata(data: bytes) -> Metadata:
    """Decode stored metadata; unreadable metadata becomes an empty Metadata, never an error."""
    try:
        return _metadata_decoder.decode(data)
    except msgspec.DecodeError:
        return Metadata()


class NewEvent(msgspec.Struct, frozen=True):
    """An event about to be appended, with the id that makes a retry idempotent.

    The default id is a time-ordered UUIDv7; pass your own to retry safely.
    """

    event: Event
    event_id: UUID = msgspec.field(default_factory=uuid7)


class RawEvent(msgspec.Struct, frozen=True):
    """An event this release cannot decode: an unknown type or a newer schema version.

    It keeps the stored payload as is, so nothing is lost and a newer release can
    still read it.
    """

    type: str
    schema_version: int
    data: bytes

    def decoded(self) -> Any:
        """The payload as plain builtins (dicts, lists, strings, numbers)."""
        return msgspec.msgpack.decode(self.data)


class StoredEvent(NamedTuple):
    """One row of the log exactly as stored: payloads encoded, time in microseconds.

    This is the row's shape, declared once: its fields, in order, are the log's
    columns (:data:`ROW_COLUMNS`), the tuples backends read and write
    (:data:`RowTuple`), and what the planner builds and the hash chain covers.
    A row a backend returns becomes one with ``StoredEvent._make(row)``.
    """

    position: int
    event_id: str
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at_us: int
    metadata: bytes
    data: bytes
    hash: bytes

    @property
    def recorded_at(self) -> datetime:
        """When the store committed the event, as a UTC datetime."""
        return datetime_from_us(self.recorded_at_us)


#: The log's columns, in the order every backend reads and writes them.
ROW_COLUMNS: tuple[str, ...] = StoredEvent._fields

RowTuple = tuple[Any, ...]
"""A row as backends pass it: the fields of :class:`StoredEvent`, in order."""


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """A stored event decoded for readers.

    ``event`` is the current class of the event (upcast if it was stored in an
    older schema version) or a :class:`RawEvent`; ``schema_version`` is the
    version it was stored with. The id, time and metadata are kept as stored
    and decoded on access (``event_id``, ``recorded_at``, ``metadata``): a
    reader of a million events that never looks at them does not pay for them.
    """

    position: int
    event_id_text: str
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at_us: int
    metadata_bytes: bytes
    event: Event | RawEvent
    hash: bytes

    @property
    def event_id(self) -> UUID:
        """The event's id."""
        return UUID(self.event_id_text)

    @property
    def recorded_at(self) -> datetime:
        """When the store committed the event (UTC)."""
        return datetime_from_us(self.recorded_at_us)

    @property
    def metadata(self) -> Metadata:
        """Who and what caused the event (an empty Metadata if unreadable)."""
        return decode_metadata(self.metadata_bytes)


class LazyRows:
    """The whole rows of one chunk a replay read lean, fetched when first asked for.

    ``read_all`` reads whole rows while its reader looks at the envelope and
    only (type, schema_version, data) once it does not: the events of a lean
    chunk fetch their chunk's rows (one synchronous query, ``load``) the first
    time any of them is asked for its id, stream, time, metadata or hash.
    ``touched`` tells ``read_all`` that its reader asked.
    """

    __slots__ = ("_load", "rows", "touched")

    def __init__(
        self, rows: list[RowTuple] | None, load: Callable[[], list[RowTuple]] | None = None
    ) -> None:
        self.rows = rows
        self._load = load
        self.touched = False

    def row(self, position: int) -> RowTuple:
        """The whole row of the event at ``position`` (loading the chunk's rows if needed)."""
        self.touched = True
        rows = self.rows
        if rows is None:
            assert self._load is not None
            rows = self.rows = self._load()
        # Found by position, so an event need not carry its index in the chunk: a
        # field less to set on each of a replay's events. Positions ascend; a
        # chunk read by type (or over a gap) skips some, hence the bisection.
        index = position - rows[0][0]
        if not (0 <= index < len(rows) and rows[index][0] == position):
            index = bisect_left(rows, position, key=_position_of)
        row: RowTuple = rows[index]
        return row


def _position_of(row: RowTuple) -> int:
    position: int = row[0]
    return position


class _LazyRecordedEvent(RecordedEvent, frozen=True, gc=False):
    """A RecordedEvent of ``read_all`` whose envelope fields come from its chunk's rows.

    The fields it inherits for them hold placeholders; the properties below
    shadow them, so every reader of a RecordedEvent sees the stored values.
    """

    _rows: LazyRows

    @property  # type: ignore[misc]
    def event_id_text(self) -> str:
        """The event's id, as stored."""
        value: str = self._rows.row(self.position)[1]
        return value

    @property  # type: ignore[misc]
    def stream_id(self) -> str:
        """The event's stream."""
        value: str = self._rows.row(self.position)[2]
        return value

    @property  # type: ignore[misc]
    def stream_version(self) -> int:
        """The event's version in its stream."""
        value: int = self._rows.row(self.position)[3]
        return value

    @property  # type: ignore[misc]
    def recorded_at_us(self) -> int:
        """When the store committed the event, microseconds since the epoch."""
        value: int = self._rows.row(self.position)[6]
        return value

    @property  # type: ignore[misc]
    def metadata_bytes(self) -> bytes:
        """The stored metadata bytes."""
        value: bytes = self._rows.row(self.position)[7]
        return value

    @property  # type: ignore[misc]
    def hash(self) -> bytes:
        """The event's hash in the log's chain."""
        value: bytes = self._rows.row(self.position)[9]
        return value

    def _values(self) -> tuple[Any, ...]:
        row = self._rows.row(self.position)
        return (*row[:8], self.event, row[9])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return self._values() == _values_of(other)

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        names = RecordedEvent.__struct_fields__
        values = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._values(), strict=True))
        return f"RecordedEvent({values})"


def _values_of(recorded: RecordedEvent) -> tuple[Any, ...]:
    if isinstance(recorded, _LazyRecordedEvent):
        return recorded._values()
    return msgspec.structs.astuple(recorded)


def lazy_recorded_event(
    position: int,
    event_type: str,
    schema_version: int,
    event: Event | RawEvent,
    rows: LazyRows,
) -> RecordedEvent:
    """A RecordedEvent whose envelope is the row at ``position`` in ``rows`` (:class:`LazyRows`)."""
    return _LazyRecordedEvent(
        position, "", "", 0, event_type, schema_version, 0, b"", event, b"", rows
    )


def recorded_event(row: RowTuple, event: Event | RawEvent) -> RecordedEvent:
    """A stored row as a RecordedEvent, with its payload already decoded to ``event``."""
    return RecordedEvent(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], event, row[9]
    )


class AppendResult(msgspec.Struct, frozen=True):
    """What an append stored: the events' global positions and the stream's new version.

    A retried append returns the positions of the original, and ``duplicate`` is True.
    """

    positions: tuple[int, ...]
    stream_version: int
    duplicate: bool = False

    @property
    def position(self) -> int:
        """The position of the append's last event, to wait on for read-your-writes."""
        return self.positions[-1]
