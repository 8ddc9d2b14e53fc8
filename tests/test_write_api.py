"""The write API for orchestrators: stacks, components, runs, steps, artifacts."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from eventstore import (
    AlreadyExistsError,
    ArtifactConsumed,
    ArtifactProduced,
    EventStore,
    InUseError,
    InvalidStateError,
    LifecycleError,
    NotFoundError,
    RunFinished,
    StepFinished,
    open_store,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    """A store with the default stack registered and active."""
    async with open_store(tmp_path / "store") as opened:
        await ensure_default_stack(opened, tmp_path / "artifacts")
        yield opened


class StepFailedError(Exception):
    """Raised by a step body in the tests."""


async def test_pipeline_with_concurrent_and_failing_steps(store: EventStore) -> None:
    """Concurrent steps through the context managers; a failing step is recorded and re-raised."""
    async with store.pipeline_run("etl", run_name="etl-1") as run:
        async with run.step("extract") as step:
            raw = await step.produce("raw", uri="file:///raw")

        async def transform(i: int) -> None:
            async with run.step(f"transform_{i}", upstream_steps=["extract"]) as step:
                await step.consume("raw", raw)
                await step.produce("out", uri=f"file:///out{i}")
                await step.log_metadata({"rows": i})

        async with anyio.create_task_group() as group:
            for i in range(8):
                group.start_soon(transform, i)
        with pytest.raises(StepFailedError):
            async with run.step("load"):
                raise StepFailedError("disk quota")
    events = [e async for e in store.read_stream(run.stream_id)]
    finished = {e.event.step_run_id: e.event for e in events if isinstance(e.event, StepFinished)}
    statuses = Counter(f.status for f in finished.values())
    assert dict(statuses) == {"completed": 9, "failed": 1}
    assert any(f.error == "StepFailedError: disk quota" for f in finished.values())
    last = events[-1].event
    assert isinstance(last, RunFinished)
    assert last.status == "completed"  # the body caught the step's error
    assert sum(isinstance(e.event, ArtifactProduced) for e in events) == 1 + 8
    assert (await store.verify()).ok


async def test_failing_run_body_marks_run_failed_and_stops_steps(store: EventStore) -> None:
    """An exception out of the run's body fails the run; running steps become stopped."""
    run_ids = []

    async def body() -> None:
        async with store.pipeline_run("p") as run:
            run_ids.append(run.run_id)
            await run.start_step("dangling")
            raise StepFailedError("orchestrator crashed")

    with pytest.raises(StepFailedError):
        await body()
    [run_id] = run_ids
    state = (await store.get_run(run_id)).state
    assert state.status == "failed"
    assert {"stopped"} == {s.status for s in state.steps.values()}


async def test_cancelled_step_is_recorded_stopped(store: EventStore) -> None:
    """A step whose task is cancelled is recorded as stopped, and the cancel goes on."""
    run = await store.start_run("p")
    started = anyio.Event()

    async def body() -> None:
        async with run.step("slow"):
            started.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(body)
        await started.wait()
        group.cancel_scope.cancel()
    assert {"stopped"} == {s.status for s in run.state.steps.values()}
    await run.finish("stopped")


async def test_demo_records_a_diamond_with_a_retried_step(
    store: EventStore, tmp_path: Path
) -> None:
    """The demo orchestrator records 7 step runs (train failed once) and real artifacts."""
    run_id = await run_demo(store, artifact_root=tmp_path / "artifacts")
    state = (await store.get_run(run_id)).state
    assert state.status == "completed"
    by_name = Counter((s.name, s.status) for s in state.steps.values())
    assert by_name[("train", "failed")] == 1
    assert by_name[("train", "completed")] == 1
    assert len(state.steps) == 7
    produced = [
        e.event
        async for e in store.read_stream(f"run-{run_id}")
        if isinstance(e.event, ArtifactProduced)
    ]
    for artifact in produced:
        path = Path(artifact.uri.removeprefix("file://"))
        assert artifact.size_bytes == (await anyio.Path(path).stat()).st_size


class TestLifecycleViolations:
    """Each violation raises its typed error and appends nothing."""

    async def _refused(
        self, store: EventStore, error: type[LifecycleError], action: object
    ) -> None:
        before = await store.head()
        with pytest.raises(error):
            await action  # type: ignore[misc]
        assert before == await store.head()

    async def test_step_of_unknown_run(self, store: EventStore) -> None:
        """A run id that was never started is NotFoundError."""
        await self._refused(store, NotFoundError, store.get_run(uuid.uuid4()))

    async def test_step_of_finished_run(self, store: EventStore) -> None:
        """Starting a step of a finished run is refused."""
        run = await store.start_run("p")
        await run.finish()
        await self._refused(store, InvalidStateError, run.start_step("late"))
        other_handle = await store.get_run(run.run_id)
        await self._refused(store, InvalidStateError, other_handle.start_step("late"))

    async def test_finishing_twice(self, store: EventStore) -> None:
        """A step and a run finish once."""
        run = await store.start_run("p")
        step = await run.start_step("s")
        await step.finish()
        await self._refused(store, InvalidStateError, step.finish())
        await run.finish()
        await self._refused(store, InvalidStateError, run.finish())

    async def test_run_finish_with_running_steps(self, store: EventStore) -> None:
        """A run does not finish under running steps unless asked to stop them."""
        run = await store.start_run("p")
        step = await run.start_step("s")
        await self._refused(store, InvalidStateError, run.finish())
        await run.finish("stopped", stop_running_steps=True)
        stored = [e.event async for e in store.read_stream(run.stream_id)]
        stopped, finished = stored[-2:]
        assert isinstance(stopped, StepFinished)
        assert (step.step_run_id, "stopped") == (stopped.step_run_id, stopped.status)
        assert isinstance(finished, RunFinished)
        assert "stopped" == finished.status

    async def test_consuming_unknown_artifact(self, store: EventStore) -> None:
        """An input artifact must exist."""
        run = await store.start_run("p")
        step = await run.start_step("s")
        await self._refused(store, NotFoundError, step.consume("in", uuid.uuid4()))

    async def test_consuming_artifact_of_another_run(self, store: EventStore) -> None:
        """An artifact produced by an earlier run (another handle) can be consumed."""
        first = await store.start_run("p")
        step = await first.start_step("make")
        artifact = await step.produce("out", uri="file:///a")
        second = await store.start_run("q")
        step2 = await second.start_step("use")
        await step2.consume("in", artifact)
        stored = [e.event async for e in store.read_stream(second.stream_id)]
        assert ArtifactConsumed(
            run_id=second.run_id, step_run_id=step2.step_run_id, input_name="in",
            artifact_id=artifact,
        ) == stored[-1]  # fmt: skip

    async def test_producing_an_existing_artifact_id(self, store: EventStore) -> None:
        """An artifact id is produced once."""
        run = await store.start_run("p")
        step = await run.start_step("s")
        artifact = await step.produce("out", uri="file:///a")
        other = await run.start_step("t")
        await self._refused(
            store, AlreadyExistsError, other.produce("out", uri="file:///b", artifact_id=artifact)
        )

    async def test_stack_naming_unknown_component(self, store: EventStore) -> None:
        """A stack of an unknown component is NotFoundError, with suggestions."""
        with pytest.raises(NotFoundError, match="did you mean 'default'"):
            await store.register_stack(
                "s", {"orchestrator": "defualt", "artifact_store": "default"}
            )
        await self._refused(
            store,
            NotFoundError,
            store.register_stack("s", {"orchestrator": "nope", "artifact_store": "default"}),
        )

    async def test_stack_missing_required_component(self, store: EventStore) -> None:
        """A stack needs an orchestrator and an artifact store."""
        await self._refused(
            store, InvalidStateError, store.register_stack("s", {"orchestrator": "default"})
        )

    async def test_duplicate_names(self, store: EventStore) -> None:
        """Component names are unique per type; stack names are unique."""
        await self._refused(
            store,
            AlreadyExistsError,
            store.register_component("orchestrator", "default", flavor="local"),
        )
        await store.register_component("step_operator", "default", flavor="kubernetes")
        await self._refused(
            store,
            AlreadyExistsError,
            store.register_stack(
                "default", {"orchestrator": "default", "artifact_store": "default"}
            ),
        )

    async def test_deleting_used_component_or_active_stack(self, store: EventStore) -> None:
        """A component used by a stack, and the active stack, cannot be deleted."""
        with pytest.raises(InUseError, match="default"):
            await store.delete_component("orchestrator", "default")
        await self._refused(store, InUseError, store.delete_stack("default"))


class TestWorkspace:
    """Components and stacks change through the workspace stream."""

    async def test_register_update_rename_delete(self, store: EventStore) -> None:
        """The full component and stack lifecycle, seen through the state."""
        await store.register_component(
            "orchestrator",
            "k8s",
            flavor="kubernetes",
            configuration={"context": "a", "namespace": "ml"},
        )
        await store.update_component("orchestrator", "k8s", {"context": "b"}, remove=["namespace"])
        await store.rename_component("orchestrator", "k8s", "kube")
        await store.register_stack(
            "prod", {"orchestrator": "kube", "artifact_store": "default"}, set_active=True
        )
        state = await store.workspace()
        kube = state.component("orchestrator", "kube")
        assert kube.configuration == {"context": "b"}
        assert state.active_stack_id == state.stack("prod").stack_id
        await store.update_stack("prod", {"orchestrator": "default"})
        await store.delete_component("orchestrator", "kube")
        await store.set_active_stack("default")
        await store.rename_stack("prod", "production")
        await store.delete_stack("production")
        state = await store.workspace()
        assert [s.name for s in state.live_stacks()] == ["default"]
        assert [c.name for c in state.live_components("orchestrator")] == ["default"]

    async def test_two_handles_keep_names_unique(self, tmp_path: Path) -> None:
        """Two handles racing to register one name: exactly one wins."""
        uri = tmp_path / "race"
        async with open_store(uri) as a, open_store(uri) as b:
            results: list[object] = []

            async def register(store: EventStore) -> None:
                try:
                    results.append(
                        await store.register_component("alerter", "slack", flavor="slack")
                    )
                except AlreadyExistsError as exc:
                    results.append(exc)

            async with anyio.create_task_group() as group:
                group.start_soon(register, a)
                group.start_soon(register, b)
            assert sum(isinstance(r, AlreadyExistsError) for r in results) == 1
            assert len((await a.workspace()).live_components("alerter")) == 1


async def test_raw_events_naming_unknown_entities_do_not_break_the_write_api(
    tmp_path: Path,
) -> None:
    """Events appended raw that name an unregistered component, stack or step are
    skipped by the write API's folds, which keep working."""
    from eventstore import ComponentUpdated, StackRenamed, StepFinished, run_stream

    async with open_store(tmp_path / "s") as store:
        await ensure_default_stack(store, tmp_path / "a")
        await store.append(
            "workspace",
            [
                ComponentUpdated(component_id=uuid.uuid4(), configuration={}),
                StackRenamed(stack_id=uuid.uuid4(), name="ghost"),
            ],
        )
        await store.register_component("orchestrator", "x", flavor="local")
        run = await store.start_run("p")
        await store.append(
            run_stream(run.run_id),
            [
                StepFinished(
                    run_id=run.run_id,
                    step_run_id=uuid.uuid4(),
                    status="completed",
                    finished_at=datetime.now(UTC),
                )
            ],
        )
        again = await store.get_run(run.run_id)
        await again.start_step("s")
        assert {"default", "x"} == {
            c.name for c in (await store.workspace()).live_components("orchestrator")
        }
