"""Projections: exactly-once application, incremental == rebuild == as-of, blue/green, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    Event,
    EventStore,
    RunDeleted,
    RunStarted,
    open_store,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.events import EVENT_TYPES
from projections import (
    VIEWS_FILE,
    EventContext,
    Handler,
    Op,
    ProjectionRunner,
    Queries,
    RunsProjection,
    SQLiteViewsStore,
    ViewsTimeoutError,
    default_projections,
    open_views,
    views_as_of,
)
from projections.row_ops import Insert, RowOp
from projections.snapshots import MAX_SNAPSHOTS, ViewSnapshots

from .histories import Command, commands, dump, play_all
from .test_events import FutureThing

ROOT = Path(__file__).resolve().parent.parent


async def _rebuilt_dump(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    """The views of the whole log, replayed from scratch in memory."""
    async with views_as_of(store) as scratch:
        return await dump(scratch.views_store, default_projections())


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands, st.lists(st.integers(1, 40), min_size=1, max_size=8), st.data())
async def test_incremental_equals_rebuild_equals_as_of(
    history: list[Command], batch_sizes: list[int], data: st.DataObject
) -> None:
    """For random valid histories: views caught up incrementally, in random batch sizes,
    equal the views after a full rebuild and the views replayed as of the head."""
    catch_up_after = data.draw(st.sets(st.integers(0, len(history) - 1)))
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(Path(tmp) / "s") as store, open_views(store) as views:
            sizes = iter(batch_sizes * (len(history) + 1))

            async def between(index: int) -> None:
                if index in catch_up_after:
                    views.runner.batch_size = next(sizes)
                    await views.catch_up()

            await play_all(store, history, between)
            views.runner.batch_size = next(sizes)
            await views.catch_up()
            incremental = await dump(views.views_store, default_projections())
            as_of_head = await _rebuilt_dump(store)
            await views.rebuild()
            rebuilt = await dump(views.views_store, default_projections())
        assert incremental == rebuilt
        assert incremental == as_of_head


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands, st.integers(1, 6), st.data())
async def test_as_of_from_snapshots_equals_live_views_then(
    history: list[Command], spacing: int, data: st.DataObject
) -> None:
    """For random histories, with the live views leaving a snapshot every few events,
    the state as of any position (the newest snapshot before it, then a replay)
    equals what the live views showed when the head was there."""
    # Drawn before the store opens: a draw inside its task group cannot end the example.
    picks = data.draw(st.lists(st.integers(0, 10_000), max_size=4))
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(Path(tmp) / "s") as store, open_views(store) as views:
            live = views.runner.views
            assert isinstance(live, SQLiteViewsStore)
            assert live.path is not None
            views.runner.snapshots = ViewSnapshots(live.path, min_spacing=spacing)
            seen: dict[int, dict[str, list[tuple[Any, ...]]]] = {}

            async def between(_: int) -> None:
                head = await views.catch_up()
                seen[head] = await dump(views.views_store, default_projections())

            await play_all(store, history, between)
            # The copies ran beside the catch-ups; the last one may still be under way.
            await live.wait_snapshot()
            taken = views.runner.snapshots.positions()
            assert len(taken) <= MAX_SNAPSHOTS
            assert not seen or max(seen) < spacing or taken
            heads = sorted(seen)
            for pick in picks if heads else []:
                position = heads[pick % len(heads)]
                async with views_as_of(store, position=position) as past:
                    assert seen[position] == await dump(past.views_store, default_projections())


async def test_as_of_into_a_directory_starts_from_a_snapshot(tmp_path: Path) -> None:
    """An as-of kept in a directory (a WAL views file) starts from a snapshot too."""
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        live = views.runner.views
        assert isinstance(live, SQLiteViewsStore)
        assert live.path is not None
        views.runner.snapshots = ViewSnapshots(live.path, min_spacing=1)
        views.runner.batch_size = 3
        for _ in range(2):
            await run_demo(store, artifact_root=tmp_path / "a")
            await views.catch_up()
            await live.wait_snapshot()
        taken = views.runner.snapshots.positions()
        assert taken
        expected = await dump(views.views_store, default_projections())
        head = await store.head()
        async with views_as_of(store, into=tmp_path / "past") as past:
            assert past.as_of == head
            assert expected == await dump(past.views_store, default_projections())
        async with views_as_of(store, position=taken[0], into=tmp_path / "early") as early:
            assert early.as_of == taken[0]
        async with views_as_of(store, position=taken[-1]) as latest:
            assert latest.as_of == taken[-1]
        # Read as immutable files: no -wal or -shm left beside them (nor, once
        # pruned, without them).
        snapshot_files = sorted(p.name for p in views.runner.snapshots.directory.iterdir())
        assert [f"at-{p}.db" for p in sorted(taken, key=str)] == snapshot_files


async def test_as_of_position_equals_live_views_then(tmp_path: Path) -> None:
    """The state as of position p equals what the live views showed when the head was p."""
    history: list[Command] = [
        ("component", 0, 1), ("component", 1, 2), ("stack", 0, 0), ("run", 0, 1),
        ("step", 0, 1), ("produce", 0, 1), ("step", 0, 2), ("consume", 1, 0),
        ("finish_step", 0, 0), ("metadata", 0, 1), ("rename_component", 0, 0),
        ("finish_run", 0, 0), ("run", 1, 2), ("delete_run", 0, 0), ("update_component", 1, 3),
    ]  # fmt: skip
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        seen: dict[int, dict[str, list[tuple[Any, ...]]]] = {}

        async def snapshot(_: int) -> None:
            head = await views.catch_up()
            seen[head] = await dump(views.views_store, default_projections())

        await play_all(store, history, snapshot)
        assert len(seen) > 10
        for position, expected in seen.items():
            async with views_as_of(store, position=position) as past:
                assert expected == await dump(past.views_store, default_projections())
            when = (await store.get_position(position)).recorded_at  # type: ignore[union-attr]
            async with views_as_of(store, when=when) as past:
                assert past.as_of is not None
                assert past.as_of >= position


class TestExactlyOnce:
    """Crashes and concurrent runners never apply an event twice or skip one."""

    @pytest.mark.slow
    async def test_runner_killed_mid_batch_then_restarted(self, tmp_path: Path) -> None:
        """A runner SIGKILLed mid-catch-up, restarted: views equal a clean rebuild."""
        store_path = tmp_path / "store"
        async with open_store(store_path) as store:
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(25):
                await run_demo(store, artifact_root=tmp_path / "a")
        for kill_after in (1, 3, 7, 12):
            child = subprocess.Popen(
                [sys.executable, "-m", "tests.workers", "project", str(store_path)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            assert child.stdout is not None
            for _ in range(kill_after):
                line = child.stdout.readline()
                if not line:
                    break  # it finished the whole log before this kill point
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=60)
        async with open_store(store_path) as store, open_views(store) as views:
            before = {s.name: s.position for s in await views.status()}
            assert min(before.values()) < await store.head(), "the kills came too late to test"
            await views.catch_up()
            assert await dump(views.views_store, default_projections()) == await _rebuilt_dump(
                store
            )

    async def test_two_runners_on_one_views_store(self, tmp_path: Path) -> None:
        """Two runners catching up one views file at once: views equal a clean rebuild."""
        async with open_store(tmp_path / "store") as store:
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(15):
                await run_demo(store, artifact_root=tmp_path / "a")
            path = tmp_path / "store" / VIEWS_FILE
            first, second = SQLiteViewsStore(path), SQLiteViewsStore(path)
            await first.open()
            await second.open()
            try:
                runners = [
                    ProjectionRunner(store, views, batch_size=size)
                    for views, size in ((first, 7), (second, 11))
                ]
                await runners[0].prepare()
                await runners[1].prepare()
                async with anyio.create_task_group() as group:
                    for runner in runners:
                        group.start_soon(runner.catch_up)
                assert await dump(first, default_projections()) == await _rebuilt_dump(store)
            finally:
                await first.close()
                await second.close()


class RunsV2(RunsProjection):
    """The runs projection after a (pretend) schema change."""

    version = RunsProjection.version + 1


class TestBlueGreen:
    """Rebuilds build beside the live tables and swap in one transaction."""

    async def test_version_bump_rebuilds_and_readers_never_see_partial_views(
        self, tmp_path: Path
    ) -> None:
        """Opening with a bumped version rebuilds blue/green; a reader looping meanwhile always
        sees every run."""
        async with open_store(tmp_path / "store") as store:
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(40):
                await run_demo(store, artifact_root=tmp_path / "a")
            async with open_views(store) as views:
                await views.catch_up()
            path = tmp_path / "store" / VIEWS_FILE
            writer, reader = SQLiteViewsStore(path), SQLiteViewsStore(path)
            await writer.open()
            await reader.open()
            seen: list[int] = []
            done = anyio.Event()

            async def read_in_a_loop() -> None:
                query = Queries(reader)
                while not done.is_set():
                    summary = await query.summary()
                    seen.append(summary.runs.get("completed", 0))
                    assert 40 * 7 == summary.steps
                    await anyio.lowlevel.checkpoint()

            try:
                projections = [p if p.name != "runs" else RunsV2() for p in default_projections()]
                runner = ProjectionRunner(store, writer, projections, batch_size=20)
                async with anyio.create_task_group() as group:
                    group.start_soon(read_in_a_loop)
                    rebuilt = await runner.prepare()
                    done.set()
                assert ["runs"] == rebuilt
                assert {40} == set(seen)
                assert len(seen) >= 3, "the reader did not run during the rebuild"
                [runs] = [s for s in await runner.status() if s.name == "runs"]
                assert (RunsV2.version, "live", None) == (
                    runs.version,
                    runs.state,
                    runs.rebuild_version,
                )
                tables = {
                    name
                    for (name,) in await reader.fetch(
                        "SELECT name FROM sqlite_master "
                        "WHERE type = 'table' AND name LIKE 'runs_g%'"
                    )
                }
                assert {"runs_g2"} == tables  # the old generation was dropped
            finally:
                await writer.close()
                await reader.close()

    async def test_rebuild_resumes_after_interruption(self, tmp_path: Path) -> None:
        """A rebuild cancelled half way resumes from its committed position."""
        async with open_store(tmp_path / "store") as store:
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(10):
                await run_demo(store, artifact_root=tmp_path / "a")
            async with open_views(store) as views:
                views.runner.batch_size = 10
                progress: list[int] = []

                def stop_half_way(done: int, total: int) -> None:
                    progress.append(done)
                    if done > total // 2:
                        raise KeyboardInterrupt

                with pytest.raises(KeyboardInterrupt):
                    await views.rebuild("runs", progress=stop_half_way)
                [state] = [s for s in await views.status() if s.name == "runs"]
                assert state.rebuild_position is not None
                assert 0 < state.rebuild_position < await store.head()
                resumed: list[int] = []
                await views.rebuild("runs", progress=lambda done, total: resumed.append(done))
                assert resumed[0] > progress[0]  # it did not start again from position 1
                await views.catch_up()
                assert await dump(views.views_store, default_projections()) == await _rebuilt_dump(
                    store
                )

    async def test_a_rebuild_of_all_reads_the_log_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every projection's new tables are filled by one read of the log (one at a
        time, each read it whole), and hold what a rebuild from scratch gives."""
        async with open_store(tmp_path / "store") as store:
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(5):
                await run_demo(store, artifact_root=tmp_path / "a")
            async with open_views(store) as views:
                await views.catch_up()
                views.runner.batch_size = 10
                read: list[int] = []
                original = store.read_chunks

                def counted(*args: Any, **kwargs: Any) -> Any:
                    async def chunks() -> Any:
                        async for rows in original(*args, **kwargs):
                            read.extend(row[0] for row in rows)
                            yield rows

                    return chunks()

                monkeypatch.setattr(store, "read_chunks", counted)
                reported: list[tuple[int, int]] = []
                await views.rebuild(progress=lambda done, total: reported.append((done, total)))
                head = await store.head()
                assert len(views.runner.projections) > 1
                assert list(range(1, head + 1)) == read
                assert (0, head) == reported[0]  # the bar shows from the start
                assert (head, head) == reported[-1]
                assert await dump(views.views_store, default_projections()) == await _rebuilt_dump(
                    store
                )


class BrokenRuns(RunsProjection):
    """A runs projection whose handler fails on a run of pipeline 'poison'."""

    seen: ClassVar[int] = 0

    def handlers(self) -> dict[type[Event], Handler]:
        """The usual handlers, with a bug in run.started."""
        handlers = dict(super().handlers())
        original = handlers[RunStarted]

        def broken(event: RunStarted, context: EventContext) -> Iterable[Op]:
            if event.pipeline_name == "poison":
                raise ZeroDivisionError("a bug in the handler")
            return original(event, context)

        handlers[RunStarted] = broken
        return handlers


class FixedRuns(RunsProjection):
    """The same projection after the fix, with its version bumped."""

    version = RunsProjection.version + 1


class TestFailures:
    """A failing handler never stops its projection: the event is recorded and passed."""

    async def test_a_handler_error_is_recorded_and_passed_and_a_fix_recovers(
        self, tmp_path: Path
    ) -> None:
        """status lists the failing position and reason; every projection reaches the head;
        v2 (a fixed handler) applies the event and forgets the fault."""
        async with open_store(tmp_path / "store") as store:
            await ensure_default_stack(store, tmp_path / "a")
            await run_demo(store, artifact_root=tmp_path / "a")
            poison = await store.start_run("poison")
            poison_position = await store.head()
            await poison.finish()
            await run_demo(store, artifact_root=tmp_path / "a")
            projections = [p if p.name != "runs" else BrokenRuns() for p in default_projections()]
            async with open_views(store, projections=projections) as views:
                await views.catch_up()
                status = {s.name: s for s in await views.status()}
                assert ("live", None) == (status["runs"].state, status["runs"].error)
                assert [(poison_position, "ZeroDivisionError: a bug in the handler")] == [
                    (f.position, f.reason) for f in status["runs"].faults
                ]
                assert ["runs"] == [f.projection for f in await views.faults()]
                head = await store.head()
                assert {head} == {s.position for s in status.values()}
                await views.wait_for(head, timeout=5)
                assert 2 == len(await views.query.runs())  # both demo runs; not the poison
            fixed = [p if p.name != "runs" else FixedRuns() for p in default_projections()]
            async with open_views(store, projections=fixed) as views:
                status = {s.name: s for s in await views.status()}
                assert ("live", FixedRuns.version, None, ()) == (
                    status["runs"].state,
                    status["runs"].version,
                    status["runs"].error,
                    status["runs"].faults,
                )
                assert 3 == len(await views.query.runs())
                assert [] == await views.faults()

    async def test_unknown_events_are_skipped_and_counted(self, tmp_path: Path) -> None:
        """Events of an unknown type advance the checkpoint and count as skipped."""
        from eventstore import EventCodec

        types: dict[str, type[Event]] = {**EVENT_TYPES, "future.thing": FutureThing}
        async with open_store(
            tmp_path / "s", codec=EventCodec(event_types=types), default_stack=False
        ) as store:
            await store.append("x", [FutureThing(colour="red"), FutureThing(colour="blue")])
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await views.catch_up()
            assert {2} == {s.skipped for s in await views.status()}
            assert {2} == {s.position for s in await views.status()}


class TestFreshness:
    """Short-lived and long-lived processes read what was appended."""

    async def test_wait_for_with_a_background_follower(self, tmp_path: Path) -> None:
        """A long-lived process follows the log and waits for its own append's position."""
        async with (
            open_store(tmp_path / "s") as store,
            open_views(store) as views,
            anyio.create_task_group() as group,
        ):
            await group.start(views.follow)
            run = await store.start_run("p", run_name="rw-1")
            await views.wait_for(await store.head(), timeout=10)
            assert "rw-1" == (await views.query.run(str(run.run_id))).run_name
            group.cancel_scope.cancel()

    async def test_wait_for_without_follower_catches_up(self, tmp_path: Path) -> None:
        """Without a follower, wait_for catches up itself; a position never reached times out."""
        async with (
            open_store(tmp_path / "s", default_stack=False) as store,
            open_views(store) as views,
        ):
            await store.start_run("p", run_name="x")
            await views.wait_for(1, timeout=5)
            assert 1 == len(await views.query.runs())
            with pytest.raises(ViewsTimeoutError):
                await views.wait_for(50, timeout=0.3)

    async def test_deleted_views_file_comes_back(self, tmp_path: Path) -> None:
        """Views are disposable: delete the file and they are rebuilt from the log."""
        async with open_store(tmp_path / "s") as store:
            await ensure_default_stack(store, tmp_path / "a")
            await run_demo(store, artifact_root=tmp_path / "a")
            async with open_views(store) as views:
                await views.catch_up()
                before = await dump(views.views_store, default_projections())
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp_path / 's' / VIEWS_FILE}{suffix}").unlink(missing_ok=True)
            async with open_views(store) as views:
                await views.catch_up()
                assert before == await dump(views.views_store, default_projections())

    async def test_views_of_another_log_are_reset(self, tmp_path: Path) -> None:
        """Views left from a replaced log are reset, not mixed with the new one."""
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await store.start_run("old")
            await views.catch_up()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path / 's' / 'ledger.db'}{suffix}").unlink(missing_ok=True)
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await store.append("other", [RunDeleted(run_id=__import__("uuid").uuid4())])
            await views.catch_up()
            assert [] == await views.query.runs()


class SqlBrokenRuns(RunsProjection):
    """A runs projection whose SQL fails for one pipeline (a constraint it violates)."""

    def handlers(self) -> dict[type[Event], Handler]:
        """The usual handlers; run.started of pipeline 'poison' inserts a NULL name."""
        handlers = dict(super().handlers())
        original = handlers[RunStarted]

        def broken(event: RunStarted, context: EventContext) -> Iterable[Op | RowOp]:
            ops = list(original(event, context))
            if event.pipeline_name == "poison":
                insert = ops[0]
                assert isinstance(insert, Insert)
                ops[0] = Insert(insert.table, {**insert.row, "pipeline_name": None})
            return ops

        handlers[RunStarted] = broken
        return handlers


async def test_a_sql_error_is_recorded_and_its_projection_goes_on(tmp_path: Path) -> None:
    """A SQL error in one projection's ops: the batch is redone with savepoints, the
    failing event's ops are undone and recorded as a fault, and every event around it
    is applied."""
    async with open_store(tmp_path / "s", default_stack=False) as store:
        await store.start_run("before")
        poison = await store.start_run("poison")
        await poison.finish()
        await store.start_run("after")
        projections = [p if p.name != "runs" else SqlBrokenRuns() for p in default_projections()]
        async with open_views(store, projections=projections) as views:
            await views.catch_up()
            status = {s.name: s for s in await views.status()}
            assert "live" == status["runs"].state
            [fault] = status["runs"].faults
            assert (2, True) == (fault.position, fault.reason.startswith("SQL error"))
            head = await store.head()
            assert head == status["runs"].position
            assert ["after", "before"] == [r.pipeline_name for r in await views.query.runs()]
            assert head == status["artifacts"].position
