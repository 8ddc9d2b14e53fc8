"""Planning one group-commit batch: idempotency, expected versions, positions, hashes.

Backends hold the write lock, look up what the batch needs (the head, the event
ids already stored, the streams' versions) and hand it here; the plan says which
rows to insert and what each append gets back. The logic is pure, so every
backend decides the same way and one test suite covers it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .chain import chain_hash
from .envelope import ANY, NO_STREAM, AppendResult, ExpectedVersion, StoredEvent
from .errors import AppendError, ConcurrencyError, EventIdConflictError

__all__ = [
    "BatchPlan",
    "ChainHead",
    "EncodedEvent",
    "ExistingEvent",
    "PendingAppend",
    "Row",
    "plan_batch",
]


class EncodedEvent(NamedTuple):
    """An event ready to store: its id and its encoded payload."""

    event_id: str
    type: str
    schema_version: int
    data: bytes


@dataclass(slots=True, eq=False)
class PendingAppend:
    """One caller's append, waiting for the writer."""

    stream_id: str
    events: Sequence[EncodedEvent]
    expected_version: ExpectedVersion
    metadata: bytes

    def event_ids(self) -> list[str]:
        """The ids of the append's events, in order."""
        return [event.event_id for event in self.events]


class ChainHead(NamedTuple):
    """The last row of the log: where the next position and hash continue from."""

    position: int
    hash: bytes
    recorded_at_us: int


class ExistingEvent(NamedTuple):
    """What the store already holds under an event id, to judge a retry."""

    event_id: str
    position: int
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    data: bytes


Row = StoredEvent
"""A row to insert into the log: a :class:`~eventstore.envelope.StoredEvent` (one shape)."""


@dataclass(slots=True)
class BatchPlan:
    """The rows to insert and, per append in order, its result or its error."""

    rows: list[Row] = field(default_factory=list)
    outcomes: list[AppendResult | AppendError] = field(default_factory=list)
    head: ChainHead | None = None


def _same_body(stored: ExistingEvent, stream_id: str, event: EncodedEvent) -> bool:
    return (
        stored.stream_id == stream_id
        and stored.type == event.type
        and stored.schema_version == event.schema_version
        and stored.data == event.data
    )


def batch_keys(appends: Iterable[PendingAppend]) -> tuple[list[str], list[str]]:
    """The event ids and stream ids a backend must look up before planning."""
    event_ids: list[str] = []
    streams: dict[str, None] = {}
    for append in appends:
        event_ids.extend(append.event_ids())
        streams[append.stream_id] = None
    return event_ids, list(streams)


def plan_batch(
    appends: Sequence[PendingAppend],
    head: ChainHead,
    existing: dict[str, ExistingEvent],
    stream_versions: dict[str, int],
    now_us: int,
) -> BatchPlan:
    """Decide the fate of each append in order, as if each ran alone in that order.

    - All of an append's ids already stored with the same bodies: a retry; it
      gets the original positions and stores nothing.
    - Some id stored with another body, or only some ids stored: EventIdConflictError.
    - Otherwise the expected version is checked against the stream's version,
      including appends earlier in this batch; a mismatch is ConcurrencyError.
    - Accepted appends get the next positions, stream versions and chained hashes.
      ``recorded_at`` never goes backwards, even if the clock does.
    """
    plan = BatchPlan()
    versions = dict(stream_versions)
    staged: dict[str, ExistingEvent] = {}
    position, previous_hash, recorded_at = head
    recorded_at = max(recorded_at, now_us)
    for append in appends:
        stream_id = append.stream_id
        found = [existing.get(e.event_id) or staged.get(e.event_id) for e in append.events]
        if any(found):
            plan.outcomes.append(_judge_retry(append, found))
            continue
        current = versions.get(stream_id, 0)
        expected = append.expected_version
        if expected != ANY and (
            (expected == NO_STREAM and current != 0)
            or (isinstance(expected, int) and expected != current)
        ):
            plan.outcomes.append(ConcurrencyError(stream_id, expected, current))
            continue
        positions: list[int] = []
        for event in append.events:
            position += 1
            current += 1
            fields = (
                position,
                event.event_id,
                stream_id,
                current,
                event.type,
                event.schema_version,
                recorded_at,
                append.metadata,
                event.data,
            )
            previous_hash = chain_hash(previous_hash, *fields)
            plan.rows.append(Row(*fields, previous_hash))
            staged[event.event_id] = ExistingEvent(
                event.event_id,
                position,
                stream_id,
                current,
                event.type,
                event.schema_version,
                event.data,
            )
            positions.append(position)
        versions[stream_id] = current
        plan.outcomes.append(AppendResult(tuple(positions), current))
    plan.head = ChainHead(position, previous_hash, recorded_at)
    return plan


def _judge_retry(
    append: PendingAppend, found: list[ExistingEvent | None]
) -> AppendResult | AppendError:
    ids = append.event_ids()
    if not all(found):
        missing = [i for i, f in zip(ids, found, strict=True) if f is None]
        return EventIdConflictError(
            ids, f"is already stored, but {len(missing)} other event(s) of this append are not"
        )
    stored = [f for f in found if f is not None]
    for event, match in zip(append.events, stored, strict=True):
        if not _same_body(match, append.stream_id, event):
            return EventIdConflictError(
                [event.event_id],
                f"is already stored at position {match.position} with another body",
            )
    last = stored[-1]
    return AppendResult(tuple(s.position for s in stored), last.stream_version, duplicate=True)
