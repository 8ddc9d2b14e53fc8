"""Export a log as JSON lines and import it back, hashes and all.

- :func:`export` writes every stored event, in log order, as an
  :class:`~eventstore.records.EnvelopeRecord` line, checking the hash chain on
  the way (a damaged log is still exported as stored, and said so).
- :func:`import_` rebuilds the exported log in a store: pass 1
  (:func:`scan_export`) parses every line and checks the chain from position 1
  and each new row with the domain rules (:class:`RowRules`); pass 2 stores the
  new rows in one transaction, re-reading only bytes pass 1 checked.

The store may already hold a prefix of the file's log (an earlier import, or
the store it came from): those rows are skipped, so importing twice is a no-op.
:func:`~eventstore.copying.copy` moves a log between two open stores the same way.
Nothing here prints; long work reports through ``progress(stage, done, total)``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import msgspec

from .chain import ChainChecker
from .codec import EventCodec
from .envelope import StoredEvent
from .errors import (
    BadLineError,
    DecodeError,
    FileChangedError,
    InvalidEventError,
    LifecycleError,
    LogMismatchError,
    StoreChangedError,
    StoreCorruptError,
)
from .records import envelope_record, parse_record, reencodes_exactly
from .rules import RuleChecker, check_row

if TYPE_CHECKING:
    from .log import Log
    from .store import EventStore

__all__ = [
    "ExportResult",
    "ExportScan",
    "ImportResult",
    "RowRules",
    "StageProgress",
    "export",
    "import_",
    "scan_export",
]

StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` during long work; ``stage`` names the pass."""

#: Bytes read between two progress reports of an import.
_BLOCK = 1 << 20


def _quiet(stage: str, done: int, total: int) -> None:
    """The progress callback that reports nothing."""


# -- export ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    #: Lines written.
    count: int
    #: The log's head position (or the last readable position of a salvage).
    head_position: int
    #: The head's hash (hex), None when the log is empty or does not verify.
    head_hash: str | None
    #: ``position N: reason`` of the first fault found, or None for a sound log.
    problem: str | None
    #: The file could not be read past ``problem``: the export holds what came before.
    salvaged: bool = False


def _row_fault(checker: ChainChecker, row: StoredEvent, record: Any) -> str | None:
    """The first fault of a row: its chain, or payloads that would not re-import exactly."""
    if not checker.check(row):
        return f"position {checker.first_bad_position}: {checker.reason}"
    if not reencodes_exactly(row, record):
        return f"position {row.position}: its payload does not re-encode to the stored bytes"
    return None


async def export(
    store: Log | EventStore, file: IO[bytes], *, progress: StageProgress | None = None
) -> ExportResult:
    """Write the log to ``file`` as JSON lines, one per event, in log order.

    The chain is checked on the way: a damaged log is still exported as stored,
    and ``problem`` names the first bad position. A log file that cannot be read
    to the end is exported up to the first unreadable event (``salvaged``).
    Raises DecodeError (naming the position) for a payload that is not MessagePack.
    Progress stage: ``"exporting"`` (positions).
    """
    report = progress or _quiet
    encoder = msgspec.json.Encoder()
    checker = ChainChecker()
    problem: str | None = None
    salvaged = False
    count = 0
    known_head: int | None = None
    with contextlib.suppress(StoreCorruptError):  # a damaged file: salvage up to the damage
        known_head = await store.head()
    head = known_head or 0
    try:
        async for rows in store.read_readable_chunks(1, to_position=known_head):
            lines = []
            for raw in rows:
                row = StoredEvent._make(raw)
                try:
                    record = envelope_record(row, strict=True)
                except DecodeError as exc:
                    raise DecodeError(f"position {row.position}: {exc}") from exc
                if problem is None:
                    problem = _row_fault(checker, row, record)
                lines.append(encoder.encode(record))
                count += 1
            lines.append(b"")
            file.write(b"\n".join(lines))
            report("exporting", rows[-1][0], head)
    except StoreCorruptError as exc:
        # Every readable event before the damage is in the file: a salvage.
        head = max(head, checker.previous_position)
        if problem is None:
            salvaged = True
            problem = (
                f"position {exc.position}: the file cannot be read from here on "
                f"({exc.__cause__ or exc}); {count} events before it were exported"
            )
    file.flush()
    if problem is None:
        verdict = checker.report(head)
        if not verdict.ok:
            problem = f"position {verdict.first_bad_position}: {verdict.reason}"
    head_hash = checker.previous_hash.hex() if count and problem is None else None
    return ExportResult(count, head, head_hash, problem, salvaged)


# -- the rules every imported or copied row passes ---------------------------------


class RowRules:
    """Checks rows as ``append_lines`` checks lines: each row alone, then the domain rules.

    Rows up to ``head`` (already in the target store) are folded without being
    judged; each later row must pass :func:`eventstore.rules.check_row` and the
    rules of :mod:`eventstore.rules` against everything before it.
    """

    def __init__(self, head: int) -> None:
        self.head = head
        self.codec = EventCodec()
        self.rules = RuleChecker()
        self._now_us = time.time_ns() // 1000

    def fault(self, row: StoredEvent) -> str | None:
        """Why ``row`` may not be stored (naming its position), or None."""
        if row.position <= self.head:  # stored already: folded as it is, never judged
            with contextlib.suppress(DecodeError):
                event = self.codec.decode(row.type, row.schema_version, row.data)
                self.rules.fold(event, row.stream_version)
            return None
        try:
            self.rules.check(
                row.stream_id, check_row(row, self.codec, now_us=self._now_us), row.event_id
            )
        except (InvalidEventError, LifecycleError) as exc:
            return f"position {row.position} ({row.type}): {exc}"
        return None


# -- import ------------------------------------------------------------------------


@dataclass
class ExportScan:
    """What pass 1 learnt about an export whose every line parses and whose chain verifies."""

    #: The store's head the file was checked against.
    store_head: int = 0
    size: int = 0
    count: int = 0
    last_position: int = 0
    last_hash: bytes = b""
    #: The hash of the file's row at the store's head position (None if the file is shorter).
    hash_at_head: bytes | None = None
    line_at_head: int = 0
    #: Byte offset of the first row after the store's head (where pass 2 starts parsing).
    offset_after_head: int = 0
    digest: str = ""


def _lines(
    chunks: Iterable[bytes], digest: Any, progress: Callable[[int], None]
) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of each non-blank line; every byte goes to ``digest``.

    ``progress(bytes_read)`` is called about once per MiB.
    """
    offset = reported = 0
    for number, raw in enumerate(chunks, start=1):
        digest.update(raw)
        start, offset = offset, offset + len(raw)
        if offset - reported >= _BLOCK:
            progress(offset)
            reported = offset
        if raw.strip():
            yield number, start, raw
    progress(offset)


def scan_export(
    path: Path, store_head: int = 0, *, progress: StageProgress | None = None
) -> ExportScan:
    """Pass 1 of an import: parse every line, check the chain from position 1 and each row.

    Rows after ``store_head`` must pass :class:`RowRules`. Raises BadLineError
    naming the first bad line. Synchronous (file reading); :func:`import_` runs
    it in a worker thread when not given a scan. Progress stage: ``"checking"`` (bytes).
    """
    report = progress or _quiet
    checker = ChainChecker()
    rules = RowRules(store_head)
    digest = hashlib.sha256()
    scan = ExportScan(store_head=store_head, size=path.stat().st_size)
    scan.offset_after_head = scan.size
    found_after = False
    with path.open("rb") as handle:
        for number, offset, raw in _lines(
            handle, digest, lambda done: report("checking", done, scan.size)
        ):
            row = parse_record(number, raw)
            if not checker.check(row):
                raise BadLineError(
                    number,
                    f"the chain breaks at position {checker.first_bad_position}: {checker.reason}",
                )
            fault = rules.fault(row)
            if fault is not None:
                raise BadLineError(number, fault)
            if row.position == store_head:
                scan.hash_at_head, scan.line_at_head = row.hash, number
            elif row.position > store_head and not found_after:
                scan.offset_after_head, found_after = offset, True
            scan.count += 1
    scan.last_position = checker.previous_position
    scan.last_hash = checker.previous_hash
    scan.digest = digest.hexdigest()
    return scan


def _rows_after(path: Path, scan: ExportScan, progress: StageProgress) -> Iterator[StoredEvent]:
    """Pass 2: the rows after the store's head, parsed again.

    Runs inside the import's transaction: if the file's bytes are not those pass 1
    checked, it raises FileChangedError and the transaction rolls back.
    """
    digest = hashlib.sha256()
    base = scan.offset_after_head
    with path.open("rb") as handle:
        remaining = base
        while remaining > 0:
            block = handle.read(min(_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
        for _, offset, raw in _lines(
            handle, digest, lambda done: progress("importing", base + done, scan.size)
        ):
            try:
                yield parse_record(0, raw)
            except BadLineError as exc:
                raise FileChangedError(f"at byte {base + offset}: {exc}") from None
    if digest.hexdigest() != scan.digest:
        raise FileChangedError("its bytes differ from those checked")


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_` stored."""

    #: Events stored now.
    imported: int
    #: Events of the file the store held already.
    already_stored: int
    #: The store's head before the import.
    previous_head: int
    head_position: int
    #: The head's hash (hex), None for an empty log.
    head_hash: str | None


def _hex(value: bytes | None) -> str:
    return value.hex() if value else "-"


async def import_(
    store: Log | EventStore,
    file: Path | str,
    *,
    scan: ExportScan | None = None,
    progress: StageProgress | None = None,
) -> ImportResult:
    """Import the export at ``file`` into ``store``: its positions, ids, times and hashes.

    ``scan`` is pass 1 already made (:func:`scan_export` against the store's head
    then); without it, pass 1 runs here, in a worker thread. Raises BadLineError
    (a bad line, a broken chain, a row the rules refuse), LogMismatchError (the
    store holds another log), StoreChangedError (the store moved since the
    scan) or FileChangedError (the file was edited between the passes); nothing
    is stored then. Cancelled during pass 2, nothing is stored, unless the
    commit won the race: then the import is complete and returned.
    Progress stages: ``"checking"`` and ``"importing"`` (bytes of the file).
    """
    path = Path(file)
    report = progress or _quiet
    if scan is None:
        head = await store.head()
        scan = await anyio.to_thread.run_sync(
            functools.partial(scan_export, path, head, progress=report)
        )
    head = scan.store_head
    now = await store.head()
    if now != head:
        raise StoreChangedError(head, now)
    if head and scan.last_position >= head:
        stored = await store.stored_at(head)
        theirs = stored.hash if stored is not None else None
        if scan.hash_at_head != theirs:
            raise LogMismatchError(
                f"at position {head} (line {scan.line_at_head}) the file has hash "
                f"{_hex(scan.hash_at_head)}, the store {_hex(theirs)}",
                position=head,
                line=scan.line_at_head,
                ours=scan.hash_at_head,
                theirs=theirs,
                target_head=head,
            )
    imported = 0
    if scan.last_position < head:
        # A shorter file: fine if it is a prefix of the store's log.
        row = await store.stored_at(scan.last_position)
        if row is not None and row.hash != scan.last_hash:
            raise LogMismatchError(
                f"at position {scan.last_position} (its last line) the file has hash "
                f"{_hex(scan.last_hash)}, the store {_hex(row.hash)}",
                position=scan.last_position,
                ours=scan.last_hash,
                theirs=row.hash,
                target_head=head,
            )
    elif scan.last_position > head:
        imported = await _import_rows(store, path, scan, report)
    # Committed: report it, even when cancelled after the commit.
    with anyio.CancelScope(shield=True):
        last = await store.head()
        row = await store.stored_at(last)
    return ImportResult(
        imported,
        scan.count - imported,
        head,
        last,
        row.hash.hex() if row is not None else None,
    )


async def _import_rows(
    store: Log | EventStore, path: Path, scan: ExportScan, progress: StageProgress
) -> int:
    """Store the file's new rows in one transaction; on cancellation, tell whether it committed.

    Cancelled before the commit, the import is rolled back whole and the
    cancellation goes on. If the commit won the race, the import is complete.
    """
    try:
        return await store.import_stored(_rows_after(path, scan, progress))
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            now = await store.head()
        if now != scan.last_position:
            raise
        return now - scan.store_head
