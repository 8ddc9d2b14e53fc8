"""The write API for pipeline runs, step runs, artifacts and metadata.

A run and all its steps live in one stream, ``run-<run_id>``: the run is the
consistency boundary for "a step belongs to a started, unfinished run" and
"a run or a step finishes once". A :class:`PipelineRun` handle keeps the run's
state, validates each command against it and appends with the version it
validated against; when another process appended in between, it catches up and
validates again. Within one process a handle's commands run one at a time.

Artifacts cross runs (one run produces, a later one consumes). An
``artifact.produced`` event is stored under an event id derived from the
artifact id, so "does this artifact exist?" is one indexed lookup, and an
artifact id can only ever be produced once.

Run names are unique among live runs. A ``run.started`` event is stored under an
event id derived from the run name and a generation (:func:`run_name_event_id`):
the log's unique event-id index is then the claim on the name, checked inside
the append's own transaction, so of two processes starting the same name at
once exactly one succeeds. Deleting a run frees its name: the next run of that
name takes the next generation.

Size: the run's fold, its handles (:class:`PipelineRun`, :class:`StepRun`) and the
commands that open them share one stream's state and retry loop; they stay in
one module (~690 lines): splitting them would pass that state between modules.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import anyio

from .envelope import NO_STREAM, AppendResult, NewEvent
from .errors import (
    AlreadyExistsError,
    ConcurrencyError,
    EventIdConflictError,
    InvalidEventError,
    InvalidStateError,
    NotFoundError,
    RunNameTakenError,
)
from .events import (
    ARTIFACT_TYPES,
    ArtifactConsumed,
    ArtifactProduced,
    Event,
    MetadataLogged,
    RunDeleted,
    RunFinished,
    RunStackDescribed,
    RunStarted,
    RunStatus,
    Scalar,
    StepFinished,
    StepStarted,
    StepStatus,
)
from .fold_states import RunState, StackState, StepState, WorkspaceState
from .log import Log
from .metadata_stores import describe_stack
from .rules import DomainState, check_events, step_run_owner
from .secret_masking import mask_uri_credentials
from .stream_ids import (
    ARTIFACT_NAMESPACE,
    RUN_NAME_NAMESPACE,
    artifact_event_id,
    run_name_event_id,
    run_stream,
)
from .workspace import WorkspaceCommands

__all__ = [
    "ARTIFACT_NAMESPACE",
    "RUN_NAME_NAMESPACE",
    "PipelineRun",
    "RunCommands",
    "RunState",
    "StepRun",
    "StepState",
    "artifact_event_id",
    "check_scalars",
    "run_name_event_id",
    "run_stream",
]

_RETRIES = 8
_MAX_ERROR = 4000


def _now() -> datetime:
    return datetime.now(UTC)


def describe_exception(exc: BaseException) -> str:
    """A one-line description of an exception for a step's or run's ``error``.

    A cancellation reads "cancelled" (its message names an internal cancel scope,
    meaningless to a reader), a Ctrl-C "interrupted (KeyboardInterrupt)".
    """
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR]


def check_scalars(values: Mapping[str, Any], what: str) -> dict[str, Scalar]:
    """``values`` as a dict, or InvalidEventError naming the first key whose value is no scalar.

    The codec would only say "expected bool | int | float | str | null at $.values[...]",
    which leaves the caller to guess which of their keys is wrong.
    """
    result: dict[str, Scalar] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise InvalidEventError(
                f"{what} keys must be strings; got {key!r} ({type(key).__name__})"
            )
        if not isinstance(value, str | int | float | bool | None):
            raise InvalidEventError(
                f"{what} {key!r} must be a str, int, float, bool or None, not "
                f"{type(value).__name__} ({_short_repr(value)})"
            )
        result[key] = value
    return result


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


Decide = Callable[[RunState], Sequence[Event | NewEvent]]
#: Given the workspace and a run's stack: the run commands of the store that
#: records that stack's runs, or None for this store (see ``EventStore._route``).
Router = Callable[[WorkspaceState, StackState], Awaitable["RunCommands | None"]]


class PipelineRun:
    """A handle on one pipeline run: start steps, log metadata, finish.

    Get one from ``store.start_run``, ``store.pipeline_run`` or ``store.get_run``.
    """

    def __init__(self, log: Log, state: RunState) -> None:
        self._log = log
        self._state = state
        self._stale = False
        self._lock = anyio.Lock()

    @property
    def run_id(self) -> UUID:
        """The run's id."""
        return self._state.run_id

    @property
    def stream_id(self) -> str:
        """The run's stream."""
        return run_stream(self._state.run_id)

    @property
    def state(self) -> RunState:
        """The run's state as this handle last saw it."""
        return self._state

    async def _reload(self) -> None:
        state = RunState(self._state.run_id)
        async for recorded in self._log.read_stream(self.stream_id):
            if isinstance(recorded.event, Event):
                state.apply(recorded.event, recorded.stream_version)
            else:
                state.version = recorded.stream_version
        self._state = state
        self._stale = False

    def _check_rules(
        self,
        items: Sequence[Event | NewEvent],
        artifacts: Sequence[UUID],
        step_runs: Mapping[UUID, UUID],
    ) -> None:
        """The domain rules (``eventstore.rules``), the guard every path into the log shares."""
        state = DomainState.empty()
        state.runs[self._state.run_id] = self._state
        state.artifacts.update(artifacts)
        state.step_runs.update(step_runs)
        check_events(
            state,
            [
                (self.stream_id, item.event, str(item.event_id))
                if isinstance(item, NewEvent)
                else (self.stream_id, item, None)
                for item in items
            ],
        )

    async def _command(
        self,
        decide: Decide,
        *,
        artifacts: Sequence[UUID] = (),
        step_runs: Mapping[UUID, UUID] | None = None,
    ) -> AppendResult:
        """Validate against the run's state and append; on a race catch up and retry.

        ``artifacts`` are artifact ids known to exist, ``step_runs`` step run ids
        known to be started elsewhere (step run id -> run id), for the rules.
        """
        async with self._lock:
            for _ in range(_RETRIES):
                if self._stale:
                    await self._reload()
                items = list(decide(self._state))
                self._check_rules(items, artifacts, step_runs or {})
                try:
                    result = await self._log.append(
                        self.stream_id, items, expected_version=self._state.version
                    )
                except ConcurrencyError:
                    self._stale = True
                    continue
                except EventIdConflictError as exc:
                    raise AlreadyExistsError(f"artifact already exists: {exc}") from exc
                except BaseException:
                    self._stale = True
                    raise
                if result.duplicate:
                    self._stale = True
                else:
                    first = result.stream_version - len(items) + 1
                    for offset, item in enumerate(items):
                        event = item.event if isinstance(item, NewEvent) else item
                        self._state.apply(event, first + offset)
                return result
            raise InvalidStateError(f"run {self.run_id} kept changing under this command")

    # -- steps -------------------------------------------------------------------

    async def start_step(
        self,
        name: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        upstream_steps: Sequence[str] = (),
        cache_key: str | None = None,
        step_run_id: UUID | None = None,
    ) -> StepRun:
        """Start a step run of this (started, unfinished) run."""
        elsewhere: dict[UUID, UUID] = {}
        if step_run_id is not None:  # a caller's own id may be taken by another run
            owner = await step_run_owner(self._log, step_run_id)
            if owner is not None:
                elsewhere[step_run_id] = owner
        step_run_id = step_run_id or uuid4()

        def decide(state: RunState) -> list[Event]:
            state.check_open()
            if step_run_id in state.steps:
                raise AlreadyExistsError(f"step run {step_run_id} already exists")
            return [
                StepStarted(
                    run_id=state.run_id,
                    step_run_id=step_run_id,
                    step_name=name,
                    upstream_steps=list(upstream_steps),
                    parameters=dict(parameters or {}),
                    cache_key=cache_key,
                    started_at=_now(),
                )
            ]

        await self._command(decide, step_runs=elsewhere)
        return StepRun(self, step_run_id, name)

    @contextlib.asynccontextmanager
    async def step(
        self,
        name: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        upstream_steps: Sequence[str] = (),
        cache_key: str | None = None,
        step_run_id: UUID | None = None,
    ) -> AsyncIterator[StepRun]:
        """Run a step: started on entry, completed on exit, failed (and re-raised) on error.

        A cancelled step is recorded as ``stopped``. A step the body finished
        itself (``cached``, ``skipped``...) is left as the body finished it.
        ``step_run_id`` as in :meth:`start_step` (default: a new one).
        """
        step = await self.start_step(
            name,
            parameters=parameters,
            upstream_steps=upstream_steps,
            cache_key=cache_key,
            step_run_id=step_run_id,
        )
        try:
            yield step
        except BaseException as exc:
            if not step.finished:
                status: StepStatus = "stopped" if _is_stop(exc) else "failed"
                with anyio.CancelScope(shield=True):
                    await step.finish(status, error=describe_exception(exc))
            raise
        if not step.finished:
            await step.finish("completed")

    async def log_metadata(
        self, values: Mapping[str, Scalar], *, step_run_id: UUID | None = None
    ) -> None:
        """Log key/value metadata on the run, or on one of its steps.

        Values are str, int, float, bool or None; any other raises InvalidEventError
        naming the key.
        """
        values = check_scalars(values, "metadata")

        def decide(state: RunState) -> list[Event]:
            if state.version == 0:
                raise NotFoundError("run", str(state.run_id), by_id=True)
            if state.deleted:
                raise InvalidStateError(f"run {state.run_name!r} was deleted")
            if step_run_id is not None and step_run_id not in state.steps:
                raise NotFoundError("step run", str(step_run_id), by_id=True)
            return [
                MetadataLogged(run_id=state.run_id, step_run_id=step_run_id, values=dict(values))
            ]

        await self._command(decide)

    async def finish(
        self,
        status: RunStatus = "completed",
        *,
        error: str | None = None,
        stop_running_steps: bool = False,
    ) -> None:
        """End the run. Refused while steps still run, unless ``stop_running_steps``."""

        def decide(state: RunState) -> list[Event]:
            state.check_open()
            running = [s for s in state.steps.values() if s.status is None]
            if running and not stop_running_steps:
                names = ", ".join(sorted(s.name for s in running))
                raise InvalidStateError(f"run {state.run_name!r} still has running steps: {names}")
            now = _now()
            events: list[Event] = [
                StepFinished(
                    run_id=state.run_id,
                    step_run_id=s.step_run_id,
                    status="stopped",
                    finished_at=now,
                    error="the run finished while the step was running",
                )
                for s in running
            ]
            events.append(
                RunFinished(run_id=state.run_id, status=status, finished_at=now, error=error)
            )
            return events

        await self._command(decide)


def _is_stop(exc: BaseException) -> bool:
    return isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt)


class StepRun:
    """A handle on one step run: consume and produce artifacts, log metadata, finish."""

    def __init__(self, run: PipelineRun, step_run_id: UUID, name: str) -> None:
        self.run = run
        self.step_run_id = step_run_id
        self.name = name

    @property
    def finished(self) -> bool:
        """Whether the step has ended (as far as this process knows)."""
        step = self.run.state.steps.get(self.step_run_id)
        return step is not None and step.status is not None

    async def consume(self, input_name: str, artifact_id: UUID) -> None:
        """Record that this step read an existing artifact as input ``input_name``."""
        known_here = artifact_id in self.run.state.artifacts
        if not known_here:
            produced = await self.run._log.get_event(artifact_event_id(artifact_id))
            if produced is None or not isinstance(produced.event, ArtifactProduced):
                raise NotFoundError("artifact", str(artifact_id), by_id=True)

        def decide(state: RunState) -> list[Event]:
            state.check_open()
            state.running_step(self.step_run_id)
            return [
                ArtifactConsumed(
                    run_id=state.run_id,
                    step_run_id=self.step_run_id,
                    input_name=input_name,
                    artifact_id=artifact_id,
                )
            ]

        await self.run._command(decide, artifacts=[artifact_id])

    async def produce(
        self,
        output_name: str,
        *,
        uri: str,
        name: str | None = None,
        artifact_type: str = "DataArtifact",
        data_type: str | None = None,
        materializer: str | None = None,
        content_hash: str | None = None,
        size_bytes: int | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        artifact_id: UUID | None = None,
    ) -> UUID:
        """Record a new artifact written by this step; return its id.

        ``name`` (default: ``<pipeline>.<step>.<output>``) groups versions: the
        artifacts view numbers each name's artifacts v1, v2... ``artifact_type``
        is one of ZenML's (``ARTIFACT_TYPES``); each output name of a step is
        produced once (AlreadyExistsError), except as an identical retry.
        """
        if artifact_type not in ARTIFACT_TYPES:
            lowered = {t.lower(): t for t in ARTIFACT_TYPES}
            close = [
                lowered[t]
                for t in difflib.get_close_matches(artifact_type.lower(), lowered, n=3, cutoff=0.5)
            ]
            raise NotFoundError(
                "artifact type", artifact_type, close, hint=f"one of {', '.join(ARTIFACT_TYPES)}"
            )
        artifact_id = artifact_id or uuid4()
        checked = check_scalars(metadata or {}, "artifact metadata")

        def decide(state: RunState) -> list[NewEvent]:
            state.check_open()
            step = state.running_step(self.step_run_id)
            earlier = step.outputs.get(output_name)
            # The same artifact id again is a retry: the log judges it (a no-op if
            # identical); another artifact under a used output name would orphan the first.
            if earlier is not None and earlier != artifact_id:
                raise AlreadyExistsError(
                    f"step {step.name!r} already produced output {output_name!r} "
                    f"(artifact {earlier}); give each output of a step its own name"
                )
            event = ArtifactProduced(
                run_id=state.run_id,
                step_run_id=self.step_run_id,
                output_name=output_name,
                artifact_id=artifact_id,
                artifact_name=name or f"{state.pipeline_name}.{self.name}.{output_name}",
                uri=uri,
                artifact_type=artifact_type,
                data_type=data_type,
                materializer=materializer,
                content_hash=content_hash,
                size_bytes=size_bytes,
                metadata=checked,
            )
            return [NewEvent(event, artifact_event_id(artifact_id))]

        await self.run._command(decide)
        return artifact_id

    async def log_metadata(self, values: Mapping[str, Scalar]) -> None:
        """Log key/value metadata on this step."""
        await self.run.log_metadata(values, step_run_id=self.step_run_id)

    async def finish(self, status: StepStatus = "completed", *, error: str | None = None) -> None:
        """End the step; a step finishes once."""

        def decide(state: RunState) -> list[Event]:
            state.check_open()
            state.running_step(self.step_run_id)
            return [
                StepFinished(
                    run_id=state.run_id,
                    step_run_id=self.step_run_id,
                    status=status,
                    finished_at=_now(),
                    error=error,
                )
            ]

        await self.run._command(decide)


class RunCommands:
    """Start, find and delete pipeline runs: commands on a log, checked against its workspace."""

    def __init__(
        self, log: Log, workspace: WorkspaceCommands, *, router: Router | None = None
    ) -> None:
        self.log = log
        self.workspace_commands = workspace
        self.router = router

    async def start_run(
        self,
        pipeline_name: str,
        *,
        run_name: str | None = None,
        stack: str | UUID | None = None,
        orchestrator_run_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        run_id: UUID | None = None,
        described: RunStackDescribed | None = None,
    ) -> PipelineRun:
        """Start a pipeline run on ``stack`` (name or id; default: the active stack).

        The run is recorded in that stack's metadata store (decided now, once:
        the whole run lands there): this store, or another one, opened on demand
        (see :mod:`eventstore.metadata_stores`); the handle returned writes there.
        ``run_name`` must be unique among live runs of that store
        (:class:`RunNameTakenError` otherwise); the default,
        ``<pipeline>-<UTC time to the microsecond>``, gets a random suffix in the
        rare case that it is taken. ``described`` is given by a home store routing
        a run here: the run's stack, which this store's workspace does not hold.
        """
        run_id = run_id or uuid4()
        if described is not None:
            workspace = WorkspaceState()
            stack_id: UUID | None = described.stack_id
        else:
            workspace = await self.workspace_commands.workspace()
            if stack is not None:
                stack_id = workspace.stack(stack).stack_id
            else:
                stack_id = workspace.active_stack_id
            if stack_id is not None and self.router is not None:
                chosen = workspace.stacks[stack_id]
                elsewhere = await self.router(workspace, chosen)
                if elsewhere is not None:
                    return await elsewhere.start_run(
                        pipeline_name,
                        run_name=run_name,
                        orchestrator_run_id=orchestrator_run_id,
                        config=config,
                        tags=tags,
                        run_id=run_id,
                        described=RunStackDescribed(
                            run_id=run_id,
                            stack_id=chosen.stack_id,
                            name=chosen.name,
                            components=describe_stack(workspace, chosen),
                            home=mask_uri_credentials(self.log.uri),
                        ),
                    )
        for attempt in range(_RETRIES):
            started = _now()
            name = run_name or f"{pipeline_name}-{started:%Y_%m_%d-%H_%M_%S_%f}"
            if run_name is None and attempt:
                name += f"-{uuid4().hex[:6]}"
            event = RunStarted(
                run_id=run_id,
                pipeline_name=pipeline_name,
                run_name=name,
                stack_id=stack_id,
                orchestrator_run_id=orchestrator_run_id,
                config=dict(config or {}),
                tags=list(tags),
                started_at=started,
            )
            # Values first (a name that is not valid text is an InvalidEventError),
            # then the domain rules every path into the log shares (eventstore.rules).
            self.log.encode_events([event])
            known = set(workspace.stacks) | ({described.stack_id} if described else set())
            check_events(
                DomainState(workspace, known_stacks=known), [(run_stream(run_id), event, None)]
            )
            generation, holder = await self._run_name_slot(name)
            if holder is not None:
                if run_name is None:
                    continue
                raise RunNameTakenError(name, holder)
            claim = NewEvent(event, run_name_event_id(name, generation))
            # A run away from its stack's home store carries the stack's description,
            # just before its run.started, in the same append: the run lands whole.
            items: list[Event | NewEvent] = [claim] if described is None else [described, claim]
            try:
                result = await self.log.append(
                    run_stream(run_id), items, expected_version=NO_STREAM
                )
            except ConcurrencyError as exc:
                raise AlreadyExistsError(f"run {run_id} already exists") from exc
            except EventIdConflictError:
                # Another writer claimed this generation of the name between our
                # look-up and our append: look again (it may have been deleted since).
                continue
            state = RunState(run_id)
            state.apply(event, result.stream_version)
            return PipelineRun(self.log, state)
        raise InvalidStateError(f"the run name {run_name!r} kept changing hands; try again")

    async def _run_name_slot(self, run_name: str) -> tuple[int, UUID | None]:
        """The first free generation of ``run_name``, or the live run holding the name.

        Generations are probed in order on the unique event-id index; one held by
        a deleted run is passed over, so the cost grows with the deletions of
        runs of that very name only.
        """
        generation = 0
        while True:
            recorded = await self.log.get_event(run_name_event_id(run_name, generation))
            if recorded is None:
                return generation, None
            event = recorded.event
            if isinstance(event, RunStarted) and not await self._run_deleted(event.run_id):
                return generation, event.run_id
            generation += 1

    async def _run_deleted(self, run_id: UUID) -> bool:
        async for recorded in self.log.read_stream(run_stream(run_id)):
            if isinstance(recorded.event, RunDeleted):
                return True
        return False

    @contextlib.asynccontextmanager
    async def pipeline_run(
        self,
        pipeline_name: str,
        *,
        run_name: str | None = None,
        stack: str | UUID | None = None,
        orchestrator_run_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        run_id: UUID | None = None,
    ) -> AsyncIterator[PipelineRun]:
        """Run a pipeline: started on entry, completed on exit, failed (re-raised) on error.

        Steps still running when the body fails are recorded as stopped.
        ``run_id`` as in :meth:`start_run` (default: a new one).
        """
        run = await self.start_run(
            pipeline_name,
            run_name=run_name,
            stack=stack,
            orchestrator_run_id=orchestrator_run_id,
            config=config,
            tags=tags,
            run_id=run_id,
        )
        try:
            yield run
        except BaseException as exc:
            if not run.state.finished:
                status: RunStatus = "stopped" if _is_stop(exc) else "failed"
                with anyio.CancelScope(shield=True):
                    await run.finish(status, error=describe_exception(exc), stop_running_steps=True)
            raise
        if not run.state.finished:
            await run.finish("completed")

    async def get_run(self, run_id: UUID) -> PipelineRun:
        """A handle on an existing run (from any process); NotFoundError if unknown."""
        run = PipelineRun(self.log, RunState(run_id))
        await run._reload()
        if run.state.version == 0:
            raise NotFoundError("run", str(run_id), by_id=True)
        return run

    async def delete_run(self, run_id: UUID, *, reason: str = "") -> None:
        """Append a ``run.deleted`` tombstone: views forget the run, the log keeps it."""
        run = await self.get_run(run_id)

        def decide(state: RunState) -> list[Event]:
            if state.deleted:
                raise InvalidStateError(f"run {state.run_name!r} was already deleted")
            return [RunDeleted(run_id=state.run_id, reason=reason)]

        await run._command(decide)
