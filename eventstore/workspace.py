"""The write API for stack components and stacks (the ``workspace`` stream).

Every component and stack event goes to the single ``workspace`` stream: the
invariants span several entities (names unique per type, a stack names live
components, a used component cannot be deleted), so they need one consistency
boundary. A command folds the stream into :class:`WorkspaceState`, validates,
and appends with ``expected_version`` = the version it validated against; if
another writer got there first it reloads and validates again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

import anyio

from .errors import (
    AlreadyExistsError,
    ConcurrencyError,
    InUseError,
    InvalidStateError,
)
from .events import (
    COMPONENT_TYPE_PATTERN,
    ComponentDeleted,
    ComponentRegistered,
    ComponentRenamed,
    ComponentUpdated,
    Event,
    FlavorRegistered,
    StackDeleted,
    StackRegistered,
    StackRenamed,
    StackUpdated,
    WorkspaceActiveStackSet,
)
from .fold_states import REQUIRED_STACK_COMPONENTS, ComponentState, StackState, WorkspaceState
from .log import Log
from .rules import DomainState, check_events
from .stream_ids import WORKSPACE_STREAM

__all__ = [
    "REQUIRED_STACK_COMPONENTS",
    "WORKSPACE_STREAM",
    "ComponentState",
    "StackState",
    "WorkspaceCommands",
    "WorkspaceState",
]

_RETRIES = 8


def _a(noun: str) -> str:
    """``an artifact store``, ``an orchestrator``, ``a metadata store``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


class WorkspaceCommands:
    """Register, change and delete components and stacks; set the active stack.

    Commands on a :class:`~eventstore.log.Log` (held, not inherited): the
    workspace fold is cached per instance and caught up from the log.
    """

    def __init__(self, log: Log) -> None:
        self.log = log
        self._workspace: WorkspaceState | None = None
        self._workspace_lock: anyio.Lock | None = None

    async def workspace(self) -> WorkspaceState:
        """The current workspace state, caught up with the log."""
        if self._workspace_lock is None:
            self._workspace_lock = anyio.Lock()
        async with self._workspace_lock:
            return await self._load_workspace()

    async def _load_workspace(self) -> WorkspaceState:
        state = self._workspace or WorkspaceState()
        async for recorded in self.log.read_stream(WORKSPACE_STREAM, state.version + 1):
            if isinstance(recorded.event, Event):
                state.apply(recorded.event, recorded.stream_version)
            else:
                state.version = recorded.stream_version
        self._workspace = state
        return state

    async def _workspace_command(
        self, decide: Callable[[WorkspaceState], list[Event]]
    ) -> list[Event]:
        """Validate against the freshest state and append; on a race, reload and retry."""
        if self._workspace_lock is None:
            self._workspace_lock = anyio.Lock()
        async with self._workspace_lock:
            for _ in range(_RETRIES):
                state = await self._load_workspace()
                events = decide(state)
                if not events:  # nothing to do (an idempotent command found it done)
                    return events
                # The domain rules every path into the log shares (eventstore.rules).
                check_events(
                    DomainState(state, known_stacks=set(state.stacks)),
                    [(WORKSPACE_STREAM, event, None) for event in events],
                )
                try:
                    await self.log.append(WORKSPACE_STREAM, events, expected_version=state.version)
                except ConcurrencyError:
                    continue
                except BaseException:
                    self._workspace = None  # unsure what happened: reload next time
                    raise
                return events
            raise InvalidStateError("the workspace kept changing under this command; try again")

    # -- components ----------------------------------------------------------

    async def register_component(
        self,
        component_type: str,
        name: str,
        *,
        flavor: str,
        configuration: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> UUID:
        """Register a component; its name must be unique among live components of its type."""
        if not COMPONENT_TYPE_PATTERN.match(component_type):
            raise InvalidStateError(
                f"component type {component_type!r} must be a lower-case identifier"
            )
        component_id = uuid4()

        def decide(state: WorkspaceState) -> list[Event]:
            state.check_flavor(component_type, flavor)
            if any(c.name == name for c in state.live_components(component_type)):
                raise AlreadyExistsError(
                    f"{_a(component_type.replace('_', ' '))} named {name!r} already exists"
                )
            return [
                ComponentRegistered(
                    component_id=component_id,
                    type=component_type,
                    flavor=flavor,
                    name=name,
                    configuration=dict(configuration or {}),
                    labels=dict(labels or {}),
                )
            ]

        await self._workspace_command(decide)
        return component_id

    async def update_component(
        self,
        component_type: str,
        name: str,
        configuration: Mapping[str, Any],
        *,
        replace: bool = False,
        remove: Sequence[str] = (),
    ) -> UUID:
        """Merge ``configuration`` into the component's (or replace it); drop ``remove`` keys."""

        def decide(state: WorkspaceState) -> list[Event]:
            component = state.component(component_type, name)
            new = {} if replace else dict(component.configuration)
            new.update(configuration)
            for key in remove:
                new.pop(key, None)
            return [ComponentUpdated(component_id=component.component_id, configuration=new)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], ComponentUpdated)
        return events[0].component_id

    async def rename_component(self, component_type: str, name: str, new_name: str) -> UUID:
        """Rename a component; the new name must be free among its type."""

        def decide(state: WorkspaceState) -> list[Event]:
            component = state.component(component_type, name)
            if any(c.name == new_name for c in state.live_components(component_type)):
                raise AlreadyExistsError(
                    f"{_a(component_type.replace('_', ' '))} named {new_name!r} already exists"
                )
            return [ComponentRenamed(component_id=component.component_id, name=new_name)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], ComponentRenamed)
        return events[0].component_id

    async def delete_component(self, component_type: str, name: str) -> UUID:
        """Delete a component; refused with InUseError while a stack uses it."""

        def decide(state: WorkspaceState) -> list[Event]:
            component = state.component(component_type, name)
            users = state.stacks_using(component.component_id)
            if users:
                raise InUseError(
                    f"{component_type.replace('_', ' ')} {name!r} is used by "
                    f"{'stack' if len(users) == 1 else 'stacks'} {', '.join(users)}; "
                    f"change or delete {'it' if len(users) == 1 else 'them'} first"
                )
            return [ComponentDeleted(component_id=component.component_id)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], ComponentDeleted)
        return events[0].component_id

    async def register_flavor(
        self, component_type: str, name: str, *, description: str = ""
    ) -> None:
        """Register a custom flavor of a component type, so components may use it."""
        if not COMPONENT_TYPE_PATTERN.match(component_type):
            raise InvalidStateError(
                f"component type {component_type!r} must be a lower-case identifier"
            )

        def decide(state: WorkspaceState) -> list[Event]:
            known = state.flavors_of(component_type)
            if name in known:
                origin = "a built-in" if known[name] is None else "a custom"
                raise AlreadyExistsError(
                    f"{name!r} is already {origin} {component_type.replace('_', ' ')} flavor"
                )
            return [FlavorRegistered(type=component_type, name=name, description=description)]

        await self._workspace_command(decide)

    # -- stacks ----------------------------------------------------------------

    @staticmethod
    def _resolve_components(
        state: WorkspaceState, components: Mapping[str, str | UUID]
    ) -> dict[str, UUID]:
        resolved: dict[str, UUID] = {}
        for component_type, ref in components.items():
            resolved[component_type] = state.component(component_type, ref).component_id
        missing = [t for t in REQUIRED_STACK_COMPONENTS if t not in resolved]
        if missing:
            raise InvalidStateError(
                f"a stack needs a component of each type {', '.join(REQUIRED_STACK_COMPONENTS)}; "
                f"missing: {', '.join(missing)}"
            )
        return resolved

    async def register_stack(
        self,
        name: str,
        components: Mapping[str, str | UUID],
        *,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        set_active: bool = False,
    ) -> UUID:
        """Register a stack of existing components (type -> name or id), optionally active."""
        stack_id = uuid4()

        def decide(state: WorkspaceState) -> list[Event]:
            if any(s.name == name for s in state.live_stacks()):
                raise AlreadyExistsError(f"a stack named {name!r} already exists")
            events: list[Event] = [
                StackRegistered(
                    stack_id=stack_id,
                    name=name,
                    components=self._resolve_components(state, components),
                    description=description,
                    labels=dict(labels or {}),
                )
            ]
            if set_active:
                events.append(WorkspaceActiveStackSet(stack_id=stack_id))
            return events

        await self._workspace_command(decide)
        return stack_id

    async def update_stack(
        self,
        name: str,
        components: Mapping[str, str | UUID | None],
    ) -> UUID:
        """Change some of a stack's components (type -> name or id; None removes the type)."""

        def decide(state: WorkspaceState) -> list[Event]:
            stack = state.stack(name)
            merged: dict[str, str | UUID] = dict(stack.components)
            for component_type, ref in components.items():
                if ref is None:
                    merged.pop(component_type, None)
                else:
                    merged[component_type] = ref
            resolved = self._resolve_components(state, merged)
            return [StackUpdated(stack_id=stack.stack_id, components=resolved)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], StackUpdated)
        return events[0].stack_id

    async def rename_stack(self, name: str, new_name: str) -> UUID:
        """Rename a stack; the new name must be free."""

        def decide(state: WorkspaceState) -> list[Event]:
            stack = state.stack(name)
            if any(s.name == new_name for s in state.live_stacks()):
                raise AlreadyExistsError(f"a stack named {new_name!r} already exists")
            return [StackRenamed(stack_id=stack.stack_id, name=new_name)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], StackRenamed)
        return events[0].stack_id

    async def delete_stack(self, name: str) -> UUID:
        """Delete a stack; the active stack cannot be deleted (InUseError)."""

        def decide(state: WorkspaceState) -> list[Event]:
            stack = state.stack(name)
            if state.active_stack_id == stack.stack_id:
                raise InUseError(
                    f"stack {stack.name!r} is the active stack; set another one active first"
                )
            return [StackDeleted(stack_id=stack.stack_id)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], StackDeleted)
        return events[0].stack_id

    async def set_active_stack(self, name: str | UUID) -> UUID:
        """Make a stack the active one."""

        def decide(state: WorkspaceState) -> list[Event]:
            stack = state.stack(name)
            return [WorkspaceActiveStackSet(stack_id=stack.stack_id)]

        events = await self._workspace_command(decide)
        assert isinstance(events[0], WorkspaceActiveStackSet)
        return events[0].stack_id
