"""``metaledger events``: audit the event log: list, show, tail, append.

JSON shapes (stable; times ISO-8601 UTC):

- ``events list --json`` (an array) and ``--nl`` (one item per line), ``events tail
  --json/--nl``: items with exactly ``position``, ``event_id``, ``stream_id``,
  ``stream_version``, ``type``, ``schema_version``, ``recorded_at``, ``metadata`` (an
  object) and ``data`` (the payload as stored, as JSON).
- ``events show --json``: one object with every envelope field, in the order of an
  ``export`` line: the fields above plus ``recorded_at_us`` (exact microseconds) and
  ``hash`` (hex).
- ``events append --json``: ``appended``, ``already_stored``, ``first_position``,
  ``last_position``.

Secrets are masked in ``data`` and ``metadata`` (values whose keys look secret,
URI credentials) unless ``--show-secrets`` (``export`` never masks: it is a backup).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click
import msgspec

from .context import open_store_for, run_async
from .errors import EXIT_NOT_FOUND, CLIError
from .events_append import append
from .input_limits import BoundedInt, parse_position
from .output import (
    Column,
    Format,
    ListingCut,
    emit,
    emit_line,
    format_time,
    json_text,
    limit_options,
    mask_secrets,
    output_options,
    print_properties,
    print_table,
    report_cut,
    say,
    show_secrets_option,
    wide_option,
)

if TYPE_CHECKING:
    from eventstore import EventStore, StoredEvent

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "events",
    "list_item",
]

#: How many events ``events list`` prints (in every format) unless ``--limit`` says otherwise.
DEFAULT_LIST_LIMIT = 100


def list_item(row: StoredEvent, *, show_secrets: bool = False) -> dict[str, Any]:
    """An ``events list`` item."""
    from eventstore.records import decode_payload

    return {
        "position": row.position,
        "event_id": row.event_id,
        "stream_id": row.stream_id,
        "stream_version": row.stream_version,
        "type": row.type,
        "schema_version": row.schema_version,
        "recorded_at": row.recorded_at,
        "metadata": mask_secrets(decode_payload(row.metadata), show=show_secrets),
        "data": mask_secrets(decode_payload(row.data), show=show_secrets),
    }


@click.group()
def events() -> None:
    """Audit the event log: list, show, tail, append.

    Example: metaledger events list --type run.started
    """


# -- list ------------------------------------------------------------------------


async def _select(
    store: EventStore,
    *,
    stream: str | None,
    types: Sequence[str],
    from_position: int,
    limit: int | None,
) -> AsyncIterator[StoredEvent]:
    """The stored rows the filters keep, in log order."""
    if stream is None:
        async for row in store.read_stored(from_position, limit=limit, types=types or None):
            yield row
        return
    wanted = set(types)
    count = 0
    async for row in store.read_stored_stream(stream):
        if row.position >= from_position and (not wanted or row.type in wanted):
            yield row
            count += 1
            if limit is not None and count >= limit:
                return


def _warn_unknown_types(types: Sequence[str]) -> None:
    from eventstore import EVENT_TYPES

    for name in types:
        if name not in EVENT_TYPES:
            close = difflib.get_close_matches(name, list(EVENT_TYPES), n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            say(
                f"Note: {name!r} is not an event type of this release{hint}; "
                "only events stored under exactly that type are listed.",
                err=True,
            )


class _JsonArray:
    """Prints an array exactly as ``emit_json`` would, one item at a time (no list in memory)."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._first = True

    def add(self, item: Any) -> None:
        """Print one item."""
        encoded = self._encoder.encode(msgspec.to_builtins(item))
        text = msgspec.json.format(encoded, indent=2).decode()
        indented = "\n".join(f"  {line}" for line in text.splitlines())
        click.echo(("[\n" if self._first else ",\n") + json_text(indented), nl=False)
        self._first = False

    def close(self) -> None:
        """End the array."""
        click.echo("[]" if self._first else "\n]")


def _emit_json_array(items: Iterable[Any]) -> None:
    array = _JsonArray()
    for item in items:
        array.add(item)
    array.close()


def _table_row(row: StoredEvent) -> tuple[Any, ...]:
    return (
        row.position,
        format_time(row.recorded_at),
        row.stream_id,
        row.stream_version,
        row.type,
        row.event_id,
    )


_TABLE_COLUMNS = (
    Column("POSITION", fit="keep"),
    Column("RECORDED AT", fit="keep", drop=2),
    Column("STREAM", fit="middle", min_width=12),
    Column("VERSION", fit="keep", drop=1),
    Column("TYPE", min_width=12),
    Column("EVENT ID", fit="middle", drop=3),
)


@events.command("list")
@click.option("--stream", metavar="STREAM_ID", help="Only this stream (e.g. workspace, run-<id>).")
@click.option(
    "--type",
    "types",
    metavar="TYPE",
    multiple=True,
    help="Only events of this type (e.g. run.started); repeat for several.",
)
@click.option(
    "--from",
    "from_position",
    type=BoundedInt(1),
    default=1,
    show_default=True,
    metavar="POS",
    help="Start at this log position.",
)
@limit_options(DEFAULT_LIST_LIMIT, "event")
@wide_option
@show_secrets_option
@output_options(nl=True)
def list_events(
    stream: str | None,
    types: tuple[str, ...],
    from_position: int,
    limit: int | None,
    wide: bool,
    show_secrets: bool,
    fmt: Format,
) -> None:
    """List events in log order, oldest first, with filters.

    At most --limit events in every format (100 unless given; --all or --limit 0
    for every one); a cut listing says so under the table, or on stderr with
    --json and --nl, with the --from position to go on from. Items: position,
    event_id, stream_id, stream_version, type, schema_version, recorded_at,
    metadata, data.

    Example: metaledger events list --stream workspace --from 1 --limit 20
    """
    _warn_unknown_types(types)
    fetch = None if limit is None else limit + 1  # one more tells that there is more
    shown: list[StoredEvent] = []
    last: list[int] = [from_position - 1]

    async def body() -> int:
        array = _JsonArray() if fmt == "json" else None
        count = 0
        async with open_store_for() as store:
            async for row in _select(
                store, stream=stream, types=types, from_position=from_position, limit=fetch
            ):
                if limit is not None and count >= limit:
                    count += 1
                    break
                count += 1
                last[0] = row.position
                if fmt == "table":
                    shown.append(row)
                    continue
                item = list_item(row, show_secrets=show_secrets)
                if array is not None:
                    array.add(item)
                else:
                    emit_line(item)
            # Positions have no gaps: without filters the total is known for free.
            total = await store.head() - from_position + 1 if not stream and not types else None
        if array is not None:
            array.close()
        return count if total is None else max(total, 0)

    with _quiet_broken_pipe():
        matched = run_async(body)
    cut: ListingCut | None = None
    if limit is not None and matched > limit:
        exact = not stream and not types
        cut = ListingCut(
            limit, matched if exact else None, "event", also=f"--from {last[0] + 1} to go on"
        )
    if fmt == "table":
        if not shown:
            say("No events match.")
            return
        print_table(_TABLE_COLUMNS, (_table_row(row) for row in shown), wide=wide)
    report_cut(cut, fmt)


# -- show ------------------------------------------------------------------------


def _parse_ref(ref: str) -> int | UUID:
    text = ref.strip()
    if text.isascii() and text.isdigit():
        return parse_position(text)
    try:
        return UUID(text)
    except ValueError:
        raise click.BadParameter(
            f"{ref!r}: give a log position (e.g. 42) or an event id (a UUID)",
            param_hint="'POSITION|EVENT_ID'",
        ) from None


@events.command("show")
@click.argument("ref", metavar="POSITION|EVENT_ID")
@show_secrets_option
@output_options()
def show(ref: str, show_secrets: bool, fmt: Format) -> None:
    """Show one event with every envelope field, by log position or event id.

    --json prints the object an export line holds: position, event_id, stream_id,
    stream_version, type, schema_version, recorded_at, recorded_at_us, metadata,
    data, hash (hex).

    Example: metaledger events show 42 --json
    """
    target = _parse_ref(ref)

    async def body() -> tuple[StoredEvent | None, int]:
        async with open_store_for() as store:
            head = await store.head()
            if isinstance(target, int):
                return await store.stored_at(target), head
            return await store.stored_by_event_id(target), head

    row, head = run_async(body)
    if row is None:
        where = f"at position {target}" if isinstance(target, int) else f"with id {target}"
        raise CLIError(f"no event {where} (the log's head is {head})", EXIT_NOT_FOUND)
    from eventstore import envelope_record

    record = envelope_record(row, show_secrets=show_secrets)

    def table() -> None:
        from eventstore import EVENT_TYPES

        known = EVENT_TYPES.get(row.type)
        if known is None:
            decodes = "unknown type: kept raw"
        elif row.schema_version > known.schema_version:
            decodes = f"newer schema (this release knows v{known.schema_version}): kept raw"
        else:
            decodes = known.__name__
        print_properties(
            [
                ("POSITION", record.position),
                ("EVENT ID", record.event_id),
                ("STREAM", record.stream_id),
                ("STREAM VERSION", record.stream_version),
                ("TYPE", f"{record.type} v{record.schema_version} ({decodes})"),
                ("RECORDED AT", row.recorded_at.isoformat()),
                ("RECORDED AT (us)", record.recorded_at_us),
                ("HASH", record.hash),
                ("METADATA", _pretty(record.metadata)),
                ("DATA", _pretty(record.data)),
            ],
            title=f"Event {record.position}",
            headers=("EVENT_PROPERTY", "VALUE"),
        )

    emit(record, fmt, table)


def _pretty(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


# -- tail ------------------------------------------------------------------------

_TAIL_HEADER = f"{'POSITION':>8}  {'RECORDED AT':<19}  {'STREAM':<40}  {'VER':>4}  {'TYPE':<26}  ID"
#: Below this many columns, tail lines drop the event id and shorten the stream id.
_TAIL_WIDE = len(_TAIL_HEADER) + 34
_TAIL_HEADER_NARROW = f"{'POSITION':>8}  {'RECORDED AT':<19}  {'STREAM':<13}  {'VER':>4}  TYPE"


def _tail_narrow() -> bool:
    from .output import _terminal_width

    width = _terminal_width()
    return width is not None and width < _TAIL_WIDE


def _tail_line(row: StoredEvent, narrow: bool = False) -> str:
    if narrow:
        stream = row.stream_id if len(row.stream_id) <= 13 else row.stream_id[:12] + "…"
        return (
            f"{row.position:>8}  {format_time(row.recorded_at):<19}  {stream:<13}  "
            f"{row.stream_version:>4}  {row.type}"
        )
    return (
        f"{row.position:>8}  {format_time(row.recorded_at):<19}  {row.stream_id:<40}  "
        f"{row.stream_version:>4}  {row.type:<26}  {row.event_id}"
    )


@contextlib.contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """A closed pipe (``| head``) ends the output quietly, as for other Unix tools."""
    try:
        yield
    except BrokenPipeError:
        # Python flushes stdout at exit and would complain again: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise click.exceptions.Exit(0) from None


@events.command("tail")
@click.option(
    "-n",
    "--lines",
    "count",
    type=BoundedInt(0),
    default=10,
    show_default=True,
    metavar="N",
    help="Show the last N events.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@show_secrets_option
@output_options(nl=True)
def tail(count: int, follow: bool, show_secrets: bool, fmt: Format) -> None:
    """Show the last events of the log; with --follow, keep printing new ones.

    People get one line per event; --nl prints JSON lines (the items of
    `events list --json`); --json prints an array, or JSON lines with --follow.
    With --follow, Ctrl-C is the normal way to stop: it ends cleanly with exit code
    0, every printed line complete. New events of other processes show within
    about 0.2 s.

    Example: metaledger events tail -n 5 --follow --nl
    """
    lines = fmt == "nl" or (fmt == "json" and follow)
    narrow = _tail_narrow()
    header = _TAIL_HEADER_NARROW if narrow else _TAIL_HEADER

    def render(row: StoredEvent) -> None:
        if lines:
            emit_line(list_item(row, show_secrets=show_secrets))
        else:
            say(_tail_line(row, narrow))

    async def body() -> list[StoredEvent]:
        from eventstore import StoredEvent

        async with open_store_for() as store:
            head = await store.head()
            start = max(1, head - count + 1)
            if not follow:
                return [row async for row in store.read_stored(start, to_position=head)]
            if not lines:
                say(header)
            async for rows in store.follow(start):
                for row in rows:
                    render(StoredEvent._make(row))
        return []

    with _quiet_broken_pipe():
        try:
            rows = run_async(body)
        except KeyboardInterrupt:
            if follow:
                return  # the end of a follow: exit 0
            raise
        if fmt == "json":
            _emit_json_array(list_item(row, show_secrets=show_secrets) for row in rows)
            return
        if not lines:
            say(header)
        for row in rows:
            render(row)


# `events append` lives in its own module; the group lists its commands by name.
events.add_command(append)
