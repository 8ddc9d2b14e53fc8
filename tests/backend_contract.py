"""The contract every storage backend must keep, as one abstract test class.

pytest does not collect this module by itself (its name does not start with
``test_``); each backend's test module subclasses :class:`BackendContract` and
implements :meth:`store_uri`, the way the ``eventsourcing`` library tests its
recorders. Every test opens real stores through the public ``open_store``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventstore.log
from eventstore import (
    ANY,
    NO_STREAM,
    AppendResult,
    ConcurrencyError,
    EventIdConflictError,
    EventStore,
    InvalidEventError,
    NewEvent,
    RunDeleted,
    RunStarted,
    StoreClosedError,
    StoreError,
    open_store,
)
from eventstore.envelope import recorded_event


def tombstone(reason: str = "") -> RunDeleted:
    """A small event to append in bulk."""
    return RunDeleted(run_id=uuid.uuid4(), reason=reason)


class BackendContract:
    """Behaviour every backend must show. Subclasses provide :meth:`store_uri`."""

    __test__ = False  # only the subclasses are collected

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A URI of a fresh, empty store for one test."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def store(
        self, tmp_path: Path, name: str = "store", **options: Any
    ) -> AsyncIterator[EventStore]:
        """Open a fresh store of this backend, its log empty (no default stack)."""
        options.setdefault("default_stack", False)
        async with open_store(self.store_uri(tmp_path, name), **options) as store:
            yield store

    # -- appending and reading -------------------------------------------------

    async def test_empty_store_has_head_zero(self, tmp_path: Path) -> None:
        """A new store is empty: head 0, nothing to read, and it verifies."""
        async with self.store(tmp_path) as store:
            assert await store.head() == 0
            assert [e async for e in store.read_all()] == []
            report = await store.verify()
            assert report.ok
            assert report.events == 0

    async def test_append_returns_positions_and_version(self, tmp_path: Path) -> None:
        """An append returns gapless global positions and the stream's new version."""
        async with self.store(tmp_path) as store:
            first = await store.append("a", [tombstone(), tombstone()])
            second = await store.append("b", [tombstone()])
            third = await store.append("a", [tombstone()])
            assert AppendResult((1, 2), 2) == first
            assert AppendResult((3,), 1) == second
            assert AppendResult((4,), 3) == third
            assert await store.head() == 4

    async def test_read_all_returns_events_in_order_with_envelope(self, tmp_path: Path) -> None:
        """read_all yields every event once, in position order, with its envelope."""
        async with self.store(tmp_path) as store:
            events = [tombstone(str(i)) for i in range(5)]
            ids = [uuid.uuid4() for _ in events]
            await store.append(
                "s",
                [NewEvent(e, i) for e, i in zip(events, ids, strict=True)],
                metadata={"correlation_id": "corr-1"},
            )
            read = [e async for e in store.read_all()]
            assert [e.position for e in read] == [1, 2, 3, 4, 5]
            assert events == [e.event for e in read]
            assert ids == [e.event_id for e in read]
            assert [e.stream_version for e in read] == [1, 2, 3, 4, 5]
            assert {"run.deleted"} == {e.type for e in read}
            assert all(e.metadata.correlation_id == "corr-1" for e in read)
            assert all(e.metadata.pid is not None for e in read)
            now = datetime.now(UTC)
            assert all(now - timedelta(minutes=5) < e.recorded_at <= now for e in read)

    async def test_read_all_from_limit_types_to(self, tmp_path: Path) -> None:
        """read_all honours from_position (inclusive), limit, types and to_position."""
        async with self.store(tmp_path) as store:
            for i in range(10):
                await store.append(f"s{i % 3}", [tombstone(str(i))])
            assert [e.position async for e in store.read_all(4, limit=3)] == [4, 5, 6]
            assert [e.position async for e in store.read_all(8, to_position=9)] == [8, 9]
            assert [e async for e in store.read_all(11)] == []
            assert [e async for e in store.read_all(types=["run.started"])] == []
            assert len([e async for e in store.read_all(types=["run.deleted"])]) == 10

    async def test_read_all_crosses_chunk_boundaries(self, tmp_path: Path) -> None:
        """Reading more events than one chunk returns them all, in order, once."""
        async with self.store(tmp_path) as store:
            await store.append("bulk", [tombstone() for _ in range(4500)])
            positions = [e.position async for e in store.read_all()]
            assert list(range(1, 4501)) == positions
            stream = [e.stream_version async for e in store.read_stream("bulk", 4000)]
            assert list(range(4000, 4501)) == stream

    async def test_read_lean_rows_are_the_decoding_columns_of_read_rows(
        self, tmp_path: Path
    ) -> None:
        """read_lean_rows: (position, type, schema_version, data) of what read_rows returns.

        read_lean_span: (type, schema_version, data) of the rows in a span of positions.
        """
        async with self.store(tmp_path) as store:
            for i in range(6):
                await store.append(f"s{i % 2}", [tombstone(str(i))])
            await store.append(
                "s0",
                [
                    RunStarted(
                        run_id=uuid.uuid4(),
                        pipeline_name="p",
                        run_name="n",
                        started_at=datetime.now(UTC),
                    )
                ],
            )
            backend = store.backend
            for start, limit, types in ((1, 100, None), (3, 2, None), (1, 100, ["run.started"])):
                whole = await backend.read_rows(start, limit, types)
                lean = await backend.read_lean_rows(start, limit, types)
                assert [(r[0], r[4], r[5], r[8]) for r in whole] == [tuple(r) for r in lean]
            assert await backend.read_lean_rows(99, 10) == []
            rows = await backend.read_rows(1, 100)
            for first, last in ((1, 7), (3, 5), (6, 6), (5, 12), (8, 20), (4, 2)):
                span = await backend.read_lean_span(first, last)
                wanted = [(r[4], r[5], r[8]) for r in rows if first <= r[0] <= last]
                assert wanted == [tuple(r) for r in span]
            if backend.lean_reads:
                rows = await backend.read_rows(1, 100)
                assert backend.rows_between_sync(2, 5) == rows[1:5]
                started = backend.rows_between_sync(1, 7, ["run.started"])
                assert started == [r for r in rows if r[4] == "run.started"]

    async def test_read_all_past_two_chunks_keeps_every_envelope_field(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A long replay (lean chunks where the backend can) still shows every stored field.

        Looked at as the events go by, only after the read, after the store
        closed, or filtered by type: always the stored values.
        """
        monkeypatch.setattr(eventstore.log, "READ_ALL_CHUNK", 7)
        monkeypatch.setattr(eventstore.log, "READ_ALL_LEAN_CHUNK", 7)
        async with self.store(tmp_path) as store:
            for i in range(60):
                events: list[Any] = [tombstone(str(i))]
                if i % 4 == 0:
                    events.append(
                        RunStarted(
                            run_id=uuid.uuid4(),
                            pipeline_name="p",
                            run_name=f"n{i}",
                            started_at=datetime.now(UTC),
                        )
                    )
                await store.append(f"s{i % 5}", events, metadata={"correlation_id": f"c{i}"})
            stored = {row.position: row async for row in store.read_stored()}
            untouched = [e async for e in store.read_all()]
            watched = []
            async for event in store.read_all():
                if event.position % 20 == 0:  # an occasional look: back to whole rows
                    assert event.stream_id == stored[event.position].stream_id
                watched.append(event)
            typed = [e async for e in store.read_all(3, types=["run.started"], to_position=50)]
        assert len(untouched) == len(watched) == len(stored) == 75
        assert [e.position for e in typed] == [
            p for p, row in stored.items() if row.type == "run.started" and 3 <= p <= 50
        ]
        codec = store.codec
        for event in [*untouched, *watched, *typed]:  # looked at after the store closed
            row = stored[event.position]
            assert (
                event.event_id_text, event.stream_id, event.stream_version, event.type,
                event.schema_version, event.recorded_at_us, event.metadata_bytes, event.hash,
            ) == (
                row.event_id, row.stream_id, row.stream_version, row.type,
                row.schema_version, row.recorded_at_us, row.metadata, row.hash,
            )  # fmt: skip
            assert event.event == codec.decode(row.type, row.schema_version, row.data)
            assert event.metadata.correlation_id is not None
            assert event.recorded_at == row.recorded_at
            assert event == recorded_event(row, event.event)
        assert untouched == watched

    async def test_read_stream_and_versions(self, tmp_path: Path) -> None:
        """read_stream yields one stream from a version; stream_version tells its length."""
        async with self.store(tmp_path) as store:
            await store.append("x", [tombstone("1"), tombstone("2")])
            await store.append("y", [tombstone("3")])
            await store.append("x", [tombstone("4")])
            reasons = [e.event async for e in store.read_stream("x")]
            assert ["1", "2", "4"] == [e.reason for e in reasons if isinstance(e, RunDeleted)]
            assert [e.stream_version async for e in store.read_stream("x", 3)] == [3]
            assert await store.stream_version("x") == 3
            assert await store.stream_version("missing") == 0

    async def test_get_event_and_position(self, tmp_path: Path) -> None:
        """An event can be fetched by its id or its position; unknown ones give None."""
        async with self.store(tmp_path) as store:
            event_id = uuid.uuid4()
            await store.append("s", [tombstone(), NewEvent(tombstone("me"), event_id)])
            by_id = await store.get_event(event_id)
            assert by_id is not None
            assert by_id.position == 2
            by_position = await store.get_position(2)
            assert by_position is not None
            assert event_id == by_position.event_id
            assert await store.get_event(uuid.uuid4()) is None
            assert await store.get_position(3) is None

    async def test_bulk_lookups_by_ids_and_streams(self, tmp_path: Path) -> None:
        """stored_by_event_ids and stream_versions answer many ids at once, skipping unknowns."""
        async with self.store(tmp_path) as store:
            ids = [uuid.uuid4() for _ in range(3)]
            await store.append("x", [NewEvent(tombstone(), ids[0]), NewEvent(tombstone(), ids[1])])
            await store.append("y", [NewEvent(tombstone(), ids[2])])
            many = [f"z{n}" for n in range(700)]  # more than one query's worth
            found = await store.stored_by_event_ids([*ids, uuid.uuid4(), "not-a-uuid"])
            assert {str(i): p for i, p in zip(ids, (1, 2, 3), strict=True)} == {
                k: v.position for k, v in found.items()
            }
            assert await store.stream_versions(["x", "y", "missing", *many, "x"]) == {
                "x": 2,
                "y": 1,
            }
            assert await store.stored_by_event_ids([]) == {}
            assert await store.stream_versions([]) == {}

    async def test_position_at_time(self, tmp_path: Path) -> None:
        """position_at gives the last position recorded at or before a time."""
        async with self.store(tmp_path) as store:
            await store.append("s", [tombstone()])
            first = await store.get_position(1)
            assert first is not None
            await anyio.sleep(0.002)
            await store.append("s", [tombstone()])
            assert await store.position_at(first.recorded_at - timedelta(seconds=1)) == 0
            assert await store.position_at(first.recorded_at) == 1
            assert await store.position_at(datetime.now(UTC) + timedelta(seconds=1)) == 2

    # -- expected versions and idempotency -------------------------------------

    async def test_expected_version_exact_no_stream_any(self, tmp_path: Path) -> None:
        """Exact, no_stream and any expected versions pass or conflict as documented."""
        async with self.store(tmp_path) as store:
            await store.append("s", [tombstone()], expected_version=NO_STREAM)
            await store.append("s", [tombstone()], expected_version=1)
            await store.append("s", [tombstone()], expected_version=ANY)
            with pytest.raises(ConcurrencyError) as wrong:
                await store.append("s", [tombstone()], expected_version=1)
            assert (wrong.value.actual, wrong.value.expected) == (3, 1)
            with pytest.raises(ConcurrencyError):
                await store.append("s", [tombstone()], expected_version=NO_STREAM)
            await store.append("t", [tombstone()], expected_version=0)
            assert await store.head() == 4

    async def test_conflict_appends_nothing(self, tmp_path: Path) -> None:
        """A conflicting append stores none of its events."""
        async with self.store(tmp_path) as store:
            await store.append("s", [tombstone()])
            with pytest.raises(ConcurrencyError):
                await store.append("s", [tombstone(), tombstone()], expected_version=0)
            assert await store.head() == 1
            assert (await store.verify()).ok

    async def test_retry_with_same_ids_is_idempotent(self, tmp_path: Path) -> None:
        """Retrying an append returns the original positions and stores nothing new."""
        async with self.store(tmp_path) as store:
            events = [NewEvent(tombstone(str(i))) for i in range(3)]
            first = await store.append("s", events, expected_version=NO_STREAM)
            await store.append("other", [tombstone()])
            retry = await store.append("s", events, expected_version=NO_STREAM)
            assert first.positions == retry.positions
            assert first.stream_version == retry.stream_version
            assert retry.duplicate
            assert await store.head() == 4

    async def test_same_id_other_body_is_a_typed_error(self, tmp_path: Path) -> None:
        """An event id already stored with another body is EventIdConflictError."""
        async with self.store(tmp_path) as store:
            event_id = uuid.uuid4()
            await store.append("s", [NewEvent(tombstone("a"), event_id)])
            with pytest.raises(EventIdConflictError):
                await store.append("s", [NewEvent(tombstone("b"), event_id)])
            with pytest.raises(EventIdConflictError):
                await store.append("s", [NewEvent(tombstone("a"), event_id), tombstone()])
            assert await store.head() == 1

    async def test_invalid_appends_are_refused_before_queueing(self, tmp_path: Path) -> None:
        """Bad arguments raise InvalidEventError and store nothing."""
        async with self.store(tmp_path) as store:
            twice = NewEvent(tombstone(), uuid.uuid4())
            with pytest.raises(InvalidEventError, match="appears twice"):
                await store.append("s", [twice, twice])
            with pytest.raises(InvalidEventError, match="at least one event"):
                await store.append("s", [])
            with pytest.raises(InvalidEventError, match=r"^stream_id must be"):
                await store.append("", [tombstone()])
            with pytest.raises(InvalidEventError, match=r"^expected_version must be"):
                await store.append("s", [tombstone()], expected_version=-1)
            with pytest.raises(InvalidEventError, match=r"^not an event"):
                await store.append("s", ["not an event"])  # type: ignore[list-item]
            assert await store.head() == 0

    # -- group commit ------------------------------------------------------------

    async def test_one_conflict_does_not_fail_its_batch_mates(self, tmp_path: Path) -> None:
        """Appends committed in one batch succeed or fail each on its own."""
        async with self.store(tmp_path) as store:
            await store.append("s", [tombstone()])
            outcomes: dict[int, object] = {}

            async def append(i: int, expected: int) -> None:
                try:
                    outcomes[i] = await store.append(
                        "s" if i == 3 else f"t{i}", [tombstone()], expected_version=expected
                    )
                except ConcurrencyError as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as group:
                for i in range(8):
                    group.start_soon(append, i, 5 if i == 3 else 0)
            assert isinstance(outcomes.pop(3), ConcurrencyError)
            assert all(isinstance(o, AppendResult) for o in outcomes.values())
            assert await store.head() == 8
            assert store.log._writer.batches < 8  # they really shared transactions

    async def test_cancelled_caller_leaves_all_or_nothing(self, tmp_path: Path) -> None:
        """A caller cancelled while waiting leaves its append whole or absent; a retry is safe."""
        async with self.store(tmp_path) as store:
            for attempt in range(20):
                events = [NewEvent(tombstone(f"{attempt}-{i}")) for i in range(3)]
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as group:
                        group.start_soon(store.append, f"c{attempt}", events)
                        for _ in range(attempt % 4):
                            await anyio.lowlevel.checkpoint()
                        scope.cancel()
                stored = [e async for e in store.read_stream(f"c{attempt}")]
                assert len(stored) in (0, 3)
                retry = await store.append(f"c{attempt}", events)
                assert len([e async for e in store.read_stream(f"c{attempt}")]) == 3
                if len(stored) == 3:
                    assert retry.duplicate
                # The cancelled append may still have been queued when we looked;
                # either way the events are now stored exactly once.
            assert (await store.verify()).ok

    async def test_close_drains_pending_appends(self, tmp_path: Path) -> None:
        """Leaving the store's block commits every append already queued."""
        uri = self.store_uri(tmp_path)
        results: list[AppendResult] = []

        async def append(store: EventStore, i: int) -> None:
            results.append(await store.append(f"d{i}", [tombstone()]))

        async with (
            anyio.create_task_group() as group,
            open_store(uri, default_stack=False) as store,
        ):
            for i in range(50):
                group.start_soon(append, store, i)
            await anyio.lowlevel.checkpoint()
        assert len(results) == 50
        async with open_store(uri) as store:
            assert await store.head() == 50
        with pytest.raises(StoreClosedError):
            await store.append("late", [tombstone()])

    # -- following -------------------------------------------------------------

    async def test_subscribe_catches_up_then_follows(self, tmp_path: Path) -> None:
        """subscribe yields the past, then wakes for new appends through the same handle."""
        async with self.store(tmp_path, poll_interval=30.0) as store:
            await store.append("s", [tombstone("old")])
            seen: list[int] = []
            done = anyio.Event()

            async def follow() -> None:
                async for recorded in store.subscribe(1):
                    seen.append(recorded.position)
                    if len(seen) == 3:
                        done.set()
                        return

            async with anyio.create_task_group() as group:
                group.start_soon(follow)
                await store.append("s", [tombstone("new1")])
                await store.append("s", [tombstone("new2")])
                # poll_interval is 30 s: only the local wake-up can deliver in time
                with anyio.fail_after(5):
                    await done.wait()
            assert seen == [1, 2, 3]

    async def test_subscribe_sees_other_handles_appends(self, tmp_path: Path) -> None:
        """A subscriber on one handle sees appends made through another (by polling)."""
        uri = self.store_uri(tmp_path)
        async with open_store(uri, poll_interval=0.02) as reader, open_store(uri) as writer:
            got = anyio.Event()

            async def follow() -> None:
                async for recorded in reader.subscribe(1):
                    if recorded.position == 2:
                        got.set()
                        return

            async with anyio.create_task_group() as group:
                group.start_soon(follow)
                await writer.append("s", [tombstone(), tombstone()])
                with anyio.fail_after(5):
                    await got.wait()

    async def test_wait_for_append(self, tmp_path: Path) -> None:
        """wait_for_append returns once the head passes a position, or at the timeout."""
        async with self.store(tmp_path) as store:
            assert await store.wait_for_append(0, timeout=0.05) == 0
            async with anyio.create_task_group() as group:
                group.start_soon(store.append, "s", [tombstone()])
                with anyio.fail_after(5):
                    assert await store.wait_for_append(0, timeout=10) == 1

    # -- verifying and copying ---------------------------------------------------

    async def test_verify_sound_log(self, tmp_path: Path) -> None:
        """verify walks the whole chain and reports the head hash of a sound log."""
        async with self.store(tmp_path) as store:
            for i in range(30):
                await store.append(f"s{i % 4}", [tombstone(), tombstone()])
            report = await store.verify()
            assert report.ok
            assert report.events == 60
            assert report.first_bad_position is None
            assert report.head_hash is not None

    async def test_import_rows_reproduces_the_log(self, tmp_path: Path) -> None:
        """Rows read as stored and imported into an empty store give an identical log."""
        async with self.store(tmp_path, "source") as source:
            for i in range(20):
                await source.append(f"s{i % 3}", [tombstone(str(i))])
            rows = [row async for row in source.read_stored()]
        async with self.store(tmp_path, "copy") as copy:
            await copy.import_stored(rows)
            assert rows == [row async for row in copy.read_stored()]
            assert (await copy.verify()).ok
            await copy.append("s0", [tombstone("after")], expected_version=7)
            assert (await copy.verify()).ok

    async def test_import_refuses_rows_that_do_not_continue_the_log(self, tmp_path: Path) -> None:
        """Imported rows must start at head + 1; otherwise nothing of them is stored."""
        async with self.store(tmp_path, "source") as source:
            for i in range(5):
                await source.append("s", [tombstone(str(i))])
            rows = [row async for row in source.read_stored()]
        async with self.store(tmp_path, "copy") as copy:
            with pytest.raises(StoreError, match="continue"):
                await copy.import_stored(rows[2:])
            assert 0 == await copy.head()
            assert 5 == await copy.import_stored(iter(rows))

    async def test_append_many_is_all_or_nothing(self, tmp_path: Path) -> None:
        """Appends to several streams at once: one refusal stores none; a retry is a no-op."""
        async with self.store(tmp_path) as store:
            await store.append("b", [tombstone()])
            good = [NewEvent(tombstone("a1")), NewEvent(tombstone("a2"))]
            with pytest.raises(ConcurrencyError):
                await store.append_many(
                    [("a", good, NO_STREAM), ("b", [tombstone("b2")], NO_STREAM)]
                )
            assert 1 == await store.head()
            other = [NewEvent(tombstone("b2"))]
            results = await store.append_many([("a", good, NO_STREAM), ("b", other, 1)])
            assert [(2, 3), (4,)] == [r.positions for r in results]
            retry = await store.append_many([("a", good, NO_STREAM), ("b", other, 1)])
            assert [r.positions for r in results] == [r.positions for r in retry]
            assert all(r.duplicate for r in retry)
            assert 4 == await store.head()

    async def test_append_each_stores_or_refuses_each_alone(self, tmp_path: Path) -> None:
        """Independent appends queued together: a refusal is returned, the others stored."""
        async with self.store(tmp_path) as store:
            await store.append("b", [tombstone()])
            a = store.encode_events([tombstone("a1"), tombstone("a2")])
            b = store.encode_events([tombstone("b2")])
            c = store.encode_events([tombstone("c1")])
            outcomes = await store.append_each(
                [("a", a, NO_STREAM), ("b", b, NO_STREAM), ("c", c, ANY)]
            )
            assert isinstance(outcomes[1], ConcurrencyError)
            assert [(2, 3), (4,)] == [o.positions for o in (outcomes[0], outcomes[2])]  # type: ignore[union-attr]
            retry = await store.append_each([("a", a, NO_STREAM), ("c", c, ANY)])
            assert [(2, 3), (4,)] == [o.positions for o in retry]  # type: ignore[union-attr]
            assert all(o.duplicate for o in retry)  # type: ignore[union-attr]
            assert 4 == await store.head()
            assert [] == await store.append_each([])

    # -- the property ------------------------------------------------------------

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b", "c"]),
                st.one_of(st.just(ANY), st.just(NO_STREAM), st.integers(0, 4)),
                st.integers(1, 3),
                st.integers(0, 100),  # < 15: a retry of an earlier operation
            ),
            min_size=1,
            max_size=30,
        )
    )
    async def test_concurrent_appends_match_a_sequential_model(
        self, tmp_path: Path, ops: list[tuple[str, Any, int, int]]
    ) -> None:
        """Random concurrent appends: exactly the acknowledged events, gapless, as a model says.

        Group commit judges appends in queue order, so a sequential model fed the
        same order must predict every position, version and conflict.
        """
        planned: list[tuple[str, Any, list[NewEvent]]] = []
        for stream, expected, count, retry in ops:
            if retry < 15 and planned:
                planned.append(planned[retry % len(planned)])
            else:
                planned.append((stream, expected, [NewEvent(tombstone()) for _ in range(count)]))
        name = f"prop-{uuid.uuid4().hex[:8]}"
        async with self.store(tmp_path, name) as store:
            order: list[int] = []
            outcomes: dict[int, AppendResult | ConcurrencyError] = {}

            async def run(i: int) -> None:
                stream, expected, events = planned[i]
                order.append(i)  # nothing yields between this and the queueing
                try:
                    outcomes[i] = await store.append(stream, events, expected_version=expected)
                except ConcurrencyError as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as group:
                for i in range(len(planned)):
                    group.start_soon(run, i)

            # The model.
            versions: dict[str, int] = {}
            stored: dict[uuid.UUID, tuple[int, int]] = {}
            log: list[tuple[uuid.UUID, str, int]] = []
            for i in order:
                stream, expected, events = planned[i]
                if events[0].event_id in stored:
                    positions = tuple(stored[e.event_id][0] for e in events)
                    version = stored[events[-1].event_id][1]
                    assert AppendResult(positions, version, duplicate=True) == outcomes[i]
                    continue
                current = versions.get(stream, 0)
                if (expected == NO_STREAM and current != 0) or (
                    isinstance(expected, int) and expected != current
                ):
                    assert isinstance(outcomes[i], ConcurrencyError)
                    continue
                positions_list = []
                for event in events:
                    current += 1
                    log.append((event.event_id, stream, current))
                    stored[event.event_id] = (len(log), current)
                    positions_list.append(len(log))
                versions[stream] = current
                assert AppendResult(tuple(positions_list), current) == outcomes[i]

            read = [(e.event_id, e.stream_id, e.stream_version) async for e in store.read_all()]
            assert log == read
            assert list(range(1, len(log) + 1)) == [e.position async for e in store.read_all()]
            assert (await store.verify()).ok
