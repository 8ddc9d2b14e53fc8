"""The frames between a store and its log writer process (:mod:`eventstore.writer_process`).

Each frame is a 4-byte little-endian length and a MessagePack body. The store
sends the child its store first (:func:`encode_open`), then one frame per batch
of appends (:func:`encode_batch`); the child answers ``ready`` (or why it
cannot open the store), then exactly one frame per batch, in order: each
append's result or refusal, or the error that failed the whole batch.

Both ends import this module, so the two can never disagree on a shape.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from . import errors
from .envelope import AppendResult
from .errors import AppendError, ConcurrencyError, EventIdConflictError, StoreError
from .planner import EncodedEvent, PendingAppend
from .uri import StoreLocation

__all__ = [
    "READY",
    "FrameBuffer",
    "decode_batch",
    "decode_open",
    "decode_outcomes",
    "encode_batch",
    "encode_open",
    "encode_outcomes",
    "frame",
]

#: The child's answer to the first frame once the log is open for writing.
READY = b"ready"

_HEADER = struct.Struct("<I")
#: A frame larger than this is a protocol fault, not a batch (2,000 events of
#: up to the store's maximum event size fit several times over).
MAX_FRAME_BYTES = 1 << 30

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

#: Outcome tags in a batch's answer.
_STORED, _CONCURRENCY, _ID_CONFLICT, _REFUSED = 0, 1, 2, 3
#: Whole-answer tags: each append's outcome, or the error that failed the batch.
_OUTCOMES, _FAILED = 0, 1


def frame(body: bytes) -> bytes:
    """``body`` with its length in front."""
    return _HEADER.pack(len(body)) + body


class FrameBuffer:
    """Bytes read from a pipe, cut into whole frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Add bytes as they were read."""
        self._buffer += data

    def __len__(self) -> int:
        return len(self._buffer)

    def frames(self) -> list[bytes]:
        """The whole frames received so far (a partial one stays for the next read)."""
        buffer = self._buffer
        found: list[bytes] = []
        start = 0
        while len(buffer) - start >= 4:
            (size,) = _HEADER.unpack_from(buffer, start)
            if size > MAX_FRAME_BYTES:
                raise StoreError(f"the log writer's pipe is out of step (a {size}-byte frame)")
            if len(buffer) - start - 4 < size:
                break
            found.append(bytes(buffer[start + 4 : start + 4 + size]))
            start += 4 + size
        del buffer[:start]
        return found


# -- opening ---------------------------------------------------------------------


def encode_open(location: StoreLocation) -> bytes:
    """The first frame: which SQLite store the child opens, with what durability and options."""
    assert location.kind == "sqlite"
    assert location.path is not None
    return frame(
        _encode(
            {
                "path": str(location.path),
                "durability": location.durability,
                "options": [list(option) for option in location.options],
            }
        )
    )


def decode_open(body: bytes) -> StoreLocation:
    """The child's side of :func:`encode_open`."""
    fields = _decode(body)
    return StoreLocation(
        kind="sqlite",
        path=Path(fields["path"]),
        durability=fields["durability"],
        options=tuple((name, value) for name, value in fields["options"]),
    )


# -- batches ---------------------------------------------------------------------


def encode_batch(appends: Sequence[PendingAppend], atomic: bool) -> bytes:
    """One batch of appends (all or nothing when ``atomic``) as a frame."""
    return frame(
        _encode(
            (
                atomic,
                [
                    (a.stream_id, [tuple(e) for e in a.events], a.expected_version, a.metadata)
                    for a in appends
                ],
            )
        )
    )


def decode_batch(body: bytes) -> tuple[bool, list[PendingAppend]]:
    """The child's side of :func:`encode_batch`."""
    atomic, appends = _decode(body)
    return bool(atomic), [
        PendingAppend(stream_id, [EncodedEvent(*e) for e in events], expected, metadata)
        for stream_id, events, expected, metadata in appends
    ]


# -- answers ---------------------------------------------------------------------


def _outcome(result: AppendResult | AppendError) -> list[Any]:
    if isinstance(result, AppendResult):
        return [_STORED, list(result.positions), result.stream_version, result.duplicate]
    if isinstance(result, ConcurrencyError):
        return [_CONCURRENCY, result.stream_id, result.expected, result.actual]
    if isinstance(result, EventIdConflictError):
        return [_ID_CONFLICT, list(result.event_ids), result.reason]
    return [_REFUSED, type(result).__name__, str(result)]


def encode_outcomes(outcomes: Sequence[AppendResult | AppendError] | BaseException) -> bytes:
    """A batch's answer: each append's outcome, or the error that failed the batch."""
    if isinstance(outcomes, BaseException):
        name = type(outcomes).__name__ if isinstance(outcomes, StoreError) else "StoreError"
        message = str(outcomes) if isinstance(outcomes, StoreError) else repr(outcomes)
        return frame(_encode([_FAILED, name, message]))
    return frame(_encode([_OUTCOMES, [_outcome(o) for o in outcomes]]))


def _error(name: str, message: str, base: type[Exception]) -> Exception:
    """The named error class of :mod:`eventstore.errors`, if it is a ``base``; else ``base``."""
    kind = getattr(errors, name, None)
    if not (isinstance(kind, type) and issubclass(kind, base)):
        kind = base
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    return error


def decode_outcomes(body: bytes) -> list[AppendResult | AppendError] | StoreError:
    """The store's side of :func:`encode_outcomes`."""
    tag, payload, *rest = _decode(body)
    if tag == _FAILED:
        failed = _error(payload, rest[0], StoreError)
        assert isinstance(failed, StoreError)
        return failed
    outcomes: list[AppendResult | AppendError] = []
    for kind, *fields in payload:
        if kind == _STORED:
            outcomes.append(AppendResult(tuple(fields[0]), fields[1], fields[2]))
        elif kind == _CONCURRENCY:
            outcomes.append(ConcurrencyError(*fields))
        elif kind == _ID_CONFLICT:
            outcomes.append(EventIdConflictError(*fields))
        else:
            refused = _error(fields[0], fields[1], AppendError)
            assert isinstance(refused, AppendError)
            outcomes.append(refused)
    return outcomes
