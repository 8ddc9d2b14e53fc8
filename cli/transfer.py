"""``metaledger export``, ``import`` and ``copy``: move a log between stores, hashes and all.

The work is the library's (:func:`eventstore.export`, :func:`eventstore.import_`,
:func:`eventstore.copy`, the record format in :mod:`eventstore.records`); this
module parses the options, opens the stores, draws the progress bars, prints
the summaries and maps the library's errors to messages and exit codes.

Summaries with ``--json``: ``export`` gives ``file``, ``events``, ``head_position``,
``head_hash``; ``import`` gives ``file``, ``imported``, ``already_stored``,
``head_position``, ``head_hash``; ``copy`` gives ``to``, ``copied``, ``already_there``,
``head_position``, ``head_hash``, ``verified``, ``problem``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .context import PROGRESS_THRESHOLD, open_store_for, progress_bar, run_async
from .errors import EXIT_BUSY, EXIT_DAMAGED, CLIError
from .interrupts import interrupted_after
from .output import Format, emit, output_options, plural, say

if TYPE_CHECKING:
    from eventstore import ExportResult, ExportScan, ImportResult
    from eventstore.transfer import StageProgress

__all__ = ["export", "import_", "private_output_file", "stage_bars"]

#: Files larger than this draw a progress bar (on a terminal) while read.
PROGRESS_BYTES = 8 << 20
_BLOCK = 1 << 20
#: Fresh random names export tries for its temporary file before giving up.
_TEMP_NAME_TRIES = 8


def _stdout_bytes() -> IO[bytes]:
    sys.stdout.flush()
    return sys.stdout.buffer


def _display(path: str) -> str:
    return "<stdout>" if path == "-" else path


@contextlib.contextmanager
def stage_bars(
    labels: dict[str, str], enabled: Callable[[str, int], bool]
) -> Iterator[StageProgress]:
    """A ``progress(stage, done, total)`` callback drawing one bar per stage (on a terminal).

    ``labels`` names each stage's bar; ``enabled(stage, total)`` says whether the
    stage's work is long enough for one. A new stage closes the previous bar.
    """
    with contextlib.ExitStack() as stack:
        current: list[Any] = [None, None]

        def report(stage: str, done: int, total: int) -> None:
            if current[0] != stage:
                stack.close()
                bar = stack.enter_context(
                    progress_bar(labels.get(stage, stage), enabled=enabled(stage, total))
                )
                current[:] = [stage, bar]
            current[1](done, total)

        yield report


# -- export ------------------------------------------------------------------------


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
            with private_output_file(Path(target)) as handle:
                result = run_async(_export_body, handle)
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


async def _export_body(handle: IO[bytes]) -> ExportResult:
    from eventstore import export as export_log

    async with open_store_for() as store:
        with stage_bars(
            {"exporting": "exporting"}, lambda stage, total: total > PROGRESS_THRESHOLD
        ) as progress:
            return await export_log(store, handle, progress=progress)


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


# -- import ------------------------------------------------------------------------


def _buffer_stdin(stack: contextlib.ExitStack) -> Path:
    """Copy stdin into a temporary file (it is read twice)."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="metaledger-")))
    path = directory / "stdin.jsonl"
    with path.open("wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, _BLOCK)
    return path


async def _store_head() -> int:
    """The store's head; 0 when there is no store yet."""
    from eventstore import StoreNotFoundError

    try:
        async with open_store_for() as store:
            return await store.head()
    except StoreNotFoundError:
        return 0


def _hex(value: bytes | None) -> str:
    return value.hex() if value else "-"


def _big_file(stage: str, total: int) -> bool:
    return total > PROGRESS_BYTES


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
    from eventstore import (
        BadLineError,
        FileChangedError,
        LogMismatchError,
        StoreChangedError,
        scan_export,
    )

    with contextlib.ExitStack() as stack:
        path = _buffer_stdin(stack) if source == "-" else Path(source)
        name = "<stdin>" if source == "-" else source
        head = run_async(_store_head)
        try:
            # Pass 1 runs before the store is opened for writing (or created).
            with stage_bars({"checking": "checking"}, _big_file) as progress:
                scan = scan_export(path, head, progress=progress)
        except BadLineError as exc:
            raise CLIError(f"{name}: {exc}; nothing was imported") from None
        started = time.perf_counter()
        try:
            outcome, display = run_async(_import_body, path, scan)
        except LogMismatchError as exc:
            where = f"(line {exc.line})" if exc.line is not None else "(its last line)"
            raise CLIError(
                f"{name} conflicts with the store: at position {exc.position} {where} the file "
                f"has hash {_hex(exc.ours)}, the store {_hex(exc.theirs)}; nothing was imported"
            ) from None
        except StoreChangedError as exc:
            raise CLIError(
                f"the store changed while {name} was checked (head {exc.checked_head}, now "
                f"{exc.head}); nothing was imported: run the import again"
            ) from None
        except FileChangedError as exc:
            raise CLIError(
                f"{name} changed while it was imported ({exc}); nothing was imported"
            ) from None
        elapsed = time.perf_counter() - started
    report = {
        "file": name,
        "imported": outcome.imported,
        "already_stored": outcome.already_stored,
        "head_position": outcome.head_position,
        "head_hash": outcome.head_hash,
    }
    count = scan.count

    def text() -> None:
        if not outcome.imported:
            say(
                f"Nothing to import: {display} already holds "
                f"{'the event' if count == 1 else f'all {count:,} events'} of {name}."
            )
            return
        span = (
            f"position {outcome.head_position}"
            if outcome.imported == 1
            else f"positions {head + 1}-{outcome.head_position}"
        )
        say(
            f"Imported {plural(outcome.imported, 'event')} ({span})"
            f" into {display} in {elapsed:.2f} s; head hash {outcome.head_hash}."
        )
        if count > outcome.imported:
            first = "the first event" if head == 1 else f"the first {head:,} events"
            say(f"The store held {first} of the file already.")

    emit(report, fmt, text)


async def _import_body(path: Path, scan: ExportScan) -> tuple[ImportResult, str]:
    from eventstore import import_ as import_log

    async def nothing_imported() -> str:
        return "Nothing was imported; the store is as it was (run the import again)."

    import anyio

    done: list[tuple[ImportResult, str]] = []
    try:
        async with open_store_for(create=True) as store:
            with stage_bars({"importing": "importing"}, _big_file) as progress:
                async with interrupted_after(nothing_imported):
                    result = await import_log(store, path, scan=scan, progress=progress)
            done.append((result, store.location.display))
    except anyio.get_cancelled_exc_class():
        if not done:
            raise
        # Ctrl-C after the import committed, while the store closed (its WAL
        # checkpointed into the file; the close itself is shielded and ran to
        # the end): the import happened, and the command reports it as done.
    return done[0]
