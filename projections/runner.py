"""The projection runner: feeds the log to every projection, exactly once, in batches.

One pass over the log feeds all projections: each chunk of rows is decoded
once, every projection turns the events it cares about into SQL ops, and one
views transaction applies them all with each projection's checkpoint. An
event a projection cannot apply (its handler raises, its SQL fails, it cannot
be decoded) never stops it: the event is recorded as a fault (position,
projection, reason) in the views store and the projection goes on, so the views
stay current. Unknown event types are skipped and counted.

- :meth:`ProjectionRunner.catch_up` brings the views to the log's head (or a
  position) in large batches: what a short-lived process (the CLI) calls before
  it answers, so its output is never stale.
- :meth:`ProjectionRunner.follow` catches up, then follows new appends live
  through the store's subscription, until cancelled.
- :meth:`ProjectionRunner.wait_for` gives read-your-writes after an append.
- :meth:`ProjectionRunner.rebuild` refills a projection blue/green.

Size: one class (~700 lines): catch-up, follow, rebuild and status share the
runner's checkpoints, its wake-up signal and its preparation of batches.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import TaskStatus

from eventstore import EVENT_TYPES, DecodeError, EventStore, RawEvent, RecordedEvent
from eventstore.backend import RowTuple
from eventstore.envelope import recorded_event
from eventstore.logs import get_logger

from .artifacts import ArtifactsProjection
from .definition import EventContext, Op, Projection
from .errors import (
    ProjectionFailedError,
    RebuildConflictError,
    UnknownProjectionError,
    ViewsTimeoutError,
)
from .fold import folder_for
from .row_ops import RowOp, to_sql_ops
from .runs import RunsProjection
from .stacks import StacksProjection
from .transactions import (
    ApplyOutcome,
    EventWork,
    ProjectionState,
    ProjectionWork,
    RetryWithSavepoints,
    Tx,
    abort_rebuild,
    apply_batch,
    begin_rebuild,
    ensure_indexes,
    ensure_projection,
    ensure_projections,
    read_faults,
    read_meta,
    read_states,
    reset_all,
    swap_in_rebuild,
    write_meta,
)
from .views_store import VIEWS_SCHEMA_VERSION, ViewsStore

if TYPE_CHECKING:
    from .snapshots import ViewSnapshots

__all__ = [
    "DEFAULT_PROJECTIONS",
    "ProgressCallback",
    "ProjectionFault",
    "ProjectionRunner",
    "ProjectionStatus",
    "default_projections",
]

log = get_logger("projections.runner")

#: The projections metaledger maintains.
DEFAULT_PROJECTIONS: tuple[type[Projection], ...] = (
    StacksProjection,
    RunsProjection,
    ArtifactsProjection,
)

#: How often one rebuild starts over when other processes keep replacing its generation.
MAX_REBUILD_RESTARTS = 3

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(position_done, position_total)``."""


#: A backlog is applied in transactions of this many batches.
BACKLOG_BATCHES = 5


def default_projections() -> list[Projection]:
    """Fresh instances of the default projections."""
    return [cls() for cls in DEFAULT_PROJECTIONS]


def _now_us() -> int:
    return time.time_ns() // 1000


class ProjectionFault(msgspec.Struct, frozen=True, kw_only=True):
    """An event a projection could not apply, and went past."""

    projection: str
    position: int
    reason: str
    recorded_at_us: int


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one projection stands: for ``projections status`` and ``store describe``."""

    name: str
    version: int
    code_version: int
    position: int
    lag: int
    state: str
    error: str | None = None
    error_position: int | None = None
    skipped: int = 0
    rebuild_version: int | None = None
    rebuild_position: int | None = None
    #: The events this projection could not apply (its live generation), in log order.
    faults: tuple[ProjectionFault, ...] = ()


@dataclass(slots=True)
class _Prepared:
    """A chunk of the log turned into work, ready for one views transaction."""

    first: int
    last: int
    work: list[ProjectionWork]
    pending: bool


class ProjectionRunner:
    """Applies the log to projections; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        views: ViewsStore,
        projections: Sequence[Projection] | None = None,
        *,
        batch_size: int = 10_000,
        snapshots: ViewSnapshots | None = None,
        coalesce: bool | None = None,
        fold: bool | None = None,
    ) -> None:
        self.store = store
        self.views = views
        self.projections = {p.name: p for p in (projections or default_projections())}
        if len(self.projections) != len(projections or self.projections):
            raise ValueError("two projections share a name")
        self.batch_size = batch_size
        #: Whether a batch's first try is coalesced per row (False: statement by
        #: statement). None: as the views store prefers (``coalesces``): on
        #: PostgreSQL it saves round trips; on SQLite, where a statement costs
        #: about what interpreting it in Python costs, it measured slower.
        self.coalesce: bool = (
            bool(getattr(views, "coalesces", False)) if coalesce is None else coalesce
        )
        #: Whether a batch's first try folds the run lifecycle projections' events
        #: straight into rows (:mod:`projections.fold`): only on a views store that
        #: can (``folds``: SQLite and PostgreSQL); None: there, unless this runner
        #: was asked to coalesce (``coalesce=True``: the coalescer then takes every
        #: projection, as its tests want). Projections without a fold still
        #: coalesce where the store prefers it.
        self.fold: bool = bool(getattr(views, "folds", False)) and (
            coalesce is not True if fold is None else fold
        )
        #: Where the live views leave periodic snapshots for as-of (None: they leave none).
        self.snapshots = snapshots
        #: Whether a catch-up ends by building the secondary indexes a bulk load
        #: left out. An as-of's scratch store, answered from and dropped, does
        #: without: building them all cost more than its queries' scans (0.53 s
        #: on a snapshot of 500,000 positions, taken while its views were loading).
        self.build_indexes = True
        self._states: dict[str, ProjectionState] = {}
        self._advanced = anyio.Event()
        self._following = False
        # Projections whose live indexes this runner has made sure of.
        self._indexed: set[str] = set()
        # (projection, generation) pairs a batch gave their indexes (apply_batch).
        self._indexed_generations: set[tuple[str, int]] = set()
        self._handled_types = {
            name: {t for t, cls in EVENT_TYPES.items() if cls in p._handlers}
            for name, p in self.projections.items()
        }

    @property
    def backlog_batch_size(self) -> int:
        """Events per views transaction when catching up a backlog (a rebuild, a first catch-up).

        ``BACKLOG_BATCHES`` times ``batch_size``: each commit rewrites every
        page it dirtied to the WAL, and view pages are dirtied at random (UUID
        keys), so fewer, larger transactions write much less; 50,000 events
        hold about 100 MB while they are applied.
        """
        return self.batch_size * BACKLOG_BATCHES

    # -- state ---------------------------------------------------------------

    @property
    def following(self) -> bool:
        """Whether :meth:`follow` is running (it then keeps the views current)."""
        return self._following

    async def refresh(self) -> dict[str, ProjectionState]:
        """Re-read every projection's state from the views store."""
        self._states = await self.views.read(read_states)
        return self._states

    def _signal(self) -> None:
        event, self._advanced = self._advanced, anyio.Event()
        event.set()

    def _live(self) -> list[Projection]:
        return [
            p
            for name, p in self.projections.items()
            if name in self._states
            and self._states[name].status == "live"
            and self._states[name].version == p.version
        ]

    def _position(self, name: str, *, pending: bool) -> int:
        state = self._states[name]
        if pending:
            return state.pending_position or 0
        return state.position

    # -- opening -------------------------------------------------------------

    async def prepare(
        self, *, auto_rebuild: bool = True, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Create new projections, and rebuild (blue/green) those whose version changed.

        Views that belong to another log (the log was replaced) are reset first.
        Returns the names of the projections rebuilt.
        """
        meta = await self.views.read(read_meta)
        states = await self.refresh()
        # The head is read after the checkpoints: another process may append and
        # catch up meanwhile, and views ahead of an older head are not another log's.
        info = await self.store.info()
        log_id = str(info.get("store_id") or "")
        head = int(info["head_position"])
        stale = meta.get("log_store_id", log_id) != log_id or any(
            s.position > head or (s.pending_position or 0) > head for s in states.values()
        )
        if stale:
            log.warning("views_reset", views=self.views.location, reason="another log's views")
            await self.views.transact(partial(reset_all, list(self.projections.values())))
        meta = {"log_store_id": log_id, "schema_version": str(VIEWS_SCHEMA_VERSION)}

        def open_views() -> Tx[dict[str, str]]:
            # One transaction, every new projection's tables in one request.
            yield from write_meta(meta)
            return (yield from ensure_projections(list(self.projections.values()), _now_us()))

        actions = await self.views.transact(open_views)
        outdated = [name for name, action in actions.items() if action == "outdated"]
        await self.refresh()
        if auto_rebuild:
            for name in outdated:
                state = self._states[name]
                log.info(
                    "projection_version_changed",
                    projection=name,
                    stored=state.version,
                    code=self.projections[name].version,
                )
            await self._rebuild_selected([self.projections[n] for n in outdated], progress)
        return outdated if auto_rebuild else []

    # -- applying --------------------------------------------------------------

    def _prepare(
        self,
        rows: Sequence[RowTuple],
        targets: Sequence[Projection],
        after: dict[str, int],
        *,
        pending: bool,
        fold: bool = False,
    ) -> _Prepared:
        """Decode a chunk once and turn it into each target projection's work.

        ``after`` holds each projection's position before this chunk; events at
        or below it are left out (the transaction re-checks against the
        checkpoint it reads, so a stale ``after`` can never double-apply).
        With ``fold``, a projection that has a fold (:mod:`projections.fold`)
        gets its events decoded, not their ops: the transaction folds them.
        """
        first, last = rows[0][0], rows[-1][0]
        targets = [p for p in targets if after[p.name] < last]
        prepared = _Prepared(first, last, [], pending)
        if not targets:
            return prepared
        works = [ProjectionWork(p, fold=folder_for(p) if fold else None) for p in targets]
        handled = [self._handled_types[p.name] for p in targets]
        afters = [after[p.name] for p in targets]
        # Per target: its work, where its events go, its position, the event
        # classes its fold takes (None: it takes ops), and its handlers by event
        # class when it keeps Projection.ops (looked up here, not through a method
        # call per event and projection: most events concern one or two).
        lanes = [
            (
                work,
                work.events.append,
                floor,
                None if work.fold is None else work.projection._handlers,
                work.projection._handlers if type(work.projection).ops is Projection.ops else None,
                work.projection,
            )
            for work, floor in zip(works, afters, strict=True)
        ]
        codec = self.store.codec
        # Payloads at their type's current version (nearly all) decode with their
        # typed decoder alone, as read_all does; the rest through the codec.
        current = {t: (v, d) for (t, v), d in codec.current_decoders().items()}.get
        unknown = (-1, None)
        errors = (msgspec.DecodeError, msgspec.ValidationError)
        render = not self.coalesce
        for row in rows:
            position = row[0]
            event_type, schema_version, data = row[4], row[5], row[8]
            try:
                version, decoder = current(event_type, unknown)
                if schema_version != version or decoder is None:
                    event = codec.decode(event_type, schema_version, data)
                else:
                    try:
                        event = decoder.decode(data)
                    except errors:
                        event = codec.decode(event_type, schema_version, data)
            except DecodeError as exc:
                for work, types, floor in zip(works, handled, afters, strict=True):
                    if position > floor and event_type in types:
                        work.events.append(EventWork(position, error=f"undecodable: {exc}"))
                continue
            kind = type(event)
            raw = isinstance(event, RawEvent)
            # The RecordedEvent and its context only for projections that take ops
            # (a fold reads the row), built once for all of them.
            recorded: RecordedEvent | None = None
            context: EventContext | None = None
            for work, append, floor, takes, handlers, projection in lanes:
                if position <= floor:
                    continue
                if raw:
                    append(EventWork(position, skipped=True))
                    continue
                if takes is not None:
                    if kind in takes:
                        work.folded.append((row, event))
                    continue
                handler = None
                if handlers is not None:
                    handler = handlers.get(kind)  # type: ignore[arg-type]
                    if handler is None:
                        continue  # not an event this projection handles
                if recorded is None:
                    recorded = recorded_event(row, event)
                    context = EventContext.of(recorded)
                assert context is not None
                ops: Sequence[Op | RowOp] | None
                try:
                    if handler is not None:
                        ops = list(handler(event, context))
                    else:
                        ops = projection.ops(recorded, context)
                    if ops is not None and render:
                        # Statements now, not at apply: a row op's dict would
                        # outlive its statement's parameter tuple by the chunk.
                        ops = to_sql_ops(ops, projection.tables)
                except Exception as exc:  # a handler bug stops this projection only
                    append(EventWork(position, error=f"{type(exc).__name__}: {exc}"))
                    continue
                if ops is not None:
                    append(EventWork(position, ops))
        prepared.work = works
        for projection in targets:
            after[projection.name] = last
        return prepared

    def _prepare_and_apply(
        self,
        rows: Sequence[RowTuple],
        targets: Sequence[Projection],
        after: dict[str, int],
        pending: bool,
        savepoints: bool = False,
    ) -> Tx[ApplyOutcome]:
        """The views transaction for one chunk: prepare its work, then apply it.

        Preparing inside the transaction body runs it on the views store's own
        thread (SQLite) instead of beside it: two threads taking turns on the
        GIL around every short SQLite call made catch-up three times slower.
        """
        # The cyclic collector paused for the chunk: it holds tens of thousands of
        # new long-lived objects (events, ops, rows) that make no cycles, and
        # rescanning them again and again was half of preparing a chunk.
        enabled = gc.isenabled()
        gc.disable()
        try:
            # A retry (savepoints) takes the per-event path, which pins a failing event.
            fold = self.fold and not savepoints
            prepared = self._prepare(rows, targets, after, pending=pending, fold=fold)
            if not prepared.work:
                return ApplyOutcome()
            outcome = yield from apply_batch(
                prepared.work,
                prepared.first,
                prepared.last,
                pending=pending,
                now_us=_now_us(),
                savepoints=savepoints,
                coalesce=self.coalesce,
                indexed=self._indexed_generations,
            )
        finally:
            if enabled:
                gc.enable()
        return outcome

    async def _apply_chunk(
        self,
        rows: Sequence[RowTuple],
        targets: Sequence[Projection],
        after: dict[str, int],
        pending: bool,
    ) -> ApplyOutcome:
        """Apply one chunk of the log in one views transaction; note where each projection is."""
        before = dict(after)

        def attempt(savepoints: bool) -> Callable[[], Tx[ApplyOutcome]]:
            def body() -> Tx[ApplyOutcome]:
                # The views store may run a transaction again (savepoints, a lost
                # connection): each run starts from the same positions.
                after.clear()
                after.update(before)
                return self._prepare_and_apply(rows, targets, after, pending, savepoints)

            return body

        try:
            outcome: ApplyOutcome = await self.views.transact(attempt(False))
        except RetryWithSavepoints:
            outcome = await self.views.transact(attempt(True))
        self._indexed_generations |= outcome.indexed
        for name, position in outcome.positions.items():
            state = self._states[name]
            if pending:
                state.pending_position = position
            else:
                state.position = position
        for name, faults in outcome.faults.items():
            for position, reason in faults:
                log.warning(
                    "projection_event_not_applied",
                    projection=name,
                    position=position,
                    reason=reason,
                    rebuild=pending,
                )
        for name, (position, error) in outcome.failed.items():
            log.error("projection_failed", projection=name, position=position, error=error)
            if not pending:
                state = self._states[name]
                state.status, state.error, state.error_position = "failed", error, position
        if outcome.behind:
            await self.refresh()
        self._signal()
        return outcome

    def _maybe_snapshot(self, position: int) -> None:
        """Start a snapshot for as-of when one is due and every projection is live there.

        The views store copies beside the next chunks (``start_snapshot``) and
        keeps the copy only if every projection stands live at one position in
        it; the check here only saves a copy that could not be kept.
        """
        snapshots = self.snapshots
        if snapshots is None or not snapshots.due(position):
            return
        if len(self._live()) != len(self.projections) or any(
            self._states[name].position != position for name in self.projections
        ):
            return  # a failed, outdated or lagging projection: no snapshot of that
        start = getattr(self.views, "start_snapshot", None)
        if start is not None:
            start(snapshots, {name: p.version for name, p in self.projections.items()})

    def _targets(self, rebuilding: Sequence[Projection] | None) -> list[Projection]:
        return list(rebuilding) if rebuilding is not None else self._live()

    async def _apply_rows(
        self, rows: Sequence[RowTuple], *, rebuilding: Projection | None = None
    ) -> ApplyOutcome:
        pending = rebuilding is not None
        targets = self._targets(None if rebuilding is None else [rebuilding])
        after = {p.name: self._position(p.name, pending=pending) for p in targets}
        return await self._apply_chunk(rows, targets, after, pending)

    async def _run_to(
        self,
        target: int,
        *,
        rebuilding: Sequence[Projection] | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Apply the log up to ``target`` in chunks, one views transaction each.

        ``rebuilding``: fill these projections' pending generations instead of
        the live ones (one read of the log feeds them all).
        """
        pending = rebuilding is not None
        while True:
            targets = self._targets(rebuilding)
            if not targets:
                return
            after = {p.name: self._position(p.name, pending=pending) for p in targets}
            start = min(after.values()) + 1
            if pending and progress is not None:
                # A rebuild is long work: its bar shows from the start, not after
                # its first chunk (of up to 50,000 events), even with nothing left.
                progress(min(start - 1, target), target)
            if start > target:
                return
            failed: ApplyOutcome | None = None
            backlog = target - start + 1 > self.batch_size
            async for rows in self.store.read_chunks(
                start,
                to_position=target,
                chunk_size=self.backlog_batch_size if backlog else self.batch_size,
            ):
                outcome = await self._apply_chunk(rows, targets, after, pending)
                if not pending:
                    self._maybe_snapshot(rows[-1][0])
                if progress is not None:
                    progress(rows[-1][0], target)
                if rebuilding is not None and any(
                    p.name not in outcome.positions for p in rebuilding
                ):
                    # A pending generation is gone (another process swapped it in or
                    # replaced it): reading on would apply nothing; rebuild() decides.
                    return
                if outcome.behind or (pending and outcome.failed):
                    failed = outcome
                    break
            if failed is None:
                return
            for projection in rebuilding or ():
                if projection.name in failed.failed:
                    position, error = failed.failed[projection.name]
                    raise ProjectionFailedError(projection.name, position, error)

    async def catch_up(
        self, *, to_position: int | None = None, progress: ProgressCallback | None = None
    ) -> int:
        """Apply the log up to ``to_position`` (default: the head) to every live projection.

        Returns the position caught up to.
        """
        if not self._states:
            await self.refresh()
        target = await self.store.head() if to_position is None else to_position
        await self._run_to(target, progress=progress)
        await self._ensure_indexes()
        return target

    async def _ensure_indexes(self) -> None:
        """Once per runner: build the indexes a first catch-up's bulk load left out."""
        missing = [p for p in self._live() if p.name not in self._indexed]
        if missing and self.build_indexes:
            await self.views.transact(partial(ensure_indexes, missing))
            self._indexed.update(p.name for p in missing)

    async def follow(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Catch up, then apply new events as they are appended, until cancelled."""
        await self.catch_up()
        self._following = True
        task_status.started()
        try:
            live = self._live()
            start = min((self._states[p.name].position for p in live), default=0) + 1
            async for rows in self.store.follow(start, chunk_size=self.batch_size):
                outcome = await self._apply_rows(rows)
                if outcome.behind:
                    await self.catch_up(to_position=rows[-1][0])
        finally:
            self._following = False

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Return once every live projection has applied ``position`` (read-your-writes).

        Raises ViewsTimeoutError after ``timeout`` seconds, and ProjectionFailedError
        when a projection stopped at or before ``position``.
        """
        try:
            with anyio.fail_after(timeout):
                while True:
                    advanced = self._advanced
                    for name, state in self._states.items():
                        if (
                            state.status == "failed"
                            and state.error_position is not None
                            and state.error_position <= position
                        ):
                            raise ProjectionFailedError(name, state.error_position, state.error)
                    if all(self._states[p.name].position >= position for p in self._live()):
                        return
                    if self._following:
                        await advanced.wait()
                    else:
                        await self.catch_up(to_position=position)
        except TimeoutError as exc:
            raise ViewsTimeoutError(
                f"the views did not reach position {position} within {timeout:g} s"
            ) from exc

    # -- rebuilding --------------------------------------------------------------

    def _select(self, name: str | None) -> list[Projection]:
        if name is None:
            return list(self.projections.values())
        if name not in self.projections:
            known = ", ".join(sorted(self.projections))
            raise UnknownProjectionError(f"no projection named {name!r} (known: {known})")
        return [self.projections[name]]

    async def rebuild(
        self, name: str | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        """Refill a projection (or all) from position 1 into new tables, then swap them in.

        Readers keep the old tables until the swap, which is one transaction: they
        never see an empty or half-built view. A rebuild interrupted (a crash, a
        cancel) resumes where it stopped; one that hits a handler error is
        dropped, leaving the live tables as they were, and raises
        ProjectionFailedError.

        Several projections (all, by default) are filled by one read of the log
        (:meth:`_fill_together`): one at a time, a rebuild of all read the whole
        log once per projection. Each is then swapped in on its own, in order,
        as before.
        """
        await self._rebuild_selected(self._select(name), progress)

    async def _rebuild_selected(
        self, selected: Sequence[Projection], progress: ProgressCallback | None
    ) -> None:
        if len(selected) > 1:
            await self._fill_together(selected, progress)
        for index, projection in enumerate(selected):
            started = time.perf_counter()
            state: ProjectionState = await self._begin_rebuild(projection)
            self._states[projection.name] = state
            log.info(
                "rebuild_started",
                projection=projection.name,
                version=projection.version,
                resume_from=state.pending_position,
            )
            try:
                await self._rebuild_until_swapped(projection, state, progress)
            except ProjectionFailedError:
                # The later ones were begun by the shared fill only: a rebuild
                # that stops here leaves them as one that never began them.
                for dropped in selected[index:]:
                    await self.views.transact(partial(abort_rebuild, dropped))
                await self.refresh()
                raise
            # The swap committed: bookkeeping finishes even if the caller is being
            # cancelled, so a caller that gets here knows its rebuild is live.
            with anyio.CancelScope(shield=True):
                await self.refresh()
                self._signal()
                if self.snapshots is not None:
                    # They hold the old version: as-of would skip them anyway. A copy
                    # still under way (started before the swap) lands first.
                    wait = getattr(self.views, "wait_snapshot", None)
                    if wait is not None:
                        await wait()
                    await anyio.to_thread.run_sync(self.snapshots.discard)
            log.info(
                "rebuild_finished",
                projection=projection.name,
                position=self._states[projection.name].position,
                seconds=round(time.perf_counter() - started, 3),
            )

    async def _begin_rebuild(self, projection: Projection) -> ProjectionState:
        """Begin (or resume) the green generation of ``projection``.

        Its generation number may be one a dropped rebuild used before, so
        what this runner knew of that number's indexes is forgotten.
        """
        state: ProjectionState = await self.views.transact(partial(begin_rebuild, projection))
        self._indexed_generations = {
            pair for pair in self._indexed_generations if pair[0] != projection.name
        }
        return state

    async def _fill_together(
        self, projections: Sequence[Projection], progress: ProgressCallback | None
    ) -> None:
        """Begin (or resume) each rebuild, then fill every pending generation in one pass.

        Best effort: whatever stops the shared pass (a failing event, a
        generation another process swapped in or replaced) is met again, and
        handled, by the projection's own pass in :meth:`rebuild`, which then
        only resumes from where this one left it.
        """
        for projection in projections:
            state = await self._begin_rebuild(projection)
            self._states[projection.name] = state
        with contextlib.suppress(ProjectionFailedError):
            await self._run_to(await self.store.head(), rebuilding=projections, progress=progress)

    async def _rebuild_until_swapped(
        self, projection: Projection, state: ProjectionState, progress: ProgressCallback | None
    ) -> None:
        """Fill the pending generation and swap it in; terminate whatever other processes do.

        Several processes may rebuild one projection at once (two ``projections
        rebuild``, readers finding a rebuild left pending by a killed process,
        version-bump rebuilds): they share the pending generation (each batch is
        exactly once under the write lock), and after a failed swap this looks
        at what happened instead of retrying blindly:

        - our generation is still pending: the live one got ahead, catch up again;
        - our generation (or a later one of our version) is live: another process
          swapped it in, and the rebuild is done;
        - a later generation of our version is pending: join it;
        - otherwise (dropped, or replaced by another version's rebuild): start a
          new generation, at most :data:`MAX_REBUILD_RESTARTS` times.
        """
        name = projection.name
        generation = state.pending_generation
        restarts = 0
        while True:
            await self._run_to(await self.store.head(), rebuilding=[projection], progress=progress)
            swapped = await self.views.transact(
                partial(swap_in_rebuild, projection, _now_us(), generation)
            )
            if swapped:
                return
            now = (await self.refresh()).get(name)
            if now is not None and now.pending_generation == generation:
                continue
            if (
                now is not None
                and generation is not None
                and now.version == projection.version
                and now.generation >= generation
            ):
                log.info("rebuild_swapped_by_another", projection=name, generation=now.generation)
                return
            if (
                now is not None
                and now.pending_generation is not None
                and now.pending_version == projection.version
            ):
                generation = now.pending_generation
                continue
            restarts += 1
            if restarts > MAX_REBUILD_RESTARTS:
                raise RebuildConflictError(
                    f"projection {name!r}: another process replaced this rebuild "
                    f"{MAX_REBUILD_RESTARTS} times (is a metaledger of another version "
                    "rebuilding the same views?); the live views are unchanged"
                )
            if now is None:
                await self.views.transact(partial(ensure_projection, projection, _now_us()))
            state = await self._begin_rebuild(projection)
            self._states[name] = state
            generation = state.pending_generation
            log.info("rebuild_restarted", projection=name, generation=generation)

    # -- reporting ---------------------------------------------------------------

    async def faults(self) -> list[ProjectionFault]:
        """The events the projections could not apply (and went past), in log order."""
        return [
            ProjectionFault(projection=name, position=position, reason=reason, recorded_at_us=at)
            for name, position, reason, at in await self.views.read(read_faults)
        ]

    async def status(self) -> list[ProjectionStatus]:
        """Every projection's position, lag behind the log, version, state, last error and
        the events it could not apply."""
        head = await self.store.head()
        states = await self.refresh()
        faults: dict[str, list[ProjectionFault]] = {}
        for name, position, reason, at_us in await self.views.read(read_faults):
            faults.setdefault(name, []).append(
                ProjectionFault(
                    projection=name, position=position, reason=reason, recorded_at_us=at_us
                )
            )
        report = []
        for name, projection in self.projections.items():
            state = states.get(name)
            if state is None:
                continue
            report.append(
                ProjectionStatus(
                    name=name,
                    version=state.version,
                    code_version=projection.version,
                    position=state.position,
                    lag=max(0, head - state.position),
                    state=state.status,
                    error=state.error,
                    error_position=state.error_position,
                    skipped=state.skipped,
                    rebuild_version=state.pending_version,
                    rebuild_position=state.pending_position,
                    faults=tuple(faults.get(name, ())),
                )
            )
        return report

    def positions(self) -> dict[str, Any]:
        """The cached checkpoint of each projection (for tests and diagnostics)."""
        return {name: state.position for name, state in self._states.items()}
