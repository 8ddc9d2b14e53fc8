"""Child processes for the routing test (run as ``python -m tests.routing_workers``).

``record HOME COUNT``: records COUNT two-step runs through the home store, as the
README's orchestrator example does (no stack named: the active stack decides),
printing each run's id once it finished.

``switch HOME COUNT A B STOP``: sets the active stack to A, B, A, B... until the
file STOP exists (the parent makes it once the recorders are done), at most
COUNT times; prints "flipping" after the first flip, so the parent starts the
recorders while the active stack keeps changing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from eventstore import open_store


async def record(home: str, count: int) -> None:
    """Record ``count`` runs in whichever store the active stack names at each start."""
    async with open_store(home, backend_options={"busy_timeout": 30.0}) as store:
        for _ in range(count):
            async with store.pipeline_run("training") as run:
                async with run.step("load") as step:
                    data = await step.produce("data", uri="file:///tmp/data.parquet")
                async with run.step("train", upstream_steps=["load"]) as step:
                    await step.consume("data", data)
                    await step.log_metadata({"accuracy": 0.93})
            sys.stdout.write(f"{run.run_id}\n")
            sys.stdout.flush()


async def switch(home: str, count: int, first: str, second: str, stop: str) -> None:
    """Flip the active stack until ``stop`` exists, at most ``count`` times."""
    async with open_store(home, backend_options={"busy_timeout": 30.0}) as store:
        for index in range(count):
            await store.set_active_stack(first if index % 2 == 0 else second)
            if index == 0:
                sys.stdout.write("flipping\n")
                sys.stdout.flush()
            if Path(stop).exists():
                break


def main(argv: list[str]) -> None:
    """Dispatch one worker command."""
    command, home, count, *rest = argv
    if command == "record":
        anyio.run(record, home, int(count))
    elif command == "switch":
        first, second, stop = rest
        anyio.run(switch, home, int(count), first, second, stop)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
