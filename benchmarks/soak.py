"""A soak run: emitters, a live projection runner and a reader, together for a while.

``python -m benchmarks.soak --seconds 60 --emitters 8 [--processes 2] [--store URI]``

Emitter tasks record pipeline runs through the write API (steps, artifacts
consumed across runs, metadata, failures) as fast as they can, in this process
and optionally in extra processes; meanwhile the views follow the log live and
a reader queries them in a loop. When the time is up the emitters stop, the
views catch up, and the run checks that the log verifies and that the live
views equal a clean replay of the whole log. It prints what it stored, the
errors seen (there must be none) and the final checks, and exits 1 on any
problem. It is a benchmark-style script; ``tests/test_bench.py`` runs it for a
second to keep it working.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from eventstore import EventStore, open_store
from eventstore.logs import configure_logging
from projections.runner import default_projections
from projections.views import open_views, views_as_of

__all__ = ["main"]


async def _emit(store: EventStore, stop: anyio.Event, counters: dict[str, int], name: str) -> None:
    """Record runs until told to stop; count runs and errors."""
    previous: uuid.UUID | None = None
    while not stop.is_set():
        try:
            async with store.pipeline_run(f"soak-{name}", tags=["soak"]) as run:
                async with run.step("load", parameters={"n": counters["runs"]}) as step:
                    if previous is not None:
                        await step.consume("previous", previous)
                    data = await step.produce("data", uri=f"mem://{uuid.uuid4()}", size_bytes=10)
                async with run.step("train", upstream_steps=["load"]) as step:
                    await step.consume("data", data)
                    previous = await step.produce(
                        "model", uri=f"mem://{uuid.uuid4()}", artifact_type="ModelArtifact"
                    )
                    await step.log_metadata({"loss": 0.1, "epoch": counters["runs"] % 10})
                if counters["runs"] % 7 == 0:
                    try:
                        async with run.step("flaky"):
                            raise RuntimeError("a planned failure")
                    except RuntimeError:
                        pass
            counters["runs"] += 1
        except Exception as exc:  # counted and reported: a soak must see none
            counters["errors"] += 1
            print(f"emitter {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            previous = None


async def _read(views: Any, stop: anyio.Event, counters: dict[str, int]) -> None:
    """Query the live views in a loop; count queries and errors."""
    while not stop.is_set():
        try:
            runs = await views.query.runs(limit=20)
            if runs:
                await views.query.run(runs[0].run_id)
                artifacts = await views.query.artifacts(limit=5)
                if artifacts:
                    await views.query.lineage(artifact=artifacts[0].artifact_id, depth=3)
            await views.query.summary()
            counters["queries"] += 1
        except Exception as exc:
            counters["errors"] += 1
            print(f"reader: {type(exc).__name__}: {exc}", file=sys.stderr)
        await anyio.sleep(0.01)


async def _child(uri: str, seconds: float, emitters: int, tag: str) -> None:
    counters = {"runs": 0, "errors": 0}
    stop = anyio.Event()
    async with open_store(uri) as store, anyio.create_task_group() as group:
        for n in range(emitters):
            group.start_soon(_emit, store, stop, counters, f"{tag}{n}")
        await anyio.sleep(seconds)
        stop.set()
    print(f"{counters['runs']} {counters['errors']}")


def _spawn_children(
    uri: str, seconds: float, emitters: int, processes: int
) -> list[subprocess.Popen[str]]:
    """Start the extra emitter processes (each prints "runs errors" when done)."""
    children = []
    for n in range(processes):
        command = [sys.executable, "-m", "benchmarks.soak", "--child", "--store", uri]
        command += ["--seconds", str(seconds), "--emitters", str(emitters), "--tag", f"p{n}-"]
        children.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    return children


async def _dump(views_store: Any) -> dict[str, list[Any]]:
    """Every row of every view table, sorted, to compare two views stores."""
    tables: dict[str, list[Any]] = {}
    for projection in default_projections():
        for table in projection.tables:
            rows = await views_store.fetch(f"SELECT * FROM {table}")
            tables[table] = sorted(rows, key=repr)
    return tables


async def _soak(uri: str, seconds: float, emitters: int, processes: int) -> int:
    counters = {"runs": 0, "errors": 0, "queries": 0}
    started = time.perf_counter()
    children = _spawn_children(uri, seconds, emitters, processes)
    async with open_store(uri) as store, open_views(store, fresh=False) as views:
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            await group.start(views.follow)
            group.start_soon(_read, views, stop, counters)
            # The emitters finish the run they are in after the stop: the head is
            # read only once they all returned, or a late append would be in the
            # replay and not in the live views (which stop at that head).
            async with anyio.create_task_group() as emitting:
                for n in range(emitters):
                    emitting.start_soon(_emit, store, stop, counters, f"main{n}")
                await anyio.sleep(seconds)
                stop.set()
            for child in children:
                out, _ = await anyio.to_thread.run_sync(child.communicate)
                runs, errors = (int(x) for x in out.split())
                counters["runs"] += runs
                counters["errors"] += errors + (child.returncode != 0)
            head = await store.head()
            await views.wait_for(head, timeout=300)
            group.cancel_scope.cancel()
        elapsed = time.perf_counter() - started
        report = await store.verify()
        live = await _dump(views.views_store)
        async with views_as_of(store) as replayed:
            rebuilt = await _dump(replayed.views_store)
    equal = live == rebuilt
    print(f"store            {uri}")
    print(f"duration         {elapsed:.1f} s ({seconds:g} s of load)")
    print(f"emitters         {emitters} tasks x {processes + 1} processes")
    print(f"events stored    {head:,} ({head / elapsed:,.0f} events/s)")
    print(f"runs recorded    {counters['runs']:,}")
    print(f"reader queries   {counters['queries']:,}")
    print(f"errors           {counters['errors']}")
    print(f"verify           {'ok' if report.ok else f'FAILED at {report.first_bad_position}'}")
    print(f"live == rebuilt  {equal}")
    return 0 if counters["errors"] == 0 and report.ok and equal else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the soak (or one child emitter process)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--emitters", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1, help="extra emitter processes")
    parser.add_argument("--store", help="a store URI (default: a temporary directory)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging()
    if args.child:
        anyio.run(_child, args.store, args.seconds, args.emitters, args.tag)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        uri = args.store or str(Path(scratch) / "store")
        return anyio.run(_soak, uri, args.seconds, args.emitters, args.processes)


if __name__ == "__main__":
    raise SystemExit(main())
