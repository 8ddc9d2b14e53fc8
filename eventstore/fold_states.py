"""The folds of the write API's streams: the state commands and rules validate against.

:class:`WorkspaceState` folds the ``workspace`` stream, :class:`RunState` one
run's stream. The write API (``workspace.py``, ``runs.py``) and the domain rules
(``rules.py``) both read them; they live here so the imports run one way
(``rules`` -> ``fold_states``, never back into the command modules).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from .errors import InvalidStateError, NotFoundError
from .events import (
    ArtifactProduced,
    ComponentDeleted,
    ComponentRegistered,
    ComponentRenamed,
    ComponentUpdated,
    Event,
    FlavorRegistered,
    RunDeleted,
    RunFinished,
    RunStarted,
    StackDeleted,
    StackRegistered,
    StackRenamed,
    StackUpdated,
    StepFinished,
    StepStarted,
    WorkspaceActiveStackSet,
)
from .flavors import FLAVOR_ALIASES, builtin_flavors

__all__ = [
    "REQUIRED_STACK_COMPONENTS",
    "ComponentState",
    "RunState",
    "StackState",
    "StepState",
    "WorkspaceState",
]

#: Component types every stack must have (as in ZenML).
REQUIRED_STACK_COMPONENTS = ("orchestrator", "artifact_store")


@dataclass(slots=True)
class ComponentState:
    """A component as the write API sees it."""

    component_id: UUID
    type: str
    flavor: str
    name: str
    configuration: dict[str, Any]
    labels: dict[str, str]
    deleted: bool = False
    #: Whether its configuration was ever replaced (``component.updated``).
    updated: bool = False


@dataclass(slots=True)
class StackState:
    """A stack as the write API sees it."""

    stack_id: UUID
    name: str
    components: dict[str, UUID]
    deleted: bool = False


def _suggest(name: str, candidates: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)


@dataclass(slots=True)
class WorkspaceState:
    """The fold of the workspace stream: components, stacks, the active stack."""

    version: int = 0
    components: dict[UUID, ComponentState] = field(default_factory=dict)
    stacks: dict[UUID, StackState] = field(default_factory=dict)
    active_stack_id: UUID | None = None
    #: Custom flavors: component type -> flavor name -> description.
    flavors: dict[str, dict[str, str]] = field(default_factory=dict)

    def apply(self, event: Event, version: int) -> None:
        """Fold one event of the stream.

        Unknown events only advance the version; so do events naming a component
        or stack the stream never registered (possible through raw appends): the
        fold must never stop the write API.
        """
        self.version = version
        component = self.components.get(getattr(event, "component_id", None))  # type: ignore[arg-type]
        stack = self.stacks.get(getattr(event, "stack_id", None))  # type: ignore[arg-type]
        match event:
            case ComponentRegistered():
                self.components[event.component_id] = ComponentState(
                    event.component_id,
                    event.type,
                    event.flavor,
                    event.name,
                    dict(event.configuration),
                    dict(event.labels),
                )
            case ComponentUpdated() if component is not None:
                component.configuration = dict(event.configuration)
                component.updated = True
            case ComponentRenamed() if component is not None:
                component.name = event.name
            case ComponentDeleted() if component is not None:
                component.deleted = True
            case StackRegistered():
                self.stacks[event.stack_id] = StackState(
                    event.stack_id, event.name, dict(event.components)
                )
            case StackUpdated() if stack is not None:
                stack.components = dict(event.components)
            case StackRenamed() if stack is not None:
                stack.name = event.name
            case StackDeleted() if stack is not None:
                stack.deleted = True
                if self.active_stack_id == event.stack_id:
                    self.active_stack_id = None
            case WorkspaceActiveStackSet() if stack is not None:
                self.active_stack_id = event.stack_id
            case FlavorRegistered():
                self.flavors.setdefault(event.type, {})[event.name] = event.description
            case _:
                pass

    def live_components(self, component_type: str | None = None) -> list[ComponentState]:
        """Components not deleted, of one type or all."""
        return [
            c
            for c in self.components.values()
            if not c.deleted and (component_type is None or c.type == component_type)
        ]

    def live_stacks(self) -> list[StackState]:
        """Stacks not deleted."""
        return [s for s in self.stacks.values() if not s.deleted]

    def component(self, component_type: str, name_or_id: str | UUID) -> ComponentState:
        """The live component of that type with that name or id; NotFoundError otherwise."""
        live = self.live_components(component_type)
        key = str(name_or_id)
        for component in live:
            if component.name == key or str(component.component_id) == key:
                return component
        kind = component_type.replace("_", " ")
        raise NotFoundError(kind, key, _suggest(key, [c.name for c in live]))

    def stack(self, name_or_id: str | UUID) -> StackState:
        """The live stack with that name or id; NotFoundError otherwise."""
        live = self.live_stacks()
        key = str(name_or_id)
        for stack in live:
            if stack.name == key or str(stack.stack_id) == key:
                return stack
        raise NotFoundError("stack", key, _suggest(key, [s.name for s in live]))

    def flavors_of(self, component_type: str) -> dict[str, str | None]:
        """The flavors a component of this type may have: built-in ones, then custom ones.

        Maps each flavor to None (built in) or to its custom description. Empty
        for a type outside the catalogue without custom flavors (any flavor goes).
        """
        known: dict[str, str | None] = dict.fromkeys(builtin_flavors(component_type) or ())
        for name, description in self.flavors.get(component_type, {}).items():
            known.setdefault(name, description)
        return known

    def check_flavor(self, component_type: str, flavor: str) -> None:
        """NotFoundError (with close names) unless the flavor is built in or registered."""
        known = self.flavors_of(component_type)
        if builtin_flavors(component_type) is None and not known:
            return
        if flavor not in known:
            kind = f"{component_type.replace('_', ' ')} flavor"
            command = component_type.replace("_", "-")
            alias = FLAVOR_ALIASES.get(flavor.lower())
            close = [alias] if alias in known else []
            close += [c for c in _suggest(flavor.lower(), list(known)) if c not in close]
            raise NotFoundError(
                kind,
                flavor,
                close,
                hint=f"see `metaledger {command} flavor list`; "
                f"a custom one is registered with `metaledger {command} flavor register`",
            )

    def stacks_using(self, component_id: UUID) -> list[str]:
        """Names of live stacks that include the component."""
        return sorted(s.name for s in self.live_stacks() if component_id in s.components.values())


@dataclass(slots=True)
class StepState:
    """A step run as the write API sees it; ``status`` is None while it runs."""

    step_run_id: UUID
    name: str
    status: str | None = None
    outputs: dict[str, UUID] = field(default_factory=dict)


@dataclass(slots=True)
class RunState:
    """The fold of one run's stream."""

    run_id: UUID
    version: int = 0
    pipeline_name: str = ""
    run_name: str = ""
    stack_id: UUID | None = None
    status: str | None = None
    deleted: bool = False
    steps: dict[UUID, StepState] = field(default_factory=dict)
    artifacts: set[UUID] = field(default_factory=set)
    #: Whether the stream holds the run's ``run.started``.
    started: bool = False

    @property
    def finished(self) -> bool:
        """Whether the run has ended."""
        return self.status is not None

    def apply(self, event: Event, version: int) -> None:
        """Fold one event of the stream (a step the stream never started is ignored)."""
        self.version = version
        match event:
            case RunStarted():
                self.started = True
                self.pipeline_name = event.pipeline_name
                self.run_name = event.run_name
                self.stack_id = event.stack_id
            case StepStarted():
                self.steps[event.step_run_id] = StepState(event.step_run_id, event.step_name)
            case ArtifactProduced():
                self.artifacts.add(event.artifact_id)
                step = self.steps.get(event.step_run_id)
                if step is not None:
                    step.outputs.setdefault(event.output_name, event.artifact_id)
            case StepFinished() if event.step_run_id in self.steps:
                self.steps[event.step_run_id].status = event.status
            case RunFinished():
                self.status = event.status
            case RunDeleted():
                self.deleted = True
            case _:
                pass

    def check_open(self) -> None:
        """Raise InvalidStateError unless the run is started, not finished, not deleted."""
        if self.version == 0:
            raise NotFoundError("run", str(self.run_id), by_id=True)
        if self.deleted:
            raise InvalidStateError(f"run {self.run_name!r} was deleted")
        if self.finished:
            raise InvalidStateError(f"run {self.run_name!r} already finished ({self.status})")

    def running_step(self, step_run_id: UUID) -> StepState:
        """The step, which must exist and still run."""
        step = self.steps.get(step_run_id)
        if step is None:
            raise NotFoundError("step run", str(step_run_id), by_id=True)
        if step.status is not None:
            raise InvalidStateError(f"step {step.name!r} already finished ({step.status})")
        return step
