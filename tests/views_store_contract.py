"""The contract every views store must keep, as one abstract test class.

pytest does not collect this module by itself; ``test_sqlite_views_store.py``
and ``test_postgres_views_store.py`` subclass :class:`ViewsStoreContract`
unchanged but for :meth:`store_uri`, as ``backend_contract.py`` does for the
log backends (the ``eventsourcing`` library's ``TrackingRecorderTestCase`` is
the model). The views store under test is the one the store's factory builds
(``live_views_store``), so the factory is part of the contract.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import Event, EventStore, RunStarted, open_store
from eventstore.demo import ensure_default_stack, run_demo
from projections import (
    ProjectionRunner,
    Queries,
    ViewsStoreError,
    default_projections,
    open_views,
    views_as_of,
)
from projections.definition import EventContext, Handler, Op, Projection, Table
from projections.transactions import ApplyOps, Execute, Fetch, OpError, Tx, read_meta, write_meta
from projections.views import live_views_store
from projections.views_store import ViewsStore

from .histories import Command, commands, dump, play_all
from .test_projections import BrokenRuns, FixedRuns, RunsV2

_TABLE = "CREATE TABLE numbers (n INTEGER PRIMARY KEY, label TEXT NOT NULL)"


class _Names(Projection):
    """Version 1: each run's name, and a copy of it in a second table."""

    name = "names"
    version = 1
    tables = {
        "run_names": Table("run_id TEXT NOT NULL, name TEXT NOT NULL", "run_id"),
        "name_copies": Table("run_id TEXT NOT NULL, name TEXT NOT NULL", "run_id"),
    }

    def handlers(self) -> Mapping[type[Event], Handler]:
        return {RunStarted: self._started}

    def _started(self, e: RunStarted, c: EventContext) -> Iterable[Op]:
        for table in self.tables:
            yield (
                f"INSERT INTO {{{table}}} (run_id, name) VALUES (?, ?)",
                (str(e.run_id), e.run_name),
            )


class _NamesV2(_Names):
    """Version 2: the copy retired, the names also shown through a derived view."""

    version = 2
    tables = {"run_names": _Names.tables["run_names"]}
    derived = {"named_runs": "SELECT run_id, name FROM {run_names}"}
    retired = ("name_copies",)


class _Failed(Exception):
    """A test transaction giving up."""


def _insert(*numbers: int) -> Tx[None]:
    yield Execute(_TABLE)
    for n in numbers:
        yield Execute("INSERT INTO numbers (n, label) VALUES (?, ?)", (n, f"n{n}"))


def _numbers() -> Tx[list[int]]:
    rows = yield Fetch("SELECT n FROM numbers ORDER BY n")
    return [int(r[0]) for r in rows]


def _normalised(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The same rows whatever the driver: sorted, booleans as ints."""
    return {
        name: sorted(
            (tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows), key=repr
        )
        for name, rows in tables.items()
    }


async def _as_of_dump(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    async with views_as_of(store) as scratch:
        return await dump(scratch.views_store, default_projections())


class ViewsStoreContract:
    """Behaviour every views store must show. Subclasses provide :meth:`store_uri`."""

    __test__ = False  # only the subclasses are collected

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A URI of a fresh, empty store for one test."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def store(self, tmp_path: Path, name: str = "store") -> AsyncIterator[EventStore]:
        """A fresh store of this backend (with its default stack)."""
        async with open_store(self.store_uri(tmp_path, name)) as store:
            yield store

    @contextlib.asynccontextmanager
    async def views(self, store: EventStore) -> AsyncIterator[ViewsStore]:
        """An open handle on the store's live views, as its factory builds them."""
        views = live_views_store(store)
        await views.open()
        try:
            yield views
        finally:
            await views.close()

    # -- transactions ------------------------------------------------------------

    async def test_a_transaction_commits_its_writes_and_returns_its_value(
        self, tmp_path: Path
    ) -> None:
        """What a transaction wrote is read back (by another handle too); its value returns."""

        def body() -> Tx[str]:
            yield from _insert(1, 2, 3)
            return "done"

        async with self.store(tmp_path) as store, self.views(store) as views:
            assert "done" == await views.transact(body)
            assert [1, 2, 3] == await views.read(_numbers)
            async with self.views(store) as other:
                assert [1, 2, 3] == await other.read(_numbers)

    async def test_an_error_in_the_body_rolls_everything_back(self, tmp_path: Path) -> None:
        """A body that raises leaves nothing behind, and its error reaches the caller."""

        def body() -> Tx[None]:
            yield from _insert(1)
            raise ZeroDivisionError("a bug")

        async with self.store(tmp_path) as store, self.views(store) as views:
            with pytest.raises(ZeroDivisionError):
                await views.transact(body)
            assert [] == await views.fetch(
                "SELECT name FROM projection_state WHERE name = ?", ("x",)
            )
            await views.transact(lambda: _insert(7))  # the table was rolled back too
            assert [7] == await views.read(_numbers)

    async def test_a_failing_statement_comes_back_into_the_transaction(
        self, tmp_path: Path
    ) -> None:
        """A statement's SQL error is thrown back as OpError; a body that handles it (back to a
        savepoint, as PostgreSQL needs) commits the rest."""
        caught: list[str] = []

        def body() -> Tx[None]:
            yield from _insert(1)
            yield Execute("SAVEPOINT one")
            try:
                yield Execute("INSERT INTO numbers (n, label) VALUES (?, NULL)", (2,))
            except OpError as exc:
                caught.append(str(exc))
                yield Execute("ROLLBACK TO SAVEPOINT one")
            yield Execute("INSERT INTO numbers (n, label) VALUES (?, ?)", (3, "n3"))

        async with self.store(tmp_path) as store, self.views(store) as views:
            await views.transact(body)
            assert 1 == len(caught)
            assert "null" in caught[0].lower()
            assert [1, 3] == await views.read(_numbers)

    async def test_an_unhandled_statement_error_is_a_views_error_and_rolls_back(
        self, tmp_path: Path
    ) -> None:
        """A statement error the body lets through fails the transaction, whole."""

        def body() -> Tx[None]:
            yield Execute("INSERT INTO numbers (n, label) VALUES (?, ?)", (4, "n4"))
            yield Execute("INSERT INTO no_such_table VALUES (1)")

        async with self.store(tmp_path) as store, self.views(store) as views:
            await views.transact(lambda: _insert(1))
            with pytest.raises(ViewsStoreError):
                await views.transact(body)
            assert [1] == await views.read(_numbers)

    async def test_execute_returns_row_counts(self, tmp_path: Path) -> None:
        """An Execute's result is the number of rows it changed."""

        def body() -> Tx[tuple[int, int]]:
            yield from _insert(1, 2, 3)
            changed = yield Execute("UPDATE numbers SET label = ? WHERE n >= ?", ("big", 2))
            none = yield Execute("DELETE FROM numbers WHERE n > ?", (10,))
            return changed, none

        async with self.store(tmp_path) as store, self.views(store) as views:
            assert (2, 0) == await views.transact(body)

    async def test_apply_ops_stops_at_the_first_failing_event(self, tmp_path: Path) -> None:
        """ApplyOps renders table names, runs each event's ops, and reports the first failure."""
        ops = [
            [("INSERT INTO {numbers} (n, label) VALUES (?, ?)", (1, "a"))],
            [("INSERT INTO {numbers} (n, label) VALUES (?, ?)", (1, "again"))],
            [("INSERT INTO {numbers} (n, label) VALUES (?, ?)", (3, "c"))],
        ]

        def body() -> Tx[Any]:
            yield from _insert()
            yield Execute("SAVEPOINT ops")
            result = yield ApplyOps(ops, (("numbers", "numbers"),))
            yield Execute("ROLLBACK TO SAVEPOINT ops")
            return result

        def last() -> Tx[Any]:
            result = yield ApplyOps(ops[2:], (("numbers", "numbers"),))
            return result

        async with self.store(tmp_path) as store, self.views(store) as views:
            index, message = await views.transact(body)
            assert 1 == index
            assert message
            assert None is await views.transact(last)
            assert [3] == await views.read(_numbers)

    async def test_bulk_apply_ops_keeps_every_value_exactly(self, tmp_path: Path) -> None:
        """ApplyOps with exact=False (a driver may send it in bulk) stores values unchanged.

        Quotes, question marks, backslashes, non-ASCII text, NULL and arithmetic on
        parameters; a failure comes back as a result, and the caller rolls back.
        """
        labels = ["it's", "what?", "a\\b \\' ?", "ünï 中文 😀", "", "?'?'", None]
        ops = [
            [("INSERT INTO {numbers} (n, label) VALUES (?, ?)", (n, label))]
            for n, label in enumerate(labels, start=1)
        ]
        ops.append([("UPDATE {numbers} SET n = n + ? WHERE label = ?", (1000, "what?"))])

        def body() -> Tx[Any]:
            yield Execute(_TABLE.replace("label TEXT NOT NULL", "label TEXT"))
            result = yield ApplyOps(ops, (("numbers", "numbers"),), exact=False)
            rows = yield Fetch("SELECT n, label FROM numbers ORDER BY n")
            return result, [tuple(r) for r in rows]

        def failing() -> Tx[Any]:
            result = yield ApplyOps([ops[0]], (("numbers", "numbers"),), exact=False)
            # What apply_batch does: after a bulk failure the transaction may be
            # unusable (PostgreSQL aborts it), so it is rolled back, never committed.
            if result is not None:
                raise _Failed
            return result

        async with self.store(tmp_path) as store, self.views(store) as views:
            result, rows = await views.transact(body)
            assert result is None
            expected = [(n, label) for n, label in enumerate(labels, start=1) if n != 2]
            assert sorted([*expected, (1002, "what?")]) == sorted(rows)
            with pytest.raises(_Failed):
                await views.transact(failing)  # n = 1 is already stored
            assert [r[0] for r in rows] == await views.read(_numbers)

    async def test_a_read_transaction_can_only_fetch(self, tmp_path: Path) -> None:
        """A read that tries to write is refused, and nothing is written."""

        def body() -> Tx[None]:
            yield Execute("INSERT INTO numbers (n, label) VALUES (?, ?)", (9, "n9"))

        async with self.store(tmp_path) as store, self.views(store) as views:
            await views.transact(lambda: _insert(1))
            with pytest.raises(ViewsStoreError, match="only fetch"):
                await views.read(body)
            assert [(1,)] == await views.fetch("SELECT n FROM numbers WHERE n < ?", (5,))

    async def test_opening_creates_the_state_tables_once(self, tmp_path: Path) -> None:
        """Open creates the checkpoint and meta tables; a second open keeps what they hold."""
        async with self.store(tmp_path) as store:
            async with self.views(store) as views:
                await views.transact(lambda: write_meta({"k": "v"}))
            async with self.views(store) as views:
                assert "v" == (await views.read(read_meta))["k"]

    async def test_a_closed_store_refuses_work(self, tmp_path: Path) -> None:
        """After close (idempotent), every operation raises ViewsStoreError."""
        async with self.store(tmp_path) as store:
            views = live_views_store(store)
            await views.open()
            await views.close()
            await views.close()
            with pytest.raises(ViewsStoreError, match="closed"):
                await views.transact(lambda: _insert(1))
            with pytest.raises(ViewsStoreError, match="closed"):
                await views.fetch("SELECT 1")

    # -- projections on this store ----------------------------------------------------

    async def test_the_demo_queries_alike(self, tmp_path: Path) -> None:
        """The demo's run, lineage and stacks, queried from these views."""
        async with self.store(tmp_path) as store, open_views(store) as views:
            run_id = await run_demo(store, artifact_root=tmp_path / "a")
            await views.wait_for(await store.head(), timeout=20)
            run = await views.query.run(str(run_id)[:8])
            assert {"completed": 6, "failed": 1} == run.step_counts
            graph = await views.query.lineage(
                artifact="training_pipeline.evaluate.metrics", depth=10
            )
            assert 13 == len(graph.nodes)
            assert ["default"] == [s.name for s in await views.query.stacks()]

    @settings(
        max_examples=6,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(history=commands, batch=st.integers(1, 30))
    async def test_incremental_equals_rebuild_equals_as_of(
        self, tmp_path: Path, history: list[Command], batch: int
    ) -> None:
        """Incremental == rebuilt == replayed as of the head (SQLite scratch), any batching."""
        name = f"h{uuid.uuid4().hex[:8]}"
        async with self.store(tmp_path, name) as store:
            async with open_views(store) as views:
                views.runner.batch_size = batch

                async def between(index: int) -> None:
                    if index % 7 == 3:
                        await views.catch_up()

                await play_all(store, history, between)
                await views.catch_up()
                incremental = await dump(views.views_store, default_projections())
                await views.rebuild()
                rebuilt = await dump(views.views_store, default_projections())
            as_of = await _as_of_dump(store)
        assert _normalised(incremental) == _normalised(rebuilt)
        assert _normalised(incremental) == _normalised(as_of)

    async def test_two_runners_and_a_version_bump(self, tmp_path: Path) -> None:
        """Two runners at once give the rebuilt views; a version bump rebuilds blue/green while
        a reader on another handle always sees every run."""
        async with self.store(tmp_path) as store:
            await ensure_default_stack(store, tmp_path / "a")
            for _ in range(8):
                await run_demo(store, artifact_root=tmp_path / "a")
            async with self.views(store) as first, self.views(store) as second:
                runners = [
                    ProjectionRunner(store, v, batch_size=b) for v, b in ((first, 9), (second, 13))
                ]
                for runner in runners:
                    await runner.prepare()
                async with anyio.create_task_group() as group:
                    for runner in runners:
                        group.start_soon(runner.catch_up)
                assert _normalised(await dump(first, default_projections())) == _normalised(
                    await _as_of_dump(store)
                )
                seen: list[int] = []
                done = anyio.Event()

                async def read_in_a_loop() -> None:
                    while not done.is_set():
                        seen.append((await Queries(second).summary()).runs.get("completed", 0))
                        await anyio.lowlevel.checkpoint()

                projections = [p if p.name != "runs" else RunsV2() for p in default_projections()]
                bumped = ProjectionRunner(store, first, projections, batch_size=20)
                async with anyio.create_task_group() as group:
                    group.start_soon(read_in_a_loop)
                    assert ["runs"] == await bumped.prepare()
                    done.set()
                assert {8} == set(seen)

    async def test_a_version_that_retires_a_table_swaps_in_and_drops_it(
        self, tmp_path: Path
    ) -> None:
        """A rebuild to a version without a table drops the old generation's copy and its
        view (on PostgreSQL the view kept the table from being dropped: the swap failed),
        and the new version's derived view answers."""
        async with self.store(tmp_path) as store, self.views(store) as views:
            for name in ("a", "b"):
                await store.start_run("p", run_name=name)
            first = ProjectionRunner(store, views, [_Names()])
            await first.prepare()
            await first.catch_up()
            assert [("a",), ("b",)] == await views.fetch("SELECT name FROM name_copies ORDER BY 1")
            second = ProjectionRunner(store, views, [_NamesV2()])
            assert ["names"] == await second.prepare()
            await second.catch_up()
            assert [("a",), ("b",)] == await views.fetch("SELECT name FROM named_runs ORDER BY 1")
            assert [("a",), ("b",)] == await views.fetch("SELECT name FROM run_names ORDER BY 1")
            for gone in ("name_copies", "name_copies_g1", "run_names_g1"):
                with pytest.raises(ViewsStoreError):
                    await views.fetch(f"SELECT 1 FROM {gone}")

    async def test_a_failing_handler_is_recorded_then_a_fix_applies_it(
        self, tmp_path: Path
    ) -> None:
        """A failing handler's event is recorded and passed; a fixed version applies it and
        forgets the fault."""
        async with self.store(tmp_path) as store:
            poison = await store.start_run("poison")
            poison_position = await store.head()
            await poison.finish()
            projections = [p if p.name != "runs" else BrokenRuns() for p in default_projections()]
            async with open_views(store, projections=projections) as views:
                await views.catch_up()
                status = {s.name: s for s in await views.status()}
                assert "live" == status["runs"].state
                assert [poison_position] == [f.position for f in status["runs"].faults]
                assert [] == await views.query.runs()
            fixed = [p if p.name != "runs" else FixedRuns() for p in default_projections()]
            async with open_views(store, projections=fixed) as views:
                assert ["poison"] == [r.pipeline_name for r in await views.query.runs()]
                assert [] == await views.faults()

    async def test_a_poison_event_is_undone_recorded_and_passed(self, tmp_path: Path) -> None:
        """A second run.started of a run (a raw append) fails in SQL: the event is undone and
        recorded, every later event applies, and a rebuild records it again."""
        async with self.store(tmp_path) as store:
            first = await store.start_run("first")
            again = RunStarted(
                run_id=first.run_id,
                pipeline_name="first",
                run_name="again",
                started_at=datetime.now(UTC),
            )
            await store.append(first.stream_id, [again])
            poison_position = await store.head()
            await store.start_run("later")
            head = await store.head()
            async with open_views(store) as views:
                await views.catch_up()
                status = {s.name: s for s in await views.status()}
                assert {head} == {s.position for s in status.values()}
                assert {"live"} == {s.state for s in status.values()}
                # Only the runs view folds run.started.
                [fault] = status["runs"].faults
                assert (poison_position, True) == (
                    fault.position,
                    fault.reason.startswith("SQL error"),
                )
                assert () == (*status["artifacts"].faults, *status["stacks"].faults)
                runs = await views.query.runs()
                assert ["later", "first"] == [r.pipeline_name for r in runs]
                await views.rebuild()
                faults = [(f.projection, f.position) for f in await views.faults()]
                assert [("runs", poison_position)] == faults
                assert 2 == len(await views.query.runs())
