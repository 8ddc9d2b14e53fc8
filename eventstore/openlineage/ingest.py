"""Storing OpenLineage events: each one whole, once, with one outcome per event.

:func:`ingest` takes a body (one JSON object, a JSON array, or NDJSON) and
answers one :class:`IngestOutcome` per event, in order: ``stored`` (with its
log position), ``duplicate`` (the same canonical content is already stored; the
log is unchanged) or ``invalid`` (with the reason; nothing of it is stored).
Valid events are stored even when others of the same body are invalid.

Each accepted event is one ``openlineage.received`` event holding its JSON text
exactly as received, under the event id derived from its canonical content
(:func:`.facts.event_id_for`): the log's unique event-id index makes a retry,
however formatted, a duplicate. The events of a body are queued on the store's
group-commit writer together, so a batch shares few transactions.
Nothing else is appended: the views derive runs, steps and artifacts from the
raw event itself, so there is no second fact to keep in step with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio

from eventstore.codec import EventCodec
from eventstore.envelope import ANY, AppendResult, Metadata
from eventstore.errors import AppendError, EventIdConflictError
from eventstore.events import OpenLineageReceived
from eventstore.planner import EncodedEvent
from eventstore.store import EventStore

from .facts import event_id_for, run_uuid
from .parsing import (
    MAX_EVENT_BYTES,
    InvalidOpenLineageEvent,
    OpenLineageEvent,
    parse_body,
)

__all__ = [
    "IngestOutcome",
    "IngestResult",
    "ingest",
    "ingest_parsed",
    "outcome_for",
    "received_for",
    "stream_for",
]

Status = Literal["stored", "duplicate", "invalid"]
#: The raw text may reach MAX_EVENT_BYTES; the payload adds the key and the kind.
_codec = EventCodec(max_event_bytes=MAX_EVENT_BYTES + 4096)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of one event of a body (``index`` counts from 0)."""

    index: int
    status: Status
    reason: str | None = None
    kind: str | None = None
    key: str | None = None
    run_id: str | None = None
    event_type: str | None = None
    position: int | None = None

    def as_json(self) -> dict[str, object]:
        """The outcome as a JSON object (None fields left out)."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass(slots=True)
class IngestResult:
    """The outcome of every event of a body, in order."""

    outcomes: list[IngestOutcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        """How many events ended in ``status``."""
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        """True when no event was invalid."""
        return all(o.status != "invalid" for o in self.outcomes)


def stream_for(event: OpenLineageEvent) -> str:
    """The stream of an event: ``openlineage-run-<uuid>`` per run, one per static kind."""
    if event.kind == "RunEvent":
        run = event.document.get("run")
        run_id = run.get("runId") if isinstance(run, dict) else None
        if isinstance(run_id, str):
            return f"openlineage-run-{run_uuid(run_id)}"
    return "openlineage-job" if event.kind == "JobEvent" else "openlineage-dataset"


def outcome_for(event: OpenLineageEvent, status: Status, position: int | None) -> IngestOutcome:
    """The outcome of a valid event: its kind, key, runId and eventType, and ``status``."""
    run = event.document.get("run")
    run_id = run.get("runId") if isinstance(run, dict) else None
    event_type = event.document.get("eventType")
    return IngestOutcome(
        event.index,
        status,
        kind=event.kind,
        key=event.key,
        run_id=run_id if isinstance(run_id, str) else None,
        event_type=event_type if isinstance(event_type, str) else None,
        position=position,
    )


def received_for(event: OpenLineageEvent) -> tuple[str, EncodedEvent]:
    """The stream and the encoded ``openlineage.received`` event that store ``event``."""
    received = OpenLineageReceived(
        kind=event.kind,
        event=event.raw.decode("utf-8"),
        key=event.key,
    )
    return stream_for(event), EncodedEvent(str(event_id_for(event.key)), *_codec.encode(received))


async def _stored(
    store: EventStore,
    event: OpenLineageEvent,
    event_id: str,
    result: AppendResult | AppendError,
) -> IngestOutcome:
    """The outcome of one event's append."""
    if isinstance(result, EventIdConflictError):
        # Stored before in another formatting: the same canonical content.
        found = await store.stored_by_event_id(event_id)
        return outcome_for(event, "duplicate", None if found is None else found.position)
    if isinstance(result, AppendError):
        raise result  # not a refusal an OpenLineage event can earn: a bug or a full store
    status: Status = "duplicate" if result.duplicate else "stored"
    return outcome_for(event, status, result.positions[0])


async def ingest_parsed(
    store: EventStore,
    parsed: Sequence[OpenLineageEvent | InvalidOpenLineageEvent],
    *,
    metadata: Metadata | None = None,
) -> IngestResult:
    """Store the valid events of ``parsed`` (see :func:`ingest`).

    The valid events are handed to the store's writer together
    (:meth:`~eventstore.log.Log.append_each`: one append each, stored or
    refused alone), so they share group commits with each other and with
    other requests, without a task per event.
    """
    outcomes: list[IngestOutcome | None] = [None] * len(parsed)
    first_of_key: dict[str, int] = {}
    todo: list[OpenLineageEvent] = []
    for item in parsed:
        if isinstance(item, InvalidOpenLineageEvent):
            outcomes[item.index] = IngestOutcome(item.index, "invalid", reason=item.reason)
        elif item.key in first_of_key:
            outcomes[item.index] = outcome_for(item, "duplicate", None)
        else:
            first_of_key[item.key] = item.index
            todo.append(item)
    if todo:
        mapped = [received_for(event) for event in todo]
        results = await store.append_each(
            [(stream, [encoded], ANY) for stream, encoded in mapped], metadata=metadata
        )
        for event, (_, encoded), result in zip(todo, mapped, results, strict=True):
            outcomes[event.index] = await _stored(store, event, encoded.event_id, result)
    # A duplicate inside the body points at the position of its first copy.
    done = [o for o in outcomes if o is not None]
    by_index = {o.index: o for o in done}
    for index, outcome in enumerate(done):
        if outcome.status == "duplicate" and outcome.position is None and outcome.key:
            first = by_index[first_of_key[outcome.key]]
            done[index] = IngestOutcome(**{**outcome.as_json(), "position": first.position})  # type: ignore[arg-type]
    return IngestResult(done)


async def ingest(
    store: EventStore,
    body: bytes,
    *,
    lines: bool = False,
    metadata: Metadata | None = None,
) -> IngestResult:
    """Parse, validate and store every event of ``body``; one outcome per event.

    ``lines`` reads every line as one event (a FileTransport file). Raises
    :class:`~.parsing.BodyError` when the body as a whole cannot be split into
    events (empty, or a malformed JSON array).
    """
    parsed = await anyio.to_thread.run_sync(lambda: parse_body(body, lines=lines))
    return await ingest_parsed(store, parsed, metadata=metadata)
