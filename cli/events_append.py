"""``metaledger events append``: append events from a file of JSON lines, all or none.

The work is the library's (:func:`eventstore.parse_lines`,
:func:`eventstore.append_lines`); this module reads the file, draws the progress
bars, prints the summary and maps the library's refusals to messages and exit
codes. :mod:`cli.events` registers the command in the ``events`` group.

``--json``: ``appended``, ``already_stored``, ``first_position``, ``last_position``
(with ``valid`` and ``dry_run`` too when nothing was appended).
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import click

from .context import open_store_for, progress_bar, run_async
from .errors import CLIError
from .output import Format, emit, output_options, plural, say

if TYPE_CHECKING:
    from eventstore import AppendLinesResult

__all__ = ["APPEND_PROGRESS_LINES", "append"]

#: Files of more lines than this draw a progress bar while checked and appended (on a
#: terminal, not with --json): checking runs at some 10,000 lines a second.
APPEND_PROGRESS_LINES = 5_000


@click.command("append")
@click.argument("source", metavar="FILE|-", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Only check the file; append nothing.")
@output_options()
def append(source: IO[bytes], dry_run: bool, fmt: Format) -> None:
    """Append events from a file of JSON lines, all of them or none.

    Each line: {"stream_id", "type", "data", "event_id"?, "expected_version"?,
    "metadata"?}. data must be a valid event of that type (see docs/events.md), in
    the stream the write API keeps it in (workspace for component/stack events,
    run-<run_id> for run events); expected_version is a version >= 0, "any"
    (default) or "no_stream"; event_id a UUID; metadata an object (the same on
    every line). Every line is checked first, then checked in order against the
    store with the write API's domain rules (no second run.started of a run, no
    step, artifact or metadata in a run that is not started or has finished, no
    reused component, stack or step run id, no name taken twice, no reference
    to something the store or an earlier line does not hold): bad lines are
    reported as "line N: reason" (at most 20), the exit code is 1 and nothing
    is appended. Then the whole file is appended in one transaction. A line
    without an event_id gets one derived from the file's content and the line
    number (an artifact.produced line: artifact_event_id of its artifact), so
    running the same file again is a no-op. A file of more than 5,000 lines
    draws a progress bar on a terminal, never with --json.

    Example: metaledger events append events.jsonl
    """
    from eventstore import AppendError, BadLinesError, RuleBreachError, parse_lines
    from eventstore import append_lines as append_to_store

    content = source.read()
    given = getattr(source, "name", "-")
    name = "<stdin>" if given in ("<stdin>", "-") else str(given)
    # A bar on stderr, on a terminal only (progress_bar checks); never under --json.
    show_progress = fmt != "json" and content.count(b"\n") > APPEND_PROGRESS_LINES
    try:
        with progress_bar("checking", enabled=show_progress) as progress:
            parsed = parse_lines(content, progress=progress)
    except BadLinesError as exc:
        for fault in exc.faults:
            say(f"{name}: {fault}", err=True)
        more = " or more" if exc.more else ""
        raise CLIError(
            f"{name}: {plural(len(exc.faults), 'bad line')}{more}; nothing was appended"
        ) from None
    if not parsed.lines or dry_run:
        checked = {
            "appended": 0,
            "already_stored": 0,
            "first_position": None,
            "last_position": None,
            "valid": len(parsed.lines),
            "dry_run": dry_run,
        }
        count, appends = len(parsed.lines), len(parsed.appends)
        message = (
            f"{name} holds no events; nothing appended."
            if not count
            else f"{name}: {plural(count, 'event')} in {plural(appends, 'append')} "
            f"{'is' if count == 1 else 'are'} valid; nothing appended (--dry-run)."
        )
        emit(checked, fmt, lambda: say(message))
        return

    async def body() -> AppendLinesResult:
        async with open_store_for() as store:
            try:
                # One transaction: the bar can only say it is under way, then done.
                with progress_bar("appending", enabled=show_progress) as progress:
                    return await append_to_store(store, parsed, progress=progress)
            except RuleBreachError as exc:
                for fault in exc.faults:
                    say(f"{name}: {fault}", err=True)
                raise CLIError(
                    f"{name}: {plural(exc.count, 'line')} "
                    f"{'breaks' if exc.count == 1 else 'break'} the domain rules; "
                    "nothing was appended"
                ) from None
            except AppendError as exc:
                where = f"line {exc.line}: " if exc.line is not None else ""
                raise CLIError(f"{name}: {where}{exc}; nothing was appended") from exc

    result = run_async(body)
    new, old = result.appended, result.already_stored
    report = {
        "appended": new,
        "already_stored": old,
        "first_position": result.first_position,
        "last_position": result.last_position,
    }

    def text() -> None:
        if not new:
            events_of = "the event" if old == 1 else f"the {old:,} events"
            say(
                f"No-op: {events_of} of {name} {'was' if old == 1 else 'were'} already "
                "appended (a retry); nothing changed."
            )
            return
        first, last = result.first_position, result.last_position
        where = f"position {first}" if first == last else f"positions {first}-{last}"
        message = (
            f"Appended {plural(new, 'event')} to {plural(result.streams, 'stream')} ({where})."
        )
        if old:
            message += (
                f" {plural(old, 'event')} {'was' if old == 1 else 'were'} already stored "
                "(a retry) and left as they are."
            )
        say(message)

    emit(report, fmt, text)
