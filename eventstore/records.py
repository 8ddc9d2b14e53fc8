"""The export record: one stored event with every envelope field, as JSON builtins.

An export line, an import line and ``events show --json`` are one shape,
:class:`EnvelopeRecord`::

    {"position", "event_id", "stream_id", "stream_version", "type", "schema_version",
     "recorded_at", "recorded_at_us", "metadata", "data", "hash"}

``metadata`` and ``data`` are the stored MessagePack payloads as JSON; they
re-encode to the very same bytes, so an imported log keeps its positions, ids,
times and hash chain. This module holds the conversions between a
:class:`~eventstore.envelope.StoredEvent` and a record, both ways.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from .codec import EventCodec
from .envelope import StoredEvent, us_from_datetime
from .errors import BadLineError, DecodeError, InvalidEventError
from .secret_masking import mask_secrets

__all__ = [
    "EnvelopeRecord",
    "decode_payload",
    "envelope_record",
    "parse_record",
    "reencodes_exactly",
]

#: The store keeps envelope numbers as signed 64-bit integers.
Int64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]


class EnvelopeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One event with every envelope field: an export line and ``events show --json``.

    ``recorded_at`` (ISO) is written on export; on import it is optional and
    only cross-checked against ``recorded_at_us``, the exact time.
    """

    position: Int64
    event_id: str
    stream_id: str
    stream_version: Int64
    type: str
    schema_version: Int64
    recorded_at: datetime | None = None
    recorded_at_us: Int64
    metadata: Any
    data: Any
    hash: str


_record_decoder = msgspec.json.Decoder(EnvelopeRecord)


def decode_payload(data: bytes, *, strict: bool = False) -> Any:
    """Stored payload bytes as JSON builtins.

    Bytes that are not readable MessagePack (a damaged row) raise DecodeError with
    ``strict``; otherwise they come back as ``{"undecodable": "<hex>"}`` so an audit
    still shows the row.
    """
    try:
        return EventCodec.to_builtins(data)
    except msgspec.DecodeError as exc:
        if strict:
            raise DecodeError(f"the stored bytes cannot be decoded: {exc}") from exc
        return {"undecodable": data.hex()}


def envelope_record(
    row: StoredEvent, *, strict: bool = False, show_secrets: bool = True
) -> EnvelopeRecord:
    """Every envelope field of a stored row, payloads decoded to JSON builtins.

    ``show_secrets=False`` masks secret-looking values (for display; an export keeps them).
    """
    return EnvelopeRecord(
        position=row.position,
        event_id=row.event_id,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        type=row.type,
        schema_version=row.schema_version,
        recorded_at=row.recorded_at,
        recorded_at_us=row.recorded_at_us,
        metadata=mask_secrets(decode_payload(row.metadata, strict=strict), show=show_secrets),
        data=mask_secrets(decode_payload(row.data, strict=strict), show=show_secrets),
        hash=row.hash.hex(),
    )


def reencodes_exactly(row: StoredEvent, record: EnvelopeRecord) -> bool:
    """Whether the record's payloads encode back to the row's stored bytes (so it imports)."""
    try:
        return EventCodec.from_builtins_bytes(record.metadata) == row.metadata and (
            EventCodec.from_builtins_bytes(record.data) == row.data
        )
    except InvalidEventError:
        return False


def parse_record(number: int, raw: bytes) -> StoredEvent:
    """One export line as the row it stores; BadLineError naming line ``number`` otherwise."""
    try:
        line = _record_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadLineError(number, str(exc)) from None
    except RecursionError:
        raise BadLineError(number, "nested too deeply to store") from None
    except UnicodeDecodeError as exc:
        raise BadLineError(number, f"invalid UTF-8 at byte {exc.start}") from None
    try:
        digest = bytes.fromhex(line.hash)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise BadLineError(number, "hash must be 64 hex digits")
    if line.recorded_at is not None and (
        line.recorded_at.tzinfo is None or us_from_datetime(line.recorded_at) != line.recorded_at_us
    ):
        raise BadLineError(number, "recorded_at does not match recorded_at_us")
    try:
        metadata = EventCodec.from_json_builtins_bytes(line.metadata)
        data = EventCodec.from_json_builtins_bytes(line.data)
    except InvalidEventError as exc:
        raise BadLineError(number, str(exc)) from None
    return StoredEvent(
        line.position,
        line.event_id,
        line.stream_id,
        line.stream_version,
        line.type,
        line.schema_version,
        line.recorded_at_us,
        metadata,
        data,
        digest,
    )
