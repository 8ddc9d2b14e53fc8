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
import hashlib
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID, uuid5

import click
import msgspec

from .context import open_store_for, progress_bar, run_async
from .errors import EXIT_NOT_FOUND, CLIError
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
    plural,
    print_properties,
    print_table,
    report_cut,
    say,
    show_secrets_option,
    wide_option,
)

if TYPE_CHECKING:
    from eventstore import Event, EventCodec, EventStore, ExpectedVersion, StoredEvent
    from eventstore.planner import EncodedEvent
    from projections import ProgressCallback

__all__ = [
    "APPEND_NAMESPACE",
    "DEFAULT_LIST_LIMIT",
    "EnvelopeRecord",
    "decode_payload",
    "envelope_record",
    "events",
    "list_item",
    "row_at",
]

#: How many events ``events list`` prints (in every format) unless ``--limit`` says otherwise.
DEFAULT_LIST_LIMIT = 100
#: How many bad lines ``events append`` reports before it stops reading.
MAX_REPORTED = 20
#: Files of more lines than this draw a progress bar while checked and appended (on a
#: terminal, not with --json): checking runs at some 10,000 lines a second.
APPEND_PROGRESS_LINES = 5_000
#: Lines checked between two progress reports.
_PROGRESS_EVERY = 1_000
#: Namespace of the ids ``events append`` derives for lines without an ``event_id``.
APPEND_NAMESPACE = UUID("3c0f5a52-8b8e-5d0e-9d3c-6d2b7c1e4f10")
_STREAM_CHUNK = 2000
_LINE_FIELDS = ("stream_id", "type", "data", "event_id", "expected_version", "metadata")
_REQUIRED_FIELDS = ("stream_id", "type", "data")


class EnvelopeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One event with every envelope field: ``events show --json`` and an ``export`` line."""

    position: int
    event_id: str
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at: datetime
    recorded_at_us: int
    metadata: Any
    data: Any
    hash: str


def decode_payload(data: bytes, *, strict: bool = False) -> Any:
    """Stored payload bytes as JSON builtins.

    Bytes that are not readable MessagePack (a damaged row) raise DecodeError with
    ``strict``; otherwise they come back as ``{"undecodable": "<hex>"}`` so an audit
    still shows the row.
    """
    from eventstore import DecodeError, EventCodec

    try:
        return EventCodec.to_builtins(data)
    except msgspec.DecodeError as exc:
        if strict:
            raise DecodeError(f"the stored bytes cannot be decoded: {exc}") from exc
        return {"undecodable": data.hex()}


def list_item(row: StoredEvent, *, show_secrets: bool = False) -> dict[str, Any]:
    """An ``events list`` item."""
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


def envelope_record(
    row: StoredEvent, *, strict: bool = False, show_secrets: bool = True
) -> EnvelopeRecord:
    """Every envelope field of a stored row, payloads decoded to JSON builtins."""
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


async def row_at(store: EventStore, position: int) -> StoredEvent | None:
    """The stored row at ``position``, undecoded, or None."""
    from eventstore import StoredEvent

    if position < 1:
        return None
    async for rows in store.read_chunks(position, limit=1):
        if rows[0][0] == position:
            return StoredEvent(*rows[0])
    return None


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
    from eventstore import StoredEvent

    if stream is None:
        async for rows in store.read_chunks(from_position, limit=limit, types=types or None):
            for row in rows:
                yield StoredEvent(*row)
        return
    wanted = set(types)
    count = 0
    version = 1
    while limit is None or count < limit:
        rows = await store.backend.read_stream_rows(stream, version, _STREAM_CHUNK)
        for row in rows:
            if row[0] >= from_position and (not wanted or row[4] in wanted):
                yield StoredEvent(*row)
                count += 1
                if limit is not None and count >= limit:
                    return
        if len(rows) < _STREAM_CHUNK:
            return
        version = rows[-1][3] + 1


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
        from eventstore import StoredEvent

        async with open_store_for() as store:
            head = await store.head()
            if isinstance(target, int):
                return await row_at(store, target), head
            row = await store.backend.row_by_event_id(str(target))
            return (StoredEvent(*row) if row is not None else None), head

    row, head = run_async(body)
    if row is None:
        where = f"at position {target}" if isinstance(target, int) else f"with id {target}"
        raise CLIError(f"no event {where} (the log's head is {head})", EXIT_NOT_FOUND)
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
                ("RECORDED AT", record.recorded_at.isoformat()),
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
                return [
                    StoredEvent(*row)
                    async for rows in store.read_chunks(start, to_position=head)
                    for row in rows
                ]
            if not lines:
                say(header)
            async for rows in store.follow(start):
                for row in rows:
                    render(StoredEvent(*row))
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


# -- append ----------------------------------------------------------------------


@dataclass
class _Line:
    """One valid line of an ``events append`` file."""

    number: int
    stream_id: str
    event: EncodedEvent
    expected_version: ExpectedVersion | None
    metadata: dict[str, Any] | None
    decoded: Event


@dataclass
class _Append:
    """Consecutive lines of one stream: one append of the atomic ``append_many``."""

    stream_id: str
    expected_version: ExpectedVersion
    lines: list[_Line] = field(default_factory=list)


class _BadLine(Exception):
    """A line of an append file that cannot be appended."""


def _check_fields(given: Iterable[str], allowed: Sequence[str], what: str) -> None:
    unknown = [name for name in given if name not in allowed]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise _BadLine(f"unknown field(s) in {what}: {', '.join(hints)}")


def _expected_version(value: Any) -> ExpectedVersion:
    if value == "any":
        return "any"
    if value == "no_stream":
        return "no_stream"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _BadLine(f'expected_version must be a version >= 0, "any" or "no_stream", not {value!r}')


def _parse_line(number: int, raw: bytes, codec: EventCodec, file_digest: str) -> tuple[_Line, str]:
    """Validate one line; return it and its event id. Raises _BadLine with the reason."""
    from eventstore import EVENT_TYPES, ArtifactProduced, InvalidEventError, Metadata
    from eventstore import artifact_event_id as derived_id
    from eventstore.planner import EncodedEvent
    from eventstore.rules import home_stream

    try:
        item = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise _BadLine("nested too deeply to store") from None
    except UnicodeDecodeError as exc:
        raise _BadLine(f"not valid JSON: invalid UTF-8 at byte {exc.start}") from None
    if not isinstance(item, dict):
        raise _BadLine(f"not a JSON object but {type(item).__name__}")
    _check_fields(item, _LINE_FIELDS, "the line")
    missing = [name for name in _REQUIRED_FIELDS if name not in item]
    if missing:
        raise _BadLine(f"missing field(s): {', '.join(missing)}")
    stream_id, event_type, data = item["stream_id"], item["type"], item["data"]
    if not isinstance(stream_id, str) or not stream_id or len(stream_id) > 255:
        raise _BadLine("stream_id must be a non-empty string of at most 255 characters")
    if not isinstance(event_type, str):
        raise _BadLine("type must be a string")
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        close = difflib.get_close_matches(event_type, list(EVENT_TYPES), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else (f"known: {', '.join(EVENT_TYPES)}")
        )
        raise _BadLine(f"unknown event type {event_type!r} ({hint})")
    if not isinstance(data, dict):
        raise _BadLine("data must be a JSON object")
    fields = [f.encode_name for f in msgspec.structs.fields(cls)]
    _check_fields([k for k in data if k != "event_type"], fields, f"data of {event_type}")
    try:
        event = codec.from_builtins(event_type, data)
        tag, schema_version, payload = codec.encode(event)
    except InvalidEventError as exc:
        raise _BadLine(str(exc)) from None
    home = home_stream(event)
    if home is not None and stream_id != home:
        article = "an" if event_type[:1] in "aeiou" else "a"
        raise _BadLine(
            f"{article} {event_type} event belongs in stream {home!r}, not {stream_id!r}"
        )
    if "event_id" in item:
        try:
            event_id = str(UUID(str(item["event_id"])))
        except ValueError:
            raise _BadLine(f"event_id {item['event_id']!r} is not a UUID") from None
    elif isinstance(event, ArtifactProduced):
        event_id = str(derived_id(event.artifact_id))  # the id the rules fix for it
    else:
        event_id = str(uuid5(APPEND_NAMESPACE, f"{file_digest}:{number}"))
    expected = _expected_version(item["expected_version"]) if "expected_version" in item else None
    metadata = item.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _BadLine("metadata must be a JSON object")
        _check_fields(
            metadata, [f.encode_name for f in msgspec.structs.fields(Metadata)], "metadata"
        )
        try:
            msgspec.convert(metadata, Metadata)
        except msgspec.ValidationError as exc:
            raise _BadLine(f"metadata: {exc}") from None
    encoded = EncodedEvent(event_id, tag, schema_version, payload)
    return _Line(number, stream_id, encoded, expected, metadata, event), event_id


def _parse_file(
    content: bytes, codec: EventCodec, progress: ProgressCallback | None = None
) -> tuple[list[_Line], list[str]]:
    """Every valid line, and the faults (``line N: reason``), at most MAX_REPORTED.

    ``progress(lines_checked, lines)`` is called every thousand lines.
    """
    digest = hashlib.sha256(content).hexdigest()
    parsed: list[_Line] = []
    faults: list[str] = []
    seen: dict[str, int] = {}
    first_metadata: tuple[int, dict[str, Any] | None] | None = None
    raw_lines = content.split(b"\n")
    total = len(raw_lines) - (raw_lines[-1] == b"")  # the final newline starts no line
    for number, raw in enumerate(raw_lines, start=1):
        if progress is not None and number % _PROGRESS_EVERY == 0:
            progress(number, total)
        if not raw.strip():
            continue
        try:
            line, event_id = _parse_line(number, raw, codec, digest)
            if event_id in seen:
                raise _BadLine(f"event_id {event_id} repeats line {seen[event_id]}")
            if first_metadata is None:
                first_metadata = (number, line.metadata)
            elif line.metadata != first_metadata[1]:
                raise _BadLine(
                    f"its metadata differs from line {first_metadata[0]}'s: a file is appended "
                    "in one transaction with one metadata; put other metadata in another file"
                )
            seen[event_id] = number
            parsed.append(line)
        except _BadLine as exc:
            faults.append(f"line {number}: {exc}")
            if len(faults) >= MAX_REPORTED:
                break
    return parsed, faults


def _group(lines: Sequence[_Line]) -> list[_Append]:
    """Consecutive lines of one stream form one append, unless a line sets expected_version."""
    from eventstore import ANY

    appends: list[_Append] = []
    for line in lines:
        last = appends[-1] if appends else None
        if last is None or last.stream_id != line.stream_id or line.expected_version is not None:
            expected = ANY if line.expected_version is None else line.expected_version
            last = _Append(line.stream_id, expected)
            appends.append(last)
        last.lines.append(line)
    return appends


async def _rule_faults(store: EventStore, appends: list[_Append]) -> list[str]:
    """Faults of lines the domain rules forbid (``eventstore.rules``), checked in file order.

    Lines whose event id is already stored are a retry, which the log itself
    judges (the same body: a no-op; another: a conflict), so they are left out.
    The first append of each stream is pinned to the version its lines were
    checked against, so a writer racing this one makes the append fail instead
    of slipping between the check and the append.
    """
    from eventstore import ANY, LifecycleError, run_stream
    from eventstore.rules import RuleChecker, load_state

    lines = [line for a in appends for line in a.lines]
    stored = {
        line.event.event_id
        for line in lines
        if await store.backend.row_by_event_id(line.event.event_id) is not None
    }
    fresh = [line for line in lines if line.event.event_id not in stored]
    state = await load_state(store, [(line.stream_id, line.decoded) for line in fresh])
    versions = {run_stream(run.run_id): run.version for run in state.runs.values()}
    versions[_workspace_stream()] = state.workspace.version
    checker = RuleChecker(state)
    faults: list[str] = []
    for line in fresh:
        try:
            checker.check(line.stream_id, line.decoded, line.event.event_id)
        except LifecycleError as exc:
            faults.append(f"line {line.number}: {line.event.type}: {exc}")
    pinned: set[str] = set()
    for append in appends:
        if append.stream_id in pinned:
            continue
        pinned.add(append.stream_id)
        if append.expected_version == ANY and append.stream_id in versions:
            append.expected_version = versions[append.stream_id]
    return faults


def _workspace_stream() -> str:
    from eventstore import WORKSPACE_STREAM

    return WORKSPACE_STREAM


def _line_of_error(exc: Exception, appends: Sequence[_Append]) -> int | None:
    from eventstore import ConcurrencyError, EventIdConflictError

    if isinstance(exc, ConcurrencyError):
        for append in appends:
            if append.stream_id == exc.stream_id and append.expected_version == exc.expected:
                return append.lines[0].number
    if isinstance(exc, EventIdConflictError):
        for append in appends:
            for line in append.lines:
                if line.event.event_id in exc.event_ids:
                    return line.number
    return None


@events.command("append")
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
    from eventstore import EventCodec

    content = source.read()
    given = getattr(source, "name", "-")
    name = "<stdin>" if given in ("<stdin>", "-") else str(given)
    # A bar on stderr, on a terminal only (progress_bar checks); never under --json.
    show_progress = fmt != "json" and content.count(b"\n") > APPEND_PROGRESS_LINES
    with progress_bar("checking", enabled=show_progress) as progress:
        parsed, faults = _parse_file(content, EventCodec(), progress)
    if faults:
        for fault in faults:
            say(f"{name}: {fault}", err=True)
        more = " or more" if len(faults) >= MAX_REPORTED else ""
        raise CLIError(f"{name}: {len(faults)}{more} bad line(s); nothing was appended")
    appends = _group(parsed)
    if not parsed or dry_run:
        checked = {
            "appended": 0,
            "already_stored": 0,
            "first_position": None,
            "last_position": None,
            "valid": len(parsed),
            "dry_run": dry_run,
        }
        message = (
            f"{name} holds no events; nothing appended."
            if not parsed
            else f"{name}: {plural(len(parsed), 'event')} in {plural(len(appends), 'append')} "
            f"{'is' if len(parsed) == 1 else 'are'} valid; nothing appended (--dry-run)."
        )
        emit(checked, fmt, lambda: say(message))
        return
    metadata = parsed[0].metadata

    async def body() -> list[Any]:
        from eventstore import AppendError

        async with open_store_for() as store:
            refused = await _rule_faults(store, appends)
            if refused:
                for fault in refused[:MAX_REPORTED]:
                    say(f"{name}: {fault}", err=True)
                raise CLIError(
                    f"{name}: {len(refused)} line(s) break the domain rules; nothing was appended"
                )
            try:
                # One transaction: the bar can only say it is under way, then done.
                with progress_bar("appending", enabled=show_progress) as progress:
                    progress(0, len(parsed))
                    results = await store.append_many(
                        [
                            (a.stream_id, [line.event for line in a.lines], a.expected_version)
                            for a in appends
                        ],
                        metadata=metadata,
                    )
                    progress(len(parsed), len(parsed))
                return results
            except AppendError as exc:
                number = _line_of_error(exc, appends)
                where = f"line {number}: " if number is not None else ""
                raise CLIError(f"{name}: {where}{exc}; nothing was appended") from exc

    results = run_async(body)
    new = [p for r in results if not r.duplicate for p in r.positions]
    old = sum(len(r.positions) for r in results if r.duplicate)
    report = {
        "appended": len(new),
        "already_stored": old,
        "first_position": min(new) if new else None,
        "last_position": max(new) if new else None,
    }

    def text() -> None:
        if not new:
            events_of = "the event" if old == 1 else f"the {old:,} events"
            say(
                f"No-op: {events_of} of {name} {'was' if old == 1 else 'were'} already "
                "appended (a retry); nothing changed."
            )
            return
        streams = len({a.stream_id for a in appends})
        first, last = report["first_position"], report["last_position"]
        where = f"position {first}" if first == last else f"positions {first}-{last}"
        message = f"Appended {plural(len(new), 'event')} to {plural(streams, 'stream')} ({where})."
        if old:
            message += (
                f" {plural(old, 'event')} {'was' if old == 1 else 'were'} already stored "
                "(a retry) and left as they are."
            )
        say(message)

    emit(report, fmt, text)
