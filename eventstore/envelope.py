"""The envelope around an event: what the store adds (position, stream, time, hash).

- :class:`NewEvent` is what a writer hands to ``append``: the event and its id.
- :class:`StoredEvent` is a row of the log exactly as stored, payloads still encoded.
- :class:`RecordedEvent` is a stored row decoded for readers
  (:func:`recorded_event` makes one from a row).
- :class:`RawEvent` stands in for an event this release cannot decode (an unknown
  type, or a newer schema version): kept whole, never an exception.
"""

from __future__ import annotations

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
