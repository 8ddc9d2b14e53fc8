"""The hash chain over the log, and the checks ``verify`` runs on it.

Each row's hash is SHA-256 over the previous row's hash and the row's stored
fields, so editing, deleting, inserting or reordering any row breaks the chain at
that row. The digest covers exactly what is stored (payload bytes, time in
microseconds), so it is the same on every backend and survives export/import.
"""

from __future__ import annotations

import hashlib

import msgspec

from .envelope import StoredEvent

__all__ = ["GENESIS_HASH", "ChainChecker", "VerifyReport", "chain_hash"]

#: The "previous hash" of position 1.
GENESIS_HASH = bytes(32)

_encoder = msgspec.msgpack.Encoder()


def chain_hash(
    previous: bytes,
    position: int,
    event_id: str,
    stream_id: str,
    stream_version: int,
    event_type: str,
    schema_version: int,
    recorded_at_us: int,
    metadata: bytes,
    data: bytes,
) -> bytes:
    """The hash of one row, chained to the hash of the row before it."""
    digest = hashlib.sha256(previous)
    digest.update(
        _encoder.encode(
            (
                position,
                event_id,
                stream_id,
                stream_version,
                event_type,
                schema_version,
                recorded_at_us,
                metadata,
                data,
            )
        )
    )
    return digest.digest()


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``verify`` found: ``ok``, how many events it checked, and the first fault."""

    ok: bool
    events: int
    head_position: int
    first_bad_position: int | None = None
    reason: str | None = None
    head_hash: str | None = None


class ChainChecker:
    """Checks rows one by one, in position order, against the log's invariants.

    Invariants: positions 1, 2, 3... without gaps; each stream's versions 1, 2, 3...;
    ``recorded_at`` never decreasing; each hash equal to the recomputed chain.
    Feed rows with :meth:`check`; it returns the fault of the first bad row.
    """

    def __init__(self) -> None:
        self.count = 0
        self.previous_hash = GENESIS_HASH
        self.previous_position = 0
        self.previous_recorded_at = 0
        self._stream_versions: dict[str, int] = {}
        self.first_bad_position: int | None = None
        self.reason: str | None = None

    def check(self, row: StoredEvent) -> bool:
        """Check the next row; on the first fault remember it and return False."""
        expected_position = self.previous_position + 1
        if row.position != expected_position:
            return self._fail(
                expected_position,
                f"position {expected_position} is missing (next stored is {row.position})",
            )
        expected_version = self._stream_versions.get(row.stream_id, 0) + 1
        if row.stream_version != expected_version:
            return self._fail(
                row.position,
                f"stream {row.stream_id!r} jumps to version {row.stream_version}, "
                f"expected {expected_version}",
            )
        if row.recorded_at_us < self.previous_recorded_at:
            return self._fail(row.position, "recorded_at goes backwards")
        digest = chain_hash(
            self.previous_hash,
            row.position,
            row.event_id,
            row.stream_id,
            row.stream_version,
            row.type,
            row.schema_version,
            row.recorded_at_us,
            row.metadata,
            row.data,
        )
        if digest != row.hash:
            return self._fail(row.position, "hash does not match the row's contents")
        self.count += 1
        self.previous_hash = digest
        self.previous_position = row.position
        self.previous_recorded_at = row.recorded_at_us
        self._stream_versions[row.stream_id] = row.stream_version
        return True

    def _fail(self, position: int, reason: str) -> bool:
        self.first_bad_position = position
        self.reason = reason
        return False

    def report(self, head_position: int) -> VerifyReport:
        """The report after the last row; a head beyond the last checked row is a fault too."""
        if self.first_bad_position is None and head_position > self.previous_position:
            self._fail(self.previous_position + 1, f"the log's head is {head_position}")
        ok = self.first_bad_position is None
        return VerifyReport(
            ok=ok,
            events=self.count,
            head_position=head_position,
            first_bad_position=self.first_bad_position,
            reason=self.reason,
            head_hash=self.previous_hash.hex() if ok and self.count else None,
        )
