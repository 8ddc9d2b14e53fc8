"""``metaledger export``, ``import`` and ``copy``: move a log between stores, hashes and all.

An export line holds every envelope field (the shape of ``events show --json``)::

    {"position", "event_id", "stream_id", "stream_version", "type", "schema_version",
     "recorded_at", "recorded_at_us", "metadata", "data", "hash"}

``metadata`` and ``data`` are the stored MessagePack payloads as JSON; they
re-encode to the very same bytes, so an imported log keeps its positions, ids,
times and hash chain, and ``verify`` passes on it.

Summaries with ``--json``: ``export`` gives ``file``, ``events``, ``head_position``,
``head_hash``; ``import`` gives ``file``, ``imported``, ``already_stored``,
``head_position``, ``head_hash``; ``copy`` gives ``to``, ``copied``, ``already_there``,
``head_position``, ``head_hash``, ``verified``, ``problem``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import anyio
import click
import msgspec

from .context import PROGRESS_THRESHOLD, open_store_for, progress_bar, run_async
from .errors import EXIT_BUSY, EXIT_DAMAGED, CLIError
from .events import EnvelopeRecord, envelope_record, row_at
from .interrupts import InterruptedAfter, interrupted_after
from .output import Format, emit, output_options, plural, say

if TYPE_CHECKING:
    from eventstore import EventStore, StoredEvent
    from eventstore.chain import ChainChecker

__all__ = ["ImportLine", "copy", "export", "import_"]

#: Files larger than this draw a progress bar (on a terminal) while read.
PROGRESS_BYTES = 8 << 20
#: Rows per transaction when copying to another store.
COPY_CHUNK = 5000
_BLOCK = 1 << 20
#: Fresh random names export tries for its temporary file before giving up.
_TEMP_NAME_TRIES = 8


#: The store keeps envelope numbers as signed 64-bit integers.
Int64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]


class ImportLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an export, as ``import`` reads it (``recorded_at`` is only cross-checked)."""

    position: Int64
    event_id: str
    stream_id: str
    stream_version: Int64
    type: str
    schema_version: Int64
    recorded_at_us: Int64
    metadata: Any
    data: Any
    hash: str
    recorded_at: datetime | None = None


_line_decoder = msgspec.json.Decoder(ImportLine)


class _BadFile(Exception):
    """A line of an import file that cannot be imported (a message naming the line)."""


def _stdout_bytes() -> IO[bytes]:
    sys.stdout.flush()
    return sys.stdout.buffer


def _display(path: str) -> str:
    return "<stdout>" if path == "-" else path


# -- export ------------------------------------------------------------------------


@dataclass
class _ExportResult:
    count: int
    head_position: int
    head_hash: str | None
    problem: str | None
    #: The file could not be read past ``problem``: the export holds what came before.
    salvaged: bool = False


@click.command("export")
@click.argument(
    "target",
    metavar="FILE|-",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
)
@output_options()
def export(target: str, fmt: Format) -> None:
    """Export the log as JSON lines.

    One line per event, in log order, with every envelope field: position,
    event_id, stream_id, stream_version, type, schema_version, recorded_at (ISO),
    recorded_at_us (exact), metadata, data (the stored payloads as JSON) and hash
    (hex). `metaledger import` rebuilds the identical log from it (same ids,
    positions, times and hashes). The export is a backup: it keeps configuration
    values that look secret (passwords, tokens...) unmasked, so guard the file
    (it is created readable by you only).
    FILE is written under a temporary name and renamed when complete, so it is
    never half-written; "-" writes to stdout (the summary then goes to stderr).
    The chain is checked on the way: a damaged log is still exported as stored,
    with exit code 5 and the first bad position. A log file SQLite cannot read
    to the end (truncated, a corrupt page) is exported up to the first event it
    cannot read (a salvage that imports), also with exit code 5. A full disk
    exits 6 and leaves no file.

    Example: metaledger export backup.jsonl
    """
    from eventstore import DecodeError

    if not target or Path(target).name in ("", ".", ".."):
        raise CLIError(f"export needs a file name, not {target!r} (or - for stdout)")
    try:
        if target == "-":
            result = run_async(_export_body, _stdout_bytes())
        else:
            result = _export_to_file(Path(target))
    except BrokenPipeError:
        # Python flushes stdout at exit and would complain again: point it at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise CLIError("the output closed before the export was complete") from None
    except DecodeError as exc:
        raise CLIError(f"the log is damaged: {exc}; nothing was exported", EXIT_DAMAGED) from exc
    except OSError as exc:
        from eventstore.errors import LedgerError
        from eventstore.sqlite_errors import is_disk_full_oserror

        if isinstance(exc, LedgerError):
            raise
        if is_disk_full_oserror(exc):
            raise CLIError(
                f"cannot write {_display(target)}: the disk is full; nothing was exported",
                EXIT_BUSY,
            ) from exc
        raise CLIError(f"cannot write {_display(target)}: {exc.strerror or exc}") from exc
    summary = {
        "file": _display(target),
        "events": result.count,
        "head_position": result.head_position,
        "head_hash": result.head_hash,
    }

    def text() -> None:
        say(
            f"Exported {plural(result.count, 'event')} (head {result.head_position}, "
            f"head hash {result.head_hash or '-'}) to {_display(target)}.",
            err=target == "-",
        )

    if target == "-":
        text()  # stdout holds the export itself
    else:
        emit(summary, fmt, text)
    if result.salvaged:
        raise CLIError(
            f"the log is damaged at {result.problem}; the export holds those "
            "readable events (they import and verify as a log of their own)",
            EXIT_DAMAGED,
        )
    if result.problem is not None:
        raise CLIError(
            f"the log does not verify at {result.problem}; the export holds the log as "
            "stored, but `metaledger import` will refuse it",
            EXIT_DAMAGED,
        )


def _export_to_file(final: Path) -> _ExportResult:
    """Export into a fresh temporary file beside ``final``, renamed over it once complete."""
    with private_output_file(final) as handle:
        return run_async(_export_body, handle)


@contextlib.contextmanager
def private_output_file(final: Path) -> Iterator[IO[bytes]]:
    """A new file readable by its owner only, that becomes ``final`` when the block succeeds.

    An export keeps secrets, like the store it comes from: the file is mode 0600
    whatever the umask, and never a file someone placed in advance. It is
    created under a fresh random name in ``final``'s directory with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a symlink or any file at that name fails
    the open instead of being followed or reused), synced, then renamed over
    ``final``; a rename replaces a symlink at ``final`` itself, never what it
    points to. On any error the temporary file is removed and ``final`` is
    left as it was.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    directory = final.parent
    for _ in range(_TEMP_NAME_TRIES):
        partial = directory / f".{final.name}.{secrets.token_hex(8)}.partial"
        try:
            fd = os.open(partial, flags, 0o600)
        except FileExistsError:
            continue  # a name taken (or planted): draw another
        except OSError as exc:
            raise CLIError(f"cannot write {final}: {exc.strerror}") from exc
        break
    else:
        raise CLIError(f"cannot write {final}: no free temporary name in {directory}")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o600)  # the umask may have taken bits away
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _export_body(handle: IO[bytes]) -> _ExportResult:
    from eventstore import DecodeError, StoreCorruptError
    from eventstore.chain import ChainChecker

    encoder = msgspec.json.Encoder()
    checker = ChainChecker()
    problem: str | None = None
    salvaged = False
    count = 0
    async with open_store_for() as store:
        known_head: int | None = None
        with contextlib.suppress(StoreCorruptError):  # a damaged file: salvage up to the damage
            known_head = await store.head()
        head = known_head or 0
        with progress_bar("exporting", enabled=head > PROGRESS_THRESHOLD) as progress:
            try:
                async for rows in store.read_readable_chunks(1, to_position=known_head):
                    lines = []
                    for stored in rows:
                        row = _stored(stored)
                        try:
                            record = envelope_record(row, strict=True)
                        except DecodeError as exc:
                            raise DecodeError(f"position {row.position}: {exc}") from exc
                        if problem is None:
                            problem = _check_row(checker, row, record)
                        lines.append(encoder.encode(record))
                        count += 1
                    lines.append(b"")
                    handle.write(b"\n".join(lines))
                    progress(rows[-1][0], head)
            except StoreCorruptError as exc:
                # Every readable event before the damage is in the file: a salvage.
                head = max(head, checker.previous_position)
                if problem is None:
                    salvaged = True
                    problem = (
                        f"position {exc.position}: the file cannot be read from here on "
                        f"({exc.__cause__ or exc}); {count} events before it were exported"
                    )
        handle.flush()
    if problem is None:
        report = checker.report(head)
        if not report.ok:
            problem = f"position {report.first_bad_position}: {report.reason}"
    head_hash = checker.previous_hash.hex() if count and problem is None else None
    return _ExportResult(count, head, head_hash, problem, salvaged)


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    from eventstore import StoredEvent

    return StoredEvent(*row)


def _check_row(checker: ChainChecker, row: StoredEvent, record: EnvelopeRecord) -> str | None:
    """The first fault of a row: its chain, or payloads that would not re-import exactly."""
    from eventstore import EventCodec, InvalidEventError

    if not checker.check(row):
        return f"position {checker.first_bad_position}: {checker.reason}"
    try:
        same = EventCodec.from_builtins_bytes(record.metadata) == row.metadata and (
            EventCodec.from_builtins_bytes(record.data) == row.data
        )
    except InvalidEventError:
        same = False
    if not same:
        return f"position {row.position}: its payload does not re-encode to the stored bytes"
    return None


# -- import ------------------------------------------------------------------------


def _parse(number: int, raw: bytes) -> StoredEvent:
    """One export line as the row it stores; _BadFile naming the line otherwise."""
    from eventstore import EventCodec, InvalidEventError, StoredEvent, us_from_datetime

    try:
        line = _line_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _BadFile(f"line {number}: {exc}") from None
    except RecursionError:
        raise _BadFile(f"line {number}: nested too deeply to store") from None
    except UnicodeDecodeError as exc:
        raise _BadFile(f"line {number}: invalid UTF-8 at byte {exc.start}") from None
    try:
        digest = bytes.fromhex(line.hash)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise _BadFile(f"line {number}: hash must be 64 hex digits")
    if line.recorded_at is not None and (
        line.recorded_at.tzinfo is None or us_from_datetime(line.recorded_at) != line.recorded_at_us
    ):
        raise _BadFile(f"line {number}: recorded_at does not match recorded_at_us")
    try:
        metadata = EventCodec.from_builtins_bytes(line.metadata)
        data = EventCodec.from_builtins_bytes(line.data)
    except InvalidEventError as exc:
        raise _BadFile(f"line {number}: {exc}") from None
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


@dataclass
class _Scan:
    """What pass 1 learnt about a file whose every line parses and whose chain verifies."""

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


class _RowRules:
    """Checks rows as ``events append`` checks lines: each row alone, then the domain rules.

    Rows up to ``head`` (already in the target store) are folded without being
    judged; each later row must pass :func:`eventstore.rules.check_row` and the
    rules of :mod:`eventstore.rules` against everything before it.
    """

    def __init__(self, head: int) -> None:
        from eventstore import DecodeError, EventCodec, InvalidEventError, LifecycleError
        from eventstore.rules import RuleChecker, check_row

        self.head = head
        self.codec = EventCodec()
        self.rules = RuleChecker()
        self._check_row = check_row
        self._undecodable = DecodeError
        self._refused = (InvalidEventError, LifecycleError)
        self._now_us = time.time_ns() // 1000

    def fault(self, row: StoredEvent) -> str | None:
        """Why ``row`` may not be stored (naming its position), or None."""
        if row.position <= self.head:  # stored already: folded as it is, never judged
            with contextlib.suppress(self._undecodable):
                event = self.codec.decode(row.type, row.schema_version, row.data)
                self.rules.fold(event, row.stream_version)
            return None
        try:
            self.rules.check(
                row.stream_id, self._check_row(row, self.codec, now_us=self._now_us), row.event_id
            )
        except self._refused as exc:
            return f"position {row.position} ({row.type}): {exc}"
        return None


def _scan(path: Path, store_head: int) -> _Scan:
    """Pass 1: parse every line, check the chain from position 1 and each row; _BadFile."""
    from eventstore.chain import ChainChecker

    checker = ChainChecker()
    rules = _RowRules(store_head)
    digest = hashlib.sha256()
    scan = _Scan(size=path.stat().st_size)
    scan.offset_after_head = scan.size
    found_after = False
    with (
        path.open("rb") as handle,
        progress_bar("checking", enabled=scan.size > PROGRESS_BYTES) as progress,
    ):
        for number, offset, raw in _lines(handle, digest, lambda done: progress(done, scan.size)):
            row = _parse(number, raw)
            if not checker.check(row):
                raise _BadFile(
                    f"line {number}: the chain breaks at position {checker.first_bad_position}: "
                    f"{checker.reason}"
                )
            fault = rules.fault(row)
            if fault is not None:
                raise _BadFile(f"line {number}: {fault}")
            if row.position == store_head:
                scan.hash_at_head, scan.line_at_head = row.hash, number
            elif row.position > store_head and not found_after:
                scan.offset_after_head, found_after = offset, True
            scan.count += 1
    scan.last_position = checker.previous_position
    scan.last_hash = checker.previous_hash
    scan.digest = digest.hexdigest()
    return scan


class _FileChanged(Exception):
    """The file differs from the one checked in pass 1 (it was edited meanwhile)."""


def _rows_after(
    path: Path, scan: _Scan, progress: Callable[[int, int], None]
) -> Iterator[StoredEvent]:
    """Pass 2: the rows after the store's head, parsed again.

    Runs inside the import's transaction: if the file's bytes are not those pass 1
    checked, it raises _FileChanged and the transaction rolls back.
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
        for _, offset, raw in _lines(handle, digest, lambda done: progress(base + done, scan.size)):
            try:
                yield _parse(0, raw)
            except _BadFile as exc:
                raise _FileChanged(f"at byte {base + offset}: {exc}") from None
    if digest.hexdigest() != scan.digest:
        raise _FileChanged("its bytes differ from those checked")


def _buffer_stdin(stack: contextlib.ExitStack) -> Path:
    """Copy stdin into a temporary file (it is read twice)."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="metaledger-")))
    path = directory / "stdin.jsonl"
    with path.open("wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, _BLOCK)
    return path


async def _store_head() -> tuple[int, bytes | None]:
    """The store's head and head hash; (0, None) when there is no store yet."""
    from eventstore import StoreNotFoundError

    try:
        async with open_store_for() as store:
            head = await store.head()
            row = await row_at(store, head)
            return head, row.hash if row is not None else None
    except StoreNotFoundError:
        return 0, None


def _hex(value: bytes | None) -> str:
    return value.hex() if value else "-"


@click.command("import")
@click.argument(
    "source",
    metavar="FILE|-",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str),
)
@output_options()
def import_(source: str, fmt: Format) -> None:
    """Import a JSON-lines export, rebuilding the exported log exactly.

    The store gets the same positions, ids, times and hashes. Pass
    1 reads every line and checks the hash chain from position 1, and each
    new row as `events append` checks a line (a UUID event id, a stream id, a
    sane recorded_at, a payload that decodes to its type and version, and the
    domain rules: no second run.started of a run, no step in an unknown run, no
    reused id...), even when its hash is right: a bad line or a broken chain is
    reported with its line number, and nothing is stored (exit 1). The store
    may already hold a prefix of the same log (an earlier import of
    it, or the store it was exported from): the events it has are skipped, so
    importing the same file twice is a no-op; a file whose rows disagree with the
    store's is refused. Pass 2 stores the new events in one transaction. The store
    is created when it does not exist yet (empty: no default stack). "-" reads
    stdin, buffered to a temporary file first.

    Example: metaledger --store ./restored import backup.jsonl
    """
    with contextlib.ExitStack() as stack:
        path = _buffer_stdin(stack) if source == "-" else Path(source)
        name = "<stdin>" if source == "-" else source
        head, head_hash = run_async(_store_head)
        try:
            scan = _scan(path, head)
        except _BadFile as exc:
            raise CLIError(f"{name}: {exc}; nothing was imported") from None
        if head and scan.last_position >= head and scan.hash_at_head != head_hash:
            raise CLIError(
                f"{name} conflicts with the store: at position {head} (line "
                f"{scan.line_at_head}) the file has hash {_hex(scan.hash_at_head)}, the store "
                f"{_hex(head_hash)}; nothing was imported"
            )
        started = time.perf_counter()
        try:
            outcome = run_async(_import_body, path, scan, head, name)
        except _FileChanged as exc:
            raise CLIError(
                f"{name} changed while it was imported ({exc}); nothing was imported"
            ) from None
        elapsed = time.perf_counter() - started
    report = {
        "file": name,
        "imported": outcome.imported,
        "already_stored": scan.count - outcome.imported,
        "head_position": outcome.head_position,
        "head_hash": outcome.head_hash,
    }

    def text() -> None:
        if not outcome.imported:
            say(
                f"Nothing to import: {outcome.store} already holds "
                f"{'the event' if scan.count == 1 else f'all {scan.count:,} events'} of {name}."
            )
            return
        span = (
            f"position {outcome.head_position}"
            if outcome.imported == 1
            else f"positions {head + 1}-{outcome.head_position}"
        )
        say(
            f"Imported {plural(outcome.imported, 'event')} ({span})"
            f" into {outcome.store} in {elapsed:.2f} s; head hash {outcome.head_hash}."
        )
        if scan.count > outcome.imported:
            first = "the first event" if head == 1 else f"the first {head:,} events"
            say(f"The store held {first} of the file already.")

    emit(report, fmt, text)


@dataclass
class _Imported:
    store: str
    imported: int
    head_position: int
    head_hash: str | None


async def _import_body(path: Path, scan: _Scan, head: int, name: str) -> _Imported:
    async with open_store_for(create=True) as store:
        now = await store.head()
        if now != head:
            raise CLIError(
                f"the store changed while {name} was checked (head {head}, now {now}); "
                "nothing was imported: run the import again"
            )
        imported = 0
        if scan.last_position < head:
            # A shorter file: fine if it is a prefix of the store's log.
            row = await row_at(store, scan.last_position)
            if row is not None and row.hash != scan.last_hash:
                raise CLIError(
                    f"{name} conflicts with the store: at position {scan.last_position} (its "
                    f"last line) the file has hash {_hex(scan.last_hash)}, the store "
                    f"{_hex(row.hash)}; nothing was imported"
                )
        elif scan.last_position > head:
            imported = await _import_rows(store, path, scan, head)
        # Committed: report it, even when Ctrl-C came after the commit.
        with anyio.CancelScope(shield=True):
            last = await store.head()
            row = await row_at(store, last)
        return _Imported(
            store.location.display, imported, last, row.hash.hex() if row is not None else None
        )


async def _import_rows(store: EventStore, path: Path, scan: _Scan, head: int) -> int:
    """Store the file's new rows in one transaction; on Ctrl-C, tell whether it committed.

    Interrupted before the commit, the import is rolled back whole: "nothing
    was imported". If the commit won the race, the import is complete and the
    command ends as a successful import.
    """
    try:
        with progress_bar("importing", enabled=scan.size > PROGRESS_BYTES) as progress:
            return await store.import_stored(_rows_after(path, scan, progress))
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            now = await store.head()
        if now != scan.last_position:
            raise InterruptedAfter(
                "Nothing was imported; the store is as it was (run the import again)."
            ) from None
        return now - head


# -- copy --------------------------------------------------------------------------


@click.command("copy")
@click.option(
    "--to",
    "target_uri",
    required=True,
    metavar="URI",
    help="The target store: a directory, sqlite:////abs/path or postgresql://...",
)
@output_options()
def copy(target_uri: str, fmt: Format) -> None:
    """Copy the store to another URI, then verify the copy.

    Copies every event of the current store, exactly as stored (positions, ids,
    times, hashes), to the store at URI, which is created if missing. The target
    must be empty or hold a prefix of the same log (an earlier copy): what it
    holds is skipped, so an interrupted copy is resumed by running it again.
    A target `init` already wrote to holds its own default stack, another log:
    it is refused (exit 1), so copy first and run `init` on the target after.
    Every event the target lacks is first checked as `import` checks a line
    (the event itself and the domain rules); one refused event copies nothing
    (exit 1).
    The source's chain is checked on the way (a damaged source stops the copy
    at the first bad position: exit 5), events go over in transactions of 5,000,
    and then the copy is verified and its head hash compared with the source's:
    exit 1 if they disagree. --json: {"to", "copied", "already_there",
    "head_position", "head_hash", "verified", "problem"}.

    Example: metaledger copy --to /backup/metaledger-store
    """
    result = run_async(_copy_body, target_uri)

    def text() -> None:
        if result["verified"]:
            say(
                f"Copied {plural(result['copied'], 'event')} to {result['to']} "
                f"({result['already_there']:,} {'was' if result['already_there'] == 1 else 'were'}"
                f" there already); the copy verifies: head {result['head_position']}, "
                f"hash {result['head_hash'] or '-'}."
            )

    emit(result, fmt, text)
    if not result["verified"]:
        raise CLIError(f"the copy at {result['to']} does not verify: {result['problem']}")


async def _copy_body(target_uri: str) -> dict[str, Any]:
    from eventstore import open_store, resolve_store
    from eventstore.chain import ChainChecker

    target_location = resolve_store(target_uri)
    async with open_store_for() as source:
        if target_location.same_place(source.location):
            raise CLIError(f"{target_uri} is the current store: copy it to another place")
        head = await source.head()
        async with open_store(target_location, create=True, default_stack=False) as target:
            display = target.location.display
            there = await target.head()
            await _check_prefix(source, target, head, there, display)
            await _check_source(source, head, there)
            checker = ChainChecker()

            async def copied_so_far() -> str:
                now = await target.head()
                if now <= there:
                    return f"Nothing was copied to {display}; run the copy again."
                if now < head:
                    return (
                        f"{now - there} events (positions {there + 1}-{now}) were copied to "
                        f"{display}; run the copy again to resume it."
                    )
                return (
                    f"All {head} events are in {display}, but the copy was not verified: "
                    f"run `metaledger --store {display} verify`."
                )

            async with interrupted_after(copied_so_far):
                copied = await _copy_rows(source, target, head, there, checker)
                with progress_bar(
                    "verifying the copy", enabled=head > PROGRESS_THRESHOLD
                ) as progress:
                    report = await target.verify(progress=progress)
    source_hash = checker.previous_hash.hex() if head else None
    problem = None
    if not report.ok:
        problem = f"position {report.first_bad_position}: {report.reason}"
    elif report.head_position != head or report.head_hash != source_hash:
        problem = (
            f"its head is {report.head_position} with hash {report.head_hash or '-'}, this "
            f"store's {head} with hash {source_hash or '-'}"
        )
    return {
        "to": display,
        "copied": copied,
        "already_there": there,
        "head_position": report.head_position,
        "head_hash": report.head_hash,
        "verified": problem is None,
        "problem": problem,
    }


#: The event types ``metaledger init`` writes (its default components and stack).
_INIT_TYPES = frozenset({"component.registered", "stack.registered", "workspace.active_stack_set"})
#: ``init`` writes 5 events; a longer log holds more than init's defaults.
_INIT_MAX_EVENTS = 5


async def _holds_only_init_defaults(target: EventStore, there: int) -> bool:
    """Whether the target's whole log is what ``init`` writes: the default stack, nothing else."""
    from eventstore import WORKSPACE_STREAM, ComponentRegistered, StackRegistered

    if not 0 < there <= _INIT_MAX_EVENTS:
        return False
    async for recorded in target.read_all():
        event = recorded.event
        if recorded.type not in _INIT_TYPES or recorded.stream_id != WORKSPACE_STREAM:
            return False
        if isinstance(event, ComponentRegistered | StackRegistered) and event.name != "default":
            return False
    return True


async def _check_source(source: EventStore, head: int, there: int) -> None:
    """Pass 1 of a copy: every row the target lacks is checked as ``import`` checks it.

    Nothing is copied when a row is refused. A broken chain ends the check: the
    copy pass reports it at its position.
    """
    from eventstore.chain import ChainChecker

    if head <= there:
        return
    chain = ChainChecker()
    rules = _RowRules(there)
    with progress_bar("checking", enabled=head > PROGRESS_THRESHOLD) as progress:
        async for rows in source.read_chunks(1, to_position=head, chunk_size=COPY_CHUNK):
            for raw in rows:
                row = _stored(raw)
                if not chain.check(row):
                    return
                fault = rules.fault(row)
                if fault is not None:
                    raise CLIError(
                        f"this store's log holds an event the target may not take, at {fault}; "
                        "nothing was copied"
                    )
            progress(rows[-1][0], head)


async def _copy_rows(
    source: EventStore, target: EventStore, head: int, there: int, checker: ChainChecker
) -> int:
    """Copy the events after ``there`` in transactions of COPY_CHUNK, checking the chain."""
    from eventstore import StoredEvent

    copied = 0
    with progress_bar("copying", enabled=head - there > PROGRESS_THRESHOLD) as progress:
        async for rows in source.read_chunks(1, to_position=head, chunk_size=COPY_CHUNK):
            batch = []
            for raw in rows:
                row = StoredEvent(*raw)
                if not checker.check(row):
                    raise CLIError(
                        f"this store's log is damaged at position "
                        f"{checker.first_bad_position}: {checker.reason}; {copied} "
                        f"events were copied before it (run `metaledger verify`)",
                        EXIT_DAMAGED,
                    )
                if row.position > there:
                    batch.append(row)
            if batch:
                copied += await target.import_stored(batch)
            progress(rows[-1][0], head)
    return copied


async def _check_prefix(
    source: EventStore, target: EventStore, head: int, there: int, display: str
) -> None:
    """Refuse a target that holds anything but a prefix of the source's log."""
    if await _holds_only_init_defaults(target, there):
        mine = await row_at(source, there) if there <= head else None
        theirs = await row_at(target, there)
        if mine is None or theirs is None or mine.hash != theirs.hash:
            raise CLIError(
                f"{display} already holds a log: the default stack `metaledger init` made "
                f"there ({there} events), not a copy of this store's log; nothing was copied. "
                "Copy into an empty store first, then run `init` there (it changes nothing "
                "when the copied log has its default stack): see 'Moving a store' in "
                "docs/operations.md for clearing a server store that holds only init's events"
            )
    if there > head:
        raise CLIError(
            f"{display} holds {plural(there, 'event')}, more than this store's {head}: it is not a "
            "copy of this log; nothing was copied"
        )
    if there:
        mine, theirs = await row_at(source, there), await row_at(target, there)
        if mine is None or theirs is None or mine.hash != theirs.hash:
            raise CLIError(
                f"{display} holds another log (its event {there} differs from this store's); "
                "nothing was copied"
            )
