"""Child processes for the multi-process and crash tests (run as ``python -m tests.workers``).

``append STORE PREFIX TASKS COUNT``: TASKS concurrent tasks append COUNT events
in all, one per append; prints every acknowledged event id.

``project STORE``: catches the views up 5 events a batch, printing a line per
batch (the parent kills it mid-way).

``crashloop STORE [thread|process]``: appends 3-event batches forever, printing
one line per acknowledged append (``ack <position> <id> <id> <id>``), flushed at
once, so the parent knows exactly what was acknowledged when it kills the
process. With ``process`` a log writer child commits them (its pid is printed
first, ``writer <pid>``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import anyio

from eventstore import NewEvent, RunDeleted, open_store
from eventstore.logs import configure_logging


async def append(store_uri: str, prefix: str, tasks: int, count: int) -> None:
    """Append ``count`` single-event appends from ``tasks`` concurrent tasks."""
    ids: list[str] = []
    options = {} if store_uri.startswith("postgresql") else {"busy_timeout": 30.0}
    async with open_store(store_uri, backend_options=options, default_stack=False) as store:

        async def worker(worker_index: int) -> None:
            for i in range(worker_index, count, tasks):
                event = NewEvent(RunDeleted(run_id=uuid.uuid4(), reason=f"{prefix}-{i}"))
                await store.append(f"{prefix}-{worker_index}", [event])
                ids.append(str(event.event_id))

        async with anyio.create_task_group() as group:
            for worker_index in range(tasks):
                group.start_soon(worker, worker_index)
    sys.stdout.write("\n".join(ids) + "\n")


async def crashloop(store_uri: str, log_writer: str = "thread") -> None:
    """Append forever, acknowledging each append on stdout; the parent kills us."""
    async with open_store(
        store_uri,
        default_stack=False,
        log_writer=log_writer,  # type: ignore[arg-type]
    ) as store:
        pid = getattr(store.log._writer, "pid", None)
        if pid is not None:
            sys.stdout.write(f"writer {pid}\n")
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        n = 0
        while True:
            events = [NewEvent(RunDeleted(run_id=uuid.uuid4(), reason=str(n))) for _ in range(3)]
            result = await store.append(f"crash-{n % 7}", events)
            ids = " ".join(str(e.event_id) for e in events)
            sys.stdout.write(f"ack {result.position} {ids}\n")
            sys.stdout.flush()
            n += 1


async def project(store_uri: str) -> None:
    """Catch the views up in small batches, printing a line after each; the parent kills us."""
    from projections import open_views

    async with open_store(store_uri) as store, open_views(store) as views:
        views.runner.batch_size = 5

        def report(done: int, total: int) -> None:
            sys.stdout.write(f"batch {done} {total}\n")
            sys.stdout.flush()

        await views.catch_up(progress=report)


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start ``python -m tests.workers ARGS`` from the project root, unbuffered, piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers", *args],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def assert_appends_land_once(
    store_uri: str, *, processes: int = 4, count: int = 2000, timeout: float = 300
) -> None:
    """Run ``processes`` appending children on one store; every acknowledged event must be
    stored exactly once, at gapless positions, with the chain intact."""
    from collections import Counter

    async with open_store(store_uri, default_stack=False):
        pass  # created once up front; creation races have their own tests
    children = [spawn("append", store_uri, f"p{n}", "20", str(count)) for n in range(processes)]
    acknowledged: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        assert child.returncode == 0, err
        acknowledged.extend(line for line in out.splitlines() if line)
    total = processes * count
    assert len(acknowledged) == total
    async with open_store(store_uri) as opened:
        stored = [(e.position, e.event_id_text) async for e in opened.read_all()]
        report = await opened.verify()
    assert list(range(1, total + 1)) == [p for p, _ in stored]
    counts = Counter(i for _, i in stored)
    assert set(acknowledged) == set(counts)
    assert {1} == set(counts.values())
    assert report.ok, report


def main(argv: list[str]) -> None:
    """Dispatch on the first argument."""
    configure_logging()  # logs to stderr: stdout is the acknowledgement channel
    if argv[0] == "append":
        anyio.run(append, argv[1], argv[2], int(argv[3]), int(argv[4]))
    elif argv[0] == "crashloop":
        anyio.run(crashloop, *argv[1:3])
    elif argv[0] == "project":
        anyio.run(project, argv[1])
    else:
        raise SystemExit(f"unknown worker {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
