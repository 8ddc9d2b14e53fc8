"""What every command shares: the global options, opening the store and fresh views.

Commands are plain click functions; each runs its async body with
:func:`run_async`. Reading commands open the views with :func:`open_fresh_views`,
which brings them up to the log's head first (drawing a progress bar on a
terminal when that is long work), so output is never stale.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .text import plural, say

if TYPE_CHECKING:
    from eventstore import EventStore, StoreLocation
    from projections import ProgressCallback, ProjectionFault, ProjectionStatus, Views

__all__ = [
    "AppContext",
    "AsOf",
    "app",
    "open_fresh_views",
    "open_runs_store",
    "open_store_for",
    "progress_bar",
    "run_async",
    "run_listing",
    "run_on_store",
    "run_on_views",
    "stack_option",
]

T = TypeVar("T")

#: Catching up more events than this draws a progress bar (on a terminal).
PROGRESS_THRESHOLD = 20_000


@dataclass
class AppContext:
    """The global options, as given on the command line."""

    store_uri: str | None = None
    verbose: int = 0
    log_format: str = "text"
    json_output: bool = False
    #: Why the views a read answered from are behind the log (exit 7), or None.
    stale: str | None = None
    #: ``--stack NAME`` of a runs command: read that stack's metadata store.
    runs_stack: str | None = None
    #: ``run list --stack`` is also a filter: a name no live stack has (a deleted
    #: stack's, a typo) reads the active stack's store and simply matches nothing.
    runs_stack_is_filter: bool = False
    _location: StoreLocation | None = None

    @property
    def location(self) -> StoreLocation:
        """The store ``--store`` (or the environment, or the default) names, parsed once."""
        if self._location is None:
            from eventstore import resolve_store

            self._location = resolve_store(self.store_uri)
        return self._location

    def configure_logging(self) -> None:
        """Logs to stderr: warnings by default, info with -v, debug with -vv."""
        from eventstore.logs import configure_logging

        level = {0: logging.WARNING, 1: logging.INFO}.get(self.verbose, logging.DEBUG)
        configure_logging(level, "json" if self.log_format == "json" else "text")


def app() -> AppContext:
    """The current command's global options."""
    ctx = click.get_current_context()
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):  # a command invoked without the root group
        obj = AppContext()
        ctx.find_root().obj = obj
    return obj


def run_async(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an async command body on asyncio (aiosqlite needs it), logging as asked.

    Ctrl-C cancels the body cleanly, then raises KeyboardInterrupt (exit 130).
    """
    import anyio

    from .interrupts import run_interruptibly

    app().configure_logging()
    return anyio.run(run_interruptibly, function, *args)


@contextlib.contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """A progress callback drawing a bar on stderr, on a terminal only.

    The bar appears at the first report, so work that reports nothing draws nothing.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    started: list[Any] = []

    def update(done: int, total: int) -> None:
        if not started:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            progress.start()
            started.extend([progress, progress.add_task(description, total=total)])
        started[0].update(started[1], completed=done, total=total)

    try:
        yield update
    finally:
        if started:
            started[0].stop()


@contextlib.asynccontextmanager
async def open_store_for(*, create: bool = False) -> AsyncIterator[EventStore]:
    """Open the store the global options name; a missing store is an error unless ``create``.

    The CLI never makes the default stack on open (reading commands do not
    write; `import` and `copy` need an empty log): `init` and `demo` make it.
    """
    from eventstore import open_store

    async with open_store(app().location, create=create, default_stack=False) as store:
        yield store


@contextlib.asynccontextmanager
async def open_runs_store() -> AsyncIterator[EventStore]:
    """The store holding the runs of ``--stack`` (default: the active stack).

    The home store (the one the global options name) holds the stacks; a
    stack's metadata store says where its runs are: the home store itself or
    another store, opened here (and closed with the home store). An unknown
    stack is exit 4; a metadata store that cannot be opened, exit 6 naming both.
    """
    from eventstore import NotFoundError

    options = app()
    async with open_store_for() as home:
        try:
            store = await home.runs_store(options.runs_stack)
        except NotFoundError:
            if not options.runs_stack_is_filter:
                raise
            store = await home.runs_store()
        yield store


def _set_runs_stack(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        app().runs_stack = value


def stack_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--stack NAME`` to a command that reads (or writes) runs: whose metadata store."""
    return click.option(
        "--stack",
        metavar="NAME",
        expose_value=False,
        callback=_set_runs_stack,
        help="Use the runs of this stack's metadata store (default: the active stack's).",
    )(function)


def run_on_store(action: Callable[[EventStore], Awaitable[T]], *, runs: bool = False) -> T:
    """Open the store the global options name, run one write command on it, close it.

    ``runs``: on the store holding the runs of ``--stack`` or the active stack instead.
    """

    async def body() -> T:
        opened = open_runs_store() if runs else open_store_for()
        async with opened as store:
            return await action(store)

    return run_async(body)


def run_on_views(
    action: Callable[[Views], Awaitable[T]], as_of: str | None = None, *, runs: bool = False
) -> T:
    """Open the store and its fresh views (as of ``--as-of``), run one read on them, close.

    ``runs``: the views of the store holding the runs of ``--stack`` or the
    active stack (see :func:`open_runs_store`).
    """

    async def body() -> T:
        opened = open_runs_store() if runs else open_store_for()
        async with opened as store, open_fresh_views(store, as_of) as views:
            return await action(views)

    return run_async(body)


def run_listing(
    listing: Callable[[Views], Awaitable[list[T]]],
    count: Callable[[Views], Awaitable[int]],
    limit: int | None,
    as_of: str | None = None,
    *,
    runs: bool = False,
) -> tuple[list[T], int | None]:
    """A listing of at most ``limit`` items, and the total when it may be cut (else None).

    The count is asked only when the listing filled ``limit``: most listings are short.
    """

    async def action(views: Views) -> tuple[list[T], int | None]:
        found = await listing(views)
        if limit is None or len(found) < limit:
            return found, None
        return found, await count(views)

    return run_on_views(action, as_of, runs=runs)


@dataclass(frozen=True)
class AsOf:
    """A past point of the log: a position or a time (``--as-of``)."""

    position: int | None = None
    when: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> AsOf:
        """``1200`` (a position), or an ISO-8601 time (UTC unless it says otherwise)."""
        from projections.errors import QueryError

        value = text.strip()
        if value.isascii() and value.isdigit():
            if len(value.lstrip("0")) > 19 or int(value) > (1 << 63) - 1:
                raise QueryError(f"--as-of {value[:40]}: beyond any log position (at most 2**63-1)")
            return cls(position=int(value))
        try:
            return cls(when=parse_time(value))
        except QueryError:
            raise QueryError(
                f"--as-of {text!r}: give a log position (e.g. 1200), an ISO-8601 time "
                "(e.g. 2026-11-28T08:00:00Z) or an age (e.g. 2h)"
            ) from None


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (UTC unless it says otherwise), or an age: ``30m``, ``2h``, ``7d``."""
    from datetime import timedelta

    from projections.errors import QueryError

    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if len(value) > 1 and value[-1] in units and value[:-1].isascii() and value[:-1].isdigit():
            return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise QueryError(
            f"{text!r} is not a time: give ISO-8601 (2026-11-28T08:00:00Z) or an age (2h, 7d)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def as_of_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--as-of POSITION|TIME`` to a reading command."""
    return click.option(
        "--as-of",
        "as_of",
        metavar="POSITION|TIME",
        help="Answer as the log stood at a position or an ISO-8601 time (replayed).",
    )(function)


@contextlib.asynccontextmanager
async def open_fresh_views(store: EventStore, as_of: str | None = None) -> AsyncIterator[Views]:
    """The views brought up to the log's head, or replayed as of ``--as-of``."""
    from projections import open_views, views_as_of

    if as_of is not None:
        from projections.errors import QueryError

        point = AsOf.parse(as_of)
        head = await store.head()
        if point.position is not None and point.position > head:
            # The log never stood there: answering as of the head would be a wrong answer.
            raise QueryError(
                f"--as-of {point.position}: beyond the log's head (position {head}); "
                "give a position from 0 to the head"
            )
        lag = point.position if point.position is not None else head
        with progress_bar("replaying", enabled=lag > PROGRESS_THRESHOLD) as progress:
            async with views_as_of(
                store, position=point.position, when=point.when, progress=progress
            ) as past:
                say(await as_of_note(store, point, past.as_of or 0), err=True)
                _note_faults(await past.faults())
                yield past
        return
    with progress_bar("rebuilding views") as rebuild_progress:
        async with open_views(store, progress=rebuild_progress) as views:
            lag = max((s.lag for s in await views.status()), default=0)
            with progress_bar("catching up", enabled=lag > PROGRESS_THRESHOLD) as progress:
                target = await views.catch_up(progress=progress)
            status = await views.status()
            _note_faults([f for s in status for f in s.faults])
            _check_fresh(status, target)
            yield views


async def as_of_note(store: EventStore, point: AsOf, position: int) -> str:
    """What an ``--as-of`` answer is as of: the position and its time, or where the log begins."""
    head = await store.head()
    asked = f"position {point.position}" if point.position is not None else f"{_utc(point.when)}"
    if head == 0:
        return f"As of {asked}: the log is empty."
    if position == 0:
        first = await store.stored_at(1)
        begins = f"{_utc(first.recorded_at)} (position 1)" if first is not None else "position 1"
        return f"As of {asked}: before the first event; the log begins at {begins}."
    last = await store.stored_at(position)
    when = f", recorded at {_utc(last.recorded_at)}" if last is not None else ""
    return f"As of {asked}: the views stand at position {position} of {head}{when}."


def _utc(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _note_faults(faults: Sequence[ProjectionFault]) -> None:
    """Say on stderr that some events are missing from the views (they could not apply)."""
    if not faults:
        return
    positions = sorted({f.position for f in faults})
    shown = ", ".join(str(p) for p in positions[:5]) + (", ..." if len(positions) > 5 else "")
    say(
        f"Note: the views could not apply {plural(len(positions), 'event')} of the log "
        f"({'position' if len(positions) == 1 else 'positions'} {shown}); their effect is "
        "missing here: see `metaledger projections status`.",
        err=True,
    )


def _check_fresh(status: Sequence[ProjectionStatus], target: int) -> None:
    """Warn on stderr, and mark the command stale (exit 7), when a view is behind ``target``."""
    behind = [s for s in status if s.state != "live" or s.position < target]
    if not behind:
        return
    parts = []
    for s in behind:
        text = f"{s.name} at position {s.position} of {target} ({s.state}"
        if s.error:
            text += f" at {s.error_position}: {s.error}"
        parts.append(text + ")")
    message = (
        f"the views are behind the log: {'; '.join(parts)}; this answer may be stale: run "
        "`metaledger projections rebuild`"
    )
    say(f"Warning: {message}", err=True)
    app().stale = message
