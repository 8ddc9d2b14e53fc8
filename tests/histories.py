"""Random valid histories for property tests: commands played through the write API.

A command names what to do and picks its targets by index among what exists so
far; the write API refuses what does not fit (a step of a finished run, a
used component's deletion...), and the player simply skips those. So every
drawn list plays as a valid history, and shrinking stays meaningful.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

from eventstore import EventStore, LifecycleError, PipelineRun, StepRun
from eventstore.events import RunStatus, StepStatus
from projections import Projection, ViewsStore

Command = tuple[str, int, int]

COMMAND_KINDS = (
    "component",
    "update_component",
    "rename_component",
    "delete_component",
    "stack",
    "set_active",
    "delete_stack",
    "run",
    "run",
    "step",
    "step",
    "produce",
    "produce",
    "consume",
    "consume",
    "finish_step",
    "finish_step",
    "metadata",
    "finish_run",
    "delete_run",
)

commands = st.lists(
    st.tuples(st.sampled_from(COMMAND_KINDS), st.integers(0, 7), st.integers(0, 7)),
    min_size=1,
    max_size=45,
)
"""A strategy of command lists."""

_TYPES = ("orchestrator", "artifact_store", "experiment_tracker")
_STEP_STATUSES: tuple[StepStatus, ...] = ("completed", "failed", "cached", "skipped", "stopped")
_RUN_STATUSES: tuple[RunStatus, ...] = ("completed", "failed", "stopped")


@dataclass
class Player:
    """Plays commands against a store, remembering what exists to pick targets from."""

    store: EventStore
    components: list[tuple[str, str]] = field(default_factory=list)
    stacks: list[str] = field(default_factory=list)
    runs: list[PipelineRun] = field(default_factory=list)
    steps: list[StepRun] = field(default_factory=list)
    artifacts: list[UUID] = field(default_factory=list)
    counter: int = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    async def play(self, command: Command) -> None:
        """Run one command; a refusal by the write API is a no-op."""
        kind, a, b = command
        with contextlib.suppress(LifecycleError):
            await getattr(self, f"_{kind}")(a, b)

    async def _component(self, a: int, b: int) -> None:
        component_type = _TYPES[a % len(_TYPES)]
        name = f"c{b}"
        flavor = "mlflow" if component_type == "experiment_tracker" else "local"
        await self.store.register_component(
            component_type, name, flavor=flavor, configuration={"n": b, "path": f"/p{a}"}
        )
        self.components.append((component_type, name))

    async def _update_component(self, a: int, b: int) -> None:
        if self.components:
            component_type, name = self.components[a % len(self.components)]
            await self.store.update_component(component_type, name, {"n": b * 10, "extra": [a, b]})

    async def _rename_component(self, a: int, b: int) -> None:
        if self.components:
            index = a % len(self.components)
            component_type, name = self.components[index]
            new = f"r{self._next()}"
            await self.store.rename_component(component_type, name, new)
            self.components[index] = (component_type, new)

    async def _delete_component(self, a: int, b: int) -> None:
        if self.components:
            component_type, name = self.components[a % len(self.components)]
            await self.store.delete_component(component_type, name)

    async def _stack(self, a: int, b: int) -> None:
        by_type: dict[str, str] = {}
        for component_type, name in self.components[a:] + self.components[:a]:
            by_type.setdefault(component_type, name)
        name = f"s{self._next()}"
        await self.store.register_stack(name, by_type, set_active=b % 2 == 0)
        self.stacks.append(name)

    async def _set_active(self, a: int, b: int) -> None:
        if self.stacks:
            await self.store.set_active_stack(self.stacks[a % len(self.stacks)])

    async def _delete_stack(self, a: int, b: int) -> None:
        if self.stacks:
            await self.store.delete_stack(self.stacks[a % len(self.stacks)])

    async def _run(self, a: int, b: int) -> None:
        run = await self.store.start_run(f"pipeline{a % 3}", config={"lr": b / 10}, tags=[f"t{b}"])
        self.runs.append(run)

    async def _step(self, a: int, b: int) -> None:
        if self.runs:
            run = self.runs[a % len(self.runs)]
            step = await run.start_step(f"step{b}", parameters={"b": b}, cache_key=f"k{a}")
            self.steps.append(step)

    async def _produce(self, a: int, b: int) -> None:
        if self.steps:
            step = self.steps[a % len(self.steps)]
            artifact = await step.produce(
                f"out{b}", uri=f"file:///a/{self._next()}", name=f"art{b % 3}", size_bytes=b
            )
            self.artifacts.append(artifact)

    async def _consume(self, a: int, b: int) -> None:
        if self.steps and self.artifacts:
            step = self.steps[a % len(self.steps)]
            await step.consume(f"in{b}", self.artifacts[b % len(self.artifacts)])

    async def _finish_step(self, a: int, b: int) -> None:
        if self.steps:
            step = self.steps[a % len(self.steps)]
            await step.finish(_STEP_STATUSES[b % len(_STEP_STATUSES)], error=f"e{b}")

    async def _metadata(self, a: int, b: int) -> None:
        if self.runs:
            run = self.runs[a % len(self.runs)]
            step_ids = list(run.state.steps)
            step = step_ids[b % len(step_ids)] if step_ids and b % 2 else None
            await run.log_metadata({f"k{b % 3}": b * 1.5, "flag": b % 2 == 0}, step_run_id=step)

    async def _finish_run(self, a: int, b: int) -> None:
        if self.runs:
            run = self.runs[a % len(self.runs)]
            await run.finish(_RUN_STATUSES[b % len(_RUN_STATUSES)], stop_running_steps=True)

    async def _delete_run(self, a: int, b: int) -> None:
        if self.runs and b % 3 == 0:
            await self.store.delete_run(self.runs[a % len(self.runs)].run_id, reason="test")


async def dump(
    views: ViewsStore, projections: list[Projection]
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view table and derived view, in a deterministic order: to
    compare two views stores."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for projection in projections:
        for table in (*projection.tables, *projection.derived):
            rows = await views.fetch(f"SELECT * FROM {table}")
            tables[table] = sorted(rows, key=repr)
    return tables


async def play_all(
    store: EventStore,
    commands_: list[Command],
    between: Callable[[int], Awaitable[None]] | None = None,
) -> Player:
    """Play every command, calling ``between(index)`` after each."""
    player = Player(store)
    for index, command in enumerate(commands_):
        await player.play(command)
        if between is not None:
            await between(index)
    return player
