"""Benchmarks of the event log against raw SQLite floors: ``python -m eventstore.bench``.

Every throughput is printed as a ratio to a floor measured in the same run, on
the same disk, with the same rows, so a figure says what the store costs over
SQLite itself rather than how fast the machine happens to be:

- Floor A: stdlib ``sqlite3`` inserting N prepared rows of exactly the shape the
  store writes (real encoded events, UUIDv7 ids, metadata, chained hashes) into a
  fresh file with the log's own schema, WAL and ``synchronous=FULL``, in ONE
  transaction with ``executemany``: one commit, one fsync for all N rows.
- Floor B: stdlib ``sqlite3`` selecting the same rows of a filled store and
  decoding each payload with msgspec's typed decoder for its event class.

The figures: 50 concurrent single-event appenders (throughput and latency),
100-event batches from one task and from ten, ``read_all`` of a large store, and
the peak RSS of a fresh process reading that store through ``read_all``.
Indented rows explain the one above: floor A' is raw ``sqlite3`` inserting the
rows a write benchmark wrote, in the same order and with the same rows per
commit as the store's group commit made (with ``synchronous`` FULL, then NORMAL
to price the fsyncs alone), so a ratio splits into what the commit size costs
SQLite and what the store adds on top.

Options: ``--quick`` (small sizes), ``--json`` (machine-readable results on
stdout), ``--read-events N``, ``--dir PATH`` (where the scratch stores go),
``--keep`` (leave them). It is a report, not a test: pytest does not collect it
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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

import anyio
import msgspec

from .chain import GENESIS_HASH, chain_hash
from .codec import EventCodec, encode_metadata
from .envelope import Metadata, RecordedEvent
from .events import (
    EVENT_TYPES,
    ArtifactProduced,
    Event,
    MetadataLogged,
    StepFinished,
    StepStarted,
)
from .ids import new_event_id
from .logs import configure_logging
from .planner import Row
from .runs import run_stream
from .sqlite_backend import _COLUMNS, _INSERT, _SCHEMA, LEDGER_FILE
from .store import EventStore, open_store

__all__ = ["Figure", "Sizes", "main", "realistic_events", "run_benchmarks"]

#: Events each stream gets in the write benchmarks' floor rows and in the fill:
#: a run of five steps (started, artifact, metadata, finished per step).
EVENTS_PER_STREAM = 20
#: Events per append while filling the read store, and fill appends in flight:
#: 50 x 40 = 2000 events per group commit, the writer's batch cap.
FILL_APPEND_EVENTS = 40
FILL_TASKS = 50

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
    read_events: int
    write_repeats: int
    read_repeats: int

    @classmethod
    def full(cls, read_events: int | None = None) -> Sizes:
        """Sizes that take about a minute and a half on a 2-core VM (most of it the fill)."""
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
        )


@dataclass(slots=True)
class Figure:
    """One measured figure, its floor, and its target.

    ``target_kind`` says what the target bounds: ``"ratio>="`` the ratio to the
    floor, ``"value<="`` the value itself; ``None`` means informational only.
    ``detail`` marks a figure that explains the one above it (indented in the table).
    """

    name: str
    value: float
    unit: str
    floor: float | None = None
    floor_name: str | None = None
    target_kind: Literal["ratio>=", "value<="] | None = None
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
    return store._writer.batches


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
    async with open_store(directory) as store:
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
    async with open_store(directory) as store:
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


async def fill_store(directory: Path, count: int) -> None:
    """Append ``count`` realistic events quickly: durability "normal", big group commits.

    Only the fill trades durability for speed; the read benchmarks do not write.
    """
    streams = math.ceil(count / EVENTS_PER_STREAM)
    next_stream = 0
    remaining = count

    async with open_store(directory, durability="normal") as store:

        async def filler() -> None:
            nonlocal next_stream, remaining
            while remaining > 0 and next_stream < streams:
                next_stream += 1
                run_id = uuid4()
                events = realistic_events(run_id, min(EVENTS_PER_STREAM, remaining))
                remaining -= len(events)
                stream_id = run_stream(run_id)
                for offset in range(0, len(events), FILL_APPEND_EVENTS):
                    await store.append(stream_id, events[offset : offset + FILL_APPEND_EVENTS])

        async with anyio.create_task_group() as group:
            for _ in range(FILL_TASKS):
                group.start_soon(filler)
        head = await store.head()
    if head != count:
        raise RuntimeError(f"the fill stored {head} events, not {count}")


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
    """``read_all``'s own work without its per-event async-generator step.

    Iterates ``read_chunks`` and builds each RecordedEvent with ``codec.decode``
    inline, exactly as ``read_all`` does, so the gap to ``read_all`` is the cost
    of resuming an async generator once per event.
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
            [sys.executable, "-m", "eventstore.bench", "--rss-child"],
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


def _write_figures(sizes: Sizes, scratch: _Scratch) -> list[Figure]:
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
    figures = [
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


def _read_figures(sizes: Sizes, scratch: _Scratch, probe: RssProbe) -> list[Figure]:
    read_dir = scratch.new("read")
    _timed(
        f"filling a store with {sizes.read_events:,} events",
        lambda: anyio.run(fill_store, read_dir, sizes.read_events, backend="asyncio"),
    )
    # Interleaved, best of each: all read a file the fill left in the page cache,
    # so none pays for the disk and the order favours none.
    rates: dict[str, list[float]] = {"B": [], "read_all": [], "chunks": []}
    count = sizes.read_events
    for _ in range(sizes.read_repeats):
        for key, label, reader in (
            ("B", "floor B", lambda: read_floor_b(read_dir)),
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
    rss = _timed("peak RSS in the probe process", lambda: probe.measure(read_dir))
    return [
        Figure(f"floor B: sqlite3 SELECT + msgspec decode, {count:,} rows", floor_b, "events/s"),
        Figure(
            f"read_all of {count:,} events, decoded",
            max(rates["read_all"]),
            "events/s",
            floor_b,
            "B",
            "ratio>=",
            0.80,
        ),
        Figure(
            "read_chunks + decode inline: read_all minus its per-event yield",
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


def run_benchmarks(sizes: Sizes, root: Path, probe: RssProbe | None = None) -> list[Figure]:
    """Run every benchmark under ``root``; return the figures in table order.

    ``probe`` should be started as early as possible (see :class:`RssProbe`);
    one is started here if not given.
    """
    probe = probe or RssProbe()
    try:
        scratch = _Scratch(root)
        return _write_figures(sizes, scratch) + _read_figures(sizes, scratch, probe)
    finally:
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
        prog="python -m eventstore.bench",
        description="Measure the event log against raw SQLite floors and print the ratios.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--read-events",
        type=int,
        metavar="N",
        help="events in the store read by read_all (default 1,000,000; 100,000 with --quick)",
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
    # Internal: the child process of the RSS measurement.
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table (or JSON); always returns 0."""
    args = _parser().parse_args(argv)
    configure_logging()
    if args.rss_child:
        print(json.dumps(rss_child()))
        return 0
    if args.read_events is not None and args.read_events < 1:
        _parser().error("--read-events must be at least 1")
    sizes = Sizes.quick(args.read_events) if args.quick else Sizes.full(args.read_events)
    # First, while this process is still small: see RssProbe.
    probe = RssProbe()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="metaledger-bench-", dir=args.dir))
    started = time.perf_counter()
    try:
        figures = run_benchmarks(sizes, root, probe)
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
