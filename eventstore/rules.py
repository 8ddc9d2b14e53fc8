"""The domain rules: what the log may hold, checked on every path into it.

The write API (``workspace.py``, ``runs.py``), ``events append``, ``import`` and
``copy`` all refuse what these rules forbid, so no event that a projection
cannot apply (a second ``run.started`` of a run, a step in a run never
started, an entity id used twice...) ever reaches the log through them. One
module holds the rules; each path only gathers the state they need:

- :class:`DomainState` is the fold the rules read: the workspace (components,
  stacks, the active stack), the runs the batch touches, which run started
  each step run, and which artifacts exist.
- :func:`check_event` raises a :class:`~eventstore.errors.LifecycleError`
  subclass when one event may not follow that state; :func:`fold_event`
  applies an event (leniently: it never raises).
- :class:`RuleChecker` checks a sequence of events in order, folding each one
  it accepts, so a batch may register a stack and make it active at once.
- :func:`load_state` reads from a store exactly the state a batch needs;
  importers fold the rows they copy instead.
- :func:`check_row` checks one stored row the way ``events append`` checks a
  line (event id, stream id, time, payload), for ``import`` and ``copy``.

``Log.append`` itself stays the raw log API: it checks encoding, versions and
ids, not these rules (the views record, and skip, anything it lets through:
see ``docs/projections.md``).

Size: every rule in one module (~500 lines), so that no path into the log can
miss one.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

import msgspec

from .envelope import Metadata, RawEvent, StoredEvent
from .errors import (
    AlreadyExistsError,
    DecodeError,
    InUseError,
    InvalidEventError,
    InvalidStateError,
    NotFoundError,
)
from .events import (
    ArtifactConsumed,
    ArtifactProduced,
    ComponentDeleted,
    ComponentRegistered,
    ComponentRenamed,
    ComponentUpdated,
    Event,
    MetadataLogged,
    RunDeleted,
    RunFinished,
    RunStackDescribed,
    RunStarted,
    StackDeleted,
    StackRegistered,
    StackRenamed,
    StackUpdated,
    StepFinished,
    StepStarted,
    WorkspaceActiveStackSet,
)
from .fold_states import REQUIRED_STACK_COMPONENTS, RunState, WorkspaceState
from .stream_ids import WORKSPACE_STREAM, artifact_event_id_text, run_stream

if TYPE_CHECKING:
    from .codec import EventCodec
    from .log import Log
    from .store import EventStore

__all__ = [
    "MAX_FUTURE_US",
    "DomainState",
    "RuleChecker",
    "check_event",
    "check_events",
    "check_home",
    "check_row",
    "check_stream_id",
    "fold_event",
    "home_stream",
    "load_state",
    "step_run_owner",
]

#: How far past this machine's clock a row's ``recorded_at`` may lie (one day):
#: a later time would pin every later append's time, which never decreases.
MAX_FUTURE_US = 86_400_000_000
#: 2000-01-01T00:00:00Z: no metaledger log holds an earlier event.
_EARLIEST_US = 946_684_800_000_000
_metadata_decoder = msgspec.msgpack.Decoder(Metadata)
_WORKSPACE_EVENTS = (
    ComponentRegistered,
    ComponentUpdated,
    ComponentRenamed,
    ComponentDeleted,
    StackRegistered,
    StackUpdated,
    StackRenamed,
    StackDeleted,
    WorkspaceActiveStackSet,
)


@functools.cache
def _workspace_class(cls: type) -> bool:
    # Once per class: the rules ask three times per event, and ``isinstance``
    # against the nine workspace classes walks all nine for every run event.
    return issubclass(cls, _WORKSPACE_EVENTS)


def home_stream(event: Event) -> str | None:
    """The stream the write API keeps ``event`` in (None for an event without a fixed home)."""
    if _workspace_class(type(event)):
        return WORKSPACE_STREAM
    run_id = getattr(event, "run_id", None)
    return run_stream(run_id) if isinstance(run_id, UUID) else None


def check_home(stream_id: str, event: Event) -> None:
    """Raise InvalidStateError when ``event`` is not in the stream the write API keeps it in."""
    home = home_stream(event)
    if home is not None and stream_id != home:
        event_type = event.event_type()
        article = "an" if event_type[:1] in "aeiou" else "a"
        raise InvalidStateError(
            f"{article} {event_type} event belongs in stream {home!r}, not {stream_id!r}"
        )


def check_stream_id(stream_id: object) -> None:
    """Raise InvalidEventError unless ``stream_id`` is a non-empty string of at most 255."""
    if not isinstance(stream_id, str) or not stream_id or len(stream_id) > 255:
        raise InvalidEventError("stream_id must be a non-empty string of at most 255 characters")


@dataclass(slots=True)
class DomainState:
    """The state the rules check events against.

    ``runs`` holds the runs a batch touches (a run missing from it was never
    started); ``step_runs`` maps each step run id to the run that started it
    and ``artifacts`` holds the produced artifact ids, for at least every id
    the batch names.
    """

    workspace: WorkspaceState
    runs: dict[UUID, RunState] = field(default_factory=dict)
    step_runs: dict[UUID, UUID] = field(default_factory=dict)
    artifacts: set[UUID] = field(default_factory=set)
    #: Stacks ever registered, deleted or not (a run may name a stack deleted since).
    known_stacks: set[UUID] = field(default_factory=set)

    @classmethod
    def empty(cls) -> DomainState:
        """The state of an empty log."""
        return cls(WorkspaceState())

    def run(self, run_id: UUID) -> RunState:
        """The run's state (a fresh, unstarted one when the run is unknown)."""
        state = self.runs.get(run_id)
        if state is None:
            state = self.runs[run_id] = RunState(run_id)
        return state


def fold_event(state: DomainState, event: Event, version: int | None = None) -> None:
    """Apply one event to ``state``; never raises (a stored log is folded as it is)."""
    if _workspace_class(type(event)):
        workspace = state.workspace
        workspace.apply(event, workspace.version + 1 if version is None else version)
        if isinstance(event, StackRegistered):
            state.known_stacks.add(event.stack_id)
        return
    run_id = getattr(event, "run_id", None)
    if not isinstance(run_id, UUID):
        return
    run = state.run(run_id)
    run.apply(event, run.version + 1 if version is None else version)
    if isinstance(event, RunStackDescribed):
        # A run recorded away from its stack's home store names a stack this
        # store's workspace never saw: the description makes it known here.
        state.known_stacks.add(event.stack_id)
    elif isinstance(event, StepStarted):
        state.step_runs.setdefault(event.step_run_id, run_id)
    elif isinstance(event, ArtifactProduced):
        state.artifacts.add(event.artifact_id)


def _kind(component_type: str) -> str:
    return component_type.replace("_", " ")


def _live_component(state: WorkspaceState, component_id: UUID) -> None:
    component = state.components.get(component_id)
    if component is None or component.deleted:
        raise NotFoundError("component", str(component_id))


def _live_stack(state: WorkspaceState, stack_id: UUID) -> None:
    stack = state.stacks.get(stack_id)
    if stack is None or stack.deleted:
        raise NotFoundError("stack", str(stack_id))


def _stack_components(state: WorkspaceState, components: dict[str, UUID]) -> None:
    for component_type, component_id in components.items():
        component = state.components.get(component_id)
        if component is None or component.deleted:
            raise NotFoundError(_kind(component_type), str(component_id))
        if component.type != component_type:
            raise InvalidStateError(
                f"component {component_id} is a {_kind(component.type)}, "
                f"not a {_kind(component_type)}"
            )
    missing = [t for t in REQUIRED_STACK_COMPONENTS if t not in components]
    if missing:
        raise InvalidStateError(
            f"a stack needs a component of each type {', '.join(REQUIRED_STACK_COMPONENTS)}; "
            f"missing: {', '.join(missing)}"
        )


def _check_workspace(state: DomainState, event: Event) -> None:
    workspace = state.workspace
    match event:
        case ComponentRegistered():
            if event.component_id in workspace.components:
                raise AlreadyExistsError(f"component id {event.component_id} is already used")
            if any(c.name == event.name for c in workspace.live_components(event.type)):
                raise AlreadyExistsError(
                    f"a {_kind(event.type)} named {event.name!r} already exists"
                )
        case ComponentUpdated():
            _live_component(workspace, event.component_id)
        case ComponentRenamed():
            _live_component(workspace, event.component_id)
            kind = workspace.components[event.component_id].type
            if any(c.name == event.name for c in workspace.live_components(kind)):
                raise AlreadyExistsError(f"a {_kind(kind)} named {event.name!r} already exists")
        case ComponentDeleted():
            _live_component(workspace, event.component_id)
            users = workspace.stacks_using(event.component_id)
            if users:
                raise InUseError(
                    f"component {event.component_id} is used by stack(s) {', '.join(users)}"
                )
        case StackRegistered():
            if event.stack_id in workspace.stacks:
                raise AlreadyExistsError(f"stack id {event.stack_id} is already used")
            if any(s.name == event.name for s in workspace.live_stacks()):
                raise AlreadyExistsError(f"a stack named {event.name!r} already exists")
            _stack_components(workspace, event.components)
        case StackUpdated():
            _live_stack(workspace, event.stack_id)
            _stack_components(workspace, event.components)
        case StackRenamed():
            _live_stack(workspace, event.stack_id)
            if any(s.name == event.name for s in workspace.live_stacks()):
                raise AlreadyExistsError(f"a stack named {event.name!r} already exists")
        case StackDeleted():
            _live_stack(workspace, event.stack_id)
            if workspace.active_stack_id == event.stack_id:
                raise InUseError(f"stack {event.stack_id} is the active stack")
        case WorkspaceActiveStackSet():
            _live_stack(workspace, event.stack_id)
        case _:
            pass


def _started(run: RunState) -> None:
    if not run.started:
        raise NotFoundError("run", str(run.run_id))


def _open(run: RunState) -> None:
    _started(run)
    if run.deleted:
        raise InvalidStateError(f"run {run.run_id} was deleted")
    if run.finished:
        raise InvalidStateError(f"run {run.run_id} already finished ({run.status})")


def _running_step(run: RunState, step_run_id: UUID) -> None:
    step = run.steps.get(step_run_id)
    if step is None:
        raise NotFoundError("step run", str(step_run_id))
    if step.status is not None:
        raise InvalidStateError(f"step run {step_run_id} already finished ({step.status})")


def _check_run(state: DomainState, event: Event, event_id: str | None) -> None:
    run_id: UUID = getattr(event, "run_id")  # noqa: B009 (every run event has one)
    run = state.runs.get(run_id) or state.run(run_id)
    match event:
        case RunStackDescribed():
            if run.started:
                raise InvalidStateError(
                    f"run {run_id} already started: its stack is described before run.started"
                )
        case RunStarted():
            # ``started``, not the stream's version: a run.stack_described may precede.
            if run.started:
                raise AlreadyExistsError(f"run {run_id} already exists")
            if event.stack_id is not None and event.stack_id not in state.known_stacks:
                raise NotFoundError("stack", str(event.stack_id))
        case StepStarted():
            _open(run)
            owner = state.step_runs.get(event.step_run_id)
            if owner is not None or event.step_run_id in run.steps:
                where = "" if owner in (None, run_id) else f" (in run {owner})"
                raise AlreadyExistsError(f"step run {event.step_run_id} already exists{where}")
        case ArtifactConsumed():
            _open(run)
            _running_step(run, event.step_run_id)
            if event.artifact_id not in state.artifacts:
                raise NotFoundError("artifact", str(event.artifact_id))
        case ArtifactProduced():
            _open(run)
            _running_step(run, event.step_run_id)
            expected = artifact_event_id_text(event.artifact_id)
            if event_id is not None and event_id != expected:
                raise InvalidStateError(
                    f"artifact {event.artifact_id} must be produced under event id {expected} "
                    f"(artifact_event_id), not {event_id}"
                )
            if event.artifact_id in state.artifacts:
                raise AlreadyExistsError(f"artifact {event.artifact_id} already exists")
        case MetadataLogged():
            _started(run)
            if run.deleted:
                raise InvalidStateError(f"run {run_id} was deleted")
            if event.step_run_id is not None and event.step_run_id not in run.steps:
                raise NotFoundError("step run", str(event.step_run_id))
        case StepFinished():
            _open(run)
            _running_step(run, event.step_run_id)
        case RunFinished():
            _open(run)
            running = sorted(s.name for s in run.steps.values() if s.status is None)
            if running:
                raise InvalidStateError(
                    f"run {run_id} still has running steps: {', '.join(running)}"
                )
        case RunDeleted():
            _started(run)
            if run.deleted:
                raise InvalidStateError(f"run {run_id} was already deleted")
        case _:
            pass


def check_event(
    state: DomainState,
    stream_id: str,
    event: Event | RawEvent,
    event_id: str | None = None,
    *,
    home_checked: bool = False,
) -> None:
    """Raise a LifecycleError when ``event`` may not be appended to ``stream_id`` in ``state``.

    ``event_id`` (canonical text), when given, is checked where the rules fix it
    (an ``artifact.produced`` lives under :func:`~eventstore.artifact_event_id`).
    An event of a type this release does not know (a RawEvent) passes: the rules
    cannot judge it and the views skip it. ``home_checked`` says the caller has
    already checked the event's stream with :func:`check_home` (``events append``
    checks each line alone first).
    """
    if isinstance(event, RawEvent):
        return
    if not home_checked:
        check_home(stream_id, event)
    if _workspace_class(type(event)):
        _check_workspace(state, event)
    elif isinstance(getattr(event, "run_id", None), UUID):
        _check_run(state, event, event_id)


class RuleChecker:
    """Checks events in order against a state, folding each one it accepts.

    ``check`` raises; the state is left as it was before the refused event, so a
    caller reporting every fault (``events append``) can go on with the next one.
    """

    def __init__(self, state: DomainState | None = None) -> None:
        self.state = state if state is not None else DomainState.empty()

    def check(
        self,
        stream_id: str,
        event: Event | RawEvent,
        event_id: str | None = None,
        *,
        home_checked: bool = False,
    ) -> None:
        """Check one event, then fold it (``home_checked``: see :func:`check_event`)."""
        check_event(self.state, stream_id, event, event_id, home_checked=home_checked)
        if not isinstance(event, RawEvent):
            fold_event(self.state, event)

    def fold(self, event: Event | RawEvent, version: int | None = None) -> None:
        """Fold an event already in the log, without judging it."""
        if not isinstance(event, RawEvent):
            fold_event(self.state, event, version)

    def check_all(self, items: Sequence[tuple[str, Event, str | None]]) -> None:
        """Check a batch (stream id, event, event id) in order; nothing folds if one fails."""
        if len(items) == 1:  # the common case: no fold, so no copy
            check_event(self.state, *items[0])
            fold_event(self.state, items[0][1])
            return
        trial = RuleChecker(copy.deepcopy(self.state))
        for stream_id, event, event_id in items:
            trial.check(stream_id, event, event_id)
        self.state = trial.state


def check_events(state: DomainState, items: Sequence[tuple[str, Event, str | None]]) -> None:
    """Check a batch against ``state`` without changing it (the write API's guard)."""
    if len(items) == 1:
        check_event(state, *items[0])
    else:
        RuleChecker(copy.deepcopy(state)).check_all(items)


async def step_run_owner(log: Log | EventStore, step_run_id: UUID) -> UUID | None:
    """The run that started ``step_run_id``, or None (a scan of the ``step.started`` events)."""
    async for recorded in log.read_all(types=["step.started"]):
        if isinstance(recorded.event, StepStarted) and recorded.event.step_run_id == step_run_id:
            return recorded.event.run_id
    return None


async def load_state(
    log: Log | EventStore,
    items: Sequence[tuple[str, Event]],
    *,
    workspace: WorkspaceState | None = None,
) -> DomainState:
    """Read from ``log`` the state the rules need to judge ``items`` (stream id, event).

    Folds the workspace stream (or copies ``workspace``, an up-to-date fold) and
    the stream of every run the items touch, finds the run of every step run id
    they start, and looks up every artifact they name by its derived event id.
    """
    if workspace is None:
        folded = WorkspaceState()
        async for recorded in log.read_stream(WORKSPACE_STREAM):
            if isinstance(recorded.event, Event):
                folded.apply(recorded.event, recorded.stream_version)
            else:
                folded.version = recorded.stream_version
    else:
        folded = copy.deepcopy(workspace)
    state = DomainState(folded, known_stacks=set(folded.stacks))
    run_ids = {e.run_id for _, e in items if isinstance(getattr(e, "run_id", None), UUID)}  # type: ignore[attr-defined]
    # One bulk probe first: most runs of a large input are new, and reading an
    # empty stream is a query each.
    existing = await log.stream_versions(run_stream(run_id) for run_id in run_ids)
    for run_id in run_ids:
        run = RunState(run_id)
        state.runs[run_id] = run
        if run_stream(run_id) not in existing:
            continue
        async for recorded in log.read_stream(run_stream(run_id)):
            if isinstance(recorded.event, Event):
                run.apply(recorded.event, recorded.stream_version)
            else:
                run.version = recorded.stream_version
    starts = {e.step_run_id for _, e in items if isinstance(e, StepStarted)}
    if starts:
        async for recorded in log.read_all(types=["step.started"]):
            started = recorded.event
            if isinstance(started, StepStarted) and started.step_run_id in starts:
                state.step_runs.setdefault(started.step_run_id, started.run_id)
    named = {e.artifact_id for _, e in items if isinstance(e, ArtifactProduced | ArtifactConsumed)}
    ids = {artifact_id: artifact_event_id_text(artifact_id) for artifact_id in named}
    stored = await log.stored_by_event_ids(ids.values())
    for artifact_id, event_id in ids.items():
        row = stored.get(event_id)
        if row is not None and isinstance(log.decode_row(row).event, ArtifactProduced):
            state.artifacts.add(artifact_id)
    return state


def check_row(
    row: StoredEvent, codec: EventCodec, *, now_us: int | None = None
) -> Event | RawEvent:
    """Check one stored row as ``events append`` checks a line; return its decoded event.

    The event id must be a UUID in canonical text, the stream id a non-empty
    string of at most 255 characters, ``recorded_at`` between 2000 and a day past
    this machine's clock, positions and versions positive, the metadata a
    metadata map, and the payload must decode to its type at its schema version
    (a type or version this release does not know is kept raw, as the log keeps
    it). Raises InvalidEventError naming the fault.
    """
    try:
        canonical = str(UUID(row.event_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidEventError(f"event_id {row.event_id!r} is not a UUID") from None
    if canonical != row.event_id:
        raise InvalidEventError(f"event_id {row.event_id!r} is not in canonical form ({canonical})")
    check_stream_id(row.stream_id)
    if not row.type or len(row.type) > 255:
        raise InvalidEventError("type must be a non-empty string of at most 255 characters")
    if row.position < 1 or row.stream_version < 1 or row.schema_version < 1:
        raise InvalidEventError("position, stream_version and schema_version must be >= 1")
    now = time.time_ns() // 1000 if now_us is None else now_us
    if not _EARLIEST_US <= row.recorded_at_us <= now + MAX_FUTURE_US:
        raise InvalidEventError(
            f"recorded_at_us {row.recorded_at_us} is not a sane time (before 2000, or more "
            "than a day past this machine's clock)"
        )
    try:
        _metadata_decoder.decode(row.metadata)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidEventError(f"metadata: {exc}") from None
    try:
        event = codec.decode(row.type, row.schema_version, row.data)
    except DecodeError as exc:
        raise InvalidEventError(str(exc)) from None
    return event
