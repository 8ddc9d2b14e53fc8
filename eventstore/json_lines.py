"""Append events given as JSON lines, all of them or none.

Each line is ``{"stream_id", "type", "data", "event_id"?, "expected_version"?,
"metadata"?}``. :func:`parse_lines` checks every line alone (JSON, fields, the
event's payload, its home stream, ids, one metadata for the whole input) and
raises :class:`~eventstore.errors.BadLinesError` listing the bad ones;
:func:`append_lines` then checks the lines in order against the store with the
domain rules (:mod:`eventstore.rules`, the write API's own) and appends them in
one transaction. A line without an ``event_id`` gets one derived from the
input's content and its line number (an ``artifact.produced`` line: the
artifact's :func:`~eventstore.artifact_event_id`), so appending the same input
again is a no-op. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from .codec import EventCodec
from .envelope import ANY, AppendResult, ExpectedVersion, Metadata
from .errors import (
    AppendError,
    BadLinesError,
    ConcurrencyError,
    EventIdConflictError,
    InvalidEventError,
    InvalidStateError,
    LifecycleError,
    RuleBreachError,
)
from .events import EVENT_TYPES, ArtifactProduced, Event
from .planner import EncodedEvent
from .rules import RuleChecker, check_home, check_stream_id, load_state
from .stream_ids import artifact_event_id_text, uuid5_text

if TYPE_CHECKING:
    from .log import Log
    from .store import EventStore

__all__ = [
    "APPEND_NAMESPACE",
    "MAX_REPORTED",
    "AppendLinesResult",
    "ParsedLines",
    "append_lines",
    "parse_lines",
]

#: How many bad lines are reported before reading stops.
MAX_REPORTED = 20
#: Namespace of the ids derived for lines without an ``event_id``.
APPEND_NAMESPACE = UUID("3c0f5a52-8b8e-5d0e-9d3c-6d2b7c1e4f10")
#: Lines checked between two progress reports.
_PROGRESS_EVERY = 1_000
_LINE_FIELDS = ("stream_id", "type", "data", "event_id", "expected_version", "metadata")
_REQUIRED_FIELDS = ("stream_id", "type", "data")


@dataclass
class Line:
    """One valid line."""

    number: int
    stream_id: str
    event: EncodedEvent
    expected_version: ExpectedVersion | None
    metadata: dict[str, Any] | None
    decoded: Event


@dataclass
class Append:
    """Consecutive lines of one stream: one append of the atomic ``append_many``."""

    stream_id: str
    expected_version: ExpectedVersion
    lines: list[Line] = field(default_factory=list)


@dataclass
class ParsedLines:
    """Lines that each passed :func:`parse_lines`, grouped into appends."""

    lines: list[Line]
    appends: list[Append]

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The metadata every line shares (None: the store's defaults)."""
        return self.lines[0].metadata if self.lines else None

    @property
    def streams(self) -> int:
        """How many streams the lines append to."""
        return len({a.stream_id for a in self.appends})


class _BadLine(Exception):
    """A line that cannot be appended (the reason)."""


def _check_fields(given: Iterable[str], allowed: Sequence[str], what: str) -> None:
    if _allowed_set(allowed).issuperset(given):  # the common case, in C
        return
    unknown = [name for name in given if name not in allowed]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise _BadLine(f"unknown field(s) in {what}: {', '.join(hints)}")


@functools.cache
def _allowed_set(allowed: Sequence[str]) -> frozenset[str]:
    return frozenset(allowed)


def _derived_id(prefix: Any, number: int) -> str:
    """``str(uuid5(APPEND_NAMESPACE, f"{digest}:{number}"))``, from a hash of the common prefix.

    uuid5 hashes the namespace then the name; every line's name starts with the
    input's digest, so that part is hashed once (a fifth of ``uuid.uuid5``'s cost).
    """
    return uuid5_text(prefix, str(number).encode())


@functools.cache
def _field_names(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    # msgspec.structs.fields evaluates the class's annotations on every call
    # (about 1 ms a class): once per class, not once per line.
    return tuple(f.encode_name for f in msgspec.structs.fields(cls))


def _expected_version(value: Any) -> ExpectedVersion:
    if value == "any":
        return "any"
    if value == "no_stream":
        return "no_stream"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _BadLine(f'expected_version must be a version >= 0, "any" or "no_stream", not {value!r}')


def _decode(raw: bytes) -> dict[str, Any]:
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
    return item


def _event(item: dict[str, Any], codec: EventCodec) -> tuple[Event, str, int, bytes]:
    """The line's event, checked against its type and home stream, and its encoding."""
    stream_id, event_type, data = item["stream_id"], item["type"], item["data"]
    try:
        check_stream_id(stream_id)
    except InvalidEventError as exc:
        raise _BadLine(str(exc)) from None
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
    _check_fields(
        [k for k in data if k != "event_type"], _field_names(cls), f"data of {event_type}"
    )
    try:
        event = codec.from_builtins(event_type, data)
        tag, schema_version, payload = codec.encode(event, validated=True, from_json=True)
    except InvalidEventError as exc:
        raise _BadLine(str(exc)) from None
    try:
        check_home(stream_id, event)
    except InvalidStateError as exc:
        raise _BadLine(str(exc)) from None
    return event, tag, schema_version, payload


def _metadata(item: dict[str, Any]) -> dict[str, Any] | None:
    metadata = item.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _BadLine("metadata must be a JSON object")
    _check_fields(metadata, _field_names(Metadata), "metadata")
    try:
        msgspec.convert(metadata, Metadata)
    except msgspec.ValidationError as exc:
        raise _BadLine(f"metadata: {exc}") from None
    return metadata


def _parse_line(number: int, raw: bytes, codec: EventCodec, id_prefix: Any) -> Line:
    """Validate one line; raise _BadLine with the reason."""
    item = _decode(raw)
    event, tag, schema_version, payload = _event(item, codec)
    if "event_id" in item:
        try:
            event_id = str(UUID(str(item["event_id"])))
        except ValueError:
            raise _BadLine(f"event_id {item['event_id']!r} is not a UUID") from None
    elif isinstance(event, ArtifactProduced):
        event_id = artifact_event_id_text(event.artifact_id)  # the id the rules fix for it
    else:
        event_id = _derived_id(id_prefix, number)
    expected = _expected_version(item["expected_version"]) if "expected_version" in item else None
    return Line(
        number,
        item["stream_id"],
        EncodedEvent(event_id, tag, schema_version, payload),
        expected,
        _metadata(item),
        event,
    )


def _group(lines: Sequence[Line]) -> list[Append]:
    """Consecutive lines of one stream form one append, unless a line sets expected_version."""
    appends: list[Append] = []
    for line in lines:
        last = appends[-1] if appends else None
        if last is None or last.stream_id != line.stream_id or line.expected_version is not None:
            expected = ANY if line.expected_version is None else line.expected_version
            last = Append(line.stream_id, expected)
            appends.append(last)
        last.lines.append(line)
    return appends


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large input is parsed.

    Every line leaves several long-lived objects (its event, its dicts), and
    CPython's generational collector rescans the growing pile again and again:
    a quarter of a 20,000-line parse, measured. Nothing parsed here makes
    cycles, so nothing is lost by collecting once, after.

    On the way out, what the parse made is moved straight to the oldest
    generation (``gc.freeze()`` then ``gc.unfreeze()``, two list splices):
    otherwise the first young collection after it, early in the rules check,
    walks every parsed object, and the next older one again (15-25% of a
    20,000-line parse, measured). They are freed by reference counting when
    the append is done, like any acyclic object.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def parse_lines(
    content: bytes | Sequence[bytes],
    codec: EventCodec | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ParsedLines:
    """Check every line of ``content`` alone; raise BadLinesError listing the bad ones.

    ``content`` is the input's bytes (or its lines, joined with newlines): the
    ids derived for lines without one hash it. At most MAX_REPORTED faults are
    gathered (``"line N: reason"``). ``progress(lines_checked, lines)`` is
    called every thousand lines.
    """
    with _collector_paused():
        return _parse_all(content, codec, progress)


def _parse_all(
    content: bytes | Sequence[bytes],
    codec: EventCodec | None,
    progress: Callable[[int, int], None] | None,
) -> ParsedLines:
    if not isinstance(content, bytes):
        content = b"\n".join(content)
    codec = codec or EventCodec()
    digest = hashlib.sha256(content).hexdigest()
    id_prefix = hashlib.sha1(APPEND_NAMESPACE.bytes + f"{digest}:".encode(), usedforsecurity=False)
    parsed: list[Line] = []
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
            line = _parse_line(number, raw, codec, id_prefix)
            event_id = line.event.event_id
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
    if faults:
        raise BadLinesError(faults, more=len(faults) >= MAX_REPORTED)
    return ParsedLines(parsed, _group(parsed))


async def _rule_faults(store: Log | EventStore, appends: list[Append]) -> list[str]:
    """Faults of lines the domain rules forbid (``eventstore.rules``), checked in input order.

    Lines whose event id is already stored are a retry, which the log itself
    judges (the same body: a no-op; another: a conflict), so they are left out.
    The first append of each stream is pinned to the version its lines were
    checked against, so a writer racing this one makes the append fail instead
    of slipping between the check and the append.
    """
    from .runs import run_stream
    from .workspace import WORKSPACE_STREAM

    lines = [line for a in appends for line in a.lines]
    stored = set(await store.stored_by_event_ids(line.event.event_id for line in lines))
    fresh = [line for line in lines if line.event.event_id not in stored]
    state = await load_state(store, [(line.stream_id, line.decoded) for line in fresh])
    versions = {run_stream(run.run_id): run.version for run in state.runs.values()}
    versions[WORKSPACE_STREAM] = state.workspace.version
    checker = RuleChecker(state)
    faults: list[str] = []
    for line in fresh:
        try:
            # parse_lines checked each line's home stream already.
            checker.check(line.stream_id, line.decoded, line.event.event_id, home_checked=True)
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


def _line_of_error(exc: AppendError, appends: Sequence[Append]) -> int | None:
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


@dataclass(frozen=True)
class AppendLinesResult:
    """What :func:`append_lines` stored."""

    #: Lines appended now.
    appended: int
    #: Lines whose events were stored already (a retry): left as they are.
    already_stored: int
    first_position: int | None
    last_position: int | None
    #: How many streams the lines append to.
    streams: int
    results: tuple[AppendResult, ...] = ()


async def append_lines(
    store: Log | EventStore,
    lines: bytes | Sequence[bytes] | ParsedLines,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> AppendLinesResult:
    """Check JSON lines against the store's domain rules, then append them in one transaction.

    ``lines`` is the input's bytes, its lines, or what :func:`parse_lines`
    made of them. Raises BadLinesError (a malformed line), RuleBreachError
    (lines the rules refuse, at most MAX_REPORTED named) or the AppendError of
    the refused append, with ``line`` set to its first line's number when known;
    nothing is appended then. ``progress(done, lines)`` reports before and after
    the one transaction.
    """
    parsed = lines if isinstance(lines, ParsedLines) else parse_lines(lines, store.codec)
    if not parsed.lines:
        return AppendLinesResult(0, 0, None, None, 0)
    with _heap_frozen():
        return await _check_and_append(store, parsed, progress)


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """Keep the collector off the objects that exist now (the parsed lines) for a while.

    The rules check and the commit allocate enough (the runs' states, the rows)
    to set off full collections, and each one walked every parsed line again:
    two of 0.7-1.3 s in a 100,000-line append, measured. ``gc.freeze()`` parks
    today's objects where no collection looks and ``gc.unfreeze()`` puts them
    back (both O(1)); the collector goes on with everything made meanwhile, so
    other tasks' garbage is still collected. Two appends at once may unfreeze
    each other's lines early: a cost in time only.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _check_and_append(
    store: Log | EventStore,
    parsed: ParsedLines,
    progress: Callable[[int, int], None] | None,
) -> AppendLinesResult:
    """The work of :func:`append_lines` once it has parsed lines: rules, then the append."""
    refused = await _rule_faults(store, parsed.appends)
    if refused:
        raise RuleBreachError(refused[:MAX_REPORTED], len(refused))
    total = len(parsed.lines)
    if progress is not None:
        progress(0, total)
    try:
        results = await store.append_many(
            [
                (a.stream_id, [line.event for line in a.lines], a.expected_version)
                for a in parsed.appends
            ],
            metadata=parsed.metadata,
        )
    except AppendError as exc:
        exc.line = _line_of_error(exc, parsed.appends)
        raise
    if progress is not None:
        progress(total, total)
    new = [p for r in results if not r.duplicate for p in r.positions]
    old = sum(len(r.positions) for r in results if r.duplicate)
    return AppendLinesResult(
        len(new),
        old,
        min(new) if new else None,
        max(new) if new else None,
        parsed.streams,
        tuple(results),
    )
