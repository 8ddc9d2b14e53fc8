"""Turning a request body or a file into OpenLineage events, each valid or refused with a reason.

A body is one JSON object, a JSON array of objects, or NDJSON (one object per
line, as the clients' FileTransport writes). Each event keeps the exact bytes
it arrived as (the raw fact the log stores); it is decoded, its shape
validated against the shipped schema (:mod:`.schema`), and given:

- its **kind** from the ``schemaURL``'s fragment or last path part
  (``.../OpenLineage.json#/definitions/DatasetEvent``), RunEvent by default, as
  Marquez decides it;
- its **key**: the hex SHA-256 of its canonical JSON (keys sorted, no blanks),
  so the same event sent again, however formatted, is recognised;
- its **time** in microseconds, from ``eventTime`` in any RFC 3339 form
  (``Z`` or an offset, 0 to 9 fractional digits, truncated to microseconds);
  a time without a zone, as some older clients write, is read as UTC.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from eventstore.errors import InvalidEventError

from .schema import schema_problem

__all__ = [
    "MAX_EVENT_BYTES",
    "BodyError",
    "InvalidOpenLineageEvent",
    "Kind",
    "OpenLineageEvent",
    "canonical_key",
    "event_kind",
    "parse_body",
    "parse_event",
    "parse_event_time",
    "split_body",
]

#: The largest single event accepted (its JSON text): Spark logical plans run to
#: hundreds of KB.
MAX_EVENT_BYTES = 4 << 20

#: The three kinds of OpenLineage event.
Kind = Literal["RunEvent", "JobEvent", "DatasetEvent"]
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)
_canonical = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class BodyError(InvalidEventError):
    """Raised when a body as a whole is not JSON, an array of objects, or NDJSON."""


@dataclass(frozen=True, slots=True)
class OpenLineageEvent:
    """A valid event: its bytes as received, decoded document, kind, key and time."""

    index: int
    raw: bytes
    document: dict[str, Any]
    kind: Kind
    key: str
    time_us: int


@dataclass(frozen=True, slots=True)
class InvalidOpenLineageEvent:
    """An event refused, with the reason (one line naming the place and the problem)."""

    index: int
    reason: str


def parse_event_time(text: object) -> int:
    """Microseconds since the epoch of an RFC 3339 time; ValueError when it is not one."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"eventTime {text!r} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    offset = timedelta()
    if match.group(9):
        sign = -1 if match.group(9) == "-" else 1
        offset = sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
    # A leap second (:60) is read as the last instant of its minute.
    when = datetime(year, month, day, hour, minute, min(second, 59), int(fraction), tzinfo=UTC)
    delta = when - offset - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def event_kind(document: dict[str, Any]) -> Kind:
    """RunEvent, JobEvent or DatasetEvent, from the ``schemaURL`` (RunEvent when unclear)."""
    url = document.get("schemaURL")
    if isinstance(url, str):
        tail = url.rstrip("/").rsplit("/", 1)[-1]
        if tail == "JobEvent":
            return "JobEvent"
        if tail == "DatasetEvent":
            return "DatasetEvent"
    return "RunEvent"


def canonical_key(document: Any) -> str:
    """The hex SHA-256 of the document's canonical JSON: its idempotency key."""
    return hashlib.sha256(_canonical.encode(document)).hexdigest()


def parse_event(index: int, raw: bytes) -> OpenLineageEvent | InvalidOpenLineageEvent:
    """Decode and validate one event's bytes."""
    if len(raw) > MAX_EVENT_BYTES:
        return InvalidOpenLineageEvent(
            index, f"the event is {len(raw):,} bytes, over the limit of {MAX_EVENT_BYTES:,}"
        )
    try:
        document = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return InvalidOpenLineageEvent(index, f"malformed JSON: {exc}")
    if not isinstance(document, dict):
        return InvalidOpenLineageEvent(
            index, f"an event must be a JSON object, not {type(document).__name__}"
        )
    kind = event_kind(document)
    problem = schema_problem(document, kind)
    if problem is not None:
        return InvalidOpenLineageEvent(index, f"not a valid OpenLineage {kind}: {problem}")
    try:
        time_us = parse_event_time(document["eventTime"])
    except (ValueError, OverflowError) as exc:
        return InvalidOpenLineageEvent(index, str(exc))
    return OpenLineageEvent(index, raw, document, kind, canonical_key(document), time_us)


def split_body(body: bytes, *, lines: bool = False) -> list[bytes]:
    """The bytes of each event of a body: an object, an array of objects, or NDJSON.

    With ``lines`` every non-blank line is one event (a FileTransport file).
    Raises :class:`BodyError` for an empty body or an array that is not JSON.
    """
    text = body.strip()
    if lines:
        return [line.strip() for line in text.split(b"\n") if line.strip()]
    if not text:
        raise BodyError("the body is empty: send a JSON object, a JSON array or NDJSON")
    if text[:1] == b"[":
        try:
            return [bytes(item) for item in _array_decoder.decode(text)]
        except msgspec.DecodeError as exc:
            raise BodyError(f"malformed JSON array: {exc}") from exc
    events = [line.strip() for line in text.split(b"\n") if line.strip()]
    if len(events) > 1 and all(line[:1] == b"{" and line[-1:] == b"}" for line in events):
        # NDJSON: every line a whole object. A pretty-printed object spans lines
        # whose ends are not braces, and is read whole below.
        return events
    return [text]


def parse_body(
    body: bytes, *, lines: bool = False
) -> list[OpenLineageEvent | InvalidOpenLineageEvent]:
    """Every event of a body, valid or refused, in order (see :func:`split_body`)."""
    return [parse_event(index, raw) for index, raw in enumerate(split_body(body, lines=lines))]
