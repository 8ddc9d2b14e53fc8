"""Benchmarks of the event log and its views against raw SQLite: ``python -m benchmarks.bench``.

Every figure is printed as a ratio to a floor measured in the same run, on the
same disk, with the same rows, so a figure says what metaledger costs over
SQLite itself rather than how fast the machine happens to be:

- Floor A: stdlib ``sqlite3`` inserting N prepared rows of exactly the shape the
  store writes (real encoded events, UUIDv7 ids, metadata, chained hashes) into a
  fresh file with the log's own schema, WAL and ``synchronous=FULL``, in ONE
  transaction with ``executemany``: one commit, one fsync for all N rows.
- Floor B: stdlib ``sqlite3`` selecting the same rows of a filled store and
  decoding each payload with msgspec's typed decoder for its event class.
- Floor P: stdlib ``sqlite3`` executing the very SQL statements a catch-up of
  the projections runs for that store (rendered from the projections' own
  ``ops()``), in ONE transaction, into fresh tables with the views' schema,
  indexes and connection settings.
- Floor Q: a raw indexed ``SELECT`` of the 50 newest runs on the views file.
- Floor H: the time to replay half the log, a catch-up of fresh views to head // 2.

The figures: 50 concurrent single-event appenders (throughput and latency),
100-event batches from one task and from ten, ``read_all`` of a large store, and
the peak RSS of a fresh process reading that store through ``read_all``; then
the projections: catch-up of that store, ``Queries.runs(limit=50)`` on the
result, and ``views_as_of`` at the middle of a 100,000-event log.
Indented rows explain the one above: floor A' is raw ``sqlite3`` inserting the
rows a write benchmark wrote, in the same order and with the same rows per
commit as the store's group commit made (with ``synchronous`` FULL, then NORMAL
to price the fsyncs alone), so a ratio splits into what the commit size costs
SQLite and what the store adds on top.

Options: ``--quick`` (small sizes), ``--json`` (machine-readable results on
stdout), ``--read-events N`` (size of the big store), ``--dir PATH`` (where the
scratch stores go), ``--keep`` (leave them), ``--skip-projections``,
``--only-projections``, ``--postgres URI`` (add the PostgreSQL part) and
``--only-postgres`` (that part alone). It is a report, not a test: pytest does not collect it
and it exits 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import math
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

import anyio
import msgspec

from eventstore.chain import GENESIS_HASH, chain_hash
from eventstore.codec import EventCodec, encode_metadata
from eventstore.envelope import ANY, NO_STREAM, ExpectedVersion, Metadata, NewEvent, RecordedEvent
from eventstore.events import (
    EVENT_TYPES,
    ArtifactConsumed,
    ArtifactProduced,
    ComponentRegistered,
    ComponentUpdated,
    Event,
    MetadataLogged,
    RunFinished,
    RunStarted,
    StackRegistered,
    StackUpdated,
    StepFinished,
    StepStarted,
    WorkspaceActiveStackSet,
)
from eventstore.ids import new_event_id
from eventstore.logs import configure_logging
from eventstore.planner import Row
from eventstore.runs import artifact_event_id, run_stream
from eventstore.sqlite_backend import _COLUMNS, _INSERT, _SCHEMA, LEDGER_FILE
from eventstore.store import EventStore, open_store
from eventstore.workspace import WORKSPACE_STREAM

__all__ = ["Figure", "Sizes", "main", "realistic_events", "run_benchmarks"]

#: Events each stream gets in the write benchmarks' floor rows: a run of five
#: steps (started, artifact, metadata, finished per step).
EVENTS_PER_STREAM = 20

_MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each benchmark does."""

    floor_rows: int
    single_tasks: int
    single_appends_per_task: int
    batch_events: int
    sequential_batches: int
    concurrent_tasks: int
    concurrent_batches_per_task: int
    #: Events in the big store (run lifecycles, ``RUN_EVENTS`` per run): read by
    #: the read benchmarks, then caught up on by the projections.
    read_events: int
    write_repeats: int
    read_repeats: int
    #: Runs in the log replayed half-way by the as-of benchmark.
    as_of_runs: int
    query_repeats: int
    as_of_repeats: int
    #: Runs appended through the API and as JSON lines by the append benchmark.
    append_runs: int = 10_000
    append_repeats: int = 3

    @classmethod
    def full(cls, read_events: int | None = None) -> Sizes:
        """Sizes that take about three and a half minutes on a 2-core VM (most of it catch-up)."""
        return cls(
            floor_rows=50_000,
            single_tasks=50,
            single_appends_per_task=400,
            batch_events=100,
            sequential_batches=500,
            concurrent_tasks=10,
            concurrent_batches_per_task=100,
            read_events=1_000_000 if read_events is None else read_events,
            write_repeats=5,
            read_repeats=3,
            # The big store: as-of on a 1,000,000-event log, as issue 16 states it.
            as_of_runs=100_000 if read_events is None else math.ceil(read_events / RUN_EVENTS),
            query_repeats=300,
            as_of_repeats=3,
        )

    @classmethod
    def quick(cls, read_events: int | None = None) -> Sizes:
        """Sizes for a smoke run of a few seconds."""
        return cls(
            floor_rows=10_000,
            single_tasks=50,
            single_appends_per_task=40,
            batch_events=100,
            sequential_batches=50,
            concurrent_tasks=10,
            concurrent_batches_per_task=10,
            read_events=100_000 if read_events is None else read_events,
            write_repeats=1,
            read_repeats=1,
            as_of_runs=10_000,
            query_repeats=100,
            as_of_repeats=1,
            append_runs=500,
            append_repeats=1,
        )


@dataclass(slots=True)
class Figure:
    """One measured figure, its floor, and its target.

    ``target_kind`` says what the target bounds: ``"ratio>="`` the ratio to the
    floor from below (rates), ``"ratio<="`` from above (times), ``"value<="``
    the value itself; ``None`` means informational only.
    ``detail`` marks a figure that explains the one above it (indented in the table).
    """

    name: str
    value: float
    unit: str
    floor: float | None = None
    floor_name: str | None = None
    target_kind: Literal["ratio>=", "ratio<=", "value<="] | None = None
    target: float | None = None
    note: str = ""
    detail: bool = False
    ratio: float | None = field(init=False, default=None)
    passed: bool | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.floor:
            self.ratio = self.value / self.floor
        if self.target_kind == "ratio>=" and self.ratio is not None and self.target is not None:
            self.passed = self.ratio >= self.target
        elif self.target_kind == "ratio<=" and self.ratio is not None and self.target is not None:
            self.passed = self.ratio <= self.target
        elif self.target_kind == "value<=" and self.target is not None:
            self.passed = self.value <= self.target


# -- workload ------------------------------------------------------------------


def realistic_events(run_id: UUID, count: int) -> list[Event]:
    """``count`` events of one pipeline run, shaped like what an orchestrator records.

    Each step contributes StepStarted, ArtifactProduced, MetadataLogged and
    StepFinished, with ZenML-like names, URIs and hashes, so the payload sizes
    (about 140 to 560 bytes) match real logs rather than toy ones.
    """
    events: list[Event] = []
    step = 0
    now = datetime.now(UTC)
    while len(events) < count:
        step_run_id = uuid4()
        name = f"step_{step}"
        artifact_id = uuid4()
        events.extend(
            (
                StepStarted(
                    run_id=run_id,
                    step_run_id=step_run_id,
                    step_name=name,
                    started_at=now,
                    upstream_steps=[f"step_{step - 1}"] if step else [],
                    parameters={"epochs": 3, "learning_rate": 0.001, "batch_size": 64},
                    cache_key=artifact_id.hex,
                ),
                ArtifactProduced(
                    run_id=run_id,
                    step_run_id=step_run_id,
                    output_name="output",
                    artifact_id=artifact_id,
                    artifact_name=f"{name}_output",
                    uri=f"s3://ml-artifacts/training/{run_id}/{name}/output.parquet",
                    data_type="pandas.core.frame.DataFrame",
                    materializer="zenml.materializers.pandas_materializer.PandasMaterializer",
                    content_hash=artifact_id.hex * 2,
                    size_bytes=1_048_576 + step,
                    metadata={"rows": 10_000, "columns": 12, "storage": "parquet"},
                ),
                MetadataLogged(
                    run_id=run_id,
                    step_run_id=step_run_id,
                    values={"loss": 0.1234, "accuracy": 0.9321, "epoch": step},
                ),
                StepFinished(
                    run_id=run_id,
                    step_run_id=step_run_id,
                    status="completed",
                    finished_at=now,
                ),
            )
        )
        step += 1
    return events[:count]


def _store_metadata() -> Metadata:
    # What Log fills in for an append without metadata: the floor rows carry the
    # same bytes so both sides insert identical rows.
    try:
        actor: str | None = getpass.getuser()
    except Exception:  # no user name in some containers
        actor = None
    return Metadata(actor=actor, host=socket.gethostname(), pid=os.getpid())


def workload_rows(streams: int, events_per_stream: int, block: int) -> list[Row]:
    """Rows exactly as the store would write them, in the order a workload commits them.

    ``streams`` runs of ``events_per_stream`` events each; the rows take ``block``
    events of each stream in turn (``block == events_per_stream``: stream after
    stream), with UUIDv7 ids, the store's metadata bytes and hashes chained from
    genesis. The order matters to SQLite: events of many streams in one commit
    touch many pages of the (stream_id, stream_version) index.
    """
    codec = EventCodec()
    metadata = encode_metadata(_store_metadata())
    recorded_at = time.time_ns() // 1000
    runs = [
        (run_stream(run_id), realistic_events(run_id, events_per_stream))
        for run_id in _ids(streams)
    ]
    previous = GENESIS_HASH
    rows: list[Row] = []
    position = 0
    for offset in range(0, events_per_stream, block):
        for stream_id, events in runs:
            for version, event in enumerate(events[offset : offset + block], start=offset + 1):
                position += 1
                event_id = new_event_id()
                event_type, schema_version, data = codec.encode(event)
                previous = chain_hash(
                    previous,
                    position,
                    event_id,
                    stream_id,
                    version,
                    event_type,
                    schema_version,
                    recorded_at,
                    metadata,
                    data,
                )
                rows.append(
                    Row(
                        position,
                        event_id,
                        stream_id,
                        version,
                        event_type,
                        schema_version,
                        recorded_at,
                        metadata,
                        data,
                        previous,
                    )
                )
    return rows


def prepare_cost(events: int) -> tuple[float, float]:
    """Seconds per event of ``EventCodec.encode`` and of ``chain_hash``.

    The store does both for every append; the floors get their rows ready-made,
    so this is CPU the store spends per event that the floors never do.
    """
    codec = EventCodec()
    batch = [
        e
        for run_id in _ids(events // EVENTS_PER_STREAM)
        for e in realistic_events(run_id, EVENTS_PER_STREAM)
    ]
    start = time.perf_counter()
    encoded = [codec.encode(event) for event in batch]
    encoding = time.perf_counter() - start
    metadata = encode_metadata(_store_metadata())
    previous = GENESIS_HASH
    event_id, stream_id = new_event_id(), run_stream(uuid4())
    start = time.perf_counter()
    for position, (event_type, schema_version, data) in enumerate(encoded, start=1):
        previous = chain_hash(
            previous,
            position,
            event_id,
            stream_id,
            position,
            event_type,
            schema_version,
            0,
            metadata,
            data,
        )
    hashing = time.perf_counter() - start
    return encoding / len(batch), hashing / len(batch)


# -- helpers -------------------------------------------------------------------


def _progress(message: str) -> None:
    # stderr, so ``--json`` output on stdout stays parseable.
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


def _commits(store: EventStore) -> int:
    # The writer counts its transactions for benchmarks; it is not public API.
    return store.log._writer.batches


class _Scratch:
    """Fresh directories under one root, one per store or floor file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def new(self, label: str) -> Path:
        """A path not used yet (the caller creates it)."""
        self._count += 1
        return self.root / f"{self._count:02d}-{label}"


# -- floor A and the write benchmarks ----------------------------------------------


def measure_floor_a(
    path: Path,
    rows: Sequence[Row],
    rows_per_txn: int | None = None,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
) -> float:
    """Rows/s of ``executemany`` into a fresh file with the log's schema, WAL, synchronous=FULL.

    By default all rows go in ONE transaction (floor A: one fsync in total);
    ``rows_per_txn`` commits every that many rows instead, to price commits of
    the size the store's group commit actually made. ``synchronous="NORMAL"``
    (no fsync at commit in WAL mode) separates the fsyncs from the rest.
    """
    path.mkdir(parents=True)
    conn = sqlite3.connect(path / LEDGER_FILE, isolation_level=None)
    step = rows_per_txn or len(rows)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.executescript(_SCHEMA)
        start = time.perf_counter()
        for offset in range(0, len(rows), step):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, rows[offset : offset + step])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return len(rows) / elapsed


async def _warm_up(store: EventStore) -> None:
    # The first commits of a fresh file allocate pages and open the WAL: not
    # what a long-running store pays per append.
    run_id = uuid4()
    for event in realistic_events(run_id, 4):
        await store.append(f"bench-warmup-{run_id}", [event])


@dataclass(slots=True)
class WriteRun:
    """One run of a write benchmark: events, seconds, commits and per-append latencies."""

    events: int
    seconds: float
    commits: int
    latencies: list[float]
    #: CPU seconds of the whole process (every thread) during the run.
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds

    @property
    def cores(self) -> float:
        """How many cores the run kept busy on average."""
        return self.cpu_seconds / self.seconds


async def single_appends(directory: Path, tasks: int, per_task: int) -> WriteRun:
    """``tasks`` concurrent tasks, each appending one event at a time to its own stream."""
    streams = [(run_stream(run_id), realistic_events(run_id, per_task)) for run_id in _ids(tasks)]
    latencies: list[float] = []
    async with open_store(directory, default_stack=False) as store:
        await _warm_up(store)

        async def appender(stream_id: str, events: list[Event]) -> None:
            version = 0
            for event in events:
                started = time.perf_counter()
                result = await store.append(stream_id, [event], expected_version=version)
                latencies.append(time.perf_counter() - started)
                version = result.stream_version

        commits_before = _commits(store)
        cpu_start = time.process_time()
        start = time.perf_counter()
        async with anyio.create_task_group() as group:
            for stream_id, events in streams:
                group.start_soon(appender, stream_id, events)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        commits = _commits(store) - commits_before
    return WriteRun(tasks * per_task, elapsed, commits, latencies, cpu)


async def batch_appends(directory: Path, tasks: int, batches: int, batch_events: int) -> WriteRun:
    """``tasks`` concurrent tasks, each appending ``batches`` batches to its own stream."""
    streams = [
        (run_stream(run_id), realistic_events(run_id, batches * batch_events))
        for run_id in _ids(tasks)
    ]
    latencies: list[float] = []
    async with open_store(directory, default_stack=False) as store:
        await _warm_up(store)

        async def appender(stream_id: str, events: list[Event]) -> None:
            version = 0
            for offset in range(0, len(events), batch_events):
                started = time.perf_counter()
                result = await store.append(
                    stream_id, events[offset : offset + batch_events], expected_version=version
                )
                latencies.append(time.perf_counter() - started)
                version = result.stream_version

        commits_before = _commits(store)
        cpu_start = time.process_time()
        start = time.perf_counter()
        async with anyio.create_task_group() as group:
            for stream_id, events in streams:
                group.start_soon(appender, stream_id, events)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        commits = _commits(store) - commits_before
    return WriteRun(tasks * batches * batch_events, elapsed, commits, latencies, cpu)


def _ids(count: int) -> list[UUID]:
    return [uuid4() for _ in range(count)]


def _median_run(runs: list[WriteRun]) -> WriteRun:
    """The run of median throughput, with every run's latencies pooled."""
    ordered = sorted(runs, key=lambda run: run.rate)
    middle = ordered[len(ordered) // 2]
    pooled = [latency for run in runs for latency in run.latencies]
    return WriteRun(middle.events, middle.seconds, middle.commits, pooled, middle.cpu_seconds)


# -- reading ---------------------------------------------------------------------


async def read_through_store(directory: Path) -> tuple[int, float]:
    """Events read and seconds taken by ``read_all``, touching each decoded event."""
    count = 0
    async with open_store(directory, create=False) as store:
        start = time.perf_counter()
        async for recorded in store.read_all():
            # Touch the decoded event (``event`` is decoded eagerly, so this is the
            # whole cost a reader pays to get it).
            _event = recorded.event
            count += 1
        elapsed = time.perf_counter() - start
    return count, elapsed


async def read_chunks_decoded(directory: Path) -> tuple[int, float]:
    """Whole rows decoded in a plain loop: ``read_all``'s work before its lean reads.

    Iterates ``read_chunks`` (all ten columns) and builds each RecordedEvent
    with ``codec.decode`` inline, without an async-generator step per event.
    ``read_all`` now reads lean past its second chunk on SQLite, so beating this
    figure is what the lean columns save beyond the per-event step they keep.
    """
    count = 0
    async with open_store(directory, create=False) as store:
        decode = store.codec.decode
        start = time.perf_counter()
        async for rows in store.read_chunks():
            for p, i, s, v, t, sv, r, m, d, h in rows:
                _recorded = RecordedEvent(p, i, s, v, t, sv, r, m, decode(t, sv, d), h)
                count += 1
        elapsed = time.perf_counter() - start
    return count, elapsed


def read_floor_b(directory: Path) -> tuple[int, float]:
    """Events read and seconds taken by a raw SELECT plus a typed msgspec decode per row."""
    decoders = {tag: msgspec.msgpack.Decoder(cls) for tag, cls in EVENT_TYPES.items()}
    conn = sqlite3.connect(f"file:{directory / LEDGER_FILE}?mode=ro", uri=True)
    count = 0
    try:
        start = time.perf_counter()
        for row in conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY position"):
            _event = decoders[row[4]].decode(row[8])
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return count, elapsed


def read_floor_lean(directory: Path) -> tuple[int, float]:
    """Floor B-lean: a raw SELECT of only the columns a typed reader needs (type and
    payload), decoding each payload into its event class."""
    decoders = {tag: msgspec.msgpack.Decoder(cls) for tag, cls in EVENT_TYPES.items()}
    conn = sqlite3.connect(f"file:{directory / LEDGER_FILE}?mode=ro", uri=True)
    count = 0
    try:
        start = time.perf_counter()
        for event_type, data in conn.execute("SELECT type, data FROM events ORDER BY position"):
            _event = decoders[event_type].decode(data)
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return count, elapsed


def _max_rss_bytes() -> int:
    import resource  # Unix only: imported here so the module still imports elsewhere

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return rss if sys.platform == "darwin" else rss * 1024


def _vm_hwm_bytes() -> int | None:
    """The kernel's peak RSS of this process's own memory map (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def rss_child() -> dict[str, Any]:
    """In the probe process: wait for a store path on stdin, read it all, report peak RSS.

    Returns an empty dict when stdin closes without a path (the parent gave up).
    """
    baseline = _max_rss_bytes()
    line = sys.stdin.readline().strip()
    if not line:
        return {}
    count, elapsed = anyio.run(read_through_store, Path(line), backend="asyncio")
    return {
        "events": count,
        "seconds": elapsed,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": _max_rss_bytes(),
        "vm_hwm_bytes": _vm_hwm_bytes(),
    }


class RssProbe:
    """A fresh interpreter, started before any benchmark, that later reads a store.

    Why before: Linux keeps ``ru_maxrss`` across ``execve``, and a child spawned
    with vfork/posix_spawn (what ``subprocess`` uses) starts with the high-water
    mark of the process that spawned it. Spawned after the fill, the child would
    report the parent's peak (measured: a 300 MB parent made an idle child report
    311 MB). Spawned first, the parent is still the size of its imports, which
    the child reaches anyway. The child also reports ``VmHWM`` from
    /proc/self/status, the peak of its own memory map only, as a cross-check.
    """

    def __init__(self) -> None:
        self.parent_rss_at_spawn = _max_rss_bytes()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench", "--rss-child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def measure(self, directory: Path) -> dict[str, Any]:
        """Have the probe read the store at ``directory``; its report, as a dict."""
        out, err = self._process.communicate(f"{directory}\n", timeout=600)
        if self._process.returncode != 0:
            raise RuntimeError(f"the RSS probe failed: {err.strip()}")
        result: dict[str, Any] = json.loads(out)
        result["parent_rss_at_spawn_bytes"] = self.parent_rss_at_spawn
        return result

    def close(self) -> None:
        """Stop the probe if it was never used (closing stdin makes it exit)."""
        if self._process.poll() is None:
            try:
                self._process.communicate("", timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()


# -- projections -------------------------------------------------------------------

#: Events of one pipeline run in the projection workload: run.started, two steps
#: (started, artifact produced, metadata or consumed, finished), run.finished.
RUN_EVENTS = 10
#: Runs per ``append_many`` while filling a store (2,000 events per transaction).
FILL_RUNS_PER_APPEND = 200
#: Runs between two component updates, and between two stack changes, in the workload.
COMPONENT_UPDATE_EVERY = 1_000
STACK_CHANGE_EVERY = 10_000
#: How many runs the query benchmark lists, newest first.
NEWEST_RUNS = 50

_RUNS_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_PIPELINES = ("training_pipeline", "feature_engineering", "batch_inference", "evaluation")

#: Exactly the rows ``Queries.runs(limit=50)`` returns, selected the plain way with
#: the index on ``started_at_us``: the floor of the query benchmark.
RAW_NEWEST_RUNS_SQL = (
    "SELECT run_id, pipeline_name, run_name, status, stack_id, orchestrator_run_id, "
    "started_at_us, finished_at_us, duration_us, error, config, tags, steps_running, "
    "steps_completed, steps_failed, steps_cached, steps_skipped, steps_stopped "
    f"FROM runs ORDER BY started_at_us DESC LIMIT {NEWEST_RUNS}"
)
#: The SQL ``Queries.runs`` runs for the same rows (with its join to the stack's
#: name and its tie-break), through raw ``sqlite3``: its SQL cost without its Python.
RAW_QUERIES_RUNS_SQL = (
    "SELECT r.run_id, r.pipeline_name, r.run_name, r.status, r.stack_id, s.name, "
    "r.orchestrator_run_id, r.started_at_us, r.finished_at_us, r.duration_us, r.error, "
    "r.config, r.tags, r.steps_running, r.steps_completed, r.steps_failed, r.steps_cached, "
    "r.steps_skipped, r.steps_stopped FROM runs r LEFT JOIN stacks s ON s.stack_id = r.stack_id "
    f"ORDER BY r.started_at_us DESC, r.position DESC LIMIT {NEWEST_RUNS}"
)

#: Per-connection settings of the views store that the raw floor copies.
_VIEWS_PRAGMAS = ("journal_mode", "synchronous", "cache_size", "mmap_size")


def lifecycle_events(index: int, run_id: UUID, stack_id: UUID) -> list[Event]:
    """The ``RUN_EVENTS`` events of pipeline run number ``index``, as an orchestrator logs them.

    A data step produces a dataset and logs metadata; a training step consumes
    it and produces a model. One run in ten has its data step cached, one in
    twenty fails in training (no model, run-level metadata about the failure
    instead). Runs start 30 s apart, so "newest first" is a real order.
    """
    started = _RUNS_EPOCH + timedelta(seconds=30 * index)
    pipeline = _PIPELINES[index % len(_PIPELINES)]
    data_step, train_step = uuid4(), uuid4()
    dataset, model = uuid4(), uuid4()
    failed = index % 20 == 19
    prefix = f"s3://ml-artifacts/{pipeline}/{run_id}"
    events: list[Event] = [
        RunStarted(
            run_id=run_id,
            pipeline_name=pipeline,
            run_name=f"{pipeline}-{index:07d}",
            started_at=started,
            stack_id=stack_id,
            orchestrator_run_id=f"kfp-{run_id.hex[:12]}",
            config={"enable_cache": True, "settings": {"docker": {"parent_image": "py311"}}},
            tags=["nightly", pipeline],
        ),
        StepStarted(
            run_id=run_id,
            step_run_id=data_step,
            step_name="load_data",
            started_at=started,
            parameters={"source": "s3://datasets/raw/events", "limit": 100_000},
            cache_key=dataset.hex,
        ),
        ArtifactProduced(
            run_id=run_id,
            step_run_id=data_step,
            output_name="dataset",
            artifact_id=dataset,
            artifact_name=f"{pipeline}_dataset",
            uri=f"{prefix}/load_data/dataset.parquet",
            data_type="pandas.core.frame.DataFrame",
            materializer="zenml.materializers.pandas_materializer.PandasMaterializer",
            content_hash=dataset.hex * 2,
            size_bytes=1_048_576 + index,
            metadata={"rows": 100_000, "columns": 12, "storage": "parquet"},
        ),
        MetadataLogged(
            run_id=run_id,
            step_run_id=data_step,
            values={"rows": 100_000, "null_fraction": 0.012, "source": "s3"},
        ),
        StepFinished(
            run_id=run_id,
            step_run_id=data_step,
            status="cached" if index % 10 == 3 else "completed",
            finished_at=started + timedelta(seconds=12),
        ),
        StepStarted(
            run_id=run_id,
            step_run_id=train_step,
            step_name="train_model",
            started_at=started + timedelta(seconds=13),
            upstream_steps=["load_data"],
            parameters={"epochs": 3, "learning_rate": 0.001, "batch_size": 64},
            cache_key=model.hex,
        ),
        ArtifactConsumed(
            run_id=run_id, step_run_id=train_step, input_name="dataset", artifact_id=dataset
        ),
    ]
    finished = started + timedelta(seconds=25)
    if failed:
        error = "RuntimeError: CUDA out of memory"
        events += [
            MetadataLogged(run_id=run_id, values={"failure_stage": "fit", "retries": 0}),
            StepFinished(
                run_id=run_id,
                step_run_id=train_step,
                status="failed",
                finished_at=finished,
                error=error,
            ),
            RunFinished(run_id=run_id, status="failed", finished_at=finished, error=error),
        ]
    else:
        events += [
            ArtifactProduced(
                run_id=run_id,
                step_run_id=train_step,
                output_name="model",
                artifact_id=model,
                artifact_name=f"{pipeline}_model",
                artifact_type="ModelArtifact",
                uri=f"{prefix}/train_model/model.pkl",
                data_type="sklearn.ensemble.RandomForestClassifier",
                materializer="zenml.materializers.cloudpickle_materializer.CloudpickleMaterializer",
                content_hash=model.hex * 2,
                size_bytes=5_242_880 + index,
                metadata={"accuracy": 0.9321, "f1": 0.91},
            ),
            StepFinished(
                run_id=run_id, step_run_id=train_step, status="completed", finished_at=finished
            ),
            RunFinished(run_id=run_id, status="completed", finished_at=finished),
        ]
    return events


AppendItem = tuple[str, Sequence[Event | NewEvent], ExpectedVersion]


def lifecycle_appends(runs: int) -> Iterator[list[AppendItem]]:
    """The projection workload as ``append_many`` batches: runs plus stack and component events.

    First the workspace: five components, two stacks, the active stack. Then
    ``runs`` runs on the active stack, with a component update every
    ``COMPONENT_UPDATE_EVERY`` runs and a stack change (its components replaced,
    and the other stack made active) every ``STACK_CHANGE_EVERY`` runs.
    """
    components = [
        ComponentRegistered(
            component_id=uuid4(),
            type=component_type,
            flavor=flavor,
            name=f"{flavor}-{component_type}",
            configuration=configuration,
            labels={"team": "ml-platform"},
        )
        for component_type, flavor, configuration in (
            ("orchestrator", "local", {}),
            ("artifact_store", "local", {"path": "/var/lib/zenml/artifacts"}),
            ("orchestrator", "kubeflow", {"kubernetes_context": "prod", "namespace": "ml"}),
            ("artifact_store", "s3", {"path": "s3://ml-artifacts"}),
            ("container_registry", "aws", {"uri": "123456789.dkr.ecr.eu-west-1.amazonaws.com"}),
        )
    ]
    ids = [c.component_id for c in components]
    local, production = uuid4(), uuid4()
    members = {
        local: {"orchestrator": ids[0], "artifact_store": ids[1]},
        production: {
            "orchestrator": ids[2],
            "artifact_store": ids[3],
            "container_registry": ids[4],
        },
    }
    workspace: list[Event] = [
        *components,
        StackRegistered(stack_id=local, name="default", components=members[local]),
        StackRegistered(
            stack_id=production,
            name="production",
            components=members[production],
            description="Kubeflow on EKS",
        ),
        WorkspaceActiveStackSet(stack_id=production),
    ]
    yield [(WORKSPACE_STREAM, workspace, ANY)]
    active = production
    batch: list[AppendItem] = []
    for index in range(runs):
        changes: list[Event] = []
        if index and index % COMPONENT_UPDATE_EVERY == 0:
            changes.append(
                ComponentUpdated(
                    component_id=ids[2],
                    configuration={"kubernetes_context": "prod", "namespace": f"ml-{index}"},
                )
            )
        if index and index % STACK_CHANGE_EVERY == 0:
            active = local if active == production else production
            changes += [
                StackUpdated(stack_id=active, components=members[active]),
                WorkspaceActiveStackSet(stack_id=active),
            ]
        if changes:
            batch.append((WORKSPACE_STREAM, changes, ANY))
        run_id = uuid4()
        # Artifacts live under their derived event ids, as the write API and the
        # domain rules (import, copy) require.
        run_events: list[Event | NewEvent] = [
            NewEvent(e, artifact_event_id(e.artifact_id)) if isinstance(e, ArtifactProduced) else e
            for e in lifecycle_events(index, run_id, active)
        ]
        batch.append((run_stream(run_id), run_events, NO_STREAM))
        if len(batch) >= FILL_RUNS_PER_APPEND:
            yield batch
            batch = []
    if batch:
        yield batch


async def fill_lifecycle_store(directory: Path | str, runs: int) -> int:
    """Fill a store with ``lifecycle_appends(runs)`` quickly; return its head.

    ``append_many`` batches of 2,000 events on a ``durability="normal"`` store:
    only the fills trade durability for speed. (Two tasks appending at once
    were no faster: the commit thread is the bottleneck.)
    """
    async with open_store(directory, durability="normal", default_stack=False) as store:
        for batch in lifecycle_appends(runs):
            await store.append_many(batch)
        head: int = await store.head()
    return head


def lifecycle_lines(batches: Sequence[list[AppendItem]]) -> bytes:
    """The events of ``batches`` as the JSON lines ``events append`` takes, in the same order.

    Events given with an id (the artifacts' derived ids) keep it; the others
    get the ids ``events append`` derives from the input.
    """
    encoder = msgspec.json.Encoder()
    lines = []
    for batch in batches:
        for stream_id, events, _expected in batch:
            for item in events:
                line: dict[str, Any] = {"stream_id": stream_id}
                if isinstance(item, NewEvent):
                    line["event_id"] = str(item.event_id)
                    item = item.event
                assert isinstance(item, Event)
                data = msgspec.to_builtins(item)
                line["type"] = data.pop("event_type")
                line["data"] = data
                lines.append(encoder.encode(line))
    return b"\n".join(lines) + b"\n"


async def api_append(directory: Path, batches: Sequence[list[AppendItem]]) -> tuple[int, float]:
    """Events and seconds of ``append_many`` of ``batches`` on a fresh durable store."""
    async with open_store(directory, default_stack=False) as store:
        start = time.perf_counter()
        for batch in batches:
            await store.append_many(batch)
        elapsed = time.perf_counter() - start
        head: int = await store.head()
    return head, elapsed


async def lines_append(directory: Path, content: bytes) -> tuple[int, float]:
    """Events and seconds of what ``events append FILE`` does with ``content``, fresh store.

    ``parse_lines`` (every line checked alone) then ``append_lines`` (the domain
    rules against the store, then one all-or-nothing transaction), timed together.
    """
    from eventstore import append_lines, parse_lines

    async with open_store(directory, default_stack=False) as store:
        start = time.perf_counter()
        result = await append_lines(store, parse_lines(content, store.codec))
        elapsed = time.perf_counter() - start
    return result.appended, elapsed


async def export_to(directory: Path, path: Path) -> None:
    """Write the export (``metaledger export``) of the store at ``directory`` to ``path``."""
    from eventstore import export

    async with open_store(directory, create=False) as store:
        with path.open("wb") as file:
            await export(store, file)


async def file_import(directory: Path, path: Path) -> tuple[int, float]:
    """Events and seconds of ``metaledger import`` of the export at ``path``, fresh store.

    Both passes timed: every line parsed, its chain and rules checked, then the
    rows parsed again and stored in one transaction.
    """
    from eventstore import import_

    async with open_store(directory, default_stack=False) as store:
        start = time.perf_counter()
        result = await import_(store, path)
        elapsed = time.perf_counter() - start
    return result.imported, elapsed


def _append_figures(sizes: Sizes, scratch: _Scratch) -> list[Figure]:
    """``events append`` and ``import`` of a file against the batched API append of its events."""
    batches = list(lifecycle_appends(sizes.append_runs))
    content = lifecycle_lines(batches)
    rates: dict[str, list[float]] = {"api": [], "lines": [], "import": []}
    exported = scratch.root / "append-export.jsonl"
    for _ in range(sizes.append_repeats):
        api_dir = scratch.new("api-append")
        events, seconds = _timed(
            "batched API append",
            lambda: anyio.run(api_append, api_dir, batches, backend="asyncio"),  # noqa: B023
        )
        rates["api"].append(events / seconds)
        if not exported.exists():
            anyio.run(export_to, api_dir, exported, backend="asyncio")
        events, seconds = _timed(
            "events append of the same events as JSON lines",
            lambda: anyio.run(lines_append, scratch.new("lines"), content, backend="asyncio"),
        )
        rates["lines"].append(events / seconds)
        events, seconds = _timed(
            "import of their export",
            lambda: anyio.run(file_import, scratch.new("import"), exported, backend="asyncio"),
        )
        rates["import"].append(events / seconds)
    api = statistics.median(rates["api"])
    return [
        Figure(
            f"floor API: append_many of {events:,} events, {FILL_RUNS_PER_APPEND * RUN_EVENTS:,} "
            "per call",
            api,
            "events/s",
        ),
        Figure(
            f"events append of the same {events:,} events as JSON lines",
            statistics.median(rates["lines"]),
            "events/s",
            api,
            "API",
            "ratio>=",
            0.50,
            note="parse + domain rules + one transaction; durable store",
        ),
        Figure(
            f"import of the export of the same {events:,} events",
            statistics.median(rates["import"]),
            "events/s",
            api,
            "API",
            "ratio>=",
            0.50,
            note="both passes: parse, chain and rules, then parse again + one transaction",
        ),
    ]


class RssSampler:
    """Samples this process's resident memory every few ms in a thread (Linux).

    ``peak`` holds VmRSS, RssAnon and RssFile (bytes) at the highest VmRSS seen,
    ``before`` the same when sampling started; both stay empty without
    /proc/self/status. File-backed pages count: SQLite's memory-mapped reads
    show up in RssFile.
    """

    _FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.before: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    @classmethod
    def sample(cls) -> dict[str, int]:
        """The current VmRSS, RssAnon and RssFile in bytes (empty if unknown)."""
        values: dict[str, int] = {}
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    key, _, value = line.partition(":")
                    if key in cls._FIELDS:
                        values[key] = int(value.split()[0]) * 1024
        except (OSError, ValueError):
            return {}
        return values

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = self.sample()
            if now.get("VmRSS", 0) > self.peak.get("VmRSS", 0):
                self.peak = now

    def __enter__(self) -> RssSampler:
        self.before = self.sample()
        self.peak = dict(self.before)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        now = self.sample()
        if now.get("VmRSS", 0) > self.peak.get("VmRSS", 0):
            self.peak = now


@dataclass(slots=True)
class CatchUpRun:
    """One catch-up of fresh views on a filled store."""

    events: int
    seconds: float
    batch_size: int
    #: The views store's connection settings, copied by the raw floor.
    pragmas: dict[str, Any]
    rss_before: dict[str, int]
    rss_peak: dict[str, int]

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds


def _connection_pragmas(views_store: Any) -> dict[str, Any]:
    # The views store's writer connection is private; read its settings only,
    # so the floor runs SQLite the way the views store does.
    conn = getattr(views_store, "_writer", None)
    if not isinstance(conn, sqlite3.Connection):
        return {}
    return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in _VIEWS_PRAGMAS}


async def catch_up_views(directory: Path) -> CatchUpRun:
    """Open fresh views beside the log (``views.db``) and catch them up to the head, timed."""
    from projections import open_views  # here: the RSS probe must not import projections

    async with open_store(directory, create=False) as store:
        with RssSampler() as rss:
            start = time.perf_counter()
            async with open_views(store) as views:
                position = await views.catch_up()
                elapsed = time.perf_counter() - start
                batch_size = views.runner.backlog_batch_size
                pragmas = _connection_pragmas(views.views_store)
    return CatchUpRun(position, elapsed, batch_size, pragmas, rss.before, rss.peak)


async def rebuild_views(directory: Path) -> CatchUpRun:
    """``projections rebuild`` of every projection of views already caught up, timed:
    new generations filled beside the live ones, then swapped in."""
    from projections import open_views

    async with open_store(directory, create=False) as store, open_views(store) as views:
        await views.catch_up()
        with RssSampler() as rss:
            start = time.perf_counter()
            await views.rebuild()
            elapsed = time.perf_counter() - start
        position = min(s.position for s in await views.status())
        batch_size = views.runner.backlog_batch_size
        pragmas = _connection_pragmas(views.views_store)
    return CatchUpRun(position, elapsed, batch_size, pragmas, rss.before, rss.peak)


def catch_up_in_fresh_process(directory: Path, *, rebuild: bool = False) -> CatchUpRun:
    """:func:`catch_up_views` in a fresh interpreter, as ``metaledger projections rebuild``
    or a first read runs it.

    Measured in this process, after the benchmarks before it filled and read
    the store, the same catch-up took 2 to 4 s longer (ninth session, cause not
    found: not the garbage collector, not dirty pages) and its memory included
    the 185 to 200 MB this process held: neither is what a user's command pays.
    ``rebuild``: time :func:`rebuild_views` instead.
    """
    flag = "--rebuild-child" if rebuild else "--catch-up-child"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", flag, str(directory)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the catch-up process failed: {done.stderr.strip()}")
    return CatchUpRun(**json.loads(done.stdout))


@dataclass(slots=True)
class ViewsFloor:
    """The raw sqlite3 floor of a catch-up, and what it took to prepare its statements."""

    events: int
    statements: int
    #: Executing every statement and the COMMIT: the floor itself.
    sql_seconds: float
    #: ``read_chunks`` of the log (not part of the floor).
    read_seconds: float
    #: Decoding each row, the projections' ``ops()`` and rendering ``{table}`` names
    #: (not part of the floor): the Python a catch-up runs before its SQL.
    ops_seconds: float

    @property
    def rate(self) -> float:
        """Events per second of the SQL alone."""
        return self.events / self.sql_seconds


async def measure_views_floor(
    directory: Path, path: Path, chunk_size: int, pragmas: dict[str, Any]
) -> ViewsFloor:
    """Raw ``sqlite3`` executing the very SQL a catch-up of this log runs, in ONE transaction.

    The statements come from the projections' own ``ops()`` over the decoded
    log, with ``{table}`` rendered to generation 1's tables (``runs_g1``),
    grouped as the runner groups them (per ``chunk_size`` events, projection by
    projection), into a fresh file with the same tables and indexes and the
    views store's connection settings. Only the SQL and the COMMIT are timed:
    preparing the statements is timed apart.
    """
    from projections import EventContext, default_projections
    from projections.row_ops import to_sql_ops
    from projections.transactions import physical_name

    projections = default_projections()
    names = [{table: physical_name(table, 1) for table in p.tables} for p in projections]
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    rendered: dict[tuple[int, str], str] = {}
    events = statements = 0
    sql_seconds = read_seconds = ops_seconds = 0.0
    try:
        for name, value in pragmas.items():
            conn.execute(f"PRAGMA {name} = {value}")
        for projection, physical in zip(projections, names, strict=True):
            for table, definition in projection.tables.items():
                for statement in definition.create_statements(physical[table]):
                    conn.execute(statement)
        conn.execute("BEGIN IMMEDIATE")
        async with open_store(directory, create=False) as store:
            decode = store.decode_row
            started = time.perf_counter()
            async for rows in store.read_chunks(chunk_size=chunk_size):
                prepared = time.perf_counter()
                read_seconds += prepared - started
                work: list[list[tuple[str, tuple[Any, ...]]]] = [[] for _ in projections]
                for row in rows:
                    recorded = decode(row)
                    context = EventContext.of(recorded)
                    for number, (projection, ops) in enumerate(zip(projections, work, strict=True)):
                        ops_of = projection.ops(recorded, context) or ()
                        for sql, params in to_sql_ops(ops_of, projection.tables):
                            key = (number, sql)
                            text = rendered.get(key)
                            if text is None:
                                text = rendered[key] = sql.format_map(names[number])
                            ops.append((text, params))
                executing = time.perf_counter()
                ops_seconds += executing - prepared
                execute = conn.execute
                for ops in work:
                    for text, params in ops:
                        execute(text, params)
                    statements += len(ops)
                events += len(rows)
                started = time.perf_counter()
                sql_seconds += started - executing
        committing = time.perf_counter()
        conn.execute("COMMIT")
        sql_seconds += time.perf_counter() - committing
    finally:
        conn.close()
    return ViewsFloor(events, statements, sql_seconds, read_seconds, ops_seconds)


@dataclass(slots=True)
class QueryRuns:
    """Latencies (seconds) of the newest-runs query, ours and raw, interleaved."""

    runs: int
    ours: list[float]
    raw: list[float]
    raw_same_sql: list[float]
    plan: str


async def newest_runs_latencies(directory: Path, repeats: int) -> QueryRuns:
    """``Queries.runs(limit=50)`` on caught-up views against raw sqlite3 on the same file."""
    from projections import VIEWS_FILE, open_views

    # fresh=False: the timed query is the read alone, not a head probe in front of it.
    async with (
        open_store(directory, create=False) as store,
        open_views(store, fresh=False) as views,
    ):
        await views.catch_up()  # already at the head: the query benchmark does not write
        raw = sqlite3.connect(f"file:{directory / VIEWS_FILE}?mode=ro", uri=True)
        try:
            runs = raw.execute("SELECT count(*) FROM runs").fetchone()[0]
            plan = "; ".join(
                str(row[-1]) for row in raw.execute(f"EXPLAIN QUERY PLAN {RAW_NEWEST_RUNS_SQL}")
            )
            ours_rows = await views.query.runs(limit=NEWEST_RUNS)
            raw_rows = raw.execute(RAW_NEWEST_RUNS_SQL).fetchall()
            if [r.run_id for r in ours_rows] != [row[0] for row in raw_rows]:
                raise RuntimeError("Queries.runs and the raw query returned different runs")
            timings: dict[str, list[float]] = {"ours": [], "raw": [], "same": []}
            for _ in range(repeats):
                start = time.perf_counter()
                await views.query.runs(limit=NEWEST_RUNS)
                timings["ours"].append(time.perf_counter() - start)
                start = time.perf_counter()
                raw.execute(RAW_NEWEST_RUNS_SQL).fetchall()
                timings["raw"].append(time.perf_counter() - start)
                start = time.perf_counter()
                raw.execute(RAW_QUERIES_RUNS_SQL).fetchall()
                timings["same"].append(time.perf_counter() - start)
        finally:
            raw.close()
    return QueryRuns(runs, timings["ours"], timings["raw"], timings["same"], plan)


@dataclass(slots=True)
class AsOfRuns:
    """Seconds of as-of and of the half-log replays it is compared with, one per round."""

    head: int
    target: int
    as_of: list[float]
    replay_file: list[float]
    replay_memory: list[float]


def as_of_target(directory: Path, head: int) -> int:
    """The as-of benchmark's point: the position just before the first snapshot past
    mid-log (the farthest from the snapshot it starts from), else ``head // 2``."""
    from projections import VIEWS_FILE
    from projections.snapshots import ViewSnapshots

    later = [p for p in ViewSnapshots(directory / VIEWS_FILE).positions() if p > head // 2]
    return min(later) - 1 if later else head // 2


async def as_of_and_replays(directory: Path, scratch: _Scratch, repeats: int) -> AsOfRuns:
    """``views_as_of`` near mid-log plus a query, against catch-ups of fresh views there.

    The point is :func:`as_of_target`: a replay from the newest snapshot before
    it is as long as the live views' snapshots leave anywhere in the middle of
    the log. Each round runs, in turn: ``views_as_of(store, position=target)`` and
    ``query.runs()`` on it (in-memory scratch, as ``views_as_of`` does), then a
    fresh views file caught up to the same position (the cost of replaying half
    the log, the floor). Once, at the end: a fresh in-memory views store caught
    up likewise, with no query, to tell the scratch store's part from the query's.
    """
    from projections import VIEWS_FILE, open_views, views_as_of

    rounds: dict[str, list[float]] = {"as_of": [], "file": [], "memory": []}
    async with open_store(directory, create=False) as store:
        head = await store.head()
        target = as_of_target(directory, head)
        for _ in range(repeats):
            start = time.perf_counter()
            async with views_as_of(store, position=target) as past:
                seen = await past.query.runs(limit=NEWEST_RUNS)
            rounds["as_of"].append(time.perf_counter() - start)

            folder = scratch.new("replay")
            folder.mkdir(parents=True)
            start = time.perf_counter()
            # fresh=False: the query must read the views at the target, not at the head.
            async with open_views(store, path=folder / VIEWS_FILE, fresh=False) as views:
                await views.runner.catch_up(to_position=target)
                rounds["file"].append(time.perf_counter() - start)
                replayed = await views.query.runs(limit=NEWEST_RUNS)  # not timed
            if [r.run_id for r in seen] != [r.run_id for r in replayed]:
                raise RuntimeError("views_as_of and the replay to the same position differ")

        start = time.perf_counter()
        async with open_views(store, memory=True) as views:
            await views.runner.catch_up(to_position=target)
            rounds["memory"].append(time.perf_counter() - start)
    return AsOfRuns(head, target, rounds["as_of"], rounds["file"], rounds["memory"])


def _mb(values: dict[str, int], key: str) -> float:
    return values.get(key, 0) / _MB


def _projection_figures(
    sizes: Sizes, scratch: _Scratch, floor_a: float, log_dir: Path
) -> list[Figure]:
    catch_up: CatchUpRun = _timed(
        "catch-up of the big store into the projections (a fresh process)",
        lambda: catch_up_in_fresh_process(log_dir),
    )
    floor: ViewsFloor = _timed(
        "floor P: the projections' SQL through raw sqlite3",
        lambda: anyio.run(
            measure_views_floor,
            log_dir,
            scratch.new("floor-p") / "views.db",
            catch_up.batch_size,
            catch_up.pragmas,
            backend="asyncio",
        ),
    )
    query: QueryRuns = _timed(
        f"Queries.runs(limit={NEWEST_RUNS}) x {sizes.query_repeats}",
        lambda: anyio.run(newest_runs_latencies, log_dir, sizes.query_repeats, backend="asyncio"),
    )
    if sizes.as_of_runs == math.ceil(sizes.read_events / RUN_EVENTS):
        as_of_dir = log_dir
    else:
        as_of_dir = scratch.new("as-of")
        _timed(
            f"filling a store with {sizes.as_of_runs:,} run lifecycles",
            lambda: anyio.run(fill_lifecycle_store, as_of_dir, sizes.as_of_runs, backend="asyncio"),
        )
        # As a store in use has them: its live views, caught up, left their
        # periodic snapshots on the way (the big store's were made by the catch-up).
        _timed(
            "catching up the as-of store's live views",
            lambda: anyio.run(catch_up_views, as_of_dir, backend="asyncio"),
        )
    as_of: AsOfRuns = _timed(
        "as-of and half-log replays",
        lambda: anyio.run(
            as_of_and_replays, as_of_dir, scratch, sizes.as_of_repeats, backend="asyncio"
        ),
    )
    # Last: a rebuild discards the live views' snapshots, which as-of starts from.
    rebuild: CatchUpRun = _timed(
        "projections rebuild of the big store (a fresh process)",
        lambda: catch_up_in_fresh_process(log_dir, rebuild=True),
    )

    python_seconds = floor.read_seconds + floor.ops_seconds
    ours = statistics.median(query.ours)
    raw = statistics.median(query.raw)
    same = statistics.median(query.raw_same_sql)
    as_of_s = statistics.median(as_of.as_of)
    replay = statistics.median(as_of.replay_file)
    memory = statistics.median(as_of.replay_memory)
    rss = catch_up.rss_peak
    return [
        Figure(
            f"floor P: sqlite3 running the projections' SQL, 1 txn, {floor.events:,} events",
            floor.rate,
            "events/s",
            note=(
                f"{floor.statements:,} statements ({floor.statements / floor.events:.1f}/event) "
                f"in {floor.sql_seconds:.1f} s"
            ),
        ),
        Figure(
            f"catch-up of {catch_up.events:,} events into 3 projections",
            catch_up.rate,
            "events/s",
            floor_a,
            "A",
            "ratio>=",
            0.50,
            note=(
                f"{catch_up.seconds:.1f} s; {math.ceil(catch_up.events / catch_up.batch_size)} "
                f"txns of {catch_up.batch_size:,} events"
            ),
        ),
        Figure(
            "same catch-up against floor P (the views' own SQL)",
            catch_up.rate,
            "events/s",
            floor.rate,
            "P",
            detail=True,
        ),
        Figure(
            "reading + decoding the log + ops() in Python, no SQL",
            floor.events / python_seconds,
            "events/s",
            floor.rate,
            "P",
            note=(
                f"read {floor.read_seconds:.1f} s + decode/ops {floor.ops_seconds:.1f} s: "
                "the per-event path (the catch-up folds each chunk instead)"
            ),
            detail=True,
        ),
        Figure(
            f"projections rebuild of {rebuild.events:,} events (all 3, blue/green)",
            rebuild.rate,
            "events/s",
            floor_a,
            "A",
            note=f"{rebuild.seconds:.1f} s: new generations filled, indexed and swapped in",
            detail=True,
        ),
        Figure(
            "peak RSS during the rebuild (its own process)",
            _mb(rebuild.rss_peak, "VmRSS"),
            "MB",
            target_kind="value<=",
            target=300.0,
            note=(
                f"{_mb(rebuild.rss_before, 'VmRSS'):.0f} MB before (the live views open); "
                f"at the peak {_mb(rebuild.rss_peak, 'RssAnon'):.0f} MB anonymous"
            ),
            detail=True,
        ),
        Figure(
            "peak RSS during the catch-up (its own process)",
            _mb(rss, "VmRSS"),
            "MB",
            target_kind="value<=",
            target=300.0,
            note=(
                f"{_mb(catch_up.rss_before, 'VmRSS'):.0f} MB before; at the peak "
                f"{_mb(rss, 'RssAnon'):.0f} MB anonymous + {_mb(rss, 'RssFile'):.0f} MB "
                "file-backed (mmap)"
            ),
            detail=True,
        ),
        Figure(
            f"Queries.runs(limit={NEWEST_RUNS}), {query.runs:,} runs",
            1 / ours,
            "queries/s",
            1 / raw,
            "Q",
            "ratio>=",
            1 / 3,
            note=(
                f"median of {len(query.ours)}: {ours * 1e3:.3f} ms vs raw {raw * 1e3:.3f} ms "
                f"({query.plan})"
            ),
        ),
        Figure(
            "Queries.runs' own SQL (stack join) via raw sqlite3",
            1 / same,
            "queries/s",
            1 / raw,
            "Q",
            note=f"median {same * 1e3:.3f} ms",
            detail=True,
        ),
        Figure(
            f"as-of position {as_of.target:,} of {as_of.head:,} events (before a snapshot) + runs",
            as_of_s,
            "s",
            replay,
            "H",
            "ratio<=",
            0.20,
            note=f"H: fresh views file caught up to {as_of.target:,}",
        ),
        Figure(
            "same replay into memory (as-of's scratch), no query",
            memory,
            "s",
            replay,
            "H",
            detail=True,
        ),
    ]


# -- the run ---------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "msgspec": msgspec.__version__,
    }


def _timed(label: str, work: Callable[[], Any]) -> Any:
    _progress(f"{label}...")
    start = time.perf_counter()
    result = work()
    _progress(f"{label}: {time.perf_counter() - start:.1f} s")
    return result


def _run_single(path: Path, *, tasks: int, per_task: int) -> WriteRun:
    return anyio.run(single_appends, path, tasks, per_task, backend="asyncio")


def _run_batches(path: Path, *, tasks: int, batches: int, size: int) -> WriteRun:
    return anyio.run(batch_appends, path, tasks, batches, size, backend="asyncio")


def _floor_a_figures(sizes: Sizes, scratch: _Scratch) -> tuple[float, list[Figure]]:
    """Floor A (median of several runs) and the store's per-event CPU the floors skip."""
    repeats = max(3, sizes.write_repeats)
    rows = _timed(
        "building floor rows",
        lambda: workload_rows(
            sizes.floor_rows // EVENTS_PER_STREAM, EVENTS_PER_STREAM, EVENTS_PER_STREAM
        ),
    )
    floor_a = statistics.median(
        _timed("floor A", lambda: measure_floor_a(scratch.new("floor-a"), rows))
        for _ in range(repeats)
    )
    encoding, hashing = prepare_cost(len(rows))
    return floor_a, [
        Figure(
            f"floor A: sqlite3 executemany, 1 txn, {sizes.floor_rows:,} rows", floor_a, "rows/s"
        ),
        Figure(
            "store CPU per event the floors skip: encode + chain hash",
            (encoding + hashing) * 1e6,
            "us/event",
            note=(
                f"encode {encoding * 1e6:.1f} + hash {hashing * 1e6:.1f}; "
                f"floor A inserts a row in {1e6 / floor_a:.1f} us"
            ),
            detail=True,
        ),
    ]


def _write_figures(sizes: Sizes, scratch: _Scratch, floor_a: float) -> list[Figure]:
    repeats = max(3, sizes.write_repeats)
    figures: list[Figure] = []

    def measure(
        name: str,
        run: Callable[[Path], WriteRun],
        layout: tuple[int, int, int],
        target: float,
    ) -> WriteRun:
        """Run a write benchmark, then raw sqlite3 committing its rows the way the store did.

        ``layout`` is (streams, events per stream, events of one stream per
        append), so the A' rows come in the order the store committed them.
        """
        result = _median_run(
            [
                _timed(name, lambda: run(scratch.new(name.replace(" ", "-"))))
                for _ in range(sizes.write_repeats)
            ]
        )
        per_commit = max(1, round(result.events / result.commits))
        same_rows = workload_rows(*layout)

        def same_commits(synchronous: Literal["FULL", "NORMAL"]) -> float:
            return measure_floor_a(scratch.new("floor-a-txn"), same_rows, per_commit, synchronous)

        modes: tuple[Literal["FULL", "NORMAL"], ...] = ("FULL", "NORMAL")
        same = {
            synchronous: statistics.median(
                _timed(
                    f"floor A' at {per_commit} rows/txn, synchronous={synchronous}",
                    functools.partial(same_commits, synchronous),
                )
                for _ in range(repeats)
            )
            for synchronous in modes
        }
        # + 0.0: no "-0%" when noise makes FULL a hair faster than NORMAL.
        fsync_share = round(1 - same["FULL"] / same["NORMAL"], 2) + 0.0
        figures.extend(
            (
                Figure(
                    name,
                    result.rate,
                    "events/s",
                    floor_a,
                    "A",
                    "ratio>=",
                    target,
                    note=(
                        f"{result.events / result.commits:.0f} events/commit; "
                        f"{result.cores:.2f} cores busy"
                    ),
                ),
                Figure(
                    f"floor A' at {per_commit:,} rows/txn: the store's rows and commits",
                    same["FULL"],
                    "rows/s",
                    floor_a,
                    "A",
                    note=f"store = {result.rate / same['FULL']:.2f} x A'",
                    detail=True,
                ),
                Figure(
                    "same with synchronous=NORMAL: no fsync per commit",
                    same["NORMAL"],
                    "rows/s",
                    floor_a,
                    "A",
                    note=f"fsync waits: {fsync_share:.0%} of A' time",
                    detail=True,
                ),
            )
        )
        return result

    tasks, per_task = sizes.single_tasks, sizes.single_appends_per_task
    name = f"{tasks} tasks x 1-event appends"
    single = measure(
        name,
        functools.partial(_run_single, tasks=tasks, per_task=per_task),
        (tasks, per_task, 1),
        0.30,
    )
    ordered = sorted(single.latencies)
    figures += [
        Figure(f"{name}: latency p50", _percentile(ordered, 0.50) * 1e3, "ms"),
        Figure(
            f"{name}: latency p99",
            _percentile(ordered, 0.99) * 1e3,
            "ms",
            target_kind="value<=",
            target=10.0,
        ),
        Figure(f"{name}: latency max", ordered[-1] * 1e3, "ms"),
    ]

    size = sizes.batch_events
    for tasks, batches in (
        (1, sizes.sequential_batches),
        (sizes.concurrent_tasks, sizes.concurrent_batches_per_task),
    ):
        measure(
            f"{tasks} task{'s' if tasks > 1 else ''} x {size}-event batches",
            functools.partial(_run_batches, tasks=tasks, batches=batches, size=size),
            (tasks, batches * size, size),
            0.60,
        )
    return figures


def _fill_big_store(sizes: Sizes, scratch: _Scratch) -> Path:
    """The store the read benchmarks read and the projections catch up on."""
    directory = scratch.new("big")
    runs = math.ceil(sizes.read_events / RUN_EVENTS)
    _timed(
        f"filling a store with {runs:,} run lifecycles (~{sizes.read_events:,} events)",
        lambda: anyio.run(fill_lifecycle_store, directory, runs, backend="asyncio"),
    )
    return directory


def _read_figures(sizes: Sizes, read_dir: Path, probe: RssProbe) -> list[Figure]:
    # Interleaved, best of each: all read a file the fill left in the page cache,
    # so none pays for the disk and the order favours none.
    rates: dict[str, list[float]] = {"B": [], "lean": [], "read_all": [], "chunks": []}
    count = sizes.read_events
    for _ in range(sizes.read_repeats):
        for key, label, reader in (
            ("B", "floor B", lambda: read_floor_b(read_dir)),
            ("lean", "floor B-lean", lambda: read_floor_lean(read_dir)),
            (
                "read_all",
                "read_all",
                lambda: anyio.run(read_through_store, read_dir, backend="asyncio"),
            ),
            (
                "chunks",
                "read_chunks + decode",
                lambda: anyio.run(read_chunks_decoded, read_dir, backend="asyncio"),
            ),
        ):
            count, seconds = _timed(label, reader)
            rates[key].append(count / seconds)
    floor_b = max(rates["B"])
    lean = max(rates["lean"])
    rss = _timed("peak RSS in the probe process", lambda: probe.measure(read_dir))
    return [
        Figure(
            f"floor B-lean: sqlite3 SELECT type, data + msgspec decode, {count:,} rows",
            lean,
            "events/s",
        ),
        Figure("floor B: sqlite3 SELECT (all 10 columns) + msgspec decode", floor_b, "events/s"),
        Figure(
            f"read_all of {count:,} events, decoded",
            max(rates["read_all"]),
            "events/s",
            lean,
            "B-lean",
            "ratio>=",
            0.60,
        ),
        Figure(
            "read_all against floor B (all ten columns)",
            max(rates["read_all"]),
            "events/s",
            floor_b,
            "B",
            detail=True,
        ),
        Figure(
            "read_chunks + decode inline: whole rows, no per-event yield",
            max(rates["chunks"]),
            "events/s",
            floor_b,
            "B",
            detail=True,
        ),
        Figure(
            f"peak RSS reading {rss['events']:,} events (read_all)",
            rss["peak_rss_bytes"] / _MB,
            "MB",
            target_kind="value<=",
            target=150.0,
            note=(
                f"{rss['baseline_rss_bytes'] / _MB:.0f} MB after imports; "
                f"VmHWM {(rss['vm_hwm_bytes'] or 0) / _MB:.0f} MB"
            ),
        ),
    ]


Section = Literal["log", "projections"]
SECTIONS: tuple[Section, ...] = ("log", "projections")


def run_benchmarks(
    sizes: Sizes,
    root: Path,
    probe: RssProbe | None = None,
    sections: Sequence[Section] = SECTIONS,
) -> list[Figure]:
    """Run the benchmarks of ``sections`` under ``root``; return the figures in table order.

    ``"log"`` is the event log's writes and reads, ``"projections"`` the views'
    catch-up, query and as-of; floor A is measured for either. ``probe`` should
    be started as early as possible (see :class:`RssProbe`); one is started here
    if the log section runs and none is given.
    """
    if "log" in sections:
        probe = probe or RssProbe()
    try:
        scratch = _Scratch(root)
        floor_a, figures = _floor_a_figures(sizes, scratch)
        if "log" in sections:
            figures += _write_figures(sizes, scratch, floor_a)
        big = _fill_big_store(sizes, scratch)
        if "log" in sections:
            assert probe is not None
            figures += _read_figures(sizes, big, probe)
            figures += _append_figures(sizes, scratch)
        if "projections" in sections:
            figures += _projection_figures(sizes, scratch, floor_a, big)
        return figures
    finally:
        if probe is not None:
            probe.close()


# -- output ----------------------------------------------------------------------


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _target_text(figure: Figure) -> str:
    if figure.target_kind is None or figure.target is None:
        return "-"
    if figure.target_kind == "ratio>=":
        return f"ratio >= {figure.target:.2f}"
    if figure.target_kind == "ratio<=":
        return f"ratio <= {figure.target:.2f}"
    return f"<= {_number(figure.target)} {figure.unit}"


def _table_rows(figures: Sequence[Figure]) -> Iterator[tuple[str, ...]]:
    yield ("name", "value", "unit", "floor", "ratio", "target", "result", "note")
    for figure in figures:
        yield (
            f"  {figure.name}" if figure.detail else figure.name,
            _number(figure.value),
            figure.unit,
            "-" if figure.floor is None else f"{figure.floor_name} {_number(figure.floor)}",
            "-" if figure.ratio is None else f"{figure.ratio:.2f}",
            _target_text(figure),
            {None: "-", True: "pass", False: "FAIL"}[figure.passed],
            figure.note,
        )


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned plain-text table."""
    rows = list(_table_rows(figures))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {1, 3, 4}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=(
            "Measure the event log and its views against raw SQLite floors and print the ratios."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--read-events",
        type=int,
        metavar="N",
        help=(
            "events in the big store, read by read_all and caught up by the projections "
            "(default 1,000,000; 100,000 with --quick)"
        ),
    )
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="PATH",
        help="where to create the scratch stores (default: a new temporary directory)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch stores instead of deleting them"
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--skip-projections",
        action="store_true",
        help="leave out the projections (catch-up, newest runs, as-of)",
    )
    only.add_argument(
        "--only-projections",
        action="store_true",
        help="run floor A and the projections only (no log write/read benchmarks)",
    )
    only.add_argument(
        "--only-postgres",
        action="store_true",
        help="run the PostgreSQL part only (needs --postgres): floor PG, the emitters, "
        "the views' catch-up",
    )
    parser.add_argument(
        "--postgres",
        metavar="URI",
        help="also measure 50 concurrent emitters against this PostgreSQL server "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test), with a raw asyncpg floor",
    )
    # Internal: the child process of the RSS measurement.
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    # Internal: the child process that catches fresh views up (catch_up_in_fresh_process).
    parser.add_argument("--catch-up-child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--rebuild-child", metavar="DIR", help=argparse.SUPPRESS)
    return parser


def postgres_figures(dsn: str, events: int) -> list[Figure]:
    """The PostgreSQL section: 50 durable emitters as a ratio to a raw asyncpg floor."""
    import anyio

    from benchmarks.bench_postgres import run_postgres_benchmark

    _progress(f"postgres: floor and 50 emitters, {events:,} events")
    measured = anyio.run(functools.partial(run_postgres_benchmark, dsn, events=events))
    floor = measured["floor_rows_per_s"]
    at_commit_size = measured["floor_50_per_commit_rows_per_s"]
    return [
        Figure(
            f"floor PG: asyncpg copy_records_to_table, 1 txn, {events:,} rows",
            floor,
            "rows/s",
        ),
        Figure(
            "PostgreSQL: 50 tasks x 1-event appends",
            measured["emitters_events_per_s"],
            "events/s",
            floor,
            "PG",
            "ratio>=",
            0.3,
            "synchronous_commit on; 50 events/commit under the advisory lock",
        ),
        Figure(
            "floor PG' at 50 rows per durable commit: the store's commit size",
            at_commit_size,
            "rows/s",
            floor,
            "PG",
            detail=True,
            note=f"store = {measured['emitters_events_per_s'] / at_commit_size:.2f} x PG'",
        ),
        Figure(
            f"PostgreSQL: catch-up of fresh views, {measured['views_events']:,} events",
            measured["views_events_per_s"],
            "events/s",
            floor,
            "PG",
            "ratio>=",
            0.2,
            "run lifecycles, 3 projections; the views in schema <prefix>_views",
        ),
        Figure("PostgreSQL: latency p50", measured["p50_ms"], "ms", detail=True),
        Figure("PostgreSQL: latency p99", measured["p99_ms"], "ms", detail=True),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table (or JSON); always returns 0."""
    args = _parser().parse_args(argv)
    configure_logging()
    if args.rss_child:
        print(json.dumps(rss_child()))
        return 0
    if args.catch_up_child or args.rebuild_child:
        child = catch_up_views if args.catch_up_child else rebuild_views
        run = anyio.run(child, Path(args.catch_up_child or args.rebuild_child), backend="asyncio")
        print(json.dumps(asdict(run)))
        return 0
    if args.read_events is not None and args.read_events < 1:
        _parser().error("--read-events must be at least 1")
    if args.only_postgres and not args.postgres:
        _parser().error("--only-postgres needs --postgres URI")
    sizes = Sizes.quick(args.read_events) if args.quick else Sizes.full(args.read_events)
    sections: tuple[Section, ...] = SECTIONS
    if args.skip_projections:
        sections = ("log",)
    elif args.only_projections:
        sections = ("projections",)
    elif args.only_postgres:
        sections = ()
    # First, while this process is still small: see RssProbe.
    probe = RssProbe() if "log" in sections else None
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="metaledger-bench-", dir=args.dir))
    started = time.perf_counter()
    try:
        figures = run_benchmarks(sizes, root, probe, sections) if sections else []
        if args.postgres:
            figures += postgres_figures(args.postgres, 5_000 if args.quick else 20_000)
    finally:
        if args.keep:
            _progress(f"scratch stores kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    total = time.perf_counter() - started
    info = machine_info()
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "mode": "quick" if args.quick else "full",
                    "sections": list(sections),
                    "sizes": asdict(sizes),
                    "seconds": round(total, 1),
                    "figures": [asdict(figure) for figure in figures],
                },
                indent=2,
            )
        )
    else:
        print(
            f"metaledger bench ({'quick' if args.quick else 'full'}): {info['cpus']} CPUs "
            f"({info['cpu']}), Python {info['python']}, SQLite {info['sqlite']}, "
            f"{total:.0f} s"
        )
        print(format_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
